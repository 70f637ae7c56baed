"""The `orquestra` command line. It only calls the public API; every user mistake is one line and exit 2."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orquestra import __version__
from orquestra.budget import Budget, BudgetMeter
from orquestra.cli_apply import apply_command
from orquestra.cli_approve import approve_command
from orquestra.cli_eval import eval_app
from orquestra.cli_memory import memory_app
from orquestra.cli_options import PlannerModelOption, RegistryFolders
from orquestra.cli_runs import runs_app
from orquestra.config import load_settings
from orquestra.console import ProgressView, graph_tree, mermaid, run_summary
from orquestra.engine import Execution, RunStatus
from orquestra.events import Event, Replanned
from orquestra.exceptions import UserError
from orquestra.graph import TaskGraph
from orquestra.graphfile import load_graph
from orquestra.manifest import dump_manifest, graph_to_manifest, is_manifest
from orquestra.models import Model, Usage
from orquestra.planner import PlanResult
from orquestra.reflect import ReflectionMode
from orquestra.registry import AgentCard, Registry
from orquestra.repl import repl_command
from orquestra.team import AutoTeam, TeamResult

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="orquestra",
    help="Orquestra: turn a goal into a team of AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
graph_app = typer.Typer(help="Inspect task graph files.", no_args_is_help=True)
registry_app = typer.Typer(help="List and show the agents and tools of the registry.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")
app.add_typer(registry_app, name="registry")
app.command("apply")(apply_command)
app.command("repl")(repl_command)
app.command("approve")(approve_command)
app.add_typer(runs_app, name="runs", help="List, show and export the runs Orquestra recorded.")
app.add_typer(eval_app, name="eval", help="Measure planning quality and whole runs on eval suites.")
app.add_typer(memory_app, name="memory", help="List, search, show and forget the runs long-term memory keeps.")

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
) -> None:
    """Orquestra: turn a goal into a team of AI agents."""


# ---------------------------------------------------------------------------------------------- run


GraphFileSuffixes = (".yaml", ".yml", ".json")


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
) -> None:
    """Plan and run a goal with a team of agents, or run a task graph file; live progress, then the results."""
    team = _team(
        model,
        planner_model,
        registry,
        max_concurrency=max_concurrency,
        max_tasks=max_tasks,
        timeout=timeout,
        retries=retries,
        budget=_budget(max_tokens, max_cost, max_seconds),
        reflection=reflection,
        max_replans=max_replans,
        memory=None if memory else False,
    )
    is_file = target.endswith(GraphFileSuffixes) or Path(target).is_file()
    if is_file and is_manifest(Path(target)):  # what `plan --save` writes, and hand-written workflows
        apply_command(Path(target), model, registry, max_concurrency, timeout, retries, outputs)
        return
    goal = "" if is_file else target
    console.print(f"[dim]model:[/dim] {_describe(team.model())} [dim]({team.settings.model_source})[/dim]")
    plan = None
    meter = team.meter()
    if is_file:
        graph = load_graph(target)
        _check_graph(team, graph, target)
    else:
        with console.status(f"planning with {team.settings.planning_model}..."):
            plan = asyncio.run(team.plan(goal, meter=meter))
        graph = plan.graph
        _check_graph(team, graph, "the plan")
        _show_recalled(plan)
        console.print(graph_tree(graph, title=f"plan: {len(graph)} tasks"))
        for repair in plan.repairs:
            console.print(f"[yellow]repaired:[/yellow] {repair}", highlight=False)
    result = asyncio.run(_run_live(team, graph, goal, plan, meter))
    if outputs:
        for task_id in result.run.finished:
            output = Text(str(result.run.outputs[task_id]))  # model text, never rich markup
            console.print(Panel(output, title=task_id, title_align="left", expand=False))
    if goal and result.answer:
        console.print(Panel(Text(result.answer), title="answer", title_align="left", border_style="green"))
    console.print(run_summary(result.run))
    console.print(_usage_line(result.usage))
    if save is not None:
        _save_result(result, save)
    if result.run.status is RunStatus.CANCELLED:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.run.status is RunStatus.FAILED:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def plan(
    goal: Annotated[str, typer.Argument(help="The goal, in plain words.")],
    model: ModelOption = None,
    planner_model: PlannerModelOption = None,
    registry: RegistryFolders = None,
    max_tasks: Annotated[int, typer.Option(min=1, max=50, help="The largest plan accepted.")] = 8,
    save: Annotated[Path | None, typer.Option(help="Write the plan as a graph file that `run` accepts.")] = None,
    memory: MemoryOption = True,
) -> None:
    """Plan a goal into a task graph and show it, without running it."""
    team = _team(model, planner_model, registry, max_tasks=max_tasks, memory=None if memory else False)
    console.print(f"[dim]planner:[/dim] {_describe(team.model(team.settings.planning_model))}")
    with console.status(f"planning with {team.settings.planning_model}..."):
        result = asyncio.run(team.plan(goal))
    _show_recalled(result)
    console.print(graph_tree(result.graph, title=f"plan: {len(result.graph)} tasks"))
    for repair in result.repairs:
        console.print(f"[yellow]repaired:[/yellow] {repair}", highlight=False)
    usage = result.usage
    console.print(
        f"[dim]model calls: {usage.requests}, tokens: {usage.input_tokens} in / {usage.output_tokens} out[/dim]"
    )
    if save is not None:
        try:
            dump_manifest(graph_to_manifest(result.graph, name=goal[:60], description=goal), save)
        except OSError as error:
            raise UserError(f"{save}: cannot write the plan: {error.strerror}") from None
        console.print(f"[dim]plan saved to {save}; run it with: orquestra run {save}[/dim]")


def _team(model: str | None, planner_model: str | None, registry: list[Path] | None, **options: Any) -> AutoTeam:
    settings = load_settings()
    cards = Registry.load(*settings.registry, *(registry or []))
    return AutoTeam(registry=cards, settings=settings, model=model, planner_model=planner_model, **options)


def _check_graph(team: AutoTeam, graph: TaskGraph, where: str) -> None:
    """Check capabilities and models before anything runs, naming the file (or the plan) on error."""
    try:
        team.dispatcher.assign_all(graph)
        team.check_models(graph)
    except UserError as error:
        raise UserError(f"{where}: {error.message}") from None


def _budget(max_tokens: int | None, max_cost: float | None, max_seconds: float | None) -> Budget | None:
    """The budget from flags, or None so that the config file's applies."""
    if max_tokens is None and max_cost is None and max_seconds is None:
        return None
    return Budget(max_tokens=max_tokens, max_cost=max_cost, max_seconds=max_seconds)


def _show_recalled(plan: PlanResult) -> None:
    for goal in plan.recalled:
        console.print(Text.assemble(("recalled: ", "dim"), goal))


def _usage_line(usage: Usage) -> str:
    return (
        f"[dim]model calls: {usage.requests}, tokens: {usage.input_tokens} in / {usage.output_tokens} out, "
        f"cost: ${usage.cost:.4f}[/dim]"
    )


def _describe(model: Model) -> str:
    describe = getattr(model, "describe", None)
    return str(describe()) if callable(describe) else model.name


async def _run_live(
    team: AutoTeam, graph: TaskGraph, goal: str, plan: PlanResult | None, meter: BudgetMeter
) -> TeamResult:
    """Run with a live view; Ctrl-C cancels the run cleanly and the result says which tasks finished."""
    loop = asyncio.get_running_loop()
    agents = {task.id: team.dispatcher.assign(task).agent.name for task in graph.tasks}
    view = ProgressView(graph, agents)

    def started(execution: Execution) -> None:
        loop.add_signal_handler(signal.SIGINT, execution.cancel, "interrupted by Ctrl-C")

    try:
        with Live(view, console=console, refresh_per_second=8):
            outcome = await team.execute(
                graph, goal=goal, meter=meter, subscribers=[view, _announce_replans], started=started
            )
        console.print()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if not goal:
        return await team.finish(goal, None, outcome)
    with console.status("writing the answer..."):
        return await team.finish(goal, plan, outcome)


def _announce_replans(event: Event) -> None:
    if isinstance(event, Replanned):
        console.print(
            Panel(Text(event.diff), title=f"replan: {event.reason}", title_align="left", border_style="yellow")
        )


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
    console.print(f"[dim]result saved to {path}[/dim]")


# ---------------------------------------------------------------------------------------------- graph


@graph_app.command("show")
def graph_show(
    file: Annotated[Path, typer.Argument(help="A task graph file (.yaml, .yml or .json).")],
    format: Annotated[str, typer.Option("--format", "-f", help="tree, mermaid or json.")] = "tree",
) -> None:
    """Render a task graph as a tree, a Mermaid flowchart or JSON."""
    graph = load_graph(file)
    if format == "tree":
        console.print(graph_tree(graph, title=f"{file.name}: {len(graph)} tasks"))
        path = " -> ".join(graph.critical_path())
        console.print(f"[dim]critical path:[/dim] {path}")
    elif format == "mermaid":
        sys.stdout.write(mermaid(graph))
    elif format == "json":
        sys.stdout.write(graph.model_dump_json(indent=2, exclude_defaults=True) + "\n")
    else:
        raise UserError(f"--format: unknown format '{format}' (choose tree, mermaid or json)")


# ---------------------------------------------------------------------------------------------- registry


@registry_app.command("list")
def registry_list(registry: RegistryFolders = None) -> None:
    """List the agents and tools, with their capabilities."""
    cards = Registry.load(*(registry or []))
    agents = Table(title="agents", title_justify="left", box=None, header_style="bold")
    for column in ("name", "capabilities", "model", "tools", "cost", "priority"):
        agents.add_column(column)
    for card in sorted(cards.agents.values(), key=lambda card: card.name):
        agents.add_row(
            card.name,
            ", ".join(card.capabilities),
            card.model or "(default)",
            ", ".join(card.tools),
            f"{card.cost:g}",
            str(card.priority),
        )
    tools = Table(title="tools", title_justify="left", box=None, header_style="bold")
    for column in ("name", "permissions", "description"):
        tools.add_column(column)
    for tool in sorted(cards.tools.values(), key=lambda tool: tool.name):
        tools.add_row(tool.name, ", ".join(tool.permissions), tool.description)
    console.print(agents)
    console.print()
    console.print(tools)


@registry_app.command("show")
def registry_show(
    name: Annotated[str, typer.Argument(help="An agent or tool name.")], registry: RegistryFolders = None
) -> None:
    """Show one agent or tool card in full."""
    cards = Registry.load(*(registry or []))
    card: AgentCard | Any = cards.agents.get(name) or cards.tools.get(name)
    if card is None:
        known = ", ".join(sorted([*cards.agents, *cards.tools]))
        raise UserError(f"no agent or tool named '{name}' (known: {known})")
    kind = "agent" if name in cards.agents else "tool"
    text = yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)
    console.print(Panel(Text(text.rstrip()), title=f"{kind} {name}", title_align="left", expand=False))


def main() -> None:
    """Entry point of the `orquestra` command."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=errors)])
    # instructor logs every failed attempt at ERROR; Orquestra reports the outcome itself.
    logging.getLogger("instructor").setLevel(logging.CRITICAL)
    try:
        app()
    except UserError as error:
        errors.print(f"[bold red]error:[/bold red] {error.message}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
