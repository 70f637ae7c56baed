"""The conductor: plan a goal, run the graph with agents under the dynamic loop, and synthesise the answer.

`AutoTeam` ties the loop's steps together and reads top to bottom; each step lives in its own module
(planner, dispatch, engine, agent, reflect, replanner, loop, synthesis).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orquestra.agent import AgentRunner
from orquestra.answer_check import AnswerCheck
from orquestra.approval import ApprovalPolicy, Approver
from orquestra.approval_gate import ApprovalGate
from orquestra.budget import Budget
from orquestra.budget_meter import BudgetMeter, MeteredModel
from orquestra.config import Settings, load_settings
from orquestra.dispatch import Dispatcher
from orquestra.engine import Engine, Execution, RetryPolicy, RunResult, RunStatus, RunTask
from orquestra.events import (
    AnswerChecked,
    Event,
    ModelRetrying,
    Planned,
    PlanningStarted,
    Subscriber,
    TaskDrafted,
    TeamFinished,
)
from orquestra.exceptions import OrquestraError, UserError
from orquestra.goal_review import GoalReview
from orquestra.graph import Task, TaskGraph
from orquestra.loop import DynamicLoop, LoopRecord, ReplanRecord
from orquestra.memory import DisabledMemory, Memory, Recalled, open_memory
from orquestra.models import Model, RetryingModel, Usage, infer_model
from orquestra.models.base import request_slot
from orquestra.models.redacting import RedactedModel
from orquestra.models.resilience import Retry, is_retrying, reporting_retries
from orquestra.plan_stream import PlanStream
from orquestra.planner import PlanExample, PlannedTask, Planner, PlanningStrategy, PlanResult
from orquestra.recollection import examples as recall_examples
from orquestra.recollection import run_memory
from orquestra.redaction import register_secret
from orquestra.reflect import ReflectionMode, Reflector
from orquestra.registry import Registry
from orquestra.replanner import Replanner
from orquestra.run import Run
from orquestra.run_storage import RunStorage
from orquestra.store import open_store
from orquestra.synthesis import synthesize, unanswered


@dataclass
class Outcome:
    """A finished execution: the engine's result, the agents' usage and the loop's record."""

    run: RunResult
    runner: AgentRunner
    loop: LoopRecord
    meter: BudgetMeter
    emit: Subscriber | None = None
    """Delivers events of the steps after the execution (the answer's) to the run's subscribers and store."""
    answer_checks: list[AnswerCheck] = field(default_factory=list)
    """Each check of the answer's figure, in order (see `orquestra.answer_check`)."""


@dataclass
class TeamResult:
    """Everything a run produced: the answer, the graph, every task's output, and what it cost."""

    goal: str
    answer: str
    run: RunResult
    plan: PlanResult | None
    usage: Usage
    """Every model call of the run: planning, agents, reflection, replanning and the answer."""
    task_usage: dict[str, Usage] = field(default_factory=dict)
    workspace: Path | None = None
    loop: LoopRecord = field(default_factory=LoopRecord)
    answer_checks: list[AnswerCheck] = field(default_factory=list)
    """Each check of the answer's figure, in order: what was worked out, and whether the answer states it."""

    @property
    def outputs(self) -> dict[str, object]:
        """Outputs of the tasks that succeeded, by task id."""
        return self.run.outputs

    @property
    def graph(self) -> TaskGraph:
        """The graph as it stood at the end of the run."""
        return self.run.graph

    @property
    def status(self) -> RunStatus:
        """How the run ended."""
        return self.run.status

    @property
    def replans(self) -> list[ReplanRecord]:
        """Each replan, with its reason and its diff."""
        return self.loop.replans


class AutoTeam:
    """An auto-team over a registry: plans goals and runs them with the registry's agents.

    Args:
        registry: the agents and tools; the built-in registry plus `settings.registry` folders by default.
        settings: models, keys and home folder; read from the environment and config file by default.
        model: the default model for agents, planning and synthesis (overrides the settings): a model
            string, or a `Model` instance (used under its `name`). Every model, one's own included, is
            retried on transient failures (`RetryingModel`, unless it is one already) and has configured
            secrets redacted from its answers.
        models: further `Model` instances by model string, e.g. for agent cards that name them.
        memory: long-term memory of runs: a `Memory`, False for none, or None for the Chroma memory under
            the home folder (opened on first use and closed at the end of each run; a broken one only warns).
        store: the run history: any `RunStorage` (the SQLite `RunStore`, an `InMemoryRunStore`...), False
            for none, or None for the SQLite store under the home folder (opened on first use and closed at
            the end of each run).
        planner_model: the planning (and replanning) model, when it should differ.
        budget: limits of tokens, cost and time per run (the config file's by default).
        reflection: when the model judges the run (deterministic checks always run).
        max_replans: replans allowed per run.
        max_concurrency: tasks running at once.
        max_tasks: the largest plan accepted.
        planner: how the planner asks: "auto" (by model), "single" (the whole graph in one answer) or
            "staged" (decompose, assign, link).
        timeout: seconds one task attempt may take.
        retries: task retries on transient errors (model calls have their own retries too).
        approval: which tasks wait for a person's approval beyond those the plan and the agent cards mark
            (the config file's policy by default).
        approver: functions, sync or async, that decide on a task waiting for approval (an `ApprovalRequest`
            in, a `Decision` out). Whatever they do, `orquestra approve RUN TASK` can decide too, through
            the run store; the first decision wins.
        stream_plans: in `arun` and `stream`, start each task as soon as the planner has written it and it
            passes its checks, before the plan is complete (see `orquestra.plan_stream`); where the planning
            model does not show its answer growing, the run starts with the whole plan, as without.

        check_answers: before a run is reported as succeeded, review it against its goal: each file the goal
            names must be in the workspace (a missing one is written by one added task), and the figure the
            goal asks for is worked out again from the goal alone; what nothing confirms fails the run (see
            `orquestra.goal_review`).

    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        settings: Settings | None = None,
        model: str | Model | None = None,
        planner_model: str | None = None,
        models: Mapping[str, Model] | None = None,
        memory: Memory | bool | None = None,
        store: RunStorage | bool | None = None,
        budget: Budget | None = None,
        reflection: ReflectionMode | str = ReflectionMode.FAILURE,
        max_replans: int = 3,
        max_concurrency: int = 4,
        max_tasks: int = 8,
        planner: PlanningStrategy = "auto",
        timeout: float | None = None,
        retries: int = 2,
        approval: ApprovalPolicy | None = None,
        approver: Approver | Sequence[Approver] = (),
        stream_plans: bool = True,
        check_answers: bool = True,
    ) -> None:
        self._models: dict[str, Model] = dict(models or {})
        """Each model as given or made, by model string."""
        self._guarded: dict[str, Model] = {}
        """Each model as runs use it (see `model`)."""
        if isinstance(model, Model):
            self._models[model.name] = model
            model = model.name
        self.settings = (settings or load_settings()).with_model(model, planner_model)
        for key in (self.settings.openai.api_key, self.settings.anthropic.api_key):
            register_secret(key)
        self.registry = registry or Registry.load(*self.settings.registry)
        self._memory: Memory | None = memory if isinstance(memory, Memory) else None
        if memory is False:
            self._memory = DisabledMemory()
        self._store: RunStorage | None = None if store is None or isinstance(store, bool) else store
        self._keep_history = store is not False
        # What the team opens itself it closes at the end of each run; what it was given is the caller's.
        self._owns_store = store is None or store is True
        self._owns_memory = memory is None or memory is True
        # Past success breaks ties between equally ranked agents.
        self.dispatcher = Dispatcher(self.registry, success=lambda agent, cap: self.memory.success_rate(agent, cap))
        self.budget = budget if budget is not None else self.settings.budget
        self.reflection = ReflectionMode(reflection)
        self.max_replans = max_replans
        self.max_concurrency = max_concurrency
        self.max_tasks = max_tasks
        self.planner = planner
        self.timeout = timeout
        self.retries = retries
        self.approval = approval if approval is not None else self.settings.approval
        self.approvers: list[Approver] = [approver] if callable(approver) else list(approver)
        self.stream_plans = stream_plans
        self.check_answers = check_answers

    @property
    def memory(self) -> Memory:
        """The team's long-term memory, opened on first use."""
        if self._memory is None:
            self._memory = open_memory(self.settings.home)
        return self._memory

    @property
    def store(self) -> RunStorage | None:
        """The run history, opened on first use; None when switched off."""
        if self._store is None and self._keep_history:
            self._store = open_store(self.settings.home)
        return self._store

    def close(self) -> None:
        """Close the run store, and the memory if the team opened it; a later run opens them again."""
        if self._store is not None:
            self._store.close()
            self._store = None
        self._release_memory()

    def release(self) -> None:
        """Close what the team opened for its runs (the store's connection, the memory's client).

        Each run calls it as it ends, so that no file stays open between runs, however many teams a
        process makes; what the caller passed in stays open. The next use opens them again.
        """
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None
        self._release_memory()

    def _release_memory(self) -> None:
        if self._owns_memory and self._memory is not None:
            self._memory.close()
            self._memory = None

    def model(self, spec: str | None = None) -> Model:
        """The model for `spec` (the default model when None), created once and shared.

        It is retried on transient failures and its answers are redacted (see `AutoTeam`'s `model`).
        """
        spec = spec or self.settings.model
        if spec not in self._guarded:
            if spec not in self._models:
                self._models[spec] = infer_model(spec, settings=self.settings, prices=self.registry.prices)
            self._guarded[spec] = _guarded(self._models[spec], self.settings.retries)
        return self._guarded[spec]

    def check_models(self, graph: TaskGraph, dispatcher: Dispatcher | None = None) -> None:
        """Resolve every model the graph's agents will use, so a bad model string fails before the run."""
        for task in graph.tasks:
            self.check_task(task, dispatcher)

    def check_task(self, task: Task, dispatcher: Dispatcher | None = None) -> None:
        """Assign `task` and resolve every model its agents will use; `UserError` says what is wrong."""
        for agent in (dispatcher or self.dispatcher).assign(task).chain():
            for spec in (agent.model or self.settings.model, *agent.fallback_models):
                self.model(spec)

    def meter(self) -> BudgetMeter:
        """A fresh meter for one run under this team's budget."""
        return BudgetMeter(self.budget)

    async def plan(
        self,
        goal: str,
        examples: Sequence[PlanExample] | None = None,
        *,
        meter: BudgetMeter | None = None,
        subscribers: Iterable[Subscriber] = (),
        run_id: str = "",
        drafted: Callable[[PlannedTask], None] | None = None,
        reasked: Callable[[], None] | None = None,
    ) -> PlanResult:
        """Plan `goal` into a checked graph; without `examples`, the most similar past runs serve as examples.

        `subscribers` see the planning as it happens: `PlanningStarted`, a `TaskDrafted` for each task as the
        model writes it (where the provider shows its answer growing), then `Planned` with the checked graph.
        `drafted` receives each of those tasks whole, after its `TaskDrafted`; `reasked` is called when the model
        starts its answer over (the tasks drafted after belong to another answer).
        """
        subscribers = list(subscribers)

        def emit(event: Event) -> None:
            for subscriber in subscribers:
                subscriber(event)

        recalled: list[Recalled] = []
        if examples is None:
            recalled = await asyncio.to_thread(self.memory.recall, goal, 5)
            examples = recall_examples(recalled)
        emit(PlanningStarted(run_id, goal, self.settings.planning_model))
        model = MeteredModel(self.model(self.settings.planning_model), meter or self.meter())
        planner = Planner(model, self.registry, max_tasks=self.max_tasks, strategy=self.planner)

        def report(task: PlannedTask) -> None:
            emit(TaskDrafted(run_id, task.id, task.capability, task.instruction))
            if drafted is not None:
                drafted(task)

        with reporting_retries(_retry_events(run_id, emit)):
            result = await planner.plan(
                goal, examples, drafted=report if subscribers or drafted else None, restarted=reasked
            )
        result.recalled = [item.run.goal for item in recalled]
        emit(Planned(run_id, result.graph, tuple(result.repairs), tuple(result.recalled), tuple(result.notes)))
        return result

    async def execute(
        self,
        graph: TaskGraph,
        *,
        goal: str = "",
        meter: BudgetMeter | None = None,
        dynamic: bool = True,
        subscribers: Iterable[Subscriber] = (),
        started: Callable[[Execution], None] | None = None,
        workspace: Path | None = None,
        run_id: str | None = None,
        dispatcher: Dispatcher | None = None,
        wrap: Callable[[AgentRunner], RunTask] | None = None,
        approvers: Sequence[Approver] = (),
        plan_stream: PlanStream | None = None,
        record: bool = True,
    ) -> Outcome:
        """Run `graph` with the registry's agents, under the dynamic loop when `dynamic` (and a goal) is set.

        `dispatcher` replaces the team's for this run (e.g. with a manifest's inline agents); `wrap` puts a
        layer between the engine and the agents (e.g. a manifest's templates, run_if and map).

        `started` receives the live execution, for a caller that wants to cancel it. `approvers` decide on
        tasks waiting for approval in this run, beside the team's own. With `plan_stream`, `graph` is the
        part of a plan admitted so far, and the stream brings in the rest as the planner writes it.

        The run store records every event, unless `record` is False: a caller (a `Run`) that records its
        run's events itself, planning's too, among `subscribers`. These hear each event before the loop
        reacts to it, so that they hear a task's end before the replan it causes.
        """
        dispatcher = dispatcher or self.dispatcher
        assignments = dispatcher.assign_all(graph)
        self.check_models(graph, dispatcher)
        meter = meter or self.meter()
        metered: dict[str, Model] = {}

        def model_for(spec: str) -> Model:
            if spec not in metered:
                metered[spec] = MeteredModel(self.model(spec), meter)
            return metered[spec]

        run_id = run_id or uuid.uuid4().hex[:12]
        runner = AgentRunner(
            dispatcher=dispatcher,
            model_for=model_for,
            default_model=self.settings.model,
            workspace=workspace or self.settings.home / "workspaces" / run_id,
            goal=goal,
            run_id=run_id,
            assignments=assignments,
            tool_limits=self.settings.tools,
        )
        gate = ApprovalGate(self.approval, dispatcher.assign, run_id, [*self.approvers, *approvers], self.store)
        engine = Engine(
            wrap(runner) if wrap else runner,
            gate=gate,
            max_concurrency=self.max_concurrency,
            # A slot for each model class that limits the requests it answers at once (the embedded models: one
            # at a time, on the same cores), so that a task waiting for one shows as waiting, not running.
            limit_key=lambda task: self._slot(engine, dispatcher.assign(task).agent.model or self.settings.model),
            retry=RetryPolicy(retries=self.retries),
            timeout=self.timeout,
        )
        if plan_stream is not None:
            engine.gate = plan_stream.gate(gate, lambda task: self._queues_behind_planner(engine, task))
        runner.emit = gate.emit = engine.events.emit
        if record and self.store is not None:  # first, so that it records RunStarted
            engine.subscribe(self.store.subscriber(run_id, goal, model=self.settings.model))
        for subscriber in subscribers:
            engine.subscribe(subscriber)
        loop = None
        if dynamic and goal:
            planning = model_for(self.settings.planning_model)
            loop = DynamicLoop(
                goal,
                Reflector(planning, self.reflection),
                Replanner(planning, dispatcher.registry.capabilities()),
                meter,
                max_replans=self.max_replans,
                emit=engine.events.emit,
            )
            engine.subscribe(loop.on_event)
        # Set before the engine starts: the tasks it starts (and theirs) inherit the listener.
        with reporting_retries(_retry_events(run_id, engine.events.emit)):
            execution = engine.start(graph, run_id=run_id)
            if loop is not None:
                loop.attach(execution)
            if plan_stream is not None:
                plan_stream.attach(execution, loop)
            if started is not None:
                started(execution)
            try:
                result = await execution
            finally:
                if plan_stream is not None:
                    await plan_stream.close()
                if loop is not None:
                    await loop.close()
        loop_record = loop.record if loop else LoopRecord(graphs=[graph])
        return Outcome(result, runner, loop_record, meter, engine.events.emit)

    def _queues_behind_planner(self, engine: Engine, task: Task) -> bool:
        """Whether `task` needs the embedded model's one slot while an embedded planner is writing the plan."""
        key = engine.limit_key(task) if engine.limit_key else None
        return key is not None and key == self._slot(engine, self.settings.planning_model)

    def _slot(self, engine: Engine, spec: str) -> str | None:
        """The slot of `engine` that requests to model `spec` take (declared there on first use), if it has one."""
        try:
            slot = request_slot(self.model(spec))
        except UserError:  # a model that cannot be made: the agent that needs it says so, as its task runs
            return None
        if slot is None:
            return None
        name, size = slot
        engine.limits.setdefault(name, size)
        return name

    def prepare(
        self,
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
    ) -> Run:
        """A run of `goal`, or of `graph` (checked now: a `UserError` before anything runs); see `orquestra.run`."""
        return Run(
            self,
            goal,
            graph,
            dispatcher=dispatcher,
            wrap=wrap,
            workspace=workspace,
            dynamic=dynamic,
            stream=stream,
            meter=meter,
            approvers=approvers,
            source=source,
            record=record,
        )

    async def arun(self, goal: str, *, subscribers: Iterable[Subscriber] = ()) -> TeamResult:
        """Plan, run and answer `goal`; `subscribers` receive every event of the run."""
        run = self.prepare(goal)
        for subscriber in subscribers:
            run.subscribe(subscriber)
        return await run.complete()

    async def plan_and_execute(
        self,
        goal: str,
        *,
        meter: BudgetMeter | None = None,
        subscribers: Iterable[Subscriber] = (),
        started: Callable[[Execution], None] | None = None,
        run_id: str | None = None,
        record: bool = True,
    ) -> tuple[PlanResult | None, Outcome]:
        """Plan `goal` and run the plan as it streams in: each task starts once it and its dependencies are known.

        Planning errors before any task was admitted are raised, as `plan` raises them; after, they end the
        run (`RunStatus.GAVE_UP`, or `OUT_OF_BUDGET`), and the plan returned is None. See `orquestra.plan_stream`.
        """
        meter = meter or self.meter()
        subscribers = list(subscribers)
        run_id = run_id or uuid.uuid4().hex[:12]
        stream = PlanStream(self.registry.capabilities(), self.check_task, max_tasks=self.max_tasks)
        planning = asyncio.ensure_future(
            self.plan(
                goal,
                meter=meter,
                subscribers=subscribers,
                run_id=run_id,
                drafted=stream.drafted,
                reasked=stream.reasked,
            )
        )
        try:
            opening = await stream.opening(planning)
            if opening is None:  # the whole plan came first: run it as it is, as without streaming
                plan = planning.result()
                outcome = await self.execute(
                    plan.graph,
                    goal=goal,
                    meter=meter,
                    subscribers=subscribers,
                    started=started,
                    run_id=run_id,
                    record=record,
                )
                return plan, outcome
            outcome = await self.execute(
                opening,
                goal=goal,
                meter=meter,
                subscribers=subscribers,
                started=started,
                run_id=run_id,
                plan_stream=stream,
                record=record,
            )
            return stream.result, outcome
        finally:
            if not planning.done():
                planning.cancel()
            await asyncio.gather(planning, return_exceptions=True)

    def run(self, goal: str, *, subscribers: Iterable[Subscriber] = ()) -> TeamResult:
        """Plan, run and answer `goal`, blocking until done (for code that is not async)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(goal, subscribers=subscribers))
        raise UserError("AutoTeam.run() was called inside a running event loop; use `await team.arun(goal)`")

    async def stream(self, goal: str) -> AsyncIterator[Event]:
        """Plan, run and answer `goal`, yielding each event as it happens; the last is `TeamFinished`.

        Leaving the loop early cancels the run.
        """
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()

        async def drive() -> None:
            try:
                result = await self.arun(goal, subscribers=[queue.put_nowait])
                queue.put_nowait(TeamFinished(result.run.run_id, result))
            except BaseException as error:  # handed to the consumer, who re-raises it
                queue.put_nowait(error)

        driver = asyncio.create_task(drive())
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, TeamFinished):
                    return
        finally:
            if not driver.done():
                driver.cancel()
                await asyncio.gather(driver, return_exceptions=True)

    async def finish(
        self, goal: str, plan: PlanResult | None, outcome: Outcome, *, answer: str | None = None
    ) -> TeamResult:
        """Synthesise the answer of a run (unless `answer` is given) and gather, record and remember its result.

        However the answer step ends, what was done is kept: a failure there leaves the results quoted as the
        answer, the run `FAILED` with the reason (unless it had already ended otherwise), and it is recorded
        and remembered; a cancellation is recorded as such before it goes on. Then the store and memory the
        team opened are closed (`release`).
        """
        try:
            if answer is None:
                answer = await self._answer(goal, plan, outcome)
            return await self._record(goal, plan, outcome, answer)
        finally:
            self.release()

    async def _answer(self, goal: str, plan: PlanResult | None, outcome: Outcome) -> str:
        """The answer to `goal` from the run's results; a failure of the step ends the run, keeping its results."""
        if not goal:  # a graph file run has no goal, so there is nothing to answer beyond the tasks' own outputs
            return ""
        events = _retry_events(outcome.run.run_id, outcome.emit) if outcome.emit else None
        try:
            with reporting_retries(events) if events else contextlib.nullcontext():
                model = MeteredModel(self.model(), outcome.meter)
                if self.check_answers and outcome.run.status is RunStatus.SUCCEEDED:
                    return await self._reviewed(model, goal, outcome)
                return await synthesize(model, goal, outcome.run)
        except asyncio.CancelledError:
            self._end(outcome, RunStatus.CANCELLED, "cancelled while the answer was written")
            await self._record(goal, plan, outcome, "")
            raise
        except OrquestraError as error:  # a provider, the key, the budget: the run's results are still good
            reason = f"the answer step failed: {error}"
            self._end(outcome, RunStatus.FAILED, reason)
            return unanswered(reason, outcome.run)

    async def _reviewed(self, model: Model, goal: str, outcome: Outcome) -> str:
        """The answer of a run that succeeded, once its goal's files and figure are reviewed (`orquestra.goal_review`).

        What the review cannot confirm fails the run, with the reason; what it confirms another way is noted
        in the run's reason, its status kept.
        """

        def report(verdict: AnswerCheck) -> None:
            outcome.answer_checks.append(verdict)
            if outcome.emit:
                run_id = outcome.run.run_id
                outcome.emit(AnswerChecked(run_id, verdict.passed, verdict.why, verdict.expression, verdict.value))

        review = GoalReview(self.registry, outcome.runner, outcome.run, report)
        missing = await review.missing_files(goal)
        answer = await synthesize(model, goal, outcome.run)
        if missing is not None:
            self._end(outcome, RunStatus.FAILED, missing)
            return answer
        reviewed = await review.figure(model, goal, answer)
        notes = list(reviewed.notes)
        if reviewed.failure is None:
            reviewed = await review.translation(model, goal, reviewed.answer)
            notes += reviewed.notes
        if reviewed.failure is not None:
            self._end(outcome, RunStatus.FAILED, reviewed.failure)
        elif review.notes or notes:
            reason = "; ".join(filter(None, [outcome.run.reason, *review.notes, *notes]))
            outcome.run = dataclasses.replace(outcome.run, reason=reason)
        return reviewed.answer

    @staticmethod
    def _end(outcome: Outcome, status: RunStatus, reason: str) -> None:
        """End `outcome`'s run with `status` for `reason`; a run that had already ended otherwise keeps its status."""
        run = outcome.run
        if run.status is RunStatus.SUCCEEDED or status is RunStatus.CANCELLED:
            outcome.run = dataclasses.replace(run, status=status, reason="; ".join(filter(None, [run.reason, reason])))
        else:
            outcome.run = dataclasses.replace(run, reason="; ".join(filter(None, [run.reason, reason])))

    async def _record(self, goal: str, plan: PlanResult | None, outcome: Outcome, answer: str) -> TeamResult:
        """Record and remember the run's result, and return it."""
        runner = outcome.runner
        if self.store is not None:
            self.store.finish(
                outcome.run.run_id,
                answer=answer,
                usage=dataclasses.asdict(outcome.meter.usage),
                graph_json=outcome.run.graph.model_dump_json(),
                status=outcome.run.status.value,
                reason=outcome.run.reason,
                agents={task_id: a.agent.name for task_id, a in runner.assignments.items()},
            )
        if goal:
            memory = run_memory(
                goal, outcome.run, outcome.loop, runner.assignments, answer, plan.repairs if plan else ()
            )
            await asyncio.to_thread(self.memory.remember, memory)
        return TeamResult(
            goal=goal,
            answer=answer,
            run=outcome.run,
            plan=plan,
            usage=outcome.meter.usage,
            task_usage=dict(runner.task_usage),
            workspace=runner.workspace,
            loop=outcome.loop,
            answer_checks=list(outcome.answer_checks),
        )


def _guarded(model: Model, retries: int | None = None) -> Model:
    """`model` as a team uses it: retried on transient failures (unless it already is), its answers redacted.

    `retries` (None: the wrapper's default) is how often a transient failure is retried.
    """
    if isinstance(model, RedactedModel):
        return model
    if is_retrying(model):
        return RedactedModel(model)
    return RedactedModel(RetryingModel(model) if retries is None else RetryingModel(model, retries=retries))


def _retry_events(run_id: str, emit: Subscriber) -> Callable[[Retry], None]:
    """A retry listener that emits each retry of run `run_id` as a `ModelRetrying` event."""

    def report(retry: Retry) -> None:
        emit(ModelRetrying(run_id, retry.model, retry.attempt, retry.error, retry.delay))

    return report
