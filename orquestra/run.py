"""A run: one goal or graph, checked before anything runs, then planned, executed and finished.

`AutoTeam.prepare` makes one. `AutoTeam.arun`, `run` and `stream`, the CLI, the REPL, manifests and the run
evals all drive their runs through it, so that what a run does lives here once: the one check before
anything runs (each task has an agent, every model those agents use can be made), the order of the steps,
the one bus that every step reports to (planning's events included), and how each phase is stopped.

A front end shows what it likes between the steps (`plan_goal`, `execute`, `finish`), or calls `complete`
for all of them. `cancel` stops whichever phase is under way: planning stops where it is, an execution
ends `CANCELLED` with its finished results kept, and the answer step ends `CANCELLED` with every result
and no answer. Each run is used once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orquestra.engine import Execution, RunStatus, RunTask
from orquestra.events import Event, Subscriber
from orquestra.exceptions import BudgetExceeded, UserError

if TYPE_CHECKING:
    from orquestra.agent import AgentRunner
    from orquestra.approval import Approver
    from orquestra.budget_meter import BudgetMeter
    from orquestra.dispatch import Dispatcher
    from orquestra.graph import Task, TaskGraph
    from orquestra.planner import PlanResult
    from orquestra.team import AutoTeam, Outcome, TeamResult


class Run:
    """One run of `goal`, or of `graph` (planned from the goal when None), by `team`.

    `dispatcher` replaces the team's (a manifest's inline agents), `wrap` puts a layer between the engine and
    the agents (a manifest's templates), `workspace` is where the tools read and write (under the team's home
    by default), `dynamic` runs the reflect-and-replan loop (with a goal), and `stream` starts each task as
    the planner writes it (the team's `stream_plans` by default). `meter` counts the run's usage against the
    team's budget; a given one may already hold usage that belongs to this run (a plan made before it). The
    team's run store records every event of the run, planning's included, unless `record` is False (a plan
    that is not a run yet, say).

    A graph given here is checked at once: a `UserError` says what no agent can do or which model cannot be
    made, before anything runs, after `source` (the file the graph came from) when given.
    """

    def __init__(
        self,
        team: AutoTeam,
        goal: str = "",
        graph: TaskGraph | None = None,
        *,
        dispatcher: Dispatcher | None = None,
        wrap: Callable[[AgentRunner], RunTask] | None = None,
        workspace: Path | None = None,
        dynamic: bool = True,
        stream: bool | None = None,
        meter: BudgetMeter | None = None,
        approvers: Sequence[Approver] = (),
        source: str = "",
        record: bool = True,
    ) -> None:
        self.team = team
        self.goal = goal
        self.dispatcher = dispatcher or team.dispatcher
        self.run_id = uuid.uuid4().hex[:12]
        self.meter = meter or team.meter()
        self.plan: PlanResult | None = None
        """The plan made for the goal, once it is made (None for a graph given whole)."""
        self.outcome: Outcome | None = None
        """The finished execution, once there is one."""
        self._wrap = wrap
        self._workspace = workspace
        self._dynamic = dynamic
        self._stream = team.stream_plans if stream is None else stream
        self._approvers = list(approvers)
        self._subscribers: list[Subscriber] = []
        self._planning: asyncio.Future[PlanResult] | None = None
        self._execution: Execution | None = None
        self._writing: asyncio.Future[TeamResult] | None = None
        self._streaming_plan: asyncio.Task[object] | None = None
        self._stopped: str | None = None
        # The run store hears every event first, planning's too, so that its record is in the order they came.
        store = team.store if record else None
        self._store = store
        if store is not None:
            self._subscribers.append(store.subscriber(self.run_id, goal, model=team.settings.model))
        self.graph = graph
        if graph is not None:
            self.check(graph, source)

    # ------------------------------------------------------------------------------------------ setting up

    def subscribe(self, subscriber: Subscriber) -> None:
        """Have `subscriber` receive every event of the run from now on, planning's included."""
        self._subscribers.append(subscriber)

    def check(self, graph: TaskGraph, where: str = "") -> None:
        """The one check before anything runs: every task has an agent, and every model its agents use is made.

        A `UserError` says what is wrong, after `where` (the file the graph came from, say) when given.
        """
        try:
            self.dispatcher.assign_all(graph)
            self.team.check_models(graph, self.dispatcher)
        except UserError as error:
            if not where:
                raise
            raise UserError(f"{where}: {error.message}") from None

    def use(self, graph: TaskGraph) -> None:
        """Run `graph` instead of the plan (an edited plan, say), once it passes `check`."""
        self.check(graph)
        self.graph = graph

    def agent_name(self, task: Task) -> str:
        """The name of the agent that takes `task` (what a live view shows beside it)."""
        return self.dispatcher.assign(task).agent.name

    # ------------------------------------------------------------------------------------------ the steps

    async def plan_goal(self) -> PlanResult:
        """Plan the goal into a checked graph, reporting each step; `cancel` stops it (CancelledError)."""
        if not self.goal:
            raise UserError("a run without a goal has nothing to plan: give it a graph")
        self._planning = asyncio.ensure_future(
            self.team.plan(self.goal, meter=self.meter, subscribers=[self._emit], run_id=self.run_id)
        )
        try:
            plan = await self._planning
            self.check(plan.graph, "the plan")
        except BaseException as error:  # the run ends here: its record says how
            self._record_unplanned(error)
            raise
        finally:
            self._planning = None
        self.plan, self.graph = plan, plan.graph
        return plan

    async def execute(self, *, started: Callable[[Execution], None] | None = None) -> Outcome:
        """Run the graph (planned first if there is none: as it streams in, where the run streams).

        `started` receives the live execution as soon as it exists.
        """

        def begun(execution: Execution) -> None:
            self._execution = execution
            if self._stopped is not None:  # cancelled in the moment before the execution existed
                execution.cancel(self._stopped)
            if started is not None:
                started(execution)

        if self.graph is None and self._stream and self.goal:
            # Until the first task starts, this is planning: a cancel stops it here (CancelledError).
            self._streaming_plan = asyncio.current_task()
            try:
                plan, outcome = await self.team.plan_and_execute(
                    self.goal,
                    meter=self.meter,
                    subscribers=[self._emit],
                    started=begun,
                    run_id=self.run_id,
                    record=False,
                )
            except BaseException as error:  # planning failed before any task started
                self._record_unplanned(error)
                raise
            finally:
                self._streaming_plan = None
            self.plan = plan
        else:
            if self.graph is None:
                await self.plan_goal()
            assert self.graph is not None
            outcome = await self.team.execute(
                self.graph,
                goal=self.goal,
                meter=self.meter,
                dynamic=self._dynamic,
                subscribers=[self._emit],
                started=begun,
                workspace=self._workspace,
                run_id=self.run_id,
                dispatcher=self.dispatcher,
                wrap=self._wrap,
                approvers=self._approvers,
                record=False,
            )
        self._execution = None
        self.outcome = outcome
        return outcome

    async def finish(self) -> TeamResult:
        """Write the answer (for a goal) and record the result; a `cancel` now keeps every result, no answer."""
        outcome = self.outcome
        if outcome is None:
            raise UserError("the run has not been executed: call execute() before finish()")
        self._writing = asyncio.ensure_future(self.team.finish(self.goal, self.plan, outcome))
        try:
            return await self._writing
        except asyncio.CancelledError:
            if not (self._writing.cancelled() and self._stopped is not None):
                raise  # the caller's own task was cancelled: not this run's cancel
            reason = f"{self._stopped} while the answer was written"
            outcome.run = dataclasses.replace(outcome.run, status=RunStatus.CANCELLED, reason=reason)
            return await self.team.finish(self.goal, self.plan, outcome, answer="")
        finally:
            self._writing = None

    async def complete(self) -> TeamResult:
        """Plan (unless there is a graph), execute and finish; the team's store and memory are closed after."""
        try:
            if self.outcome is None:
                await self.execute()
            return await self.finish()
        finally:
            self.team.release()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the run in whichever phase it is (see the module docstring); `reason` is recorded."""
        self._stopped = reason
        if self._writing is not None:
            self._writing.cancel()
        elif self._execution is not None:
            self._execution.cancel(reason)
        elif self._planning is not None:
            self._planning.cancel()
        elif self._streaming_plan is not None:
            self._streaming_plan.cancel()

    def _record_unplanned(self, error: BaseException) -> None:
        """Record how a run ended that planning stopped: cancelled, out of budget, or failed, and why."""
        if self._store is None:
            return
        if isinstance(error, asyncio.CancelledError):
            status, reason = RunStatus.CANCELLED, f"{self._stopped or 'cancelled'} while planning"
        elif isinstance(error, BudgetExceeded):
            status, reason = RunStatus.OUT_OF_BUDGET, str(error)
        else:
            status, reason = RunStatus.FAILED, f"planning failed: {error}"
        usage = dataclasses.asdict(self.meter.usage)
        self._store.finish(self.run_id, answer="", usage=usage, status=status.value, reason=reason)

    def _emit(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            subscriber(event)
