"""`orquestra apply FILE`: run a workflow manifest with live progress, then print outputs and a summary.

Register it on the main app with ``app.command("apply")(apply_command)``. It handles its own user errors
(one line on stderr, exit 2), so it behaves the same whether or not `cli.main` wraps it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from orquestra.cli_options import RegistryFolders
from orquestra.config import load_settings
from orquestra.console import ProgressView, usage_line
from orquestra.dispatch import Dispatcher
from orquestra.engine import Execution, RunStatus, TaskStatus
from orquestra.exceptions import UserError
from orquestra.graph import Task
from orquestra.manifest import Manifest, ManifestResult, apply_manifest, load_manifest
from orquestra.registry import Registry
from orquestra.team import AutoTeam

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

console = Console()
errors = Console(stderr=True)


def apply_command(
    file: Annotated[Path, typer.Argument(help="A workflow manifest (.yaml or .yml).")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model of agents that name none: local, openai:<model>, anthropic:<model> or scripted.",
            show_default=False,
        ),
    ] = None,
    registry: RegistryFolders = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Tasks running at once.")] = 4,
    timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds one task attempt may take.")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries per task on transient errors.")] = 2,
    outputs: Annotated[bool, typer.Option("--outputs/--no-outputs", help="Print each task's output.")] = True,
) -> None:
    """Run a workflow manifest: its agents and tasks as declared, with live progress."""
    try:
        settings = load_settings()
        cards = Registry.load(*settings.registry, *(registry or []))
        manifest = load_manifest(file, cards)
        team = AutoTeam(
            registry=cards,
            settings=settings,
            model=model,
            memory=False,  # a manifest is already planned: nothing to recall, and no plan to remember
            max_concurrency=max_concurrency,
            timeout=timeout,
            retries=retries,
        )
        result = asyncio.run(_apply_live(manifest, team))
    except UserError as error:
        errors.print(f"[bold red]error:[/bold red] {error.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    if outputs:
        for task_id, output in result.outputs.items():
            console.print(Panel(Text(_as_text(output)), title=task_id, title_align="left", expand=False))
    console.print(_summary(manifest, result), highlight=False)
    if result.run.status is RunStatus.CANCELLED:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.run.status is RunStatus.FAILED:
        raise typer.Exit(EXIT_FAILED)


async def _apply_live(manifest: Manifest, team: AutoTeam) -> ManifestResult:
    """Run with a live view; Ctrl-C cancels the run cleanly and the result says which tasks finished."""
    loop = asyncio.get_running_loop()
    graph = manifest.to_graph()
    view = ProgressView(graph, _agent_of(manifest, team))

    def started(execution: Execution) -> None:
        loop.add_signal_handler(signal.SIGINT, execution.cancel, "interrupted by Ctrl-C")

    try:
        with Live(view, console=console, refresh_per_second=8):
            result = await apply_manifest(manifest, team=team, subscribers=[view], started=started)
        console.print()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return result


def _agent_of(manifest: Manifest, team: AutoTeam) -> Callable[[Task], str]:
    """The agent that takes each task: its pinned one, else the registry's choice for its capability.

    The same registry and dispatcher as `apply_manifest` (the team's agents and the manifest's own), so the
    live view names the agent that runs the task, also for a task a replan adds.
    """
    cards = team.registry
    registry = Registry([*cards.agents.values(), *manifest.cards().values()], cards.tools.values(), cards.prices)
    dispatcher = Dispatcher(registry)
    return lambda task: dispatcher.assign(task).agent.name


def _as_text(output: Any) -> str:
    """A task's output as plain text: a `map` task's list is numbered, one item per paragraph."""
    if isinstance(output, list):
        return "\n\n".join(f"{index}. {item}" for index, item in enumerate(output, start=1))
    return str(output)


def _summary(manifest: Manifest, result: ManifestResult) -> str:
    counts: dict[TaskStatus, int] = {}
    for status in result.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    parts = ", ".join(f"{count} {status.value}" for status, count in counts.items())
    lines = [
        f"{manifest.name}: {result.run.status.value} in {result.run.elapsed:.2f}s ({parts})",
        usage_line(result.usage),
    ]
    if result.run.reason:
        lines.append(f"reason: {result.run.reason}")
    return "\n".join(lines)


__all__ = ["apply_command"]
