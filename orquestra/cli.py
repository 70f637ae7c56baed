"""The `orquestra` command line. It only calls the public API; every user mistake is one line and exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orquestra import __version__
from orquestra.agent import AgentRunner
from orquestra.console import ProgressView, graph_tree, mermaid, run_summary
from orquestra.dispatch import Dispatcher
from orquestra.engine import Engine, RetryPolicy, RunResult, RunStatus
from orquestra.exceptions import UserError
from orquestra.graph import TaskGraph
from orquestra.graphfile import load_graph
from orquestra.models import Model, infer_model
from orquestra.registry import AgentCard, Registry

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

console = Console()
errors = Console(stderr=True)

RegistryFolders = Annotated[
    list[Path] | None,
    typer.Option(
        "--registry",
        "-r",
        help="A registry folder (agents/, tools/) added on top of the built-in one; repeatable.",
        envvar="ORQUESTRA_REGISTRY",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Default model, e.g. 'scripted'. Also ORQUESTRA_MODEL.", show_default=False),
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


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="A task graph file (.yaml, .yml or .json).")],
    model: ModelOption = None,
    registry: RegistryFolders = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Tasks running at once.")] = 4,
    timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds one task attempt may take.")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries per task on transient errors.")] = 2,
    save: Annotated[Path | None, typer.Option(help="Also write the result (statuses, outputs) as JSON here.")] = None,
    outputs: Annotated[bool, typer.Option("--outputs/--no-outputs", help="Print each task's output.")] = True,
) -> None:
    """Run a task graph with live progress, then print each result and a summary."""
    graph = load_graph(target)
    cards = Registry.load(*(registry or []))
    try:
        assignments = Dispatcher(cards).assign_all(graph)
    except UserError as error:
        raise UserError(f"{target}: {error.message}") from None
    default_model = model or os.environ.get("ORQUESTRA_MODEL") or "scripted"
    models: dict[str, Model] = {}

    def resolve(spec: str) -> Model:
        if spec not in models:
            models[spec] = infer_model(spec)
        return models[spec]

    def model_for(card: AgentCard) -> Model:
        return resolve(card.model or default_model)

    # Resolving every model now makes a bad model string fail before anything runs.
    for assignment in assignments.values():
        model_for(assignment.agent)
    console.print(f"[dim]model:[/dim] {resolve(default_model).name}   [dim]tasks:[/dim] {len(graph)}")
    runner = AgentRunner(assignments, model_for)
    engine = Engine(runner, max_concurrency=max_concurrency, timeout=timeout, retry=RetryPolicy(retries=retries))
    view = ProgressView(graph, {task_id: a.agent.name for task_id, a in assignments.items()})
    engine.subscribe(view)
    result = asyncio.run(_run_live(engine, graph, view))
    if outputs:
        for task_id in result.finished:
            output = Text(str(result.outputs[task_id]))  # model text, never rich markup
            console.print(Panel(output, title=task_id, title_align="left", expand=False))
    console.print(run_summary(result))
    usage = runner.usage
    console.print(
        f"[dim]model calls: {usage.requests}, tokens: {usage.input_tokens} in / {usage.output_tokens} out, "
        f"cost: ${usage.cost:.4f}[/dim]"
    )
    if save is not None:
        _save_result(result, save)
    if result.status is RunStatus.CANCELLED:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status is RunStatus.FAILED:
        raise typer.Exit(EXIT_FAILED)


async def _run_live(engine: Engine, graph: TaskGraph, view: ProgressView) -> RunResult:
    """Run with a live view; Ctrl-C cancels the run cleanly and the result says which tasks finished."""
    loop = asyncio.get_running_loop()
    execution = engine.start(graph)
    loop.add_signal_handler(signal.SIGINT, execution.cancel, "interrupted by Ctrl-C")
    try:
        with Live(view, console=console, refresh_per_second=8):
            result = await execution
        console.print()
        return result
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _save_result(result: RunResult, path: Path) -> None:
    data: dict[str, Any] = {
        "run_id": result.run_id,
        "status": result.status.value,
        "reason": result.reason,
        "elapsed": result.elapsed,
        "graph": result.graph.model_dump(mode="json"),
        "statuses": {task_id: status.value for task_id, status in result.statuses.items()},
        "outputs": result.outputs,
        "errors": {task_id: str(error) for task_id, error in result.errors.items()},
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
    try:
        app()
    except UserError as error:
        errors.print(f"[bold red]error:[/bold red] {error.message}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
