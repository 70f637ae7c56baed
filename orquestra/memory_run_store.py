"""A run store that keeps everything in the process: for tests, notebooks and embedding, where no file should be.

It keeps the same contract as the SQLite `orquestra.store.RunStore` (`orquestra.run_storage.RunStorage`): the
same records, orders, redaction and errors. Long texts stay inline (there is no row to keep short). Its records
live as long as the object: `close` releases nothing and forgets nothing, so a team that closes the store it was
given after a run leaves the run readable.
"""

from __future__ import annotations

import builtins
import dataclasses
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from orquestra.approval import Decision
from orquestra.events import Event, GraphPatched, PlanningStarted, RunFinished, RunStarted
from orquestra.exceptions import UnknownApproval, UnknownRun
from orquestra.graph import Task, TaskGraph
from orquestra.redaction import redact
from orquestra.run_records import (
    ApprovalRecord,
    EventRecord,
    RunRecord,
    StoredRun,
    TaskRecord,
    event_payload,
    task_change,
    to_jsonable,
)
from orquestra.store import MIN_PREFIX

log = logging.getLogger(__name__)

_AMBIGUOUS_SHOWN = 6
"""How many matching ids an ambiguous prefix's error names, as the SQLite store does."""


@dataclass
class _Run:
    """A run as kept: JSON fields as text, so that each read parses a fresh copy, as a database would."""

    order: int
    """When the run was first written, to break ties of `started_at` as the SQLite store's rowid does."""
    started_at: float
    goal: str = ""
    status: str = "running"
    reason: str = ""
    finished_at: float | None = None
    model: str = ""
    usage: str | None = None
    answer: str | None = None
    graph: str | None = None


@dataclass
class _Task:
    capability: str
    agent: str
    status: str = "pending"
    output: str | None = None
    error: str | None = None
    elapsed: float | None = None


@dataclass
class _Approval:
    order: int
    instruction: str
    reasons: str
    requested_at: float
    decision: Decision | None = None
    decided_at: float | None = None


@dataclass
class _Records:
    runs: dict[str, _Run] = field(default_factory=dict)
    tasks: dict[str, dict[str, _Task]] = field(default_factory=dict)
    """Each run's tasks by id, in the graph's order (new ones of a patch at the end)."""
    events: dict[str, dict[int, tuple[str, float, str]]] = field(default_factory=dict)
    """Each run's events by seq: type, time and payload as JSON text."""
    approvals: dict[tuple[str, str], _Approval] = field(default_factory=dict)


class InMemoryRunStore:
    """Runs, tasks, events and approvals in dictionaries; safe to share between threads."""

    def __init__(self) -> None:
        self._records = _Records()
        self._lock = threading.RLock()
        self._order = itertools.count()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the records stay readable as long as the store lives."""

    # ---------------------------------------------------------------- recording

    def subscriber(self, run_id: str, goal: str = "", *, model: str = "") -> Callable[[Event], None]:
        """An engine subscriber that records every event of run `run_id` (see `RunStorage.subscriber`)."""
        seq = 0
        warned = False
        started: dict[str, float] = {}
        """When each task of the run started, for the time of a task cancelled while it ran."""

        def record(event: Event) -> None:
            nonlocal seq, warned
            if event.run_id != run_id:
                return
            try:
                self._record(event, seq, goal, model, started)
                seq += 1
            except Exception as error:
                if not warned:
                    warned = True
                    log.warning("the in-memory run store could not record run %s: %s", run_id, error)

        return record

    def _record(self, event: Event, seq: int, goal: str, model: str, started: dict[str, float]) -> None:
        # Redacted as JSON text, as the SQLite store redacts the column: a secret escaped in JSON goes too.
        payload = redact(json.dumps(event_payload(event), ensure_ascii=False))
        with self._lock:
            records = self._records
            if isinstance(event, PlanningStarted) and event.run_id not in records.runs:  # planning begins the run
                planned = records.runs[event.run_id] = _Run(next(self._order), event.at)
                planned.goal, planned.model = redact(goal), redact(model)
            if isinstance(event, RunStarted):
                run = records.runs.get(event.run_id)
                if run is None:
                    run = records.runs[event.run_id] = _Run(next(self._order), event.at)
                run.goal, run.started_at, run.model = redact(goal), event.at, redact(model)
                run.graph = redact(event.graph.model_dump_json())
                self._sync_tasks(event.run_id, event.graph)
            records.events.setdefault(event.run_id, {})[seq] = (type(event).__name__, event.at, payload)
            self._update(event, started)

    def _update(self, event: Event, started: dict[str, float]) -> None:
        """Bring the run and its tasks up to date with `event`; `started` holds the tasks' start times."""
        records = self._records
        change = task_change(event, started)
        if change is not None:
            task_id, fields = change
            task = records.tasks.get(event.run_id, {}).get(task_id)
            for name, value in fields.items() if task is not None else ():
                setattr(task, name, redact(value) if isinstance(value, str) else value)
        run = records.runs.get(event.run_id)
        match event:
            case GraphPatched(graph=graph):
                if run is not None:
                    run.graph = redact(graph.model_dump_json())
                self._sync_tasks(event.run_id, graph)
            case RunFinished(status=status, reason=reason):
                if run is not None:
                    run.status, run.reason, run.finished_at = redact(status), redact(reason), event.at
                # Nothing waits for these any more: close them, so `orquestra approve` stops offering them.
                for (approval_run, _), approval in records.approvals.items():
                    if approval_run == event.run_id and approval.decision is None:
                        approval.decision = Decision.reject("the run ended", by="run")
                        approval.decided_at = event.at
            case _:
                pass

    def _sync_tasks(self, run_id: str, graph: TaskGraph) -> None:
        """Make the run's tasks match `graph`: new tasks pending, removed ones gone, statuses kept."""
        kept = self._records.tasks.setdefault(run_id, {})
        ids = {task.id for task in graph.tasks}
        for task_id in [task_id for task_id in kept if task_id not in ids]:
            del kept[task_id]
        for task in graph.tasks:
            capability, agent = redact(task.capability), redact(task.agent or "")
            existing = kept.get(task.id)
            if existing is None:
                kept[task.id] = _Task(capability, agent)
            else:
                existing.capability = capability
                existing.agent = agent or existing.agent

    def finish(
        self,
        run_id: str,
        *,
        answer: str,
        usage: Mapping[str, Any],
        graph_json: str | None = None,
        status: str,
        reason: str = "",
        agents: Mapping[str, str] | None = None,
    ) -> bool:
        """Record how run `run_id` ended (see `RunStorage.finish`); False, after a warning, if that failed."""
        now = time.time()
        try:
            usage_json = redact(json.dumps(to_jsonable(usage)))
            with self._lock:
                run = self._records.runs.get(run_id)
                if run is None:
                    run = self._records.runs[run_id] = _Run(next(self._order), now)
                run.status, run.reason = redact(status), redact(reason)
                run.finished_at = run.finished_at if run.finished_at is not None else now
                run.usage, run.answer = usage_json, redact(answer)
                if graph_json is not None:
                    run.graph = redact(graph_json)
                tasks = self._records.tasks.get(run_id, {})
                # Only where no event named the agent: the one that answered beats the one first assigned.
                for task_id, agent in (agents or {}).items():
                    if task_id in tasks and tasks[task_id].agent == "":
                        tasks[task_id].agent = redact(agent)
        except Exception as error:
            log.warning("the in-memory run store could not record the end of run %s: %s", run_id, error)
            return False
        return True

    # ---------------------------------------------------------------- approvals

    def request_approval(self, run_id: str, task: Task, reasons: Sequence[str]) -> None:
        """Record that `task` of `run_id` waits for a decision (replacing an older request for the same id)."""
        with self._lock:
            self._records.approvals[(run_id, task.id)] = _Approval(
                next(self._order), redact(task.instruction), redact(json.dumps(list(reasons))), time.time()
            )

    def decide(self, run_id: str, task_id: str, decision: Decision) -> Decision:
        """Record `decision` unless one was recorded first; returns the decision in effect."""
        with self._lock:
            approval = self._records.approvals.get((run_id, task_id))
            if approval is not None and approval.decision is None:
                approval.decision = _redacted_decision(decision)
                approval.decided_at = time.time()
                return decision
        record = self.approval(run_id, task_id)
        assert record.decision is not None  # the request exists (approval() raises otherwise) and is decided
        return record.decision

    def decision(self, run_id: str, task_id: str) -> Decision | None:
        """The decision on `task_id` of `run_id`, or None while it waits (or was never asked)."""
        with self._lock:
            approval = self._records.approvals.get((run_id, task_id))
            return None if approval is None else approval.decision

    def approval(self, run_id: str, task_id: str) -> ApprovalRecord:
        """The approval request of `task_id` in `run_id`; `UnknownApproval` when there is none."""
        with self._lock:
            approval = self._records.approvals.get((run_id, task_id))
            if approval is None:
                raise UnknownApproval(f"task '{task_id}' of run {run_id} has not asked for approval")
            return _approval_record(run_id, task_id, approval)

    def approvals(self, run_id: str | None = None, *, pending: bool = False) -> builtins.list[ApprovalRecord]:
        """Approval requests, oldest first: of one run or of all, only those still waiting when `pending`."""
        with self._lock:
            chosen = [
                (approval, key)
                for key, approval in self._records.approvals.items()
                if (run_id is None or key[0] == run_id) and not (pending and approval.decision is not None)
            ]
            chosen.sort(key=lambda item: (item[0].requested_at, item[0].order))
            return [_approval_record(*key, approval) for approval, key in chosen]

    # ---------------------------------------------------------------- reading

    def list(self, limit: int = 20) -> builtins.list[RunRecord]:
        """The most recent runs, newest first, with their task counts (no events, no outputs)."""
        with self._lock:
            newest = self._newest_first()
            # A negative limit means no limit, as SQLite's LIMIT reads it.
            return [self._run_record(run_id) for run_id in (newest if limit < 0 else newest[:limit])]

    def count(self) -> int:
        """How many runs the store holds."""
        with self._lock:
            return len(self._records.runs)

    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id is `run_id` or starts with it (see `RunStorage.resolve`)."""
        with self._lock:
            if run_id in self._records.runs:
                return run_id
            matches = []
            if len(run_id) >= MIN_PREFIX:
                matches = [full for full in self._newest_first() if full.startswith(run_id)][:_AMBIGUOUS_SHOWN]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownRun(f"run id '{run_id}' is ambiguous: it starts {', '.join(matches)}; give more characters")
        hint = f" (a prefix needs at least {MIN_PREFIX} characters)" if len(run_id) < MIN_PREFIX else ""
        raise UnknownRun(f"no recorded run with id '{run_id}'{hint} (see `orquestra runs list`)")

    def get(self, run_id: str) -> StoredRun:
        """The run `run_id` (or a unique prefix of it) with its tasks and events; `UnknownRun` if none."""
        with self._lock:
            full_id = self.resolve(run_id)
            tasks = self._records.tasks.get(full_id, {})
            events = self._records.events.get(full_id, {})
            return StoredRun(
                run=self._run_record(full_id),
                tasks=[
                    TaskRecord(task_id, task.capability, task.agent, task.status, task.output, task.error, task.elapsed)
                    for task_id, task in tasks.items()
                ],
                events=[
                    EventRecord(seq, kind, at, json.loads(payload))
                    for seq, (kind, at, payload) in sorted(events.items())
                ],
            )

    def export(self, run_id: str) -> dict[str, Any]:
        """The run `run_id` with its tasks and events as JSON data; `UnknownRun` if none."""
        exported: dict[str, Any] = dataclasses.asdict(self.get(run_id))
        return exported

    def _newest_first(self) -> builtins.list[str]:
        runs = self._records.runs
        return sorted(runs, key=lambda run_id: (runs[run_id].started_at, runs[run_id].order), reverse=True)

    def _run_record(self, run_id: str) -> RunRecord:
        run = self._records.runs[run_id]
        tasks = self._records.tasks.get(run_id, {}).values()
        return RunRecord(
            id=run_id,
            goal=run.goal,
            status=run.status,
            reason=run.reason,
            started_at=run.started_at,
            finished_at=run.finished_at,
            model=run.model,
            usage=json.loads(run.usage) if run.usage else None,
            answer=run.answer,
            graph=json.loads(run.graph) if run.graph else None,
            tasks_done=sum(task.status == "succeeded" for task in tasks),
            tasks_total=len(tasks),
        )


def _redacted_decision(decision: Decision) -> Decision:
    instruction = None if decision.instruction is None else redact(decision.instruction)
    return Decision(decision.verdict, redact(decision.note), instruction, redact(decision.by))


def _approval_record(run_id: str, task_id: str, approval: _Approval) -> ApprovalRecord:
    reasons = json.loads(approval.reasons)
    return ApprovalRecord(
        run_id, task_id, approval.instruction, reasons, approval.requested_at, approval.decision, approval.decided_at
    )


__all__ = ["InMemoryRunStore"]
