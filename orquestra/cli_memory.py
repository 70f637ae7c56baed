"""`orquestra memory`: list, search, show and forget the runs Orquestra remembers.

Mounted by `orquestra.cli` as ``app.add_typer(memory_app, name="memory")``. Goals, summaries and answers are
model or user text: they are always printed as `rich.text.Text`, never read as rich markup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orquestra.console import graph_tree
from orquestra.exceptions import UserError
from orquestra.memory import ChromaMemory, Recalled, RunMemory, memory_path, open_store
from orquestra.safe_text import plain

memory_app = typer.Typer(help="List, search, show and forget the runs Orquestra remembers.", no_args_is_help=True)

OUTCOME_STYLES = {"succeeded": "green", "failed": "bold red", "cancelled": "red", "stopped": "yellow"}


@contextlib.contextmanager
def _memory() -> Iterator[ChromaMemory]:
    """The memory under ORQUESTRA_HOME; one that cannot be opened is a one-line `UserError` saying what to do."""
    with open_store(memory_path()) as store:
        yield store


def _when(created_at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(created_at))


def _outcome(run: RunMemory) -> Text:
    return plain(run.outcome, style=OUTCOME_STYLES.get(run.outcome, ""))


def _tasks(run: RunMemory) -> str:
    if not run.tasks:
        return str(len(run.graph))
    return f"{sum(task.succeeded for task in run.tasks)}/{len(run.tasks)} ok"


def _table(runs: Sequence[RunMemory], similarities: Sequence[float] = ()) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("id", "when", "outcome", "tasks"):
        table.add_column(column, no_wrap=True)
    if similarities:
        table.add_column("similarity", justify="right")
    table.add_column("goal", overflow="fold")
    for index, run in enumerate(runs):
        cells: list[str | Text] = [plain(run.run_id), _when(run.created_at), _outcome(run), _tasks(run)]
        if similarities:
            cells.append(f"{similarities[index]:.2f}")
        table.add_row(*cells, plain(run.goal))
    return table


@memory_app.command("list")
def memory_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs to show.")] = 20,
) -> None:
    """List the remembered runs, newest first."""
    console = Console()
    if not memory_path().exists():
        console.print(plain(f"no runs remembered yet (memory at {memory_path()})"))
        return
    with _memory() as memory:
        runs, total = memory.list(limit), memory.count()
    if not runs:
        console.print(plain(f"no runs remembered yet (memory at {memory_path()})"))
        return
    console.print(_table(runs))
    console.print(f"[dim]{len(runs)} of {total} runs[/dim]")


@memory_app.command("search")
def memory_search(
    text: Annotated[str, typer.Argument(help="What the goal was about, in any words.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many runs to show.")] = 5,
) -> None:
    """Find the remembered runs whose goals are nearest in meaning to TEXT."""
    with _memory() as memory:
        found: list[Recalled] = memory.search(text, k)
    if not found:
        Console().print("no runs remembered yet")
        return
    Console().print(_table([item.run for item in found], [item.similarity for item in found]))


@memory_app.command("show")
def memory_show(run_id: Annotated[str, typer.Argument(help="The run's id, as `memory list` shows it.")]) -> None:
    """Show one run: goal, outcome, graph, what each task did, lessons and answer."""
    with _memory() as memory:
        run = memory.get(run_id)
    if run is None:
        raise UserError(f"no remembered run with id '{run_id}' (see `orquestra memory list`)")
    console = Console()
    header = Text.assemble(("run ", "bold"), plain(run.run_id), "  ", _when(run.created_at), "  ", _outcome(run))
    if run.reason:
        header.append(plain(f" ({run.reason})"))  # a provider's error may be quoted in it
    console.print(header)
    console.print(Text.assemble(("goal: ", "bold"), plain(run.goal)))
    console.print(graph_tree(run.graph, title=f"graph: {len(run.graph)} tasks"))
    if run.tasks:
        table = Table(box=None, header_style="bold", pad_edge=False, title="tasks", title_justify="left")
        for column in ("task", "capability", "agent", "ok"):
            table.add_column(column, no_wrap=True)
        table.add_column("summary", overflow="fold")
        for task in run.tasks:
            ok = plain("✓", style="green") if task.succeeded else plain("✗", style="bold red")
            table.add_row(plain(task.task_id), plain(task.capability), plain(task.agent), ok, plain(task.summary))
        console.print(table)
    for lesson in run.lessons:
        console.print(Text.assemble(("lesson: ", "bold"), plain(lesson)))
    if run.answer:
        console.print(Panel(plain(run.answer), title="answer", title_align="left", border_style="green"))


@memory_app.command("forget")
def memory_forget(run_id: Annotated[str, typer.Argument(help="The run's id, as `memory list` shows it.")]) -> None:
    """Forget one run (no confirmation): it is no longer recalled, listed or counted."""
    with _memory() as memory:
        run = memory.get(run_id)
        if run is None or not memory.forget(run_id):
            raise UserError(f"no remembered run with id '{run_id}' (see `orquestra memory list`)")
    Console().print(Text.assemble("forgot run ", plain(run.run_id, "bold"), ": ", plain(run.goal)))
