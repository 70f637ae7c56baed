"""Workflow manifests: a team, its tasks and their data flow, declared in one YAML file.

A manifest names agents (inline, or by the name of a registry agent) and tasks whose instructions are
sandboxed Jinja templates over earlier outputs (``{{ tasks.draft.output }}``). Everything that can be
checked is checked when the file loads, and every error names the file, the line and the field:
unknown fields and agents, duplicate names, cycles, template syntax, templates, ``run_if`` or ``map``
expressions that reach a task which is not upstream (not in the task's transitive ``depends_on``), and
templates too large to check in bounded time (`orquestra.template_checks.MAX_TEMPLATE_CHARS` characters each,
`orquestra.template_checks.MAX_TEMPLATE_NODES` syntax nodes in all).

Running semantics, in the order a task applies them:

- **Skipping.** A task whose direct dependency was skipped is skipped too, unless it says
  ``run_if_skipped: true``; it then runs, and sees ``tasks.X.output == ""`` and ``tasks.X.skipped``.
  The engine still records a skipped task as succeeded (its output is a `Skipped` marker, so that its
  dependents start and decide for themselves); `ManifestResult.statuses` reports it as skipped.
- **``run_if``.** A Jinja expression compiled by the same sandboxed environment as the templates
  (``compile_expression``), never Python ``eval``; a false value skips the task (and, by the rule above,
  its dependents).
- **``map``.** A Jinja expression giving a list (or JSON text of a list, or text read line by line); the
  task runs once per item, in parallel, with ``{{ item }}`` in its template; its output is the list of
  answers, in item order. More than the manifest's `max_map_items` items (default 1000) fail the task.

Templates and expressions run in `orquestra.templating.BoundedEnvironment` (no globals, bounded steps, time
and sizes) and see read-only copies of the outputs they read (`orquestra.frozen`).

Inputs: an agent receives the outputs of its direct dependencies as usual, except those its template
already quotes (the author chose where they go).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from jinja2 import Template, TemplateError, nodes
from jinja2.environment import TemplateExpression
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from orquestra.checks import CheckSpec
from orquestra.config import load_settings
from orquestra.datafile import (
    Document,
    FieldPath,
    describe_fields,
    field_name,
    line_of,
    read_data,
    read_document,
)
from orquestra.dispatch import Dispatcher
from orquestra.engine import TaskStatus
from orquestra.exceptions import ManifestError, UserError, describe_validation_error
from orquestra.frozen import freeze
from orquestra.graph import MAX_TASKS, Ancestry, Task, TaskGraph, TaskId, find_cycle
from orquestra.graphfile import graph_from_document, task_format
from orquestra.models import PROVIDERS
from orquestra.registry import AgentCard, Registry
from orquestra.template_checks import (
    MAX_TEMPLATE_NODES,
    check_length,
    node_count,
    parse_expression,
    parse_template,
    task_references,
)
from orquestra.templating import BoundedEnvironment
from orquestra.tools.threads import run_in_thread

if TYPE_CHECKING:
    from orquestra.engine import Execution, RunResult, RunTask
    from orquestra.events import Subscriber
    from orquestra.loop import LoopRecord
    from orquestra.models import Usage
    from orquestra.run import Run
    from orquestra.team import AutoTeam, Outcome

_AGENT_NAME = r"^[a-z][a-z0-9_\-]*$"  # the registry's rule, so inline agents become ordinary cards

# One environment for templates, run_if and map: the same sandbox, strictness and bounds everywhere.
_ENV = BoundedEnvironment()

DEFAULT_MAX_MAP_ITEMS = 1000
"""How many items one `map` may run its task over, unless the manifest sets `max_map_items`."""
MAX_MAP_ITEMS = MAX_TASKS
"""The most a manifest may set `max_map_items` to: a map makes as many agent calls as a graph of that size."""

Path_ = FieldPath


# ---------------------------------------------------------------------------------------------- the model


class ManifestAgent(BaseModel):
    """An agent defined inside the manifest; it becomes an `AgentCard` for the run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_AGENT_NAME, description="Unique name; tasks refer to the agent by it.")
    provider: str | None = Field(default=None, description="openai, anthropic, local or scripted.")
    model: str | None = Field(
        default=None, description="The model name with `provider`, or a full model string like 'openai:gpt-5-mini'."
    )
    description: str = Field(default="", description="What the agent is good at; shown in its system prompt.")
    persona: str = Field(default="", description="Extra instructions placed in the agent's system prompt.")
    system_prompt: str = Field(default="", description="A synonym of `persona`; give one or the other.")
    capabilities: tuple[str, ...] = Field(
        default=(), description="Capabilities offered; the agent's own name when none are given."
    )
    tools: tuple[str, ...] = Field(default=(), description="Names of registry tools the agent may use.")
    fallback_models: tuple[str, ...] = Field(default=(), description="Model strings to try when the model fails.")
    requires_approval: bool = Field(default=False, description="Its tasks wait for a person's approval.")
    checks: tuple[CheckSpec, ...] = Field(default=(), description="Checks every answer of this agent must pass.")

    def model_string(self) -> str | None:
        """The `provider:model` string, or None for the run's default model."""
        if self.provider is None:
            return self.model
        return f"{self.provider}:{self.model}" if self.model else self.provider

    def card(self) -> AgentCard:
        """The registry card of this agent."""
        return AgentCard(
            name=self.name,
            description=self.description or f"The manifest's agent '{self.name}'.",
            # An agent named after itself offers a capability no other agent has, so the dispatcher never
            # hands its task to a different inline agent as a "fallback".
            capabilities=self.capabilities or (self.name,),
            model=self.model_string(),
            tools=self.tools,
            persona=self.persona or self.system_prompt,
            fallback_models=self.fallback_models,
            requires_approval=self.requires_approval,
            checks=self.checks,
        )


class ManifestTask(BaseModel):
    """One task of the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: TaskId = Field(description="Unique name; the task's id in the graph and in templates.")
    instruction: str = Field(min_length=1, description="A sandboxed Jinja template over `tasks` (and `item`).")
    agent: str | None = Field(default=None, description="An inline agent, or a registry agent by name.")
    capability: str | None = Field(
        default=None, description="The capability needed; the agent's first capability when unset."
    )
    depends_on: tuple[TaskId, ...] = Field(default=(), description="Names of the tasks this one waits for.")
    expected_output: str = Field(default="", description="What a good result looks like.")
    run_if: str | None = Field(default=None, description="A Jinja expression; false skips the task.")
    run_if_skipped: bool = Field(default=False, description="Run even when a dependency was skipped.")
    map: str | None = Field(default=None, description="A Jinja expression giving the items to run the task over.")
    retries: int | None = Field(default=None, ge=0, le=20, description="Retries on transient errors.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds one attempt may take.")
    requires_approval: bool = Field(default=False, description="Wait for a person's approval before starting.")
    checks: tuple[CheckSpec, ...] = Field(default=(), description="Checks the task's answer must pass.")


class Manifest(BaseModel):
    """A declared workflow: its agents and its tasks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="The workflow's name.")
    description: str = Field(default="", description="What the workflow achieves; the run's goal.")
    dynamic: bool = Field(default=False, description="Let the planner reflect and replan during the run.")
    agents: tuple[ManifestAgent, ...] = Field(default=(), max_length=MAX_TASKS, description="Agents defined inline.")
    tasks: tuple[ManifestTask, ...] = Field(
        min_length=1, max_length=MAX_TASKS, description="The tasks, in any order (at most 10,000)."
    )
    max_map_items: int = Field(
        default=DEFAULT_MAX_MAP_ITEMS,
        ge=1,
        le=MAX_MAP_ITEMS,
        description="The most items one `map` may run its task over; more fail the task.",
    )

    _cards: dict[str, AgentCard] = PrivateAttr(default_factory=dict)
    _prepared: dict[str, _Prepared] = PrivateAttr(default_factory=dict)

    @property
    def goal(self) -> str:
        """The goal agents see and the dynamic loop works towards."""
        return self.description or self.name

    def task(self, name: str) -> ManifestTask | None:
        """The task called `name`, or None."""
        return next((task for task in self.tasks if task.name == name), None)

    def check(
        self, registry: Registry, *, source: str = "<manifest>", lines: Mapping[Path_, int] | None = None
    ) -> None:
        """Check references, names, the graph and every template against `registry`; resolve agents.

        `load_manifest` calls this; call it yourself for a manifest built in code. Errors name `source` and,
        when `lines` maps field paths to lines, the line.
        """
        _Checker(self, registry, source, lines or {}).run()

    def cards(self) -> dict[str, AgentCard]:
        """Cards of every agent the tasks use (inline and registry ones), by name, once checked."""
        return {**self._cards, **{agent.name: agent.card() for agent in self.agents}}

    def to_graph(self) -> TaskGraph:
        """The task graph: ids are task names, each task pinned to its agent.

        A task's capability is the one it names, else its agent's first capability (an inline agent with
        none offers its own name), so the dispatcher, the replanner and saved plans see real capabilities.
        Instructions stay templates; `ManifestRunner` renders them when the task runs.
        """
        cards = self.cards()
        tasks = []
        for spec in self.tasks:
            capability = spec.capability
            if capability is None:
                card = cards.get(spec.agent or "")
                if card is None:
                    raise ManifestError(f"manifest '{self.name}': check it against a registry before building a graph")
                capability = card.capabilities[0]
            tasks.append(
                Task(
                    id=spec.name,
                    instruction=spec.instruction,
                    capability=capability,
                    depends_on=spec.depends_on,
                    expected_output=spec.expected_output,
                    agent=spec.agent,
                    retries=spec.retries,
                    timeout=spec.timeout,
                    requires_approval=spec.requires_approval,
                    checks=spec.checks,
                )
            )
        try:
            return TaskGraph(tasks=tuple(tasks))
        except ValidationError as error:
            raise ManifestError(f"manifest '{self.name}': {describe_validation_error(error)}") from None


# ---------------------------------------------------------------------------------------------- loading


def is_manifest(path: Path) -> bool:
    """Whether `path` holds a workflow manifest (tasks with names) rather than a task graph (tasks with ids)."""
    try:
        data = read_data(path)
    except UserError:
        return False  # the graph loader reports the problem with its line
    return task_format(data) == "manifest"


def load_manifest(path: str | Path, registry: Registry | None = None) -> Manifest:
    """Read and check a manifest file; every problem is a `ManifestError` naming the file, line and field.

    Agents referred to by name are looked up in `registry` (the built-in one plus the configured folders
    by default). A plain task graph file (tasks with ids) is read by `load_graph` and becomes the manifest
    that `graph_to_manifest` makes of it, so `orquestra apply` runs it as `orquestra run` does.
    """
    return manifest_from_document(read_document(Path(path), ManifestError), registry)


def manifest_from_document(document: Document, registry: Registry | None = None) -> Manifest:
    """`load_manifest` of a file already read: each loader hands the other the parsed file, never its path."""
    data, lines = document.data, document.lines
    if task_format(data) == "graph":
        if isinstance(data, list):  # a bare list of tasks: its fields sit where the manifest's `tasks` would
            lines = document.lines_under(("tasks",))
        data = graph_to_manifest(graph_from_document(document), name=Path(document.source).stem)
    if not isinstance(data, dict):
        raise ManifestError(f"{document.source}: line 1: expected a mapping with 'name', 'agents' and 'tasks'")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as error:
        raise ManifestError(describe_fields(error, document.source, lines)) from None
    if registry is None:
        registry = Registry.load(*load_settings().registry)
    manifest.check(registry, source=document.source, lines=lines)
    return manifest


# ---------------------------------------------------------------------------------------------- checks


@dataclass
class _Checker:
    """The checks that need more than one field: references, the graph, and every template."""

    manifest: Manifest
    registry: Registry
    source: str
    lines: Mapping[Path_, int]
    template_nodes: int = 0
    """Syntax-tree nodes of the templates checked so far, within `MAX_TEMPLATE_NODES`."""

    def fail(self, path: Path_, message: str) -> ManifestError:
        return ManifestError(f"{self.source}: line {line_of(self.lines, path)}: {field_name(path)}: {message}")

    def run(self) -> None:
        cards = self.check_agents()
        self.check_tasks(cards)
        self.check_graph()
        ancestry = Ancestry({task.name: task.depends_on for task in self.manifest.tasks})
        prepared = {
            task.name: self.check_templates(index, task, ancestry) for index, task in enumerate(self.manifest.tasks)
        }
        resolved = {name: card for name, card in cards.items() if name in self.registry.agents}
        self.manifest._cards.clear()
        self.manifest._cards.update(resolved)
        self.manifest._prepared.clear()
        self.manifest._prepared.update(prepared)

    def check_agents(self) -> dict[str, AgentCard]:
        cards = dict(self.registry.agents)
        seen: set[str] = set()
        for index, agent in enumerate(self.manifest.agents):
            if agent.name in seen:
                raise self.fail(("agents", index, "name"), f"duplicate agent name '{agent.name}'")
            seen.add(agent.name)
            if agent.persona and agent.system_prompt:
                raise self.fail(("agents", index, "system_prompt"), "give either persona or system_prompt, not both")
            if agent.provider is not None and agent.provider not in PROVIDERS:
                raise self.fail(("agents", index, "provider"), f"unknown provider '{agent.provider}'")
            if agent.provider is not None and agent.model and ":" in agent.model:
                raise self.fail(("agents", index, "model"), "with 'provider', give just the model name")
            for position, tool in enumerate(agent.tools):
                if tool not in self.registry.tools:
                    raise self.fail(("agents", index, "tools", position), f"unknown tool '{tool}'")
            # Inline agents win over registry agents of the same name, as later registry folders do.
            cards[agent.name] = agent.card()
        return cards

    def check_tasks(self, cards: Mapping[str, AgentCard]) -> None:
        offered = {capability for card in cards.values() for capability in card.capabilities}
        seen: set[str] = set()
        for index, task in enumerate(self.manifest.tasks):
            if task.name in seen:
                raise self.fail(("tasks", index, "name"), f"duplicate task name '{task.name}'")
            seen.add(task.name)
            if task.agent is None and task.capability is None:
                raise self.fail(("tasks", index), "give an 'agent' or a 'capability'")
            card = cards.get(task.agent) if task.agent is not None else None
            if task.agent is not None and card is None:
                raise self.fail(("tasks", index, "agent"), f"unknown agent '{task.agent}'")
            if task.capability is not None and card is not None and task.capability not in card.capabilities:
                raise self.fail(
                    ("tasks", index, "capability"), f"agent '{task.agent}' lacks capability '{task.capability}'"
                )
            if task.capability is not None and task.capability not in offered:
                raise self.fail(("tasks", index, "capability"), f"no agent offers capability '{task.capability}'")

    def check_graph(self) -> None:
        tasks = self.manifest.tasks
        index_of = {task.name: index for index, task in enumerate(tasks)}
        for index, task in enumerate(tasks):
            for position, dep in enumerate(task.depends_on):
                where: Path_ = ("tasks", index, "depends_on", position)
                if dep == task.name:
                    raise self.fail(where, f"task '{task.name}' depends on itself")
                if dep not in index_of:
                    raise self.fail(where, f"unknown task '{dep}'")
                if task.depends_on.index(dep) != position:
                    raise self.fail(where, f"'{dep}' is listed twice")
        cycle = find_cycle({task.name: task.depends_on for task in tasks})
        if cycle:
            raise self.fail(
                ("tasks", index_of[cycle[0]], "depends_on"),
                "cycle: " + " -> ".join(cycle) + " (each task depends on the next)",
            )

    def generate(self, where: Path_, source: str, is_expression: bool) -> tuple[nodes.Template, str, set[str]]:
        """The syntax tree of a template or an expression, its Python code, and the names it reads."""
        try:
            check_length(source)
        except ValueError as error:
            raise self.fail(where, str(error)) from None
        try:
            tree = parse_expression(_ENV, source) if is_expression else parse_template(_ENV, source)
        except TemplateError as error:
            raise self.fail(where, f"template syntax error: {_message(error)}") from None
        # Counted before the code generator walks the tree: generating and compiling take most of the time.
        self.template_nodes += node_count(tree)
        if self.template_nodes > MAX_TEMPLATE_NODES:
            raise self.fail(
                where, f"the manifest's templates have more than {MAX_TEMPLATE_NODES:,} syntax nodes together"
            )
        try:
            code, names = _ENV.generate(tree)  # also where an unknown filter or test is found
        except TemplateError as error:
            raise self.fail(where, f"template syntax error: {_message(error)}") from None
        except Exception as error:  # what Jinja's `compile` would have let escape
            raise self.fail(where, f"template cannot be compiled: {_problem(error)}") from None
        return tree, code, names

    def check_templates(self, index: int, task: ManifestTask, ancestry: Ancestry) -> _Prepared:
        """Check the task's template and expressions, and compile them once for the run."""
        allowed = {"tasks", "item"} if task.map is not None else {"tasks"}
        checks: list[tuple[str, str | None, bool, set[str]]] = [
            ("instruction", task.instruction, False, allowed),
            ("run_if", task.run_if, True, {"tasks"}),
            ("map", task.map, True, {"tasks"}),
        ]
        compiled: dict[str, Any] = {}
        reads: dict[str, set[str]] = {}
        for name, source, is_expression, known in checks:
            if source is None:
                continue
            where: Path_ = ("tasks", index, name)
            tree, code, names = self.generate(where, source, is_expression)
            unknown = sorted(names - known)
            if unknown:
                raise self.fail(where, f"unknown variable '{unknown[0]}' (use: {', '.join(sorted(known))})")
            try:
                reads[name] = task_references(tree)
            except ValueError as error:
                raise self.fail(where, str(error)) from None
            for other in sorted(reads[name]):
                if not ancestry.is_upstream(other, task.name):
                    reason = "is not upstream of" if self.manifest.task(other) else "is not a task before"
                    raise self.fail(
                        where, f"refers to task '{other}', which {reason} '{task.name}' (add it to depends_on)"
                    )
            try:
                compiled[name] = _compile(code, is_expression)
            except Exception as error:  # Python's own compiler refuses some deep nesting that Jinja parses
                raise self.fail(where, f"template cannot be compiled: {_problem(error)}") from None
        return _Prepared(
            instruction=compiled["instruction"],
            run_if=compiled.get("run_if"),
            map=compiled.get("map"),
            reads=frozenset(set().union(*reads.values())),
            quoted=frozenset(reads["instruction"]),
        )


def _compile(code: str, is_expression: bool) -> Any:
    # From the code generated of the tree the checks parsed (an expression's is the one `compile_expression`
    # builds), so that a template is parsed and generated once.
    template = _ENV.from_code(code)
    return TemplateExpression(template, undefined_to_none=False) if is_expression else template


@dataclass(frozen=True)
class _Prepared:
    """A task's template and expressions, compiled when the manifest is checked, and the tasks they read."""

    instruction: Template
    run_if: Callable[..., Any] | None
    map: Callable[..., Any] | None
    reads: frozenset[str]
    """Tasks the template or an expression reads (all upstream: the checks saw to it)."""
    quoted: frozenset[str]
    """Tasks the template reads: their outputs are not passed to the agent a second time."""


def _message(error: TemplateError) -> str:
    """Jinja's message on one line (its `str` adds the template's line on a second one)."""
    return " ".join((error.message or type(error).__name__).split())


def _problem(error: Exception) -> str:
    """Any error of a template or an expression, on one line."""
    if isinstance(error, TemplateError):
        return _message(error)
    if isinstance(error, RecursionError):
        return "the template nests too deeply"
    if isinstance(error, MemoryError):
        return "the template needs more memory than there is"
    text = " ".join(str(error).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ---------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Skipped:
    """The output of a task that did not run: its `run_if` was false, or a dependency was skipped."""

    reason: str

    def __str__(self) -> str:
        return f"(skipped: {self.reason})"


@dataclass
class ManifestRunner:
    """The engine's `run_task` for a manifest: renders, checks `run_if`, maps, then calls `inner`.

    Tasks that are not in the manifest (a replan added them) go straight to `inner`.
    """

    manifest: Manifest
    inner: RunTask
    max_parallel: int = 4
    """Items of one `map` running at once."""
    results: dict[str, Any] = field(default_factory=dict)
    """Every manifest task's output (or `Skipped`) so far, by name: templates may read any upstream task."""

    def __post_init__(self) -> None:
        if len(self.manifest._prepared) != len(self.manifest.tasks):
            raise ManifestError(f"manifest '{self.manifest.name}': check it against a registry before running it")
        self._ancestry = Ancestry({task.name: task.depends_on for task in self.manifest.tasks})

    async def __call__(self, task: Task, inputs: Mapping[str, Any]) -> Any:
        """Run one task of the graph."""
        spec = self.manifest.task(task.id)
        if spec is None:
            return await self.inner(task, inputs)
        output = await self._run(spec, task, inputs)
        self.results[task.id] = output
        return output

    async def _run(self, spec: ManifestTask, task: Task, inputs: Mapping[str, Any]) -> Any:
        skipped = [dep for dep in spec.depends_on if isinstance(inputs.get(dep), Skipped)]
        if skipped and not spec.run_if_skipped:
            return Skipped(f"'{skipped[0]}' was skipped")
        prepared = self.manifest._prepared[spec.name]
        template, reads = prepared.instruction, prepared.reads
        if task.instruction != spec.instruction:  # a person edited it at approval: the edit is a template too
            template, quoted = self._edited(spec, task.instruction)
            reads = reads | quoted
        context = self._context(reads, inputs)
        if prepared.run_if is not None and not await self._evaluate(spec, "run_if", prepared.run_if, context):
            return Skipped("run_if was false")
        passed = {
            dep: value for dep, value in inputs.items() if dep not in prepared.quoted and not isinstance(value, Skipped)
        }
        if prepared.map is None:
            return await self.inner(await self._render(spec, task, template, context), passed)
        try:
            items = _as_items(await self._evaluate(spec, "map", prepared.map, context))
        except ValueError as error:
            raise ManifestError(f"task '{spec.name}': map: {error}") from None
        if len(items) > self.manifest.max_map_items:
            raise ManifestError(
                f"task '{spec.name}': map: {len(items):,} items, more than max_map_items "
                f"({self.manifest.max_map_items:,}) allows"
            )
        slots = asyncio.Semaphore(self.max_parallel)

        async def one(item: Any) -> Any:
            async with slots:
                return await self.inner(await self._render(spec, task, template, {**context, "item": item}), passed)

        return await _all_or_none([one(item) for item in items])

    def _edited(self, spec: ManifestTask, instruction: str) -> tuple[Template, frozenset[str]]:
        """An edited instruction, compiled, and the upstream tasks it reads."""
        try:
            check_length(instruction)
        except ValueError as error:
            raise ManifestError(f"task '{spec.name}': instruction: {error}") from None
        try:
            tree = parse_template(_ENV, instruction)
            quoted = task_references(tree)
            template = _ENV.from_string(instruction)
        except Exception as error:
            raise ManifestError(f"task '{spec.name}': instruction: {_problem(error)}") from None
        return template, frozenset(name for name in quoted if self._ancestry.is_upstream(name, spec.name))

    def _context(self, reads: Iterable[str], inputs: Mapping[str, Any]) -> dict[str, Any]:
        """What templates see: read-only copies of the outputs they read, so none can change the run's."""
        tasks: dict[str, Any] = {}
        for name in reads:
            value = inputs[name] if name in inputs else self.results.get(name)
            skipped = isinstance(value, Skipped)
            tasks[name] = {"output": "" if skipped else value, "skipped": skipped}
        return {"tasks": freeze(tasks)}

    # A render or an expression may take its whole time bound: off the event loop, so that the task's timeout,
    # Ctrl-C and every other task go on meanwhile (a `map` renders once per item).

    async def _evaluate(
        self, spec: ManifestTask, what: str, expression: Callable[..., Any], context: Mapping[str, Any]
    ) -> Any:
        try:
            return await run_in_thread(lambda: _ENV.evaluate(expression, context), name="orquestra-template")
        except Exception as error:
            raise ManifestError(f"task '{spec.name}': {what}: {_problem(error)}") from None

    async def _render(self, spec: ManifestTask, task: Task, template: Template, context: Mapping[str, Any]) -> Task:
        try:
            instruction = await run_in_thread(lambda: template.render(**context), name="orquestra-template")
        except Exception as error:
            raise ManifestError(f"task '{spec.name}': instruction: {_problem(error)}") from None
        return task.model_copy(update={"instruction": instruction})


async def _all_or_none(calls: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """What `calls` return, run at once, in order; the first to fail cancels the others and is raised.

    Unlike `asyncio.gather`, nothing of a failed `map` runs on unobserved: no item renders, and no agent is
    called, once another item has failed the task.
    """
    try:
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [done.result() for done in running]


def _as_items(value: Any) -> list[Any]:
    """The items of a `map`: a list, JSON text of a list (code fences allowed), or non-empty lines."""
    if isinstance(value, list | tuple):
        return list(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a list or text, got {type(value).__name__}")
    text = value.strip()
    if text.startswith("```"):
        # Models often fence JSON; the fence lines are not items.
        text = "\n".join(line for line in text.splitlines() if not line.startswith("```")).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, too deep, or an integer past Python's digit limit
            parsed = None
        if isinstance(parsed, list):
            return parsed
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass
class ManifestResult:
    """A finished manifest run: outputs and statuses by task name, and the engine's own record."""

    run: RunResult
    outputs: dict[str, Any]
    """Outputs of the tasks that ran and succeeded (a list for a `map` task), by name."""
    statuses: dict[str, TaskStatus]
    """Each task's status; a task skipped by `run_if` (or below one) is `SKIPPED`, not succeeded."""
    usage: Usage
    task_usage: dict[str, Usage]
    loop: LoopRecord


def prepare_manifest(manifest: Manifest, team: AutoTeam | None = None, *, workspace: Path | None = None) -> Run:
    """A run of `manifest` with `team`'s models, budget and limits (a team without memory by default), checked.

    The manifest's inline agents join the team's registry for this run. With ``dynamic: true`` the
    planner reflects and replans towards the manifest's description (or name), as a goal's run does.
    A `ManifestError` names the manifest and what no agent can do, before anything runs.
    """
    if team is None:
        from orquestra.team import AutoTeam  # here: loading a manifest needs none of the team stack

        team = AutoTeam(memory=False)
    registry = Registry(
        [*team.registry.agents.values(), *manifest.cards().values()], team.registry.tools.values(), team.registry.prices
    )
    concurrency = team.max_concurrency
    try:
        return team.prepare(
            manifest.goal,
            manifest.to_graph(),
            dispatcher=Dispatcher(registry),
            wrap=lambda runner: ManifestRunner(manifest, runner, concurrency),
            workspace=workspace,
            dynamic=manifest.dynamic,
        )
    except UserError as error:
        raise ManifestError(f"manifest '{manifest.name}': {error.message}") from None


async def apply_manifest(
    manifest: Manifest,
    *,
    team: AutoTeam | None = None,
    subscribers: Iterable[Subscriber] = (),
    started: Callable[[Execution], None] | None = None,
    workspace: Path | None = None,
) -> ManifestResult:
    """Run `manifest` (see `prepare_manifest`); `started` receives the live execution (for one who may cancel it)."""
    run = prepare_manifest(manifest, team, workspace=workspace)
    for subscriber in subscribers:
        run.subscribe(subscriber)
    return manifest_result(await run.execute(started=started))


def manifest_result(outcome: Outcome) -> ManifestResult:
    """What a manifest's run gives: each task's status (`run_if`'s skipped ones as skipped), outputs and usage."""
    result = outcome.run
    statuses = {
        task_id: TaskStatus.SKIPPED if isinstance(result.outputs.get(task_id), Skipped) else status
        for task_id, status in result.statuses.items()
    }
    outputs = {task_id: out for task_id, out in result.outputs.items() if not isinstance(out, Skipped)}
    return ManifestResult(
        run=result,
        outputs=outputs,
        statuses=statuses,
        usage=outcome.meter.usage,
        task_usage=dict(outcome.runner.task_usage),
        loop=outcome.loop,
    )


# ---------------------------------------------------------------------------------------------- round trip


def graph_to_manifest(graph: TaskGraph, *, name: str = "plan", description: str = "") -> dict[str, Any]:
    """A manifest (as plain data, ready for YAML) that loads back into the same graph.

    Tasks keep their capability and any pinned agent, so the registry's agents take them as before.
    Instructions that contain Jinja delimiters are wrapped in ``{% raw %}`` so they stay literal text (the
    loaded graph then carries the wrapped form).
    """
    tasks: list[dict[str, Any]] = []
    for task in graph.tasks:
        entry: dict[str, Any] = {"name": task.id}
        if task.agent is not None:
            entry["agent"] = task.agent
        entry["capability"] = task.capability
        entry["instruction"] = _literal(task.instruction)
        if task.depends_on:
            entry["depends_on"] = list(task.depends_on)
        if task.expected_output:
            entry["expected_output"] = task.expected_output
        if task.retries is not None:
            entry["retries"] = task.retries
        if task.timeout is not None:
            entry["timeout"] = task.timeout
        if task.requires_approval:
            entry["requires_approval"] = True
        if task.checks:
            entry["checks"] = [check.model_dump(exclude_none=True) for check in task.checks]
        tasks.append(entry)
    data: dict[str, Any] = {"name": name}
    if description:
        data["description"] = description
    data["tasks"] = tasks
    return data


def _literal(text: str) -> str:
    if any(mark in text for mark in ("{{", "{%", "{#")):
        return "{% raw %}" + text + "{% endraw %}"
    return text


def dump_manifest(data: Mapping[str, Any], path: str | Path) -> None:
    """Write manifest data (from `graph_to_manifest`) as YAML."""
    Path(path).write_text(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True), encoding="utf-8")


__all__ = [
    "Manifest",
    "ManifestAgent",
    "ManifestError",
    "ManifestResult",
    "ManifestRunner",
    "ManifestTask",
    "Skipped",
    "apply_manifest",
    "dump_manifest",
    "graph_to_manifest",
    "load_manifest",
]
