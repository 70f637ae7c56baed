"""Plans that stream into the engine: a task starts as soon as it and its dependencies are known and checked.

The planner reports each task the moment the model has written it in full (`Planner.plan(drafted=...)`).
`PlanStream` admits a drafted task into the run only when it passes every check that can be made on the task
alone and against the tasks admitted before it: a planner's id, not seen before, within the plan's size limit,
a capability some agent offers (with models that resolve), and dependencies on admitted tasks only. So the
admitted part is always an acyclic graph of checked tasks, and the engine runs each one when its own
dependencies have succeeded, while the model is still writing the rest. A task that fails those checks is
never started unchecked: it waits for the whole plan, and so does every task that depends on it.

When the planner is done, its checked (perhaps repaired or re-asked) graph is the plan, and one patch brings
the run in line with it, under the engine's own rule for patches: what has started stays as it is.

- An admitted task that the final plan has unchanged keeps running.
- A task of the final plan not admitted yet is added: one that waited (as the repair left it), or one written
  after a re-ask.
- An admitted task that has not started follows the final plan: replaced if the plan changed it, removed if
  the plan dropped it.
- An admitted task that has started is never cancelled: a later error cancels nothing that was valid. If the
  final plan dropped it, it runs to the end and its result stays in the run; if the final plan changed it
  (a re-asked plan reusing its id), it runs as it was, and the final version runs too under a free id, which
  the final plan's edges to it follow.

Once the model starts its answer over (the planner re-asks it), nothing more is admitted: the new answer may
reuse the ids of the first with other work, so its tasks wait for the whole plan.

A planner that fails once tasks were admitted ends the run: nothing new starts, the tasks already running
finish, and the run ends `GAVE_UP` (`OUT_OF_BUDGET` when the budget ran out) with the planner's error as its
reason, never as a success. While the plan streams in, the run cannot end (it is held open), and the dynamic
loop makes no decision (a replan of half a plan would clash with the rest); a run stopped or cancelled
meanwhile stops the planner too. A task that would only queue behind the planner for the same model (the
embedded one answers one request at a time) waits as ready until the plan is complete (`PlanStream.gate`).

The planner drafts a task only once its closing brace is written (`orquestra.plan_text`), so a task is
never admitted before all its dependencies are written.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orquestra.engine import OPEN, Execution, Gate, RunStatus, TaskStatus, _describe
from orquestra.exceptions import BudgetExceeded, GraphError, UserError, describe_validation_error
from orquestra.graph import GraphPatch, Task, TaskGraph, numbered_id
from orquestra.planner import ID_PATTERN, PlannedTask, PlanResult

if TYPE_CHECKING:
    from orquestra.loop import DynamicLoop

log = logging.getLogger(__name__)

_PLANNED_ID = re.compile(ID_PATTERN)


class PlanStream:
    """Admits a plan's tasks into a run as the planner writes them, then the whole plan once it is known.

    Args:
        capabilities: the capabilities agents offer.
        check: raises `UserError` when a task cannot be run here (no agent takes it, a model that does not
            resolve); it is called on each task before it is admitted.
        max_tasks: the largest plan the planner accepts.

    Use: pass `drafted` as the planner's callback; await `opening` with the planning for the graph to start
    the run with; then `attach` the started execution, and `close` once the run has ended.

    """

    def __init__(self, capabilities: Collection[str], check: Callable[[Task], None], *, max_tasks: int) -> None:
        self.capabilities = frozenset(capabilities)
        self.check = check
        self.max_tasks = max_tasks
        self.admitted: dict[str, Task] = {}
        """The tasks admitted so far, in the order they were."""
        self.held: dict[str, str] = {}
        """The drafted tasks that wait for the whole plan, with why."""
        self.result: PlanResult | None = None
        """The planner's result, once it is in (None when planning failed or was stopped)."""
        self._first = asyncio.Event()
        self._planned = False
        self._reasked = False
        self._execution: Execution | None = None
        self._loop: DynamicLoop | None = None
        self._planning: asyncio.Future[PlanResult] | None = None
        self._follower: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- while the model writes

    def drafted(self, planned: PlannedTask) -> None:
        """The planner's `drafted` callback: admit `planned` into the run if it passes its checks, else hold it."""
        execution = self._execution
        if self._planned or (execution is not None and execution.stopping):
            return
        task, problem = (None, "the plan was re-asked") if self._reasked else self._admissible(planned)
        if task is None:
            self.held[planned.id] = problem
            log.debug("task '%s' waits for the whole plan: %s", planned.id, problem)
            return
        if execution is not None:
            try:
                execution.apply(GraphPatch(add=(task,), reason=f"the planner wrote task '{task.id}'"))
            except GraphError as error:  # never expected: the checks above are the graph's; the plan decides
                self.held[task.id] = error.message
                return
        self.admitted[task.id] = task
        self._first.set()

    def reasked(self) -> None:
        """The model started its answer over: admit nothing more until the whole plan is in."""
        self._reasked = True

    def _admissible(self, planned: PlannedTask) -> tuple[Task | None, str]:
        """The task to admit, or None and why it must wait."""
        if not _PLANNED_ID.fullmatch(planned.id):
            return None, f"'{planned.id}' is not a planner's task id"
        if planned.id in self.admitted or planned.id in self.held:
            return None, f"an earlier task has the id '{planned.id}'"
        if len(self.admitted) >= self.max_tasks:
            return None, f"the plan already has {self.max_tasks} tasks, the most it may have"
        if planned.capability not in self.capabilities:
            return None, f"no agent offers capability '{planned.capability}'"
        depends_on = tuple(planned.depends_on)
        if len(set(depends_on)) != len(depends_on):
            return None, "it lists the same dependency twice"
        unknown = next((dep for dep in depends_on if dep not in self.admitted), None)
        if unknown is not None:
            return None, f"it depends on '{unknown}', which is not admitted"
        try:
            task = Task(
                id=planned.id, instruction=planned.instruction, capability=planned.capability, depends_on=depends_on
            )
            self.check(task)
        except ValidationError as error:
            return None, describe_validation_error(error)
        except UserError as error:
            return None, error.message
        return task, ""

    async def opening(self, planning: asyncio.Future[PlanResult]) -> TaskGraph | None:
        """Wait for the first admitted task or the end of `planning`, whichever comes first.

        Returns the graph of the tasks admitted so far, to start the run with, or None when planning ended
        first: then the final plan runs as it is, as it would without streaming.
        """
        self._planning = planning
        first = asyncio.ensure_future(self._first.wait())
        waiting: set[asyncio.Future[Any]] = {planning, first}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            first.cancel()
        if planning.done() or not self.admitted:
            return None
        return TaskGraph(tasks=tuple(self.admitted.values()))

    def attach(self, execution: Execution, loop: DynamicLoop | None = None) -> None:
        """Feed the rest of the plan to `execution`, just started with `opening`'s graph, as it comes.

        The run is held open, and `loop`'s decisions wait, until the whole plan is in; a run that stops
        meanwhile stops the planning too.
        """
        planning = self._planning
        if planning is None:
            raise RuntimeError("attach() comes after opening()")
        self._execution = execution
        self._loop = loop
        execution.hold()
        if loop is not None:
            loop.await_plan()
        late = tuple(task for task in self.admitted.values() if task.id not in execution.graph)
        if late and not execution.stopping:
            execution.apply(GraphPatch(add=late, reason="the planner wrote these tasks"))
        execution.on_stop(planning.cancel)
        self._follower = asyncio.ensure_future(self._follow(planning))

    def gate(self, inner: Gate | None, waits: Callable[[Task], bool]) -> Gate:
        """A gate for the run's engine: `inner`'s, then, for a task that `waits`, the end of planning.

        For tasks that would only queue behind the planner for the same model (the embedded one answers one
        request at a time): they wait as ready tasks, holding no slot, rather than show as running.
        """

        async def gate(task: Task) -> Task:
            passed = await inner(task) if inner is not None else task
            planning = self._planning
            if planning is not None and not planning.done() and waits(passed):
                await asyncio.wait({planning})
            return passed

        return gate

    async def close(self) -> None:
        """Make sure nothing of the stream outlives the run."""
        follower = self._follower
        if follower is not None and not follower.done():
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    # ---------------------------------------------------------------- once the plan is known

    async def _follow(self, planning: asyncio.Future[PlanResult]) -> None:
        execution = self._execution
        assert execution is not None
        try:
            await asyncio.wait({planning})
            self._planned = True
            error = None if planning.cancelled() else planning.exception()
            if planning.cancelled() or execution.stopping:
                return  # the run was stopped or cancelled: it ends as it was told to
            if isinstance(error, BudgetExceeded):
                execution.stop(f"planning ran out of budget: {error.message}", RunStatus.OUT_OF_BUDGET)
            elif error is not None:
                execution.stop(f"planning failed after the run had started: {_describe(error)}", RunStatus.GAVE_UP)
            else:
                self.result = planning.result()
                self._complete(execution, self.result.graph)
        finally:
            if self._loop is not None:
                self._loop.planned(execution.graph)
            execution.release()

    def _complete(self, execution: Execution, final: TaskGraph) -> None:
        patch = reconcile(execution.graph, execution.statuses, final)
        if patch.is_empty():
            return
        try:
            execution.apply(patch)
        except GraphError as error:  # a bug here, not the plan's: say so, and let nothing run unchecked
            execution.stop(f"the final plan could not be applied to the run: {error.message}", RunStatus.GAVE_UP)
            return
        log.info("%s", patch.reason)


def reconcile(running: TaskGraph, statuses: Mapping[str, TaskStatus], final: TaskGraph) -> GraphPatch:
    """The patch that brings a run started from a streaming plan in line with the final plan.

    See the module's docstring for the rules; `statuses` are the run's, now. The patch's reason lists what
    could not follow the final plan because it had started.
    """
    renamed: dict[str, str] = {}
    taken = set(running.by_id) | set(final.by_id)
    add: list[Task] = []
    replace: list[Task] = []
    notes: list[str] = []
    for task_id in final.topological_order():
        task = final[task_id]
        depends_on = tuple(renamed.get(dep, dep) for dep in task.depends_on)
        if depends_on != task.depends_on:
            task = task.model_copy(update={"depends_on": depends_on})
        current = running.by_id.get(task_id)
        if current is None:
            add.append(task)
        elif current == task:
            continue
        elif statuses[task_id] in OPEN:
            replace.append(task)
        elif _same(current, task):
            continue  # it has started, and the final plan says the same in other words
        else:
            free = numbered_id(task_id, taken)
            taken.add(free)
            renamed[task_id] = free
            add.append(task.model_copy(update={"id": free}))
            notes.append(f"task '{task_id}' had started before the final plan changed it; the new version is '{free}'")
    remove: list[str] = []
    for task in running.tasks:
        if task.id not in final.by_id:
            if statuses[task.id] in OPEN:
                remove.append(task.id)
            else:
                notes.append(f"task '{task.id}' had started before the final plan dropped it; it runs to the end")
    reason = "the whole plan is in" + (": " + "; ".join(notes) if notes else "")
    return GraphPatch(add=tuple(add), remove=tuple(remove), replace=tuple(replace), reason=reason)


def _same(current: Task, final: Task) -> bool:
    """Whether an admitted task asks for the same work as the final plan's (stripped, edges in any order)."""
    return (
        current.capability == final.capability
        and set(current.depends_on) == set(final.depends_on)
        and current.instruction.strip() == final.instruction.strip()
        and current.agent == final.agent
    )


__all__ = ["PlanStream", "reconcile"]
