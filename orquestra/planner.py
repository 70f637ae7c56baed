"""The planner: a goal and the registry's capabilities in, a validated `TaskGraph` out, through instructor.

The prompt always fits the model's context window with room for the answer: a catalogue too large is cut to
the capabilities most relevant to the goal (`orquestra.catalogue`), and the plan carries a note saying so.
Without past runs to show as worked examples, examples made from the catalogue itself show the answer's
shape (`orquestra.plan_examples`).

The model answers with a `Plan` whose validator runs the graph's own checks, so instructor sends any error
back to the model for another try. When the tries run out, a deterministic repair fixes what small models
get wrong (cycles, self and forward edges, unknown capabilities, duplicate ids); when even that fails,
`PlanningError` says what was wrong (a `BudgetExceeded` does, where the budget allowed no re-ask). The planner
has no side effects: it returns data.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import pydantic_core
from pydantic import BaseModel, Field, ValidationError, create_model, model_validator

from orquestra.catalogue import CatalogueView, Embed, fit_catalogue, in_goal_order, rank
from orquestra.exceptions import BudgetExceeded, GraphError, InvalidOutput, ReaskRefused
from orquestra.exceptions import PlanningError as PlanningError
from orquestra.graph import Task, TaskGraph
from orquestra.models import Message, Model, Usage
from orquestra.models.progress import watching
from orquestra.plan_examples import BUILTIN_CAPABILITIES, EXAMPLE_TASKS, default_examples
from orquestra.plan_examples import BUILTIN_EXAMPLE as BUILTIN_EXAMPLE
from orquestra.plan_examples import PlanExample as PlanExample
from orquestra.plan_text import WholeTaskCut
from orquestra.prompts import render
from orquestra.registry import Registry
from orquestra.repair import repair_plan
from orquestra.trimming import CHARS_PER_TOKEN, shorten

DEFAULT_MAX_TASKS = 8
PlanningStrategy = Literal["auto", "single", "staged"]
"""How the planner asks: one call for the whole graph, in stages (`orquestra.staged_planning`), or by model."""
ID_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
"""Planned task ids: short snake_case (a grammar for the embedded model, so it cannot write prose there)."""
ANSWER_ROOM = 1024
"""Tokens left for the plan when the model sets no answer limit of its own (`Model.max_tokens`)."""
PROMPT_MARGIN = 32
"""Tokens kept free besides, for what a count may miss (a chat template's extras)."""


@dataclass
class PlanResult:
    """A plan and how it was obtained."""

    graph: TaskGraph
    usage: Usage = field(default_factory=Usage)
    repairs: list[str] = field(default_factory=list)
    """What the deterministic repair changed; empty when the model's plan was valid as given."""
    recalled: list[str] = field(default_factory=list)
    """Goals of the past runs recalled from memory as worked examples."""
    notes: list[str] = field(default_factory=list)
    """What was left out of the prompt to fit the planner's context (capabilities, examples); empty if nothing."""


@dataclass(frozen=True)
class PlannerPrompt:
    """What the planner sends: the messages, the answer type (its schema names the capabilities shown)."""

    messages: list[Message]
    output_type: type[Plan]
    view: CatalogueView
    """The part of the catalogue the prompt shows."""
    notes: list[str] = field(default_factory=list)
    """What was left out to fit the model's context, in words for the user."""

    @property
    def catalogue(self) -> dict[str, str]:
        """The capabilities shown, with their descriptions."""
        return self.view.shown


class PlannedTask(BaseModel):
    """One task as the planner writes it (the capability is narrowed to the registry's per call)."""

    id: str = Field(description="Short unique snake_case id.")
    instruction: str = Field(description="What the agent must do, in one or two sentences.")
    capability: str = Field(description="One capability from the list.")
    depends_on: list[str] = Field(default_factory=list, description="Ids of earlier tasks whose results it needs.")


class Plan(BaseModel):
    """The planner's answer: the tasks of the graph."""

    what: ClassVar[str] = "plan"
    """What this answer is, in words for error messages."""

    tasks: list[PlannedTask]

    @model_validator(mode="after")
    def _is_a_valid_graph(self) -> Plan:
        to_graph(self)  # raises GraphError (a ValueError): instructor sends it back to the model
        return self


def to_graph(plan: Plan) -> TaskGraph:
    """The `TaskGraph` of a plan; `GraphError` names the first problem."""
    try:
        return TaskGraph(tasks=tuple(Task(**task.model_dump()) for task in plan.tasks))
    except ValidationError as error:
        raise GraphError(_first_problem(error)) from None


def plan_model(capabilities: Sequence[str], max_tasks: int) -> type[Plan]:
    """A `Plan` type whose schema lists the allowed capabilities and bounds the task count.

    The schema drives constrained decoding on the embedded model, so it can only name known capabilities.
    """
    capability_type: Any = Literal[tuple(sorted(capabilities))]
    task_id = Annotated[str, Field(pattern=ID_PATTERN)]
    task_type = create_model(
        "PlannedTask",
        __base__=PlannedTask,
        id=(task_id, Field(description="Short unique snake_case id.")),
        capability=(capability_type, Field(description="One capability from the list.")),
        depends_on=(list[task_id], Field(default_factory=list, description="Ids of earlier tasks it needs.")),
    )
    return create_model(
        "Plan",
        __base__=Plan,
        tasks=(list[task_type], Field(min_length=1, max_length=max_tasks)),
    )


class Planner:
    """Plans goals for a registry with a model.

    Args:
        model: the planning model.
        registry: whose capabilities the plan may use.
        max_tasks: the largest plan accepted.
        retries: how many times a validation error goes back to the model before repair.
        strategy: "single" asks for the whole graph in one call, "staged" in three small ones (decompose,
            assign, link), "auto" chooses by model (`Model.plans_in_stages`).
        embed: sentence embeddings that rank capabilities by relevance to the goal when the catalogue does not
            fit the model's context (the local MiniLM model by default; see `orquestra.catalogue`).

    """

    def __init__(
        self,
        model: Model,
        registry: Registry,
        *,
        max_tasks: int = DEFAULT_MAX_TASKS,
        retries: int = 1,
        strategy: PlanningStrategy = "auto",
        embed: Embed | None = None,
    ):
        self.model = model
        self.registry = registry
        self.max_tasks = max_tasks
        self.retries = retries
        self.embed = embed
        self.strategy = strategy

    @property
    def staged(self) -> bool:
        """Whether this planner plans in stages (the strategy chosen, or the model's preference)."""
        return self.strategy == "staged" or (self.strategy == "auto" and self.model.plans_in_stages)

    def catalogue(self) -> dict[str, str]:
        """Each capability with the agents that offer it and what they do."""
        return {
            capability: "; ".join(f"{card.name} - {card.description}" for card in self.registry.agents_for(capability))
            for capability in sorted(self.registry.capabilities())
        }

    def messages(
        self,
        goal: str,
        examples: Sequence[PlanExample] | None = (),
        *,
        catalogue: Mapping[str, str] | None = None,
        ranked: Sequence[str] = (),
    ) -> list[Message]:
        """The planner's prompt: the catalogue and rules, worked examples, then the goal.

        `catalogue` is the part of the catalogue to show (all of it by default). Without `examples` (recalled
        runs), the prompt has worked examples made from the catalogue shown, on the first capabilities of
        `ranked` where given (`orquestra.plan_examples.default_examples`); `examples=None` shows none at all.
        """
        shown = self.catalogue() if catalogue is None else dict(catalogue)
        worked = [] if examples is None else list(examples) or default_examples(self._descriptions(shown), ranked)
        system = render("planner/system.j2", capabilities=shown, max_tasks=self.max_tasks)
        return [Message("system", system), Message("user", render("planner/goal.j2", goal=goal, examples=worked))]

    async def prompt(self, goal: str, examples: Sequence[PlanExample] = ()) -> PlannerPrompt:
        """The messages and answer type for `goal`, made to fit the model's context window with room to answer.

        A catalogue too large is cut to the capabilities most relevant to the goal (`orquestra.catalogue`),
        and the answer's schema names only those. When not even one capability fits, the worked examples go,
        then the goal is shortened. The prompt is measured with `Model.count_tokens`, schema included.
        Derived examples (no recalled ones, a catalogue without the built-in example's capabilities) use the
        capabilities most relevant to the goal, in the order the goal's clauses name them.
        """
        budget = self.model.context_window - (self.model.max_tokens or ANSWER_ROOM) - PROMPT_MARGIN
        full = self.catalogue()
        ranking: list[str] = []

        async def ranked() -> list[str]:
            if not ranking:
                ranking.extend(await asyncio.to_thread(rank, goal, full, self._embedder()))
            return ranking

        async def fitted(goal: str, examples: Sequence[PlanExample] | None) -> tuple[CatalogueView, list[Message]]:
            async def fits(shown: Mapping[str, str]) -> bool:
                messages = self.messages(goal, examples, catalogue=shown, ranked=ranking)
                schema = plan_model(list(shown), self.max_tasks).model_json_schema()
                return await self.model.count_tokens(messages, output_schema=schema) <= budget

            view = await fit_catalogue(full, fits, ranked)
            return view, self.messages(goal, examples, catalogue=view.shown, ranked=ranking)

        if not examples and not BUILTIN_CAPABILITIES <= full.keys():
            # The derived examples use the capabilities most relevant to the goal, in the goal's order.
            top = (await ranked())[:EXAMPLE_TASKS]
            ranking[: len(top)] = await asyncio.to_thread(in_goal_order, goal, top, full, self.embed)
        notes: list[str] = []
        view, messages = await fitted(goal, examples)
        if not view.shown:
            notes.append("the worked examples were left out to fit the planner's context")
            view, messages = await fitted(goal, None)
        cut = goal
        while not view.shown and len(cut) > 200:
            cut = shorten(goal, int(min(len(cut) * 0.7, budget * CHARS_PER_TOKEN * 0.7)))
            view, messages = await fitted(cut, None)
        if not view.shown:
            raise PlanningError(
                f"the planner's prompt does not fit {self.model.name}'s context window of "
                f"{self.model.context_window} tokens, even with one capability and no examples"
            )
        if cut != goal:
            notes.append(f"the goal was shortened from {len(goal)} to about {len(cut)} characters to fit")
        note = view.note()
        notes = [note, *notes] if note else notes
        return PlannerPrompt(messages, plan_model(list(view.shown), self.max_tasks), view, notes)

    def _descriptions(self, capabilities: Iterable[str]) -> dict[str, str]:
        """Each capability with what the first agent offering it does (the catalogue also names the agents)."""
        return {
            capability: agents[0].description if (agents := self.registry.agents_for(capability)) else capability
            for capability in capabilities
        }

    def _embedder(self) -> Embed | None:
        if self.embed is None:
            from orquestra.embeddings import LocalEmbedder  # here: onnxruntime loads only for large catalogues

            self.embed = LocalEmbedder().embed
        return self.embed

    async def plan(
        self,
        goal: str,
        examples: Sequence[PlanExample] = (),
        *,
        drafted: Callable[[PlannedTask], None] | None = None,
        restarted: Callable[[], None] | None = None,
    ) -> PlanResult:
        """Plan `goal`; see the module docstring for the retry and repair rules.

        `drafted` receives each task as soon as the model has written it in full (its closing brace, so its
        dependencies too), where the provider lets us watch its answer grow (the embedded model does); the
        checked graph is the result either way. `restarted` hears when the model starts its answer over (a
        re-ask): tasks drafted after it belong to another answer.
        """
        if not goal.strip():
            raise PlanningError("the goal is empty")
        if not self.registry.capabilities():
            raise PlanningError("the registry has no agents, so there is nothing to plan with")
        if self.staged:
            return await self._plan_in_stages(goal, examples, drafted)
        prompt = await self.prompt(goal, examples)
        retries = 0 if self.model.weak else self.retries
        watch: AbstractContextManager[None] = watching(_DraftWatcher(drafted, restarted)) if drafted else nullcontext()
        try:
            with watch:
                plan, usage = await self.model.structured(prompt.messages, prompt.output_type, max_retries=retries)
        except InvalidOutput as error:
            result = self._repair(error)
        else:
            result = PlanResult(to_graph(plan), usage)
        result.notes = prompt.notes
        return result

    async def _plan_in_stages(
        self, goal: str, examples: Sequence[PlanExample], drafted: Callable[[PlannedTask], None] | None
    ) -> PlanResult:
        # Imported here: the one-call path, which most hosted models take, never needs it.
        from orquestra.staged_planning import DecompositionExample, StagedPlanner, Step, steps_of_plan

        # The one-call prompt is the larger: the part of the catalogue that fits it fits every stage.
        prompt = await self.prompt(goal, examples)
        stages = StagedPlanner(self.model, prompt.catalogue, max_tasks=self.max_tasks, embed=self._embedder())
        # Recalled runs are worked examples; those made from the catalogue only name capabilities, which the
        # small model then copies as steps, so without recalled runs the stages show their own example.
        shown = [DecompositionExample(ex.goal, steps) for ex in examples if (steps := steps_of_plan(ex.plan))]

        def report(step: Step) -> None:
            if drafted is not None:
                drafted(
                    PlannedTask(
                        id=step.id,
                        instruction=step.instruction,
                        capability=step.capability,
                        depends_on=list(step.depends_on),
                    )
                )

        try:
            graph = await stages.plan(goal, shown, report)
        except GraphError as error:
            raise PlanningError(f"the planner's answer is not a plan: {error.message}") from None
        return PlanResult(graph, stages.usage, stages.notes, notes=prompt.notes)

    def _repair(self, error: InvalidOutput) -> PlanResult:
        usage = error.usage if isinstance(error.usage, Usage) else Usage()
        # Where the budget refused the re-ask, the budget is why there is no plan: the run is out of budget.
        failure = BudgetExceeded if isinstance(error, ReaskRefused) else PlanningError
        tasks, cut_off = _tasks_of(error.raw)
        if tasks is None or (cut_off and not tasks):
            raise failure(f"the planner's answer is not a plan: {error.message}") from None
        try:
            graph, repairs = repair_plan(tasks, self.registry.capabilities(), self.max_tasks)
            if cut_off:
                repairs.insert(0, f"the answer was cut off; kept the {len(tasks)} tasks written in full")
        except (GraphError, ValidationError) as problem:
            detail = _first_problem(problem) if isinstance(problem, ValidationError) else problem.message
            raise failure(f"the plan could not be repaired: {detail} (model said: {error.message})") from None
        return PlanResult(graph, usage, repairs or ["the plan failed validation; rebuilt by the repair"])


class _DraftWatcher:
    """Reads a plan's JSON as the model writes it and reports each task once it is written in full.

    A task is reported once its closing brace is written, so its instruction and dependencies are whole
    (`WholeTaskCut`). A re-asked answer starts over: `restarted` hears of it, and tasks already reported are
    not reported again.
    """

    def __init__(self, drafted: Callable[[PlannedTask], None], restarted: Callable[[], None] | None = None) -> None:
        self.drafted = drafted
        self.restarted = restarted
        self.reported: set[str] = set()
        self._cut = WholeTaskCut()
        self._read = 0

    def __call__(self, text: str) -> None:
        if self._cut.advance(text):
            self._read = 0
            if self.restarted is not None:
                self.restarted()
        if self._cut.end <= self._read:
            return
        self._read = self._cut.end
        try:
            data = pydantic_core.from_json(text[: self._cut.end], allow_partial=True)
        except (ValueError, TypeError):  # TypeError: a lone surrogate, which pydantic cannot read as UTF-8
            return
        tasks = data.get("tasks") if isinstance(data, Mapping) else None
        for item in tasks if isinstance(tasks, list) else ():
            try:
                task = PlannedTask.model_validate(item)
            except ValidationError:
                continue
            if task.id not in self.reported:
                self.reported.add(task.id)
                self.drafted(task)


def _tasks_of(raw: str | None) -> tuple[list[Any] | None, bool]:
    """The task entries of a raw answer, and whether the answer was cut off.

    An answer cut off mid-way (the token limit) is read as far as it goes; the task it was writing when cut
    is dropped, since its dependencies may be missing.
    """
    if not raw:
        return None, False
    cut_off = False
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        try:
            data = pydantic_core.from_json(raw, allow_partial=True)
        except (ValueError, TypeError):  # TypeError: a lone surrogate, which pydantic cannot read as UTF-8
            return None, False
        cut_off = True
    except (ValueError, RecursionError):  # nested too deeply, or an integer past Python's digit limit
        return None, False
    if isinstance(data, Mapping):
        data = data.get("tasks")
    if not isinstance(data, list):
        return None, False
    return (data[:-1] if cut_off else list(data)), cut_off


def _first_problem(error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
