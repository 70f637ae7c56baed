"""`orquestra approve`: decide on a task waiting for approval, from any terminal, through the run store.

The waiting run looks at the store a few times a second, so the decision takes effect in the run's own
process within a moment. Without a task, the command lists what waits for a decision.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orquestra.approval import Decision
from orquestra.exceptions import UserError
from orquestra.safe_text import plain
from orquestra.store import ApprovalRecord, RunStore, store_path


def approve_command(
    run_id: Annotated[
        str | None, typer.Argument(help="The run's id (or its first 6+ characters); all runs when omitted.")
    ] = None,
    task_id: Annotated[
        str | None, typer.Argument(help="The task to decide on; list the waiting ones when omitted.")
    ] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="Reject the task, with this reason.")] = None,
    edit: Annotated[str | None, typer.Option("--edit", help="Approve it with this instruction instead.")] = None,
    note: Annotated[str, typer.Option("--note", help="A remark kept with the decision.")] = "",
) -> None:
    """Approve, reject or edit a task waiting for approval; without a task, list those waiting."""
    if reject is not None and edit is not None:
        raise UserError("--reject and --edit exclude each other: a task is either rejected or run edited")
    path = store_path()
    if not path.exists():
        raise UserError(f"no runs recorded yet (run store at {path})")
    try:
        _decide(path, run_id, task_id, reject, edit, note)
    except sqlite3.Error as error:
        raise UserError(f"{path}: the run store cannot be used: {error}") from None


def _decide(
    path: Path, run_id: str | None, task_id: str | None, reject: str | None, edit: str | None, note: str
) -> None:
    console = Console()
    with RunStore(path) as store:
        full_id = store.resolve(run_id) if run_id is not None else None
        if task_id is None:
            _list_waiting(console, store.approvals(full_id, pending=True))
            return
        assert full_id is not None  # typer fills arguments in order: a task implies a run
        record = store.approval(full_id, task_id)
        if record.decision is not None:
            raise UserError(f"task '{task_id}' of run {full_id} was already {_described(record.decision)}")
        if reject is not None:
            decision = Decision.reject("; ".join(part for part in (reject, note) if part), by="cli")
        elif edit is not None:
            if not edit.strip():
                raise UserError("--edit: the new instruction is empty")
            decision = Decision.edit(edit, note, by="cli")
        else:
            decision = Decision.approve(note, by="cli")
        in_effect = store.decide(full_id, task_id, decision)
    if in_effect != decision:
        raise UserError(f"task '{task_id}' of run {full_id} was decided meanwhile: {_described(in_effect)}")
    console.print(Text.assemble(plain(f"task '{task_id}' of run {full_id}: "), (decision.verdict, "bold")))


def _described(decision: Decision) -> str:
    by = f" by {decision.by}" if decision.by else ""
    note = f" ({decision.note})" if decision.note else ""
    return f"{decision.verdict}{by}{note}"


def _list_waiting(console: Console, waiting: list[ApprovalRecord]) -> None:
    if not waiting:
        console.print("no task is waiting for approval")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "task", "waiting"):
        table.add_column(column, no_wrap=True)
    table.add_column("instruction", overflow="fold")
    table.add_column("why", overflow="fold")
    now = time.time()
    for record in waiting:
        table.add_row(
            plain(record.run_id),
            plain(record.task_id),
            f"{now - record.requested_at:.0f}s",
            plain(record.instruction),
            plain("; ".join(record.reasons)),
        )
    console.print(table)
    console.print("[dim]decide with: orquestra approve RUN TASK [--reject REASON | --edit INSTRUCTION][/dim]")
