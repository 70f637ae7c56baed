"""The records a run store hands back: a run, its tasks, its events, its approval requests.

They, and the way an event becomes JSON data, are shared by every `orquestra.run_storage.RunStorage`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from orquestra.approval import Decision
from orquestra.console import skip_reason
from orquestra.events import (
    ApprovalRequested,
    Event,
    ResultChecked,
    TaskCancelled,
    TaskFailed,
    TaskReady,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the store keeps it."""

    id: str
    goal: str
    status: str
    """'running' until the run ends, then a `RunStatus` value."""
    reason: str
    """Why the run ended early, or which tasks failed."""
    started_at: float
    finished_at: float | None
    model: str
    """The default model of the run, when the caller said."""
    usage: dict[str, Any] | None
    """Requests, tokens and cost, once `RunStore.finish` recorded them."""
    answer: str | None
    graph: dict[str, Any] | None
    """The graph as it stood last (patches included), as JSON data."""
    tasks_done: int = 0
    """Tasks that succeeded."""
    tasks_total: int = 0
    """Tasks in the graph as it stood last."""


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task of a run, as it stood last."""

    task_id: str
    capability: str
    agent: str
    """The agent that ran it, when known (pinned in the graph, or given to `RunStore.finish`)."""
    status: str
    """A `TaskStatus` value."""
    output: str | None
    error: str | None
    elapsed: float | None
    """The task's own duration in seconds, from its start (`TaskStarted`) to its end; None if it never ran."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a run's log."""

    seq: int
    """Position in the run's log, from 0."""
    type: str
    """The event's class name, e.g. 'TaskSucceeded'."""
    at: float
    payload: dict[str, Any]
    """The event's fields other than `run_id` and `at`, as JSON data."""


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A request for approval of one task, and its decision once made."""

    run_id: str
    task_id: str
    instruction: str
    """The instruction as planned."""
    reasons: list[str]
    requested_at: float
    decision: Decision | None
    decided_at: float | None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """Everything the store holds about one run."""

    run: RunRecord
    tasks: list[TaskRecord]
    events: list[EventRecord]


def to_jsonable(value: Any) -> Any:
    """`value` as JSON data: dataclasses field by field, pydantic models dumped, anything unknown as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Not dataclasses.asdict: it deep-copies every field, pydantic graphs included, before we dump them.
        return {field.name: to_jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    return str(value)


WAITING_STATUS: dict[type[Event], str] = {TaskReady: "ready", ApprovalRequested: "awaiting approval"}
"""The status of a task an event says waits; any other start-of-task event means 'running'."""


def event_payload(event: Event) -> dict[str, Any]:
    """The event's fields other than `run_id` and `at`, as JSON data (what `EventRecord.payload` holds)."""
    return {
        field.name: to_jsonable(getattr(event, field.name))
        for field in dataclasses.fields(event)
        if field.name not in ("run_id", "at")
    }


def output_text(output: Any) -> str:
    """A task's output as its record keeps it: a text as it is, anything else as JSON."""
    if isinstance(output, str):
        return output
    return json.dumps(to_jsonable(output), ensure_ascii=False)


def task_change(event: Event, started: dict[str, float]) -> tuple[str, dict[str, Any]] | None:
    """The task `event` changes and its new fields, as every run store records them; None if it changes none.

    `started` holds the tasks' start times, which this keeps up to date.
    """
    match event:
        case TaskReady(task_id=task_id) | TaskStarted(task_id=task_id) | ApprovalRequested(task_id=task_id):
            if isinstance(event, TaskStarted):
                started[task_id] = event.at
            return task_id, {"status": WAITING_STATUS.get(type(event), "running")}
        case TaskSucceeded(task_id=task_id, output=output, elapsed=elapsed):
            reason = skip_reason(output)
            if reason is None:
                return task_id, _settled("succeeded", output_text(output), None, elapsed)
            # A manifest task whose run_if was false: it did not run, whatever the engine counts.
            return task_id, _settled("skipped", None, f"skipped: {reason}", None)
        case TaskFailed(task_id=task_id, error=error, elapsed=elapsed):
            ran = elapsed if task_id in started else None  # refused before it started: it took no time
            return task_id, _settled("failed", None, error, ran)
        case TaskSkipped(task_id=task_id, because=because):
            return task_id, _settled("skipped", None, f"skipped: task '{because}' did not succeed", None)
        case TaskCancelled(task_id=task_id):
            since = started.get(task_id)
            return task_id, _settled("cancelled", None, None, event.at - since if since is not None else None)
        case ResultChecked(task_id=task_id, agent=agent) if agent:
            # The agent that answered (a fallback agent, perhaps), not only the one first assigned.
            return task_id, {"agent": agent}
        case _:
            return None


def _settled(status: str, output: str | None, error: str | None, elapsed: float | None) -> dict[str, Any]:
    return {"status": status, "output": output, "error": error, "elapsed": elapsed}


__all__ = [
    "WAITING_STATUS",
    "ApprovalRecord",
    "EventRecord",
    "RunRecord",
    "StoredRun",
    "TaskRecord",
    "event_payload",
    "output_text",
    "task_change",
    "to_jsonable",
]
