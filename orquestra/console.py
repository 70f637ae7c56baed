"""Rich renderables for graphs and runs: a live progress table fed by events, a summary, a tree, Mermaid."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from orquestra.engine import RunResult, RunStatus, TaskStatus
from orquestra.events import (
    AgentFallback,
    AnswerChecked,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    GraphPatched,
    Replanned,
    ResultChecked,
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskDrafted,
    TaskFailed,
    TaskReady,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from orquestra.exceptions import UserError
from orquestra.graph import GraphPatch, Task, TaskGraph
from orquestra.safe_text import clean, plain

if TYPE_CHECKING:
    from orquestra.budget_meter import BudgetMeter
    from orquestra.models import Usage

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
AWAITING = ("bold blue", "?", "awaiting approval")
"""Style, icon and label of a ready task waiting for a person's approval."""

NO_CAPABILITY = "-"
"""What the capability column shows for a task pinned to an agent that declares no capability."""

AgentsOf = Mapping[str, str] | Callable[[Task], str]
"""The agent of each task: by task id, or a function of the task (which also names tasks a replan adds)."""


def skip_reason(output: object) -> str | None:
    """Why a task the engine counts as succeeded did not run (a manifest's `run_if`), or None if it ran.

    A manifest task that is skipped "succeeds" with a `Skipped` marker as its output, so that its dependents
    start and decide for themselves; whatever shows or records the task must still call it skipped.
    """
    if isinstance(output, str | None):  # the common case, without importing the manifest module
        return None
    # Imported here: the manifest module imports the whole team, which the console must not pull in.
    from orquestra.manifest import Skipped

    return output.reason if isinstance(output, Skipped) else None


def task_capability(task: Task) -> str:
    """The capability a task asks for, or `NO_CAPABILITY` when it is only its pinned agent's name.

    A manifest's inline agent that declares no capability offers its own name as one (so that only it takes
    its tasks); that is an agent, not a capability.
    """
    return NO_CAPABILITY if task.agent is not None and task.capability == task.agent else task.capability


@dataclass
class _Row:
    status: TaskStatus = TaskStatus.PENDING
    started: float | None = None
    """When the task's first attempt began (`TaskStarted`); None while it has not started."""
    ended: float | None = None
    note: str = ""
    agent: str = ""
    awaiting: bool = False
    """Waiting for a person's approval (the engine still counts the task as ready)."""

    def elapsed(self, now: float) -> str:
        """The task's own running time: from its start to its end, or to `now` while it runs."""
        if self.started is None:
            return ""
        return f"{(self.ended or now) - self.started:.1f}s"

    def settle(self, status: TaskStatus, at: float | None, note: str) -> None:
        """End the row in `status` at `at`; a task that never started keeps no time at all."""
        self.status, self.note, self.awaiting = status, note, False
        if self.started is None:
            self.ended = None  # never ran: no time to show
        elif self.ended is None:
            self.ended = at


def _note_approval(row: _Row, event: ApprovalRequested | ApprovalDecided) -> None:
    if isinstance(event, ApprovalRequested):
        row.awaiting = True
        row.agent = event.agent or row.agent
        row.note = f"approve with: orquestra approve {event.run_id} {event.task_id}  ({'; '.join(event.reasons)})"
    else:
        row.awaiting = False
        by = f" by {event.by}" if event.by else ""
        row.note = f"{event.verdict}{by}" + (f": {event.note}" if event.note else "")


def _note_check(row: _Row, event: ResultChecked) -> None:
    row.agent = event.agent or row.agent
    if not event.passed:
        first = event.failures[0] if event.failures else "no reason given"
        row.note = f"check failed: {first}" + (f" (+{len(event.failures) - 1} more)" if len(event.failures) > 1 else "")
    elif row.note.startswith("check failed"):
        row.note = ""  # the next answer passed: the old failure is history


class ProgressView:
    """A live table of a run's tasks: status, agent, elapsed time and a note. Subscribe it to an engine.

    Args:
        graph: the graph as planned; `RunStarted` and `GraphPatched` events replace it.
        agents: the agent of each task, by task id or as a function of the task; None hides the column.
            Events that name the agent at work (checks, approvals) take precedence.

    """

    def __init__(self, graph: TaskGraph, agents: AgentsOf | None = None) -> None:
        self.graph = graph
        self._agent_of = agents
        self.show_agents = agents is not None and (callable(agents) or bool(agents))
        self.rows: dict[str, _Row] = {}
        self.finished_at: float | None = None
        """When the run ended (`RunFinished`): no clock runs on after it."""
        self._adopt(graph)

    def __call__(self, event: Event) -> None:
        """Update the view from one event."""
        if isinstance(event, RunStarted):
            self._adopt(event.graph)
            return
        if isinstance(event, GraphPatched):
            self._patched(event.patch, event.graph)
            return
        if isinstance(event, RunFinished):
            self.finished_at = event.at
            return
        task_id = getattr(event, "task_id", None)
        if not isinstance(task_id, str):
            return
        row = self.rows.get(task_id)
        if row is None:
            return  # a task not in the run's graph (or one a patch removed): nothing to show it in
        self._update(row, event)

    def _update(self, row: _Row, event: Event) -> None:
        if isinstance(event, TaskReady):
            row.status = TaskStatus.READY
        elif isinstance(event, ApprovalRequested | ApprovalDecided):
            _note_approval(row, event)
        elif isinstance(event, TaskStarted):
            row.status, row.started, row.ended, row.awaiting = TaskStatus.RUNNING, event.at, None, False
        elif isinstance(event, TaskRetrying):
            row.note = f"retry {event.attempt} in {event.delay:.1f}s: {event.error}"
        elif isinstance(event, ResultChecked):
            _note_check(row, event)
        elif isinstance(event, AgentFallback):
            row.note = f"{event.agent} ({event.model}) failed, the fallback takes over: {event.error}"
        elif isinstance(event, TaskSucceeded):
            reason = skip_reason(event.output)
            if reason is None:
                row.settle(TaskStatus.SUCCEEDED, event.at, "")
            else:  # it did not run: no time, whatever the engine's bookkeeping took
                row.started = None
                row.settle(TaskStatus.SKIPPED, None, reason)
        elif isinstance(event, TaskFailed):
            row.settle(TaskStatus.FAILED, event.at, event.error)
        elif isinstance(event, TaskSkipped):
            row.settle(TaskStatus.SKIPPED, None, f"because '{event.because}' did not succeed")
        elif isinstance(event, TaskCancelled):
            row.settle(TaskStatus.CANCELLED, event.at, "" if row.started is None else "stopped while running")

    def _adopt(self, graph: TaskGraph) -> None:
        """Take `graph` as the run's graph, with a fresh row for each task the view has not seen."""
        self.graph = graph
        for task in graph.tasks:
            if task.id not in self.rows:
                self.rows[task.id] = _Row(agent=self._assigned(task))

    def _patched(self, patch: GraphPatch, graph: TaskGraph) -> None:
        """Follow a patch as the engine applies it: removed tasks go, new and revived ones are pending."""
        before = set(self.graph.by_id)
        # A task added back after a patch removed it is a new task: its old row says nothing about it.
        for task in graph.tasks:
            if task.id not in before:
                self.rows.pop(task.id, None)
        # The engine revives a skipped task that a patch replaces or rewires: it may run after all.
        for task_id in [*(task.id for task in patch.replace), *patch.rewire]:
            row = self.rows.get(task_id)
            if row is not None and row.status is TaskStatus.SKIPPED:
                self.rows[task_id] = _Row(agent=row.agent)
        for task_id in set(self.rows) - set(graph.by_id):
            del self.rows[task_id]
        self._adopt(graph)
        for task in patch.replace:  # a replaced (or edited) task may go to another agent
            row = self.rows.get(task.id)
            if row is not None and row.status in (TaskStatus.PENDING, TaskStatus.READY):
                row.agent = self._assigned(task) or row.agent

    def _assigned(self, task: Task) -> str:
        agents = self._agent_of
        if agents is None:
            return ""
        if not callable(agents):
            return agents.get(task.id, task.agent or "")
        try:
            return agents(task)
        except UserError:  # no agent offers a capability a patch asks for: the engine will say so
            return ""

    def __rich__(self) -> Table:
        now = self.finished_at or time.time()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("", width=1)
        table.add_column("task")
        table.add_column("capability", style="dim")
        if self.show_agents:
            table.add_column("agent")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("note", overflow="fold", max_width=60)
        for task in self.graph.tasks:
            row = self.rows[task.id]
            style, icon, label = STYLES[row.status], ICONS[row.status], row.status.value
            if row.awaiting and row.status is TaskStatus.READY:
                style, icon, label = AWAITING
            cells: list[RenderableType] = [Text(icon, style=style), plain(task.id), plain(task_capability(task))]
            if self.show_agents:
                cells.append(plain(row.agent))
            cells += [Text(label, style=style), row.elapsed(now), plain(row.note)]
            table.add_row(*cells)
        return table


def task_status(result: RunResult, task_id: str) -> TaskStatus:
    """How a task of a finished run ended, a manifest task skipped by `run_if` counted as skipped."""
    status = result.statuses[task_id]
    if status is TaskStatus.SUCCEEDED and skip_reason(result.outputs.get(task_id)) is not None:
        return TaskStatus.SKIPPED
    return status


def run_summary(result: RunResult, meter: BudgetMeter | None = None) -> RenderableType:
    """A few lines on how a run ended: counts by status, its time, the reason when it ended early.

    With the run's `meter`, the time is the budget's clock (which starts before planning, and so counts all
    of the run) and a line says what each limit of the budget had spent by then, at the same moment.
    Without one it is the engine's time for the graph alone.
    """
    counts: dict[TaskStatus, int] = {}
    for task_id in result.statuses:
        status = task_status(result, task_id)
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{count} {status.value}" for status, count in counts.items()]
    style = {RunStatus.SUCCEEDED: "bold green", RunStatus.FAILED: "bold red"}.get(result.status, "bold yellow")
    elapsed = result.elapsed if meter is None else meter.elapsed()
    headline = Text.assemble((f"run {result.status.value}", style), f" in {elapsed:.2f}s: ", ", ".join(parts))
    lines: list[RenderableType] = [headline]
    if result.reason:
        lines.append(plain(f"reason: {result.reason}", style="dim"))
    spent = meter.spending(elapsed) if meter is not None else []
    if spent:
        lines.append(Text(f"budget: {'; '.join(spent)}", style="dim"))
    return Group(*lines)


def usage_line(usage: Usage) -> str:
    """What a run's model calls cost, on one line (plain text: print it with ``highlight=False``)."""
    return (
        f"model calls: {usage.requests}, tokens: {usage.input_tokens} in / {usage.output_tokens} out, "
        f"cost: ${usage.cost:.4f}"
    )


TREE_DEPTH = 12
"""The deepest level `graph_tree` draws: deeper tasks would not fit a terminal's width (rich drops them)."""


def graph_tree(
    graph: TaskGraph, title: str = "task graph", *, marks: Mapping[str, Text] | None = None, depth: int = TREE_DEPTH
) -> Tree:
    """The graph as a tree from its roots; a task with several parents is expanded under the first only.

    `marks` puts a text (a recorded task's status, say) before the label of each task it names. Below `depth`
    levels a note stands for the rest (a long chain of tasks); the tree is built without recursion.
    """
    tree = Tree(plain(title, style="bold"))
    expanded: set[str] = set()
    marks = marks or {}

    def marked(task_id: str, label: Text) -> Text:
        mark = marks.get(task_id)
        return Text.assemble(mark, "  ", label) if mark is not None else label

    # Depth first, children in graph order, as a recursive walk would visit them.
    stack: list[tuple[Tree, str, int]] = [(tree, root.id, 1) for root in reversed(graph.roots())]
    while stack:
        branch, task_id, level = stack.pop()
        task = graph[task_id]
        if task_id in expanded:
            branch.add(marked(task_id, Text.assemble(plain(task.id, "bold"), (" (shown above)", "dim italic"))))
            continue
        expanded.add(task_id)
        label = Text.assemble(plain(task.id, "bold"), plain(f" [{task.capability}] "), plain(task.instruction, "dim"))
        node = branch.add(marked(task_id, label))
        children = graph.dependents[task_id]
        if children and level >= depth:
            node.add(
                Text(
                    f"… more below (-f mermaid shows all {len(graph)})",
                    "dim italic",
                )
            )
            continue
        stack.extend((node, child, level + 1) for child in reversed(children))
    return tree


MERMAID_FILLS = {
    "pending": "#ffffff",
    "ready": "#d1ecf1",
    "awaiting approval": "#cce5ff",
    "running": "#fff3cd",
    "succeeded": "#d4edda",
    "failed": "#f8d7da",
    "skipped": "#e2e3e5",
    "cancelled": "#f5c6cb",
}
"""The fill of a Mermaid node by its task's status."""


def mermaid(graph: TaskGraph, statuses: Mapping[str, str] | None = None) -> str:
    """The graph as a Mermaid flowchart, edges from each dependency to its dependent.

    With `statuses` (task id to status), each node is filled by its task's status.
    """
    # Task ids may hold characters Mermaid rejects in node ids, so nodes are numbered and labelled.
    node = {task.id: f"t{index}" for index, task in enumerate(graph.tasks)}
    lines = ["flowchart TD"]
    for task in graph.tasks:
        label = clean(f"{task.id}<br/>{task.capability}", one_line=True).replace('"', "'")
        lines.append(f'    {node[task.id]}["{label}"]')
    for task in graph.tasks:
        lines.extend(f"    {node[dep]} --> {node[task.id]}" for dep in task.depends_on)
    for status in sorted(set((statuses or {}).values())):
        lines.append(f"    classDef {status.replace(' ', '_')} fill:{MERMAID_FILLS.get(status, '#ffffff')},stroke:#555")
    for task in graph.tasks:
        if statuses and task.id in statuses:
            lines.append(f"    class {node[task.id]} {statuses[task.id].replace(' ', '_')}")
    return "\n".join(lines) + "\n"


def drafted_line(event: TaskDrafted) -> Text:
    """One line for a task the planner has just written: its id, capability and instruction."""
    line = Text.assemble(("  drafted ", "dim"), plain(event.task_id, "bold"), plain(f" ({event.capability}) ", "dim"))
    line.append(plain(event.instruction, one_line=True))  # model text: never markup, nor terminal commands
    return line


def run_notice(event: Event) -> RenderableType | None:
    """What a run event says to a person watching beyond the live table: a replan, the answer's check."""
    if isinstance(event, Replanned):
        return Panel(
            plain(event.diff), title=plain(f"replan: {event.reason}"), title_align="left", border_style="yellow"
        )
    if isinstance(event, AnswerChecked):
        return answer_check_line(event)
    return None


def answer_check_line(event: AnswerChecked) -> Text:
    """One line for the check of a run's figure: confirmed, not confirmed, or not judged, and why."""
    label, style = {True: ("confirmed", "green"), False: ("not confirmed", "red"), None: ("not judged", "dim")}[
        event.passed
    ]
    return Text.assemble(("  answer check ", "dim"), (label, style), ": ", plain(event.why, one_line=True))
