"""Rich renderables for graphs and runs: a live progress table fed by events, a summary, a tree, Mermaid."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from orquestra.engine import RunResult, RunStatus, TaskStatus
from orquestra.events import (
    ApprovalDecided,
    ApprovalRequested,
    Event,
    GraphPatched,
    RunStarted,
    TaskCancelled,
    TaskFailed,
    TaskReady,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from orquestra.graph import TaskGraph

STYLES = {
    TaskStatus.PENDING: "dim",
    TaskStatus.READY: "cyan",
    TaskStatus.RUNNING: "bold yellow",
    TaskStatus.SUCCEEDED: "green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.SKIPPED: "magenta",
    TaskStatus.CANCELLED: "red",
}
ICONS = {
    TaskStatus.PENDING: "·",
    TaskStatus.READY: "…",
    TaskStatus.RUNNING: "▶",
    TaskStatus.SUCCEEDED: "✓",
    TaskStatus.FAILED: "✗",
    TaskStatus.SKIPPED: "↷",
    TaskStatus.CANCELLED: "■",
}


@dataclass
class _Row:
    status: TaskStatus = TaskStatus.PENDING
    started: float | None = None
    ended: float | None = None
    note: str = ""
    awaiting: bool = False
    """Waiting for a person's approval (the engine still counts the task as ready)."""

    def elapsed(self, now: float) -> str:
        if self.started is None:
            return ""
        return f"{(self.ended or now) - self.started:.1f}s"


def _note_approval(row: _Row, event: ApprovalRequested | ApprovalDecided) -> None:
    if isinstance(event, ApprovalRequested):
        row.awaiting = True
        row.note = f"approve with: orquestra approve {event.run_id} {event.task_id}  ({'; '.join(event.reasons)})"
    else:
        row.awaiting = False
        by = f" by {event.by}" if event.by else ""
        row.note = f"{event.verdict}{by}" + (f": {event.note}" if event.note else "")


class ProgressView:
    """A live table of a run's tasks: status, agent, elapsed time and a note. Subscribe it to an engine."""

    def __init__(self, graph: TaskGraph, agents: Mapping[str, str] | None = None) -> None:
        self.graph = graph
        self.agents = dict(agents or {})
        self.rows: dict[str, _Row] = {task.id: _Row() for task in graph.tasks}

    def __call__(self, event: Event) -> None:
        """Update the view from one event."""
        if isinstance(event, RunStarted | GraphPatched):
            self.graph = event.graph
            for task in event.graph.tasks:
                self.rows.setdefault(task.id, _Row())
            return
        task_id = getattr(event, "task_id", None)
        if task_id is None:
            return
        row = self.rows.setdefault(task_id, _Row())
        if isinstance(event, TaskReady):
            row.status = TaskStatus.READY
        elif isinstance(event, ApprovalRequested | ApprovalDecided):
            _note_approval(row, event)
        elif isinstance(event, TaskStarted):
            row.status, row.started = TaskStatus.RUNNING, event.at
        elif isinstance(event, TaskRetrying):
            row.note = f"retry {event.attempt} in {event.delay:.1f}s: {event.error}"
        elif isinstance(event, TaskSucceeded):
            row.status, row.ended, row.note = TaskStatus.SUCCEEDED, event.at, ""
        elif isinstance(event, TaskFailed):
            row.status, row.ended, row.note = TaskStatus.FAILED, event.at, event.error
        elif isinstance(event, TaskSkipped):
            row.status, row.note = TaskStatus.SKIPPED, f"because '{event.because}' did not succeed"
        elif isinstance(event, TaskCancelled):
            row.status, row.ended = TaskStatus.CANCELLED, row.ended or (event.at if row.started else None)

    def __rich__(self) -> Table:
        now = time.time()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("", width=1)
        table.add_column("task")
        table.add_column("capability", style="dim")
        if self.agents:
            table.add_column("agent")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("note", overflow="fold", max_width=60)
        for task in self.graph.tasks:
            row = self.rows[task.id]
            style, icon, label = STYLES[row.status], ICONS[row.status], row.status.value
            if row.awaiting and row.status is TaskStatus.READY:
                style, icon, label = "bold blue", "?", "awaiting approval"
            cells: list[RenderableType] = [Text(icon, style=style), task.id, task.capability]
            if self.agents:
                cells.append(self.agents.get(task.id, ""))
            cells += [Text(label, style=style), row.elapsed(now), Text(row.note)]
            table.add_row(*cells)
        return table


def run_summary(result: RunResult) -> RenderableType:
    """A few lines on how a run ended: counts by status, elapsed time and the reason when it ended early."""
    counts: dict[TaskStatus, int] = {}
    for status in result.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{count} {status.value}" for status, count in counts.items()]
    style = {RunStatus.SUCCEEDED: "bold green", RunStatus.FAILED: "bold red"}.get(result.status, "bold yellow")
    headline = Text.assemble((f"run {result.status.value}", style), f" in {result.elapsed:.2f}s: ", ", ".join(parts))
    lines: list[RenderableType] = [headline]
    if result.reason:
        lines.append(Text(f"reason: {result.reason}", style="dim"))
    return Group(*lines)


def graph_tree(graph: TaskGraph, title: str = "task graph") -> Tree:
    """The graph as a tree from its roots; a task with several parents is expanded under the first only."""
    tree = Tree(Text(title, style="bold"))
    expanded: set[str] = set()

    def add(branch: Tree, task_id: str) -> None:
        task = graph[task_id]
        label = Text.assemble((task.id, "bold"), f" [{task.capability}] ", (task.instruction, "dim"))
        if task_id in expanded:
            branch.add(Text.assemble((task.id, "bold"), (" (shown above)", "dim italic")))
            return
        expanded.add(task_id)
        node = branch.add(label)
        for child in graph.dependents[task_id]:
            add(node, child)

    for root in graph.roots():
        add(tree, root.id)
    return tree


def mermaid(graph: TaskGraph) -> str:
    """The graph as a Mermaid flowchart, edges from each dependency to its dependent."""
    # Task ids may hold characters Mermaid rejects in node ids, so nodes are numbered and labelled.
    node = {task.id: f"t{index}" for index, task in enumerate(graph.tasks)}
    lines = ["flowchart TD"]
    for task in graph.tasks:
        label = f"{task.id}<br/>{task.capability}".replace('"', "'")
        lines.append(f'    {node[task.id]}["{label}"]')
    for task in graph.tasks:
        lines.extend(f"    {node[dep]} --> {node[task.id]}" for dep in task.depends_on)
    return "\n".join(lines) + "\n"
