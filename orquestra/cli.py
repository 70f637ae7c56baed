"""The `orquestra` command line. It only calls the public API; every user mistake is one line and exit 2.

It starts fast: the team stack and the provider SDKs are imported by the commands that need them, and the
commands of other modules (apply, repl, approve, runs, eval, memory) are imported only when one of them runs
or shows its own help.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from orquestra import __version__
from orquestra.cli_options import PlannerModelOption, PlanningStrategyOption, RegistryFolders, planning_strategy
from orquestra.exceptions import OrquestraError, StopRun, UserError
from orquestra.reflect import ReflectionMode
from orquestra.safe_text import error_line, json_text, plain

if TYPE_CHECKING:
    from orquestra.budget import Budget
    from orquestra.engine import Execution
    from orquestra.events import Event
    from orquestra.graph import TaskGraph
    from orquestra.models import Model
    from orquestra.planner import PlanResult
    from orquestra.registry import Registry
    from orquestra.run import Run
    from orquestra.store import StoredRun
    from orquestra.team import AutoTeam, TeamResult

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "apply": (
        "orquestra.cli_apply:apply_command",
        "Run a workflow manifest: its agents and tasks as declared, with live progress.",
    ),
    "repl": (
        "orquestra.repl:repl_command",
        "Start an interactive session: type a goal to plan and run it, or a /command (/help lists them).",
    ),
    "approve": (
        "orquestra.cli_approve:approve_command",
        "Approve, reject or edit a task waiting for approval; without a task, list those waiting.",
    ),
    "runs": ("orquestra.cli_runs:runs_app", "List, show and export the runs Orquestra recorded."),
    "eval": ("orquestra.cli_eval:eval_app", "Measure planning quality and whole runs on eval suites."),
    "memory": ("orquestra.cli_memory:memory_app", "List, search, show and forget the runs long-term memory keeps."),
}
"""Commands defined in other modules: the command (a function) or sub-app (a `typer.Typer`), and the line
`orquestra --help` shows for it (a function's is the first line of its docstring, which a test checks)."""


def load_command(name: str) -> Any:
    """The click command of the lazily imported command `name`, mounted as it would be on the main app."""
    target, help_line = _LAZY_COMMANDS[name]
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(add_completion=False)
    if isinstance(command, typer.Typer):
        holder.add_typer(command, name=name, help=help_line)
    else:
        holder.command(name)(command)
    return typer.main.get_group(holder).commands[name]


class _LazyCommand(TyperCommand):
    """Stands in for a command of `_LAZY_COMMANDS` in the main app: lists it, and imports it when it runs."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        # The real command parses its own arguments, so its context (and its help) is the real one.
        return load_command(self.name or "").make_context(info_name, args, parent=parent, **extra)


class _Commands(TyperGroup):
    """The main app's group: its own commands, and the stand-ins of the other modules' commands."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, help_line) in _LAZY_COMMANDS.items():
            self.commands.setdefault(name, _LazyCommand(name=name, help=help_line))


app = typer.Typer(
    name="orquestra",
    help="Orquestra: turn a goal into a team of AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
graph_app = typer.Typer(help="Inspect task graph files and recorded runs' graphs.", no_args_is_help=True)
registry_app = typer.Typer(help="List and show the agents and tools of the registry.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")
app.add_typer(registry_app, name="registry")

console = Console()
errors = Console(stderr=True)

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Default model: local, openai:<model>, anthropic:<model> or scripted. Also ORQUESTRA_MODEL.",
        show_default=False,
    ),
]
MemoryOption = Annotated[
    bool, typer.Option("--memory/--no-memory", help="Recall similar past runs before planning, and remember this one.")
]


def _version(value: bool) -> None:
    if value:
        console.print(f"orquestra {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    local_context: Annotated[
        int | None,
        typer.Option(
            "--local-context",
            min=512,
            envvar="ORQUESTRA_LOCAL_CONTEXT",
            help="Context window of the embedded models, in tokens (default 4096).",
            show_default=False,
        ),
    ] = None,
    local_threads: Annotated[
        int | None,
        typer.Option(
            "--local-threads",
            min=1,
            envvar="ORQUESTRA_LOCAL_THREADS",
            help="Threads for the embedded models (default: all cores but one, at most four).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Orquestra: turn a goal into a team of AI agents."""
    # Through the environment, so that every command's settings (and any process they start) see them.
    if local_context is not None:
        os.environ["ORQUESTRA_LOCAL_CONTEXT"] = str(local_context)
    if local_threads is not None:
        os.environ["ORQUESTRA_LOCAL_THREADS"] = str(local_threads)


# ---------------------------------------------------------------------------------------------- run


GraphFileSuffixes = (".yaml", ".yml", ".json")


def names_a_file(target: str) -> bool:
    """Whether `target` names a graph file (or manifest) rather than a goal or a recorded run.

    A name with a graph file's suffix does, and so does anything on disk but a folder: `/dev/zero` or a FIFO is
    a file that the loader refuses with its reason, not a goal to plan. A goal too long to be a file name is not
    one (asking the system about it fails).
    """
    if target.endswith(GraphFileSuffixes):
        return True
    path = Path(target)
    try:
        return path.exists() and not path.is_dir()
    except (OSError, ValueError):  # a name too long for the system, or with a NUL byte
        return False


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="A goal in plain words, or a task graph file (.yaml, .yml, .json).")],
    model: ModelOption = None,
    planner_model: PlannerModelOption = None,
    registry: RegistryFolders = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Tasks running at once.")] = 4,
    max_tasks: Annotated[int, typer.Option(min=1, max=50, help="The largest plan accepted.")] = 8,
    timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds one task attempt may take.")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries per task on transient errors.")] = 2,
    save: Annotated[Path | None, typer.Option(help="Also write the result (statuses, outputs) as JSON here.")] = None,
    outputs: Annotated[bool, typer.Option("--outputs/--no-outputs", help="Print each task's output.")] = True,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Token budget for the whole run.")] = None,
    max_cost: Annotated[float | None, typer.Option(min=0.000001, help="Cost budget in US dollars.")] = None,
    max_seconds: Annotated[float | None, typer.Option(min=0.001, help="Wall-time budget in seconds.")] = None,
    reflection: Annotated[
        ReflectionMode, typer.Option(help="When the model judges the run; failures are always handled.")
    ] = ReflectionMode.FAILURE,
    max_replans: Annotated[int, typer.Option(min=0, help="Replans allowed in the run.")] = 3,
    memory: MemoryOption = True,
    planner: PlanningStrategyOption = "auto",
    stream: Annotated[
        bool,
        typer.Option(
            "--stream/--no-stream",
            help="Start each task once the planner has written it and it passes its checks, before the plan is done.",
        ),
    ] = True,
) -> None:
    """Plan and run a goal with a team of agents, or run a task graph file; live progress, then the results."""
    from orquestra.cli_apply import apply_command
    from orquestra.console import run_summary, usage_line
    from orquestra.exit_codes import exit_code
    from orquestra.graphfile import load_graph
    from orquestra.manifest import is_manifest

    team = _team(
        model,
        planner_model,
        registry,
        max_concurrency=max_concurrency,
        max_tasks=max_tasks,
        planner=planning_strategy(planner),
        timeout=timeout,
        retries=retries,
        budget=_budget(max_tokens, max_cost, max_seconds),
        reflection=reflection,
        max_replans=max_replans,
        memory=None if memory else False,
    )
    is_file = names_a_file(target)
    if is_file and is_manifest(Path(target)):  # what `plan --save` writes, and hand-written workflows
        apply_command(
            Path(target), model, registry, max_concurrency, timeout, retries, outputs, max_tokens, max_cost, max_seconds
        )
        return
    goal = "" if is_file else target
    console.print(
        Text.assemble(("model: ", "dim"), plain(_describe(team.model())), (f" ({team.settings.model_source})", "dim"))
    )
    if is_file:
        graph = load_graph(target)
        run = team.prepare(graph=graph, source=target)  # checked here, before anything runs
    else:
        run = team.prepare(goal, stream=stream)
        run.subscribe(_show_draft)
        if not stream:
            plan = _plan_live(run.plan_goal(), team.settings.planning_model)
            _show_plan(plan.graph, plan.repairs, plan.recalled)
            _show_notes(plan.notes)
    try:
        if stream and not is_file:
            result = asyncio.run(_stream_live(run))
        else:
            result = asyncio.run(_run_live(run))
    except KeyboardInterrupt:  # before the run's own handler is in place: nothing had started
        when = "while planning (Ctrl-C)" if stream and not is_file else "(Ctrl-C) before the run started"
        errors.print(f"[bold red]cancelled[/bold red] {when}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    meter = run.meter
    if outputs:
        for task_id in result.run.finished:
            output = plain(result.run.outputs[task_id])  # model text: never markup, nor terminal commands
            console.print(Panel(output, title=plain(task_id), title_align="left", expand=False))
    if goal and result.answer:
        console.print(Panel(plain(result.answer), title="answer", title_align="left", border_style="green"))
    console.print(run_summary(result.run, meter))
    console.print(usage_line(result.usage), style="dim", highlight=False)
    if save is not None:
        _save_result(result, save)
    code = exit_code(result.run.status)
    if code:
        raise typer.Exit(code)


@app.command()
def plan(
    goal: Annotated[str, typer.Argument(help="The goal, in plain words.")],
    model: ModelOption = None,
    planner_model: PlannerModelOption = None,
    registry: RegistryFolders = None,
    max_tasks: Annotated[int, typer.Option(min=1, max=50, help="The largest plan accepted.")] = 8,
    save: Annotated[Path | None, typer.Option(help="Write the plan as a graph file that `run` accepts.")] = None,
    memory: MemoryOption = True,
    planner: PlanningStrategyOption = "auto",
) -> None:
    """Plan a goal into a task graph and show it, without running it."""
    from orquestra.manifest import dump_manifest, graph_to_manifest

    strategy = planning_strategy(planner)
    team = _team(
        model, planner_model, registry, max_tasks=max_tasks, planner=strategy, memory=None if memory else False
    )
    console.print(Text.assemble(("planner: ", "dim"), plain(_describe(team.model(team.settings.planning_model)))))
    result = _plan_live(team.plan(goal, subscribers=[_show_draft]), team.settings.planning_model)
    _show_plan(result.graph, result.repairs, result.recalled)
    _show_notes(result.notes)
    usage = result.usage
    console.print(
        f"[dim]model calls: {usage.requests}, tokens: {usage.input_tokens} in / {usage.output_tokens} out[/dim]"
    )
    if save is not None:
        try:
            dump_manifest(graph_to_manifest(result.graph, name=goal[:60], description=goal), save)
        except OSError as error:
            raise UserError(f"{save}: cannot write the plan: {error.strerror}") from None
        console.print(plain(f"plan saved to {save}; run it with: orquestra run {save}", "dim"))


def _show_draft(event: Event) -> None:
    """One line for each task the planner writes."""
    from orquestra.console import drafted_line
    from orquestra.events import TaskDrafted

    if isinstance(event, TaskDrafted):
        console.print(drafted_line(event), overflow="ellipsis", no_wrap=True)


def _plan_live(planning: Coroutine[Any, Any, PlanResult], model: str) -> PlanResult:
    """Plan with a spinner (each task shows as `model` writes it); Ctrl-C ends with exit 130."""
    try:
        with console.status(f"planning with {model}..."):
            return asyncio.run(planning)
    except KeyboardInterrupt:
        errors.print("[bold red]cancelled[/bold red] while planning (Ctrl-C)")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _team(model: str | None, planner_model: str | None, registry: list[Path] | None, **options: Any) -> AutoTeam:
    from orquestra.config import load_settings
    from orquestra.registry import Registry
    from orquestra.team import AutoTeam

    settings = load_settings()
    cards = Registry.load(*settings.registry, *(registry or []))
    return AutoTeam(registry=cards, settings=settings, model=model, planner_model=planner_model, **options)


def _budget(max_tokens: int | None, max_cost: float | None, max_seconds: float | None) -> Budget | None:
    """The budget from flags, or None so that the config file's applies."""
    from orquestra.budget import Budget

    if max_tokens is None and max_cost is None and max_seconds is None:
        return None
    return Budget(max_tokens=max_tokens, max_cost=max_cost, max_seconds=max_seconds)


def _show_plan(graph: TaskGraph, repairs: Sequence[str], recalled: Sequence[str]) -> None:
    """The goals recalled from memory, the plan's tree, and what the repair changed."""
    from orquestra.console import graph_tree

    for goal in recalled:
        console.print(Text.assemble(("recalled: ", "dim"), plain(goal)))
    console.print(graph_tree(graph, title=f"plan: {len(graph)} tasks"))
    for repair in repairs:
        console.print(Text.assemble(("repaired:", "yellow"), " ", plain(repair)))


def _show_notes(notes: Iterable[str]) -> None:
    """What the planner left out of its prompt to fit the model's context (a catalogue cut to the goal)."""
    for note in notes:
        console.print(Text.assemble(("note: ", "dim"), plain(note)))


def _describe(model: Model) -> str:
    describe = getattr(model, "describe", None)
    return str(describe()) if callable(describe) else model.name


async def _run_live(run: Run) -> TeamResult:
    """Run with a live view; Ctrl-C cancels the run cleanly and the result says which tasks finished."""
    from rich.live import Live

    from orquestra.console import ProgressView

    assert run.graph is not None
    view = ProgressView(run.graph, run.agent_name)
    run.subscribe(view)
    run.subscribe(_announce)
    with _ctrl_c_cancels(run):
        with Live(view, console=console, refresh_per_second=8):
            await run.execute()
        console.print()
        return await _answer(run)


async def _stream_live(run: Run) -> TeamResult:
    """Plan and run the goal as the plan streams in: the drafted tasks, then the live view from the first one on."""
    from rich.live import Live

    from orquestra.console import ProgressView
    from orquestra.events import Planned, RunStarted

    planning = console.status(f"planning with {run.team.settings.planning_model}...")
    view: ProgressView | None = None
    live: Live | None = None

    def show(event: Event) -> None:
        nonlocal view
        if isinstance(event, Planned):
            _show_plan(event.graph, event.repairs, event.recalled)
            _show_notes(event.notes)
        elif isinstance(event, RunStarted):
            view = ProgressView(event.graph, run.agent_name)
        if view is not None:
            view(event)

    def started(execution: Execution) -> None:
        nonlocal live
        planning.stop()
        live = Live(view, console=console, refresh_per_second=8)
        live.start()
        _cancel_on_ctrl_c(run)

    run.subscribe(show)
    run.subscribe(_announce)
    planning.start()
    try:
        await run.execute(started=started)
    finally:
        planning.stop()
        if live is not None:
            live.stop()
            console.print()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    with _ctrl_c_cancels(run):
        return await _answer(run)


def _cancel_on_ctrl_c(run: Run) -> None:
    """From now on, Ctrl-C cancels `run` in whichever phase it is, keeping what it did."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, run.cancel, "interrupted by Ctrl-C")


@contextlib.contextmanager
def _ctrl_c_cancels(run: Run) -> Iterator[None]:
    _cancel_on_ctrl_c(run)
    try:
        yield
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)


async def _answer(run: Run) -> TeamResult:
    """Write the answer of a finished run (a graph file's has none) under a spinner."""
    if not run.goal:
        return await run.finish()
    with console.status("writing the answer..."):
        return await run.finish()


def _announce(event: Event) -> None:
    from orquestra.console import run_notice

    notice = run_notice(event)
    if notice is not None:
        console.print(notice)


def _save_result(team_result: TeamResult, path: Path) -> None:
    result = team_result.run
    data: dict[str, Any] = {
        "goal": team_result.goal,
        "answer": team_result.answer,
        "run_id": result.run_id,
        "status": result.status.value,
        "reason": result.reason,
        "elapsed": result.elapsed,
        "graph": result.graph.model_dump(mode="json"),
        "statuses": {task_id: status.value for task_id, status in result.statuses.items()},
        "outputs": result.outputs,
        "errors": {task_id: str(error) for task_id, error in result.errors.items()},
        "superseded": {task_id: str(error) for task_id, error in result.superseded.items()},
        "usage": dataclasses.asdict(team_result.usage),
        "graphs": [graph.model_dump(mode="json") for graph in team_result.loop.graphs],
        "verdicts": [{"verdict": type(v).__name__.lower(), **dataclasses.asdict(v)} for v in team_result.loop.verdicts],
        "replans": [{"reason": r.reason, "diff": r.diff} for r in team_result.loop.replans],
        "ended_by": team_result.loop.ended_by,
    }
    try:
        path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the result: {error.strerror}") from None
    console.print(plain(f"result saved to {path}", "dim"))


# ---------------------------------------------------------------------------------------------- graph

_FORMATS = ("tree", "mermaid", "json")


# Mermaid fills by task status, for `graph show RUN --format mermaid`.
@graph_app.command("show")
def graph_show(
    target: Annotated[
        str,
        typer.Argument(
            help="A task graph file or workflow manifest (.yaml, .yml, .json), or a recorded run's id "
            "(or its first 6+ characters, as `runs list` shows it).",
            show_default=False,
        ),
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="tree, mermaid or json.")] = "tree",
    registry: RegistryFolders = None,
) -> None:
    """Render a task graph as a tree, a Mermaid flowchart or JSON; a recorded run's graph with each task's status."""
    from orquestra.console import graph_tree, mermaid
    from orquestra.graphfile import load_graph

    if format not in _FORMATS:
        raise UserError(f"--format: unknown format '{format}' (choose {', '.join(_FORMATS[:-1])} or {_FORMATS[-1]})")
    path = Path(target)
    statuses: dict[str, str] = {}
    record: dict[str, Any] = {}
    if names_a_file(target):  # a missing .yaml file is "no such file"
        graph = load_graph(path, _registry(registry) if registry else None)
        title = f"{path.name}: {len(graph)} tasks"
    else:
        stored = _recorded_run(target)
        graph = _recorded_graph(stored)
        statuses = {task.task_id: task.status for task in stored.tasks if task.task_id in graph.by_id}
        record = {"run_id": stored.run.id, "status": stored.run.status, "statuses": statuses}
        title = f"run {stored.run.id} ({stored.run.status}): {len(graph)} tasks"
    if format == "tree":
        from orquestra.cli_runs import status_text

        marks = {task_id: status_text(status) for task_id, status in statuses.items()}
        console.print(graph_tree(graph, title=title, marks=marks))
        console.print(Text.assemble(("critical path: ", "dim"), plain(" -> ".join(graph.critical_path()))))
    elif format == "mermaid":
        sys.stdout.write(mermaid(graph, statuses))
    else:
        data = {**record, **graph.model_dump(mode="json", exclude_defaults=True)}
        sys.stdout.write(json_text(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def _registry(folders: list[Path]) -> Registry:
    """The configured registry with `folders` on top, as `run` and `apply` load it."""
    from orquestra.config import load_settings
    from orquestra.registry import Registry

    return Registry.load(*load_settings().registry, *folders)


def _recorded_run(target: str) -> StoredRun:
    """The recorded run `target` names (an id or a prefix); a `UserError` naming `target` when there is none."""
    from orquestra.exceptions import UnknownRun
    from orquestra.store import open_store, store_path

    if not store_path().exists():  # reading never creates a store
        raise UserError(f"{target}: no such file, and no runs are recorded yet")
    with open_store() as store:
        try:
            return store.get(target)
        except UnknownRun as error:
            raise UserError(f"{target}: no such file, and {error.message}") from None


def _recorded_graph(stored: StoredRun) -> TaskGraph:
    """The graph of a recorded run as it stood last (replans included)."""
    from pydantic import ValidationError

    from orquestra.exceptions import describe_validation_error
    from orquestra.graph import TaskGraph

    if stored.run.graph is None:
        raise UserError(f"run {stored.run.id}: no graph was recorded")
    try:
        return TaskGraph.model_validate(stored.run.graph)
    except ValidationError as error:
        problem = describe_validation_error(error)
        raise UserError(f"run {stored.run.id}: the recorded graph does not load: {problem}") from None


# ---------------------------------------------------------------------------------------------- registry


@registry_app.command("list")
def registry_list(registry: RegistryFolders = None) -> None:
    """List the agents and tools, with their capabilities."""
    from orquestra.registry import Registry

    cards = Registry.load(*(registry or []))
    agents = Table(title="agents", title_justify="left", box=None, header_style="bold")
    for column in ("name", "capabilities", "model", "tools", "cost", "priority"):
        agents.add_column(column)
    # Cards come from anyone's registry folder: their text is shown as written, never as markup or escapes.
    for card in sorted(cards.agents.values(), key=lambda card: card.name):
        agents.add_row(
            plain(card.name),
            plain(", ".join(card.capabilities)),
            plain(card.model or "(default)"),
            plain(", ".join(card.tools)),
            f"{card.cost:g}",
            str(card.priority),
        )
    tools = Table(title="tools", title_justify="left", box=None, header_style="bold")
    for column in ("name", "permissions", "description"):
        tools.add_column(column)
    for tool in sorted(cards.tools.values(), key=lambda tool: tool.name):
        tools.add_row(plain(tool.name), plain(", ".join(tool.permissions)), plain(tool.description))
    console.print(agents)
    console.print()
    console.print(tools)


@registry_app.command("show")
def registry_show(
    name: Annotated[str, typer.Argument(help="An agent or tool name.")], registry: RegistryFolders = None
) -> None:
    """Show one agent or tool card in full."""
    import yaml

    from orquestra.registry import AgentCard, Registry

    cards = Registry.load(*(registry or []))
    card: AgentCard | Any = cards.agents.get(name) or cards.tools.get(name)
    if card is None:
        known = ", ".join(sorted([*cards.agents, *cards.tools]))
        raise UserError(f"no agent or tool named '{name}' (known: {known})")
    kind = "agent" if name in cards.agents else "tool"
    text = yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)
    console.print(Panel(plain(text.rstrip()), title=plain(f"{kind} {name}"), title_align="left", expand=False))


class _OneLineLog(logging.Handler):
    """Orquestra's own log records as one line on stderr (``warning: ...``); every other library's are dropped.

    Libraries report what matters as exceptions, which Orquestra turns into its own messages; their log lines
    and warnings (retries, deprecations, telemetry) would only tear through the live view.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the records of Orquestra's own loggers."""
        return record.name == "orquestra" or record.name.startswith("orquestra.")

    def emit(self, record: logging.LogRecord) -> None:
        """Print the record as ``level: message``, on one line."""
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            line = " ".join(part.strip() for part in message.splitlines() if part.strip())
            style = "bold red" if record.levelno >= logging.ERROR else "yellow"
            errors.print(
                Text.assemble((f"{record.levelname.lower()}:", style), " ", plain(line, one_line=True)), soft_wrap=True
            )
        except Exception:  # a log line must never break the run
            self.handleError(record)


def _quiet_logs() -> None:
    """Send every log record and Python warning through `_OneLineLog`, and nothing else."""
    logging.basicConfig(level=logging.WARNING, handlers=[_OneLineLog()], force=True)
    logging.captureWarnings(True)  # warnings become records of the 'py.warnings' logger, which is not Orquestra's


def main() -> None:
    """Entry point of the `orquestra` command."""
    _quiet_logs()
    try:
        app()
    except UserError as error:
        errors.print(error_line(error.message), soft_wrap=True)
        sys.exit(EXIT_USAGE)
    except OrquestraError as error:
        # Not the user's mistake, but no traceback either: a provider that failed for good before a run could
        # record it (planning, say), or a budget spent before the first call. The exit code says which.
        from orquestra.exit_codes import exit_code

        errors.print(error_line(error.message), soft_wrap=True)
        sys.exit(exit_code(error.status) if isinstance(error, StopRun) else EXIT_FAILED)


if __name__ == "__main__":
    main()
