"""The dynamic loop around a running graph: reflect on each settled task, replan, stop early, keep budgets.

It listens to the engine's events. A deterministic trigger or the model's verdict can lead to a patch of
the pending part (applied while independent tasks keep running), to stopping early when the goal is met,
or, near a budget limit, to starting no new work. Every decision is recorded and emitted as an event. The
loop always ends: replans are bounded, and a stall (the same patch again, no task finished across
replans, a task added again after it was removed) ends the run with its reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from orquestra.budget_meter import BudgetMeter
from orquestra.engine import Execution, RunStatus, TaskStatus
from orquestra.events import Event, Reflected, Replanned, TaskFailed, TaskSucceeded
from orquestra.exceptions import (
    ApprovalRejected,
    BudgetExceeded,
    ModelConfigError,
    ModelError,
    PatchRefused,
    ReplanError,
)
from orquestra.graph import GraphPatch, TaskGraph
from orquestra.reflect import Continue, Finish, ReflectionMode, Reflector, Replan, Verdict
from orquestra.replanner import Replanner, describe_patch

log = logging.getLogger(__name__)

STALL_AFTER = 2
"""Replans in a row without a task finishing in between that count as a stall."""


@dataclass(frozen=True)
class ReplanRecord:
    """One replan: why, the patch, and the diff as text."""

    reason: str
    patch: GraphPatch
    diff: str


@dataclass
class LoopRecord:
    """What the loop decided during a run: every graph version, every verdict, every replan."""

    graphs: list[TaskGraph] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    replans: list[ReplanRecord] = field(default_factory=list)
    ended_by: str = ""
    """Why the loop ended the run early, if it did."""


class DynamicLoop:
    """Reflects and replans around one `Execution`.

    Args:
        goal: the run's goal.
        reflector: judges settled tasks.
        replanner: turns replan verdicts into patches.
        meter: the run's budget meter.
        max_replans: replans allowed in this run.
        emit: receives `Reflected` and `Replanned` events.

    """

    def __init__(
        self,
        goal: str,
        reflector: Reflector,
        replanner: Replanner,
        meter: BudgetMeter,
        *,
        max_replans: int = 3,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self.goal = goal
        self.reflector = reflector
        self.replanner = replanner
        self.meter = meter
        self.max_replans = max_replans
        self.emit = emit
        self.record = LoopRecord()
        self._execution: Execution | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._seen_patches: set[str] = set()
        self._removed: set[str] = set()
        self._finished_since_replan = 0
        self._replans_without_progress = 0
        self._timer: asyncio.TimerHandle | None = None
        self._plan_in = asyncio.Event()
        self._plan_in.set()

    def attach(self, execution: Execution) -> None:
        """Start watching `execution` (subscribe `on_event` to its engine before it starts)."""
        self._execution = execution
        self.record.graphs.append(execution.graph)
        self._check_budget()  # planning may have used most of it already
        budget = self.meter.budget
        if budget.max_seconds is not None:
            delay = max(budget.max_seconds * budget.near - self.meter.elapsed(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._check_budget)

    def await_plan(self) -> None:
        """Hold every decision until `planned`: the plan is still streaming into the run.

        A judgement or a replan made now would see only the part of the plan written so far, and a patch
        could clash with the tasks still to come. Settled tasks are still watched, and those that need a
        decision keep their dependents waiting, as they do while any decision is made.
        """
        self._plan_in.clear()

    def planned(self, graph: TaskGraph) -> None:
        """The whole plan is in the run, as `graph`: it is the record's first graph, and held decisions go on."""
        if self.record.graphs:
            self.record.graphs[0] = graph
        self._plan_in.set()

    def on_event(self, event: Event) -> None:
        """Engine subscriber: reflect on every task that settles."""
        execution = self._execution
        if execution is None or execution.stopping or not isinstance(event, TaskSucceeded | TaskFailed):
            return
        if isinstance(event, TaskSucceeded):
            self._finished_since_replan += 1
        elif isinstance(execution.errors.get(event.task_id), ApprovalRejected):
            return  # a person said no: planning a way around that would overrule them
        if self._check_budget():
            return
        status = TaskStatus.SUCCEEDED if isinstance(event, TaskSucceeded) else TaskStatus.FAILED
        output = event.output if isinstance(event, TaskSucceeded) else None
        error = event.error if isinstance(event, TaskFailed) else ""
        verdict = self.reflector.check(event.task_id, status, output, error)
        if verdict is None:
            if self.reflector.mode is ReflectionMode.FAILURE:
                return
            counts = _counts(execution)
            if not self.reflector.wants_model(running=counts.running, pending=counts.pending):
                return
        # Keep the run open, and this task's dependents pending, until the decision is made: a replan may
        # change them, or add work after the last task settles.
        if status is TaskStatus.SUCCEEDED:
            execution.defer(event.task_id)
        else:
            execution.hold()
        task = asyncio.get_running_loop().create_task(self._decide(execution, verdict, event.task_id, status))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        """Wait for decisions still in progress and stop the budget timer."""
        if self._timer is not None:
            self._timer.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # ---------------------------------------------------------------- decisions

    async def _decide(self, execution: Execution, verdict: Verdict | None, task_id: str, status: TaskStatus) -> None:
        try:
            await self._plan_in.wait()
            async with self._lock:  # one decision at a time: each sees the graph the previous one left
                if execution.stopping:
                    return
                if verdict is None:
                    verdict = await self.reflector.judge(
                        self.goal, execution.graph, execution.statuses, execution.outputs
                    )
                self.record.verdicts.append(verdict)
                if self.emit:
                    self.emit(Reflected(execution.run_id, type(verdict).__name__.lower(), verdict.reason))
                if isinstance(verdict, Finish):
                    self._end(execution, verdict.reason, RunStatus.SUCCEEDED)
                elif isinstance(verdict, Replan):
                    await self._replan(execution, verdict)
        except BudgetExceeded as error:
            self._end(execution, str(error), RunStatus.OUT_OF_BUDGET)
        except (ModelError, ModelConfigError) as error:  # a refused key too: an unretrieved error would leak it
            log.warning("reflection failed, the plan stays as it is: %s", error)
            self.record.verdicts.append(Continue(f"reflection failed: {error}"))
        finally:
            if status is TaskStatus.SUCCEEDED:
                execution.resume(task_id)
            else:
                execution.release()

    async def _replan(self, execution: Execution, verdict: Replan, *, retry_refused: bool = True) -> None:
        if len(self.record.replans) >= self.max_replans:
            self._end(
                execution,
                f"the replan limit ({self.max_replans}) is reached; the last reason: {verdict.reason}",
                RunStatus.GAVE_UP,
            )
            return
        if self._finished_since_replan == 0 and self.record.replans:
            self._replans_without_progress += 1
        else:
            self._replans_without_progress = 0
        if self._replans_without_progress >= STALL_AFTER:
            self._end(execution, f"stalled: no task finished across {STALL_AFTER} replans", RunStatus.GAVE_UP)
            return
        try:
            patch = await self.replanner.patch(
                self.goal, execution.graph, execution.statuses, execution.outputs, verdict, errors=execution.errors
            )
        except ReplanError as error:
            self._end(execution, f"replanning failed: {error.message}", RunStatus.GAVE_UP)
            return
        stall = self._stall(patch)
        if stall:
            self._end(execution, stall, RunStatus.GAVE_UP)
            return
        before = execution.graph
        try:
            execution.apply(patch)
        except PatchRefused as error:
            # The run moved on while the model wrote the patch (a task it touches has started): ask once more,
            # against the graph as it is now.
            if retry_refused and not execution.stopping:
                await self._replan(execution, verdict, retry_refused=False)
            else:
                log.warning("replan not applied: %s", error.message)
            return
        except RuntimeError as error:  # the run is ending
            log.warning("replan not applied: %s", error)
            return
        self._finished_since_replan = 0
        self._removed.update(patch.remove)
        diff = describe_patch(before, patch)
        self.record.replans.append(ReplanRecord(verdict.reason, patch, diff))
        self.record.graphs.append(execution.graph)
        if self.emit:
            self.emit(Replanned(execution.run_id, verdict.reason, patch, diff))

    def _stall(self, patch: GraphPatch) -> str | None:
        key = json.dumps(patch.model_dump(mode="json", exclude={"reason"}), sort_keys=True)
        if key in self._seen_patches:
            return "stalled: the planner proposed the same change again"
        self._seen_patches.add(key)
        again = [task.id for task in patch.add if task.id in self._removed]
        if again:
            return f"stalled: task '{again[0]}' was added again after it had been removed"
        return None

    def _check_budget(self) -> bool:
        execution = self._execution
        if execution is None or execution.stopping:
            return False
        reason = self.meter.near_limit()
        if reason:
            self._end(execution, f"{reason}; no new work starts, the answer uses what is done", RunStatus.OUT_OF_BUDGET)
        return reason is not None

    def _end(self, execution: Execution, reason: str, status: RunStatus) -> None:
        if not self.record.ended_by:
            self.record.ended_by = reason
        execution.stop(reason, status)


@dataclass(frozen=True)
class _Counts:
    running: int
    pending: int


def _counts(execution: Execution) -> _Counts:
    statuses = execution.statuses.values()
    running = sum(1 for status in statuses if status in (TaskStatus.READY, TaskStatus.RUNNING))
    pending = sum(1 for status in statuses if status is TaskStatus.PENDING)
    return _Counts(running, pending)
