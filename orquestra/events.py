"""Typed events: every state change of a run, delivered to any number of subscribers.

Events are frozen dataclasses. The console view, the run store and tests all read the same events and
never reach into the engine. A subscriber is a plain callable; one that raises is reported once in the log
and does not disturb the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orquestra.graph import GraphPatch, TaskGraph

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events: which run, and when (seconds since the epoch)."""

    run_id: str
    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True, slots=True)
class Planned(Event):
    """A goal was planned: the graph, what the repair changed, the goals of past runs recalled, and notes.

    `notes` say what was left out of the planner's prompt to fit the model's context (`PlanResult.notes`).
    """

    graph: TaskGraph
    repairs: tuple[str, ...] = ()
    recalled: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanningStarted(Event):
    """The planner began writing a plan for `goal` with `model`."""

    goal: str
    model: str


@dataclass(frozen=True, slots=True)
class TaskDrafted(Event):
    """The planner wrote one more task of the plan (as it streams; the checked graph follows in `Planned`)."""

    task_id: str
    capability: str
    instruction: str


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run began with this graph."""

    graph: TaskGraph


@dataclass(frozen=True, slots=True)
class TaskReady(Event):
    """All of a task's dependencies finished; it waits for a concurrency slot."""

    task_id: str


@dataclass(frozen=True, slots=True)
class TaskStarted(Event):
    """A task got its slot and its first attempt began."""

    task_id: str


@dataclass(frozen=True, slots=True)
class TaskRetrying(Event):
    """An attempt failed with a transient error; the next one starts after `delay` seconds."""

    task_id: str
    attempt: int
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class ModelRetrying(Event):
    """A model call failed transiently and is sent again after `delay` seconds.

    Transient: a rate limit, a server error, a timeout, a dropped connection or an unreadable answer, in any
    step of the run (planning, an agent, reflection, the answer).
    """

    model: str
    attempt: int
    """The attempt that failed, from 1."""
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class ApprovalRequested(Event):
    """A task needs a person's approval before it starts; its branch waits, independent ones go on."""

    task_id: str
    agent: str
    instruction: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApprovalDecided(Event):
    """A person (or the approval timeout) decided on a task: 'approved', 'edited' or 'rejected'."""

    task_id: str
    verdict: str
    note: str = ""
    instruction: str = ""
    """The instruction the task runs with (the edited one after an edit)."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class TaskSucceeded(Event):
    """A task finished with an output."""

    task_id: str
    output: Any
    elapsed: float
    """Seconds from the task's `TaskStarted` to its end, retries included."""


@dataclass(frozen=True, slots=True)
class TaskFailed(Event):
    """A task failed for good (retries exhausted, or an error not worth retrying)."""

    task_id: str
    error: str
    elapsed: float
    """Seconds from the task's `TaskStarted` to its end, retries included; 0.0 for a task refused before it started."""


@dataclass(frozen=True, slots=True)
class TaskSkipped(Event):
    """A task will not run because a task it depends on failed or was skipped."""

    task_id: str
    because: str


@dataclass(frozen=True, slots=True)
class TaskCancelled(Event):
    """A task was stopped, or never started, because the run was cancelled."""

    task_id: str


@dataclass(frozen=True, slots=True)
class ToolCalled(Event):
    """An agent called a tool; `result` is what the tool returned (or its error, as text)."""

    task_id: str
    tool: str
    arguments: dict[str, Any]
    result: str


@dataclass(frozen=True, slots=True)
class ResultChecked(Event):
    """An agent's answer to a task went through the task's checks; a failure makes the attempt fail.

    `checks` names every check that ran, `failures` says, for each one that failed, why (``"name: reason"``).
    `attempt` counts the agent's answers to this task, from 1.
    """

    task_id: str
    agent: str
    passed: bool
    checks: tuple[str, ...]
    failures: tuple[str, ...] = ()
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class AgentFallback(Event):
    """An agent's model failed for good on a task; the next model or fallback agent takes over."""

    task_id: str
    agent: str
    model: str
    error: str


@dataclass(frozen=True, slots=True)
class GraphPatched(Event):
    """A patch changed the pending part of the running graph."""

    patch: GraphPatch
    graph: TaskGraph


@dataclass(frozen=True, slots=True)
class Reflected(Event):
    """The loop judged the run: `verdict` is 'continue', 'replan' or 'finish', with its reason."""

    verdict: str
    reason: str


@dataclass(frozen=True, slots=True)
class Replanned(Event):
    """A replan patched the pending part of the graph; `diff` shows what changed."""

    reason: str
    patch: GraphPatch
    diff: str


@dataclass(frozen=True, slots=True)
class AnswerChecked(Event):
    """The figure of a run's answer was worked out again from the goal alone (see `orquestra.answer_check`).

    `passed` is None when the answer was not judged; `why` says what was found, either way.
    """

    passed: bool | None
    why: str
    expression: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """A run ended; `status` is a `RunStatus` value and `reason` says why when it ended early."""

    status: str
    reason: str
    elapsed: float


@dataclass(frozen=True, slots=True)
class TeamFinished(Event):
    """A team's run is answered: `result` is its `TeamResult` (the last event of `AutoTeam.stream`)."""

    result: Any


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to every subscriber, in the order they subscribed."""

    __slots__ = ("_subscribers", "_reported")

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._reported: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, event: Event) -> None:
        """Deliver `event`; a failing subscriber is logged and skipped, the run goes on."""
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                # Once per subscriber: a broken view must not flood the log on every event.
                if id(subscriber) not in self._reported:
                    self._reported.add(id(subscriber))
                    log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
