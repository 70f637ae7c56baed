"""`orquestra runs`: list, show and export the runs the run store recorded.

Mounted by `orquestra.cli` as ``app.add_typer(runs_app, name="runs")``. Goals, outputs, answers and event
payloads are model or user text: they are always printed as `rich.text.Text`, never read as rich markup.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orquestra.console import NO_CAPABILITY
from orquestra.exceptions import UserError
from orquestra.safe_text import plain
from orquestra.store import EventRecord, RunStore, StoredRun, store_path

runs_app = typer.Typer(help="List, show and export the runs Orquestra recorded.", no_args_is_help=True)

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "red",
    "stopped": "yellow",
    "out_of_budget": "yellow",
    "gave_up": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "awaiting approval": "bold blue",
}

# Payload fields too large for one line of the event log; `runs show` prints graphs and outputs elsewhere.
_BULKY = frozenset({"graph", "patch", "output", "diff"})
_SUMMARY_WIDTH = 160

RunId = Annotated[str, typer.Argument(help="The run's id, or its first 6+ characters, as `runs list` shows it.")]


@contextlib.contextmanager
def _store() -> Iterator[RunStore]:
    """The store under ORQUESTRA_HOME; an absent one is a `UserError`, so reading never creates a file."""
    path = store_path()
    if not path.exists():
        raise UserError(f"no runs recorded yet (run store at {path})")
    with RunStore(path) as store:
        yield store


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at is not None else "-"


def status_text(status: str) -> Text:
    """A run's or a task's status, styled as `runs list` and `runs show` style it."""
    return plain(status, style=STATUS_STYLES.get(status, ""))


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs to show.")] = 20,
) -> None:
    """List the recorded runs, newest first."""
    console = Console()
    path = store_path()
    if not path.exists():
        console.print(plain(f"no runs recorded yet (run store at {path})"))
        return
    with RunStore(path) as store:
        runs, total = store.list(limit), store.count()
    if not runs:
        console.print(plain(f"no runs recorded yet (run store at {path})"))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("id", "started", "status", "tasks"):
        table.add_column(column, no_wrap=True)
    table.add_column("goal", overflow="fold")
    for run in runs:
        done = f"{run.tasks_done}/{run.tasks_total}"
        table.add_row(plain(run.id), _when(run.started_at), status_text(run.status), done, plain(run.goal))
    console.print(table)
    console.print(f"[dim]{len(runs)} of {total} runs[/dim]")


@runs_app.command("show")
def runs_show(run_id: RunId) -> None:
    """Show one run: goal, status, tasks, outputs, answer, usage and the event log."""
    with _store() as store:
        stored = store.get(run_id)
    console = Console()
    run = stored.run
    header = Text.assemble(("run ", "bold"), plain(run.id), "  ", _when(run.started_at), "  ", status_text(run.status))
    if run.reason:
        header.append(plain(f" ({run.reason})"))  # a provider's error may be quoted in it
    console.print(header)
    if run.goal:
        console.print(Text.assemble(("goal: ", "bold"), plain(run.goal)))
    if run.model:
        console.print(Text.assemble(("model: ", "bold"), plain(run.model)))
    console.print(_tasks_table(stored))
    failures = _check_failures(stored.events)
    if failures.row_count:
        console.print(failures)
    for task in stored.tasks:
        if task.output:
            console.print(Panel(plain(task.output), title=plain(f"output of {task.task_id}"), title_align="left"))
    if run.answer:
        console.print(Panel(plain(run.answer), title="answer", title_align="left", border_style="green"))
    if run.usage:
        usage = ", ".join(f"{key} {value}" for key, value in run.usage.items())
        console.print(Text.assemble(("usage: ", "bold"), usage))
    console.print(_events_table(stored.events, run.started_at))


def _tasks_table(stored: StoredRun) -> Table:
    """One row per task; `elapsed` is the task's own duration, `checks` how its answers fared."""
    checks = _checks_by_task(stored.events)
    agent_only = _agent_only(stored.run.graph)
    table = Table(box=None, header_style="bold", pad_edge=False, title="tasks", title_justify="left")
    for column in ("task", "capability", "agent", "status", "elapsed", "checks"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="fold")
    for task in stored.tasks:
        elapsed = f"{task.elapsed:.2f}s" if task.elapsed is not None else ""
        table.add_row(
            plain(task.task_id),
            plain(NO_CAPABILITY if task.task_id in agent_only else task.capability),
            plain(task.agent),
            status_text(task.status),
            elapsed,
            _checks_cell(checks.get(task.task_id, [])),
            plain(task.error or "", style="red"),
        )
    return table


def _agent_only(graph: dict[str, Any] | None) -> set[str]:
    """Ids of the tasks whose capability is only the name of the agent they are pinned to (`task_capability`)."""
    tasks = (graph or {}).get("tasks") or []
    return {
        str(task.get("id"))
        for task in tasks
        if isinstance(task, dict) and task.get("agent") and task.get("capability") == task.get("agent")
    }


def _checks_by_task(events: list[EventRecord]) -> dict[str, list[dict[str, Any]]]:
    """The payloads of every `ResultChecked` event, by task, in order."""
    checks: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event.type == "ResultChecked":
            checks.setdefault(str(event.payload.get("task_id", "")), []).append(event.payload)
    return checks


def _checks_cell(verdicts: list[dict[str, Any]]) -> Text:
    """'passed', or how many of the task's answers failed their checks, e.g. 'failed 1 of 2'."""
    if not verdicts:
        return Text("")
    failed = sum(1 for verdict in verdicts if not verdict.get("passed"))
    if not failed:
        return plain("passed", style="green")
    return plain(f"failed {failed} of {len(verdicts)}", style="red" if failed == len(verdicts) else "yellow")


def _check_failures(events: list[EventRecord]) -> Table:
    """Every failed check of every answer: which task, which answer, which agent, and why."""
    table = Table(box=None, header_style="bold", pad_edge=False, title="check failures", title_justify="left")
    for column in ("task", "answer", "agent"):
        table.add_column(column, no_wrap=True)
    table.add_column("failure", overflow="fold")
    for task_id, verdicts in _checks_by_task(events).items():
        for verdict in verdicts:
            if verdict.get("passed"):
                continue
            reasons = [str(reason) for reason in verdict.get("failures") or ()] or ["(no reason given)"]
            for reason in reasons:
                table.add_row(
                    plain(task_id), str(verdict.get("attempt", "")), plain(str(verdict.get("agent", ""))), plain(reason)
                )
    return table


def _events_table(events: list[EventRecord], started_at: float) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, title="events", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("at", justify="right", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("details", overflow="fold")
    for event in events:
        table.add_row(str(event.seq), f"+{event.at - started_at:.2f}s", event.type, plain(_summary(event.payload)))
    return table


def _summary(payload: dict[str, Any]) -> str:
    """The event's small fields on one line; bulky ones (graphs, outputs) are left out: `show` prints them apart."""
    parts = []
    for key, value in payload.items():
        if key in _BULKY:
            continue
        if isinstance(value, float):
            text = f"{value:.3f}"
        else:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={text}")
    line = " ".join(parts)
    return line if len(line) <= _SUMMARY_WIDTH else line[: _SUMMARY_WIDTH - 1] + "…"


@runs_app.command("export")
def runs_export(
    run_id: RunId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON to this file instead of stdout.")
    ] = None,
) -> None:
    """Export one run (run, tasks and every event) as JSON."""
    with _store() as store:
        data = store.export(run_id)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        # Plain echo, not rich: the JSON must come out byte for byte, with no wrapping or highlighting.
        typer.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{output}: cannot write the export: {error.strerror}") from None
    Console(stderr=True).print(plain(f"wrote run {data['run']['id']} to {output}"))
