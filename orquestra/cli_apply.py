"""`orquestra apply FILE`: run a workflow manifest with live progress, then print outputs and a summary.

Register it on the main app with ``app.command("apply")(apply_command)``. It handles its own user errors
(one line on stderr, exit 2) and Ctrl-C (exit 130), so it behaves the same whether or not `cli.main` wraps it;
otherwise it exits as `orquestra run` does, with the code of how the run ended (`orquestra.exit_codes`).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.panel import Panel

from orquestra import exit_codes
from orquestra.budget import Budget
from orquestra.cli_options import RegistryFolders
from orquestra.config import load_settings
from orquestra.console import ProgressView, usage_line
from orquestra.engine import TaskStatus
from orquestra.exceptions import UserError
from orquestra.manifest import Manifest, ManifestResult, load_manifest, manifest_result, prepare_manifest
from orquestra.registry import Registry
from orquestra.safe_text import error_line, plain
from orquestra.team import AutoTeam

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
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Token budget for the whole run.")] = None,
    max_cost: Annotated[float | None, typer.Option(min=0.000001, help="Cost budget in US dollars.")] = None,
    max_seconds: Annotated[float | None, typer.Option(min=0.001, help="Wall-time budget in seconds.")] = None,
) -> None:
    """Run a workflow manifest: its agents and tasks as declared, with live progress."""
    try:
        settings = load_settings()
        flags = Budget(max_tokens=max_tokens, max_cost=max_cost, max_seconds=max_seconds)
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
            budget=None if flags.unlimited else flags,  # None: the config file's budget applies
        )
        result = asyncio.run(_apply_live(manifest, team))
    except UserError as error:
        errors.print(error_line(error.message), soft_wrap=True)
        raise typer.Exit(exit_codes.USAGE) from None
    except KeyboardInterrupt:  # outside the run, whose own Ctrl-C handler cancels it cleanly
        errors.print("[bold red]cancelled[/bold red] (Ctrl-C)")
        raise typer.Exit(exit_codes.INTERRUPTED) from None
    if outputs:
        for task_id, output in result.outputs.items():
            console.print(Panel(plain(_as_text(output)), title=plain(task_id), title_align="left", expand=False))
    console.print(plain(_summary(manifest, result)))
    code = exit_codes.exit_code(result.run.status)
    if code:
        raise typer.Exit(code)


async def _apply_live(manifest: Manifest, team: AutoTeam) -> ManifestResult:
    """Run with a live view; Ctrl-C cancels the run cleanly and the result says which tasks finished."""
    loop = asyncio.get_running_loop()
    run = prepare_manifest(manifest, team)  # checked before the live view starts: an error is a line of its own
    assert run.graph is not None
    view = ProgressView(run.graph, run.agent_name)  # the agent of each task, also of one a replan adds
    run.subscribe(view)
    loop.add_signal_handler(signal.SIGINT, run.cancel, "interrupted by Ctrl-C")
    try:
        with Live(view, console=console, refresh_per_second=8):
            outcome = await run.execute()
        console.print()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return manifest_result(outcome)


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
