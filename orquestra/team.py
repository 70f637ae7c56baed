"""The conductor: plan a goal, dispatch and run the graph with agents, and synthesise the answer.

`Team` ties the loop's steps together and reads top to bottom; each step lives in its own module
(planner, dispatch, engine, agent, synthesis).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orquestra.agent import AgentRunner
from orquestra.config import Settings, load_settings
from orquestra.dispatch import Dispatcher
from orquestra.engine import Engine, Execution, RetryPolicy, RunResult
from orquestra.events import Subscriber
from orquestra.graph import Task, TaskGraph
from orquestra.models import Model, RetryingModel, Usage, infer_model
from orquestra.planner import PlanExample, Planner, PlanResult
from orquestra.registry import Registry
from orquestra.synthesis import synthesize


@dataclass
class TeamResult:
    """Everything a run produced: the answer, the graph, every task's output, and what it cost."""

    goal: str
    answer: str
    run: RunResult
    plan: PlanResult | None
    usage: Usage
    task_usage: dict[str, Usage] = field(default_factory=dict)
    workspace: Path | None = None

    @property
    def outputs(self) -> dict[str, object]:
        """Outputs of the tasks that succeeded, by task id."""
        return self.run.outputs

    @property
    def graph(self) -> TaskGraph:
        """The graph as it stood at the end of the run."""
        return self.run.graph


class Team:
    """An auto-team over a registry: plans goals and runs them with the registry's agents.

    Args:
        registry: the agents and tools; the built-in registry plus `settings.registry` folders by default.
        settings: models, keys and home folder; read from the environment and config file by default.
        model: the default model string for agents, planning and synthesis (overrides the settings).
        planner_model: the planning model, when it should differ.
        max_concurrency: tasks running at once.
        max_tasks: the largest plan accepted.
        timeout: seconds one task attempt may take.
        retries: task retries on transient errors (model calls have their own retries too).

    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        settings: Settings | None = None,
        model: str | None = None,
        planner_model: str | None = None,
        max_concurrency: int = 4,
        max_tasks: int = 8,
        timeout: float | None = None,
        retries: int = 2,
    ) -> None:
        self.settings = (settings or load_settings()).with_model(model, planner_model)
        self.registry = registry or Registry.load(*self.settings.registry)
        self.dispatcher = Dispatcher(self.registry)
        self.max_concurrency = max_concurrency
        self.max_tasks = max_tasks
        self.timeout = timeout
        self.retries = retries
        self._models: dict[str, Model] = {}

    def model(self, spec: str | None = None) -> Model:
        """The model for `spec` (the default model when None), created once and shared."""
        spec = spec or self.settings.model
        if spec not in self._models:
            model = infer_model(spec, settings=self.settings, prices=self.registry.prices)
            # Hosted providers fail transiently; the embedded and scripted models do not.
            hosted = spec.startswith(("openai:", "anthropic:"))
            self._models[spec] = RetryingModel(model) if hosted else model
        return self._models[spec]

    def check_models(self, graph: TaskGraph) -> None:
        """Resolve every model the graph's agents will use, so a bad model string fails before the run."""
        for task in graph.tasks:
            for agent in self.dispatcher.assign(task).chain():
                for spec in (agent.model or self.settings.model, *agent.fallback_models):
                    self.model(spec)

    async def plan(self, goal: str, examples: Sequence[PlanExample] = ()) -> PlanResult:
        """Plan `goal` into a checked graph."""
        planner = Planner(self.model(self.settings.planning_model), self.registry, max_tasks=self.max_tasks)
        return await planner.plan(goal, examples)

    async def execute(
        self,
        graph: TaskGraph,
        *,
        goal: str = "",
        subscribers: Iterable[Subscriber] = (),
        started: Callable[[Execution], None] | None = None,
        workspace: Path | None = None,
    ) -> tuple[RunResult, AgentRunner]:
        """Run `graph` with the registry's agents; `started` receives the live execution (to cancel it)."""
        assignments = self.dispatcher.assign_all(graph)
        self.check_models(graph)
        run_id = uuid.uuid4().hex[:12]
        runner = AgentRunner(
            dispatcher=self.dispatcher,
            model_for=self.model,
            default_model=self.settings.model,
            workspace=workspace or self.settings.home / "workspaces" / run_id,
            goal=goal,
            run_id=run_id,
            assignments=assignments,
        )
        engine = Engine(
            runner,
            max_concurrency=self.max_concurrency,
            # One slot per embedded model: it answers one request at a time, and a task waiting for it
            # should show as waiting, not running.
            limits={"local": 1},
            limit_key=self._model_key,
            retry=RetryPolicy(retries=self.retries),
            timeout=self.timeout,
        )
        runner.emit = engine.events.emit
        for subscriber in subscribers:
            engine.subscribe(subscriber)
        execution = engine.start(graph, run_id=run_id)
        if started is not None:
            started(execution)
        return await execution, runner

    async def run(self, goal: str, *, subscribers: Iterable[Subscriber] = ()) -> TeamResult:
        """Plan, run and answer `goal`."""
        plan = await self.plan(goal)
        run, runner = await self.execute(plan.graph, goal=goal, subscribers=subscribers)
        return await self.finish(goal, plan, run, runner)

    async def finish(self, goal: str, plan: PlanResult | None, run: RunResult, runner: AgentRunner) -> TeamResult:
        """Synthesise the answer of a run and gather its result."""
        answer, synthesis_usage = await synthesize(self.model(), goal, run)
        usage = (plan.usage if plan else Usage()) + runner.usage + synthesis_usage
        return TeamResult(goal, answer, run, plan, usage, dict(runner.task_usage), runner.workspace)

    def _model_key(self, task: Task) -> str:
        assignment = self.dispatcher.assign(task)
        return assignment.agent.model or self.settings.model
