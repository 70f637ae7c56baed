"""The scheduler: runs any `TaskGraph` with one async callable per task. It knows nothing of models.

Each task starts the moment its own dependencies have succeeded: there are no layers and no supersteps.
The run keeps, per task, a count of dependencies still to finish; a finished task touches only its own
dependents, so the cost per task stays flat however large the graph grows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from orquestra.backoff import BackoffWait
from orquestra.events import (
    EventBus,
    GraphPatched,
    RunFinished,
    RunStarted,
    Subscriber,
    TaskCancelled,
    TaskFailed,
    TaskReady,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from orquestra.exceptions import OrquestraError, Refused, StopRun, TaskTimeout, TransientError
from orquestra.graph import GraphPatch, Task, TaskGraph

RunTask = Callable[[Task, Mapping[str, Any]], Awaitable[Any]]
"""What the engine calls for each task: the task, and its dependencies' outputs by task id."""

Gate = Callable[[Task], Awaitable[Task]]
"""What a task passes before it starts: returns the task to run, or raises to fail it."""


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    """Waiting for its dependencies."""
    READY = "ready"
    """Dependencies done; waiting for a concurrency slot."""
    RUNNING = "running"
    """An attempt is in progress."""
    SUCCEEDED = "succeeded"
    """Finished with an output."""
    FAILED = "failed"
    """Failed for good."""
    SKIPPED = "skipped"
    """Not run because a dependency failed or was skipped."""
    CANCELLED = "cancelled"
    """Stopped, or never started, because the run was cancelled."""


SETTLED = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED})


class RunStatus(StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"
    """Every task succeeded (or, stopped with this status, the goal was met before the rest was needed)."""
    FAILED = "failed"
    """At least one task failed (its dependents were skipped; independent branches ran to the end)."""
    OUT_OF_BUDGET = "out_of_budget"
    """A budget of tokens, cost or time was reached: no new work started; `RunResult.reason` says which."""
    GAVE_UP = "gave_up"
    """The loop ended the run: a stall, the replan limit, a replan that failed, or a plan that failed while it
    streamed into the run; `RunResult.reason` says which."""
    STOPPED = "stopped"
    """The caller ended the run early on purpose, for a reason of its own; `RunResult.reason` says why."""
    CANCELLED = "cancelled"
    """The run was cancelled from outside (Ctrl-C, the caller); `RunResult.reason` says why."""


_STOPS_OUTRANKING_FAILURES = frozenset({RunStatus.OUT_OF_BUDGET, RunStatus.GAVE_UP})
"""Stops that say more about how a run ended than the failures that may have led to them."""


OPEN = frozenset({TaskStatus.PENDING, TaskStatus.SKIPPED})
"""Tasks a patch may change: they have not run (a skipped one gets another chance when rewired or replaced)."""


def frozen_ids(
    statuses: Mapping[str, TaskStatus], errors: Mapping[str, BaseException], removing: Collection[str] = ()
) -> set[str]:
    """The tasks a patch removing `removing` may not touch, given a run's statuses and task errors.

    The one rule of what a replan may change: the engine refuses a patch by it, and the replanner's schema
    offers only what it leaves open. Ready, running, finished, failed and cancelled tasks are frozen, except a
    failed task that the patch removes (an alternative may replace it). A task a person refused (`Refused`)
    stays frozen even then: a replan must not quietly work around their no.
    """
    return {
        task_id
        for task_id, status in statuses.items()
        if status not in OPEN
        and not (task_id in removing and status is TaskStatus.FAILED and not isinstance(errors.get(task_id), Refused))
    }


def is_transient(error: BaseException) -> bool:
    """The default test for errors worth retrying: `TransientError`, timeouts and dropped connections."""
    return isinstance(error, TransientError | TimeoutError | ConnectionError)


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are retried: exponential backoff with jitter, only for transient errors."""

    retries: int = 2
    """Retries after the first attempt, unless a task sets its own."""
    initial_delay: float = 0.5
    """Seconds before the first retry; doubles each time."""
    max_delay: float = 30.0
    """Upper bound on one backoff delay (a longer Retry-After from the other side still wins)."""
    jitter: float = 0.5
    """Up to this many random seconds added to each delay, so retries do not arrive in lockstep."""
    transient: Callable[[BaseException], bool] = is_transient
    """Which errors are worth retrying."""


@dataclass
class RunResult:
    """What a run produced, and how it ended."""

    run_id: str
    status: RunStatus
    graph: TaskGraph
    """The graph as it stood at the end (patches included)."""
    statuses: dict[str, TaskStatus]
    outputs: dict[str, Any]
    """Outputs of the tasks that succeeded, by task id."""
    errors: dict[str, BaseException]
    """The final error of each failed task."""
    elapsed: float
    reason: str = ""
    """Why the run ended early, or which tasks failed; empty when every task succeeded."""
    superseded: dict[str, BaseException] = field(default_factory=dict)
    """Errors of failed tasks that a patch removed once an alternative took their place."""

    def with_status(self, *statuses: TaskStatus) -> list[str]:
        """Ids of the tasks in any of `statuses`, in graph order."""
        return [task.id for task in self.graph.tasks if self.statuses[task.id] in statuses]

    @property
    def finished(self) -> list[str]:
        """Ids of the tasks that succeeded."""
        return self.with_status(TaskStatus.SUCCEEDED)


class Engine:
    """Runs task graphs with `run_task`, under global and per-key concurrency limits.

    Args:
        run_task: called once per attempt of each task with the outputs of its dependencies.
        max_concurrency: at most this many tasks run at once (unbounded when None).
        limits: per-key limits, e.g. ``{"openai:gpt-5-mini": 4}``; a task's key comes from `limit_key`.
        limit_key: the key of a task for `limits` (for example the model its agent uses).
        retry: how transient errors are retried.
        timeout: seconds one attempt may take, unless the task sets its own.
        gate: awaited once per task before it takes a concurrency slot; returns the task to run (the same,
            or an edited form) or raises to fail it. Human approval waits here, holding no slot.

    """

    def __init__(
        self,
        run_task: RunTask,
        *,
        max_concurrency: int | None = None,
        limits: Mapping[str, int] | None = None,
        limit_key: Callable[[Task], str | None] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        gate: Gate | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.run_task = run_task
        self.max_concurrency = max_concurrency
        self.limits = dict(limits or {})
        self.limit_key = limit_key
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.gate = gate
        self.events = EventBus()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every event of every run of this engine; returns a function that unsubscribes."""
        return self.events.subscribe(subscriber)

    def start(self, graph: TaskGraph, *, run_id: str | None = None) -> Execution:
        """Start running `graph` in the current event loop; await the returned `Execution` for the result."""
        return Execution(self, graph, run_id or uuid.uuid4().hex[:12])

    async def run(self, graph: TaskGraph, *, run_id: str | None = None) -> RunResult:
        """Run `graph` to the end and return its result."""
        return await self.start(graph, run_id=run_id)


class Execution:
    """One run of a graph in progress: patch it, cancel it, or await its `RunResult`."""

    def __init__(self, engine: Engine, graph: TaskGraph, run_id: str) -> None:
        self._engine = engine
        self._events = engine.events
        self._run_task = engine.run_task
        self.run_id = run_id
        self.graph = graph
        self.statuses: dict[str, TaskStatus] = dict.fromkeys(graph.by_id, TaskStatus.PENDING)
        self.outputs: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.superseded: dict[str, BaseException] = {}
        self._waiting: dict[str, int] = {task.id: len(task.depends_on) for task in graph.tasks}
        self._unsettled = len(graph.tasks)
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._global_slots = asyncio.Semaphore(engine.max_concurrency) if engine.max_concurrency is not None else None
        self._key_slots: dict[str, asyncio.Semaphore] = {}
        self._started_at = time.perf_counter()
        self._task_started: dict[str, float] = {}
        """When each task's first attempt began: `TaskSucceeded` and `TaskFailed` report the time since."""
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._cancel_reason = ""
        self._stop_reason = ""
        self._stop_status = RunStatus.STOPPED
        self._holds = 0
        self._deferred: set[str] = set()
        self._stop_callbacks: list[Callable[[], object]] = []
        self.result: RunResult | None = None
        if self._events:
            self._events.emit(RunStarted(run_id, graph))
        for task in graph.tasks:
            if not task.depends_on:
                self._launch(task)

    # ---------------------------------------------------------------- public control

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self.wait().__await__()

    async def wait(self) -> RunResult:
        """Wait for the run to end; if the waiter itself is cancelled, the run's tasks are cancelled too."""
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.cancel("the awaiting task was cancelled")
            await self._drain()
            raise
        await self._drain()
        return self._finish()

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the run: running tasks are cancelled, pending ones never start; the result says why."""
        if self._done.done():
            return
        self._cancel_reason = reason
        self._stopping_now()
        self._cancel_where(lambda status: status not in SETTLED)
        self._holds = 0
        self._check_done()

    def stop(self, reason: str, status: RunStatus = RunStatus.STOPPED) -> None:
        """End the run early on purpose: nothing new starts, tasks already running finish.

        The result's status is `status` with `reason`, unless the run is cancelled meanwhile, or a task
        failed and `status` is `STOPPED` or `SUCCEEDED` (then it is `FAILED`); the tasks that never started
        are `CANCELLED`.
        """
        if self._done.done() or self._stop_reason:
            return
        self._stop_reason = reason
        self._stop_status = status
        self._stopping_now()
        self._cancel_where(lambda status: status in (TaskStatus.PENDING, TaskStatus.READY))
        self._check_done()

    @property
    def stopping(self) -> bool:
        """True once `stop` or `cancel` was called."""
        return bool(self._stop_reason or self._cancel_reason)

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Call `callback` once, when `stop` or `cancel` is first called (at once if the run is already ending).

        For work that feeds the run from outside, such as a plan still streaming in: it should end too.
        """
        if self.stopping or self._done.done():
            callback()
        else:
            self._stop_callbacks.append(callback)

    def _stopping_now(self) -> None:
        callbacks, self._stop_callbacks = self._stop_callbacks, []
        for callback in callbacks:
            callback()

    def hold(self) -> None:
        """Keep the run open even if every task settles, until `release`: the caller is deciding on a patch."""
        self._holds += 1

    def release(self) -> None:
        """Undo one `hold`; the run ends now if every task has settled."""
        self._holds = max(0, self._holds - 1)
        self._check_done()

    def defer(self, task_id: str) -> None:
        """Hold back the dependents of a finished task until `resume(task_id)`, keeping the run open.

        Call it from a `TaskSucceeded` subscriber while its output is judged: the dependents stay pending,
        so a patch may still change them.
        """
        if task_id not in self._deferred:
            self._deferred.add(task_id)
            self.hold()

    def resume(self, task_id: str) -> None:
        """Let the dependents of `task_id` start (those whose dependencies have all finished)."""
        if task_id not in self._deferred:
            return
        self._deferred.discard(task_id)
        if task_id in self.graph.by_id and not self.stopping:
            for child in self.graph.dependents[task_id]:
                task = self.graph[child]
                if self.statuses[child] is TaskStatus.PENDING and self._waiting[child] == 0:
                    if not self._deferred.intersection(task.depends_on):
                        self._launch(task)
        self.release()

    def _cancel_where(self, selected: Callable[[TaskStatus], bool]) -> None:
        for task_id, status in list(self.statuses.items()):
            if selected(status):
                self._settle(task_id, TaskStatus.CANCELLED)
                if self._events:
                    self._events.emit(TaskCancelled(self.run_id, task_id))
                running = self._running.get(task_id)
                if running is not None:
                    running.cancel()

    def apply(self, patch: GraphPatch) -> TaskGraph:
        """Apply `patch` to the pending part of the graph now; newly ready tasks start at once.

        Pending tasks may change, and so may skipped ones (they never ran: a patch that rewires or replaces
        one gives it another chance). Tasks that are ready, running, finished, failed or cancelled are frozen:
        a patch that touches one is refused with `PatchRefused`, and the run goes on unchanged.
        """
        if self._done.done() or self.stopping:
            raise RuntimeError("the run is ending; a patch can no longer be applied")
        new_graph = self.graph.apply(patch, frozen=frozen_ids(self.statuses, self.errors, patch.remove))
        removed = [task_id for task_id in self.graph.by_id if task_id not in new_graph.by_id]
        for task_id in removed:
            status = self.statuses.pop(task_id)
            if status is TaskStatus.PENDING:
                self._unsettled -= 1
            elif status is TaskStatus.FAILED:
                self.superseded[task_id] = self.errors.pop(task_id)
            del self._waiting[task_id]
        self.graph = new_graph
        changed = [*patch.add, *patch.replace, *(new_graph[task_id] for task_id in patch.rewire)]
        for task in changed:
            if self.statuses.get(task.id, TaskStatus.SKIPPED) is TaskStatus.SKIPPED:
                self.statuses[task.id] = TaskStatus.PENDING  # new, or revived after a skip
                self._unsettled += 1
        if self._events:
            self._events.emit(GraphPatched(self.run_id, patch, new_graph))
        for task in changed:
            self._reconsider(task)
        self._check_done()
        return new_graph

    # ---------------------------------------------------------------- scheduling

    def _reconsider(self, task: Task) -> None:
        """Recount a pending task's unfinished dependencies after a patch; start or skip it if due."""
        if self.statuses[task.id] is not TaskStatus.PENDING:
            return
        statuses = self.statuses
        blocked_by = next(
            (dep for dep in task.depends_on if statuses[dep] in SETTLED and statuses[dep] is not TaskStatus.SUCCEEDED),
            None,
        )
        if blocked_by is not None:
            self._skip_from(blocked_by, only=task.id)
            return
        self._waiting[task.id] = sum(1 for dep in task.depends_on if statuses[dep] is not TaskStatus.SUCCEEDED)
        if self._waiting[task.id] == 0 and not self._deferred.intersection(task.depends_on):
            self._launch(task)

    def _launch(self, task: Task) -> None:
        self.statuses[task.id] = TaskStatus.READY
        if self._events:
            self._events.emit(TaskReady(self.run_id, task.id))
        running = self._loop.create_task(self._execute(task))
        self._running[task.id] = running
        running.add_done_callback(partial(self._on_done, task.id))

    async def _execute(self, task: Task) -> Any:
        """Pass the gate, hold the task's slots, then run its attempts."""
        if self._engine.gate is not None:
            passed = await self._engine.gate(task)
            if passed != task:
                # An edited task replaces the planned one, so the graph (and whoever records it) says what ran.
                self.graph = TaskGraph(tasks=tuple(passed if t.id == task.id else t for t in self.graph.tasks))
                if self._events:
                    edit = GraphPatch(replace=(passed,), reason=f"task '{task.id}' was edited before it started")
                    self._events.emit(GraphPatched(self.run_id, edit, self.graph))
                task = passed
        key = self._engine.limit_key(task) if self._engine.limit_key else None
        key_limit = self._engine.limits.get(key) if key is not None else None
        if self._global_slots is None and key_limit is None:
            return await self._attempts(task)
        async with AsyncExitStack() as slots:
            if self._global_slots is not None:
                await slots.enter_async_context(self._global_slots)
            if key is not None and key_limit is not None:
                semaphore = self._key_slots.get(key)
                if semaphore is None:
                    semaphore = self._key_slots[key] = asyncio.Semaphore(key_limit)
                await slots.enter_async_context(semaphore)
            return await self._attempts(task)

    async def _attempts(self, task: Task) -> Any:
        self.statuses[task.id] = TaskStatus.RUNNING
        self._task_started[task.id] = time.perf_counter()
        if self._events:
            self._events.emit(TaskStarted(self.run_id, task.id))
        outputs = self.outputs
        inputs = {dep: outputs[dep] for dep in task.depends_on}
        policy = self._engine.retry
        retries = policy.retries if task.retries is None else task.retries
        try:
            # The first attempt runs without tenacity: most tasks succeed at once, and this keeps the
            # engine's own cost per task close to a bare await.
            return await self._attempt(task, inputs)
        except Exception as error:
            if retries == 0 or not policy.transient(error):
                raise
            return await self._retry(task, inputs, error, retries)

    async def _retry(self, task: Task, inputs: Mapping[str, Any], first_error: Exception, retries: int) -> Any:
        policy = self._engine.retry
        replay = [first_error]

        async def attempt() -> Any:
            # The first "attempt" re-raises the error already seen, so tenacity owns every delay.
            if replay:
                raise replay.pop()
            return await self._attempt(task, inputs)

        def announce(state: RetryCallState) -> None:
            if self._events and state.outcome is not None and state.next_action is not None:
                error = state.outcome.exception()
                self._events.emit(
                    TaskRetrying(self.run_id, task.id, state.attempt_number, _describe(error), state.next_action.sleep)
                )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            wait=BackoffWait(policy.initial_delay, policy.max_delay, policy.jitter),
            retry=retry_if_exception(policy.transient),
            before_sleep=announce,
            reraise=True,
        )
        return await retrying(attempt)

    async def _attempt(self, task: Task, inputs: Mapping[str, Any]) -> Any:
        timeout = task.timeout if task.timeout is not None else self._engine.timeout
        if timeout is None:
            return await self._run_task(task, inputs)
        try:
            async with asyncio.timeout(timeout):
                return await self._run_task(task, inputs)
        except TimeoutError:
            raise TaskTimeout(f"task '{task.id}' took longer than {timeout:g} s") from None

    def _on_done(self, task_id: str, done: asyncio.Task[Any]) -> None:
        del self._running[task_id]
        started = self._task_started.pop(task_id, None)
        if done.cancelled() or self.statuses.get(task_id) is TaskStatus.CANCELLED:
            return
        # The task's own time, from its start (retries included); a task refused before it started took none.
        elapsed = time.perf_counter() - started if started is not None else 0.0
        error = done.exception()
        if isinstance(error, StopRun):
            self._settle(task_id, TaskStatus.CANCELLED)
            if self._events:
                self._events.emit(TaskCancelled(self.run_id, task_id))
            self.stop(error.message, RunStatus(error.status))
            self._check_done()
            return
        if error is not None:
            self.errors[task_id] = error
            self._settle(task_id, TaskStatus.FAILED)
            if self._events:
                self._events.emit(TaskFailed(self.run_id, task_id, _describe(error), elapsed))
            self._skip_from(task_id)
        else:
            output = done.result()
            self.outputs[task_id] = output
            self._settle(task_id, TaskStatus.SUCCEEDED)
            if self._events:
                self._events.emit(TaskSucceeded(self.run_id, task_id, output, elapsed))
            waiting = self._waiting
            by_id = self.graph.by_id
            for child in self.graph.dependents[task_id]:
                waiting[child] -= 1
                if waiting[child] == 0 and self.statuses[child] is TaskStatus.PENDING:
                    child_task = by_id[child]
                    if not self._deferred or not self._deferred.intersection(child_task.depends_on):
                        self._launch(child_task)
        self._check_done()

    def _skip_from(self, failed_id: str, only: str | None = None) -> None:
        """Skip the pending dependents of `failed_id` (or just `only`), and everything below them."""
        targets = [only] if only is not None else list(self.graph.dependents[failed_id])
        for task_id in targets:
            for skipped in [task_id, *self.graph.descendants(task_id)]:
                if self.statuses[skipped] is TaskStatus.PENDING:
                    self._settle(skipped, TaskStatus.SKIPPED)
                    if self._events:
                        self._events.emit(TaskSkipped(self.run_id, skipped, failed_id))

    def _settle(self, task_id: str, status: TaskStatus) -> None:
        self.statuses[task_id] = status
        self._unsettled -= 1

    def _check_done(self) -> None:
        if self._unsettled == 0 and self._holds == 0 and not self._done.done():
            self._done.set_result(None)

    async def _drain(self) -> None:
        """Wait for cancelled tasks to unwind so nothing outlives the run."""
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _finish(self) -> RunResult:
        if self.result is not None:
            return self.result
        elapsed = time.perf_counter() - self._started_at
        failures = "; ".join(f"task '{task_id}' failed: {_describe(error)}" for task_id, error in self.errors.items())
        if self._cancel_reason:
            status, reason = RunStatus.CANCELLED, self._cancel_reason
        elif self._stop_reason and (self._stop_status in _STOPS_OUTRANKING_FAILURES or not self.errors):
            status = self._stop_status
            reason = f"{self._stop_reason}; {failures}" if failures else self._stop_reason
        elif self.errors:
            status, reason = RunStatus.FAILED, failures
        else:
            status, reason = RunStatus.SUCCEEDED, ""
        self.result = RunResult(
            run_id=self.run_id,
            status=status,
            graph=self.graph,
            statuses=dict(self.statuses),
            outputs=dict(self.outputs),
            errors=dict(self.errors),
            elapsed=elapsed,
            reason=reason,
            superseded=dict(self.superseded),
        )
        if self._events:
            self._events.emit(RunFinished(self.run_id, status.value, reason, elapsed))
        return self.result


def _describe(error: BaseException | None) -> str:
    """An error in words: Orquestra's own say what happened; others (a task's bug) keep their class name."""
    if error is None:
        return ""
    if isinstance(error, OrquestraError):
        return error.message
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = [
    "Engine",
    "Execution",
    "RetryPolicy",
    "RunResult",
    "RunStatus",
    "RunTask",
    "TaskStatus",
    "TaskTimeout",
    "is_transient",
]
