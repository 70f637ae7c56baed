"""What the tables say: the live view's row for every task status, a manifest run's columns, `runs show`.

Every table is rendered to text with rich, as a terminal would show it, and read back column by column.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.text import Text
from typer.testing import CliRunner

from orquestra.cli_apply import apply_command
from orquestra.cli_runs import runs_app
from orquestra.console import ICONS, STYLES, ProgressView, run_notice
from orquestra.engine import Engine, RetryPolicy, TaskStatus
from orquestra.events import (
    AnswerChecked,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    GraphPatched,
    Replanned,
    ResultChecked,
    RunStarted,
    TaskCancelled,
    TaskFailed,
    TaskReady,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from orquestra.graph import GraphPatch, Task, TaskGraph
from orquestra.manifest import Skipped
from orquestra.store import open_store
from tests.helpers import make_graph, mounted

WIDTH = 220
RUN = "run000000001"


def render(renderable: RenderableType, *, colour: bool = False) -> str:
    """`renderable` as a terminal `WIDTH` columns wide shows it (with ANSI colours when `colour`)."""
    written = io.StringIO()
    console = Console(file=written, width=WIDTH, force_terminal=colour, color_system="standard" if colour else None)
    console.print(renderable)
    return written.getvalue()


def table_rows(text: str, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The rows of the table in `text` whose header names `columns` (the first may be the unnamed icon column).

    Each row is read by the header's column positions and keyed by its `task` cell; a line that is blank up to
    the last column continues the row above. The table ends at a blank line or a line that fits it not.
    """
    lines = text.splitlines()
    named = [column for column in columns if column]
    index = next(i for i, line in enumerate(lines) if all(re.search(rf"\b{c}\b", line) for c in named))
    header = lines[index]
    starts = [header.index(column) for column in named]
    if columns[0] == "":
        starts, named = [0, *starts], ["", *named]
    rows: dict[str, dict[str, str]] = {}
    last: dict[str, str] | None = None
    for line in lines[index + 1 :]:
        if not line.strip():
            break
        cells = {
            name: line[start : starts[i + 1] if i + 1 < len(starts) else None].strip()
            for i, (name, start) in enumerate(zip(named, starts, strict=True))
        }
        if not line[: starts[-1]].strip() and last is not None:
            last[named[-1]] = f"{last[named[-1]]} {cells[named[-1]]}".strip()
            continue
        if not cells["task"] or cells["task"] in rows or " " in cells["task"]:
            break  # the next table's title or rows
        rows[cells["task"]] = last = cells
    return rows


LIVE_COLUMNS = ("", "task", "capability", "agent", "status", "time", "note")


def view_rows(view: ProgressView) -> dict[str, dict[str, str]]:
    columns = LIVE_COLUMNS if view.show_agents else tuple(c for c in LIVE_COLUMNS if c != "agent")
    return table_rows(render(view), columns)


def styled(text: str, style: str) -> str:
    """How `text` in `style` begins in colour (the style's escape codes, then the text), to find it in a line."""
    written = render(Text(text, style=style), colour=True)
    return written[: written.index(text) + len(text)]


def _task(task_id: str, capability: str = "research", agent: str | None = None, deps: tuple[str, ...] = ()) -> Task:
    return Task(id=task_id, instruction=f"do {task_id}", capability=capability, depends_on=deps, agent=agent)


def feed(view: ProgressView, *events: Event) -> None:
    for event in events:
        view(event)


# ---------------------------------------------------------------------------------------------- every status


def every_status_view() -> tuple[ProgressView, float]:
    """A view fed, by hand, the events that bring one task to each status a row can show."""
    ids = [
        "waiting", "ready", "approval", "running", "checked", "done", "broken",
        "refused", "downstream", "optional", "stopped", "never", "poem",
    ]  # fmt: skip
    tasks = [_task(task_id) for task_id in ids[:-1]] + [_task("poem", capability="poet", agent="poet")]
    graph = TaskGraph(tasks=tuple(tasks))
    agents = {task.id: "researcher" for task in tasks} | {"poem": "poet"}
    view = ProgressView(graph, agents)
    now = time.time()
    feed(
        view,
        RunStarted(RUN, graph, at=100.0),
        TaskReady(RUN, "ready", at=100.0),
        TaskReady(RUN, "approval", at=100.0),
        ApprovalRequested(RUN, "approval", "reviewer", "do approval", ("it writes files",), at=100.0),
        TaskReady(RUN, "running", at=now - 2.0),
        TaskStarted(RUN, "running", at=now - 2.0),
        TaskStarted(RUN, "checked", at=now - 1.0),
        ResultChecked(RUN, "checked", "analyst", False, ("not_empty",), ("not_empty: the answer is empty",), 1),
        TaskStarted(RUN, "done", at=100.0),
        TaskSucceeded(RUN, "done", "the facts", 1.5, at=101.5),
        TaskStarted(RUN, "broken", at=100.0),
        TaskFailed(RUN, "broken", "ValueError: boom", 0.7, at=100.7),
        TaskSkipped(RUN, "downstream", "broken", at=100.7),
        TaskReady(RUN, "refused", at=100.0),
        ApprovalRequested(RUN, "refused", "researcher", "do refused", ("it sends mail",), at=100.0),
        ApprovalDecided(RUN, "refused", "rejected", "not today", by="ana", at=103.0),
        TaskFailed(RUN, "refused", "ApprovalRejected: rejected by ana: not today", 0.0, at=103.0),
        # A manifest task whose run_if is false "succeeds" with a Skipped marker, at once.
        TaskReady(RUN, "optional", at=100.0),
        TaskStarted(RUN, "optional", at=100.0),
        TaskSucceeded(RUN, "optional", Skipped("run_if was false"), 0.0, at=100.01),
        TaskStarted(RUN, "stopped", at=100.0),
        TaskCancelled(RUN, "stopped", at=100.4),
        TaskReady(RUN, "never", at=100.0),
        TaskCancelled(RUN, "never", at=100.4),
        TaskStarted(RUN, "poem", at=100.0),
        TaskSucceeded(RUN, "poem", "roses", 0.3, at=100.3),
    )
    return view, now


EXPECTED = {
    # task: (icon, capability, agent, status, time, note); None: checked apart
    "waiting": ("·", "research", "researcher", "pending", "", ""),
    "ready": ("…", "research", "researcher", "ready", "", ""),
    "approval": ("?", "research", "reviewer", "awaiting approval", "", None),
    "running": ("▶", "research", "researcher", "running", None, ""),
    "checked": ("▶", "research", "analyst", "running", None, "check failed: not_empty: the answer is empty"),
    "done": ("✓", "research", "researcher", "succeeded", "1.5s", ""),
    "broken": ("✗", "research", "researcher", "failed", "0.7s", "ValueError: boom"),
    "refused": ("✗", "research", "researcher", "failed", "", "ApprovalRejected: rejected by ana: not today"),
    "downstream": ("↷", "research", "researcher", "skipped", "", "because 'broken' did not succeed"),
    "optional": ("↷", "research", "researcher", "skipped", "", "run_if was false"),
    "stopped": ("■", "research", "researcher", "cancelled", "0.4s", "stopped while running"),
    "never": ("■", "research", "researcher", "cancelled", "", ""),
    "poem": ("✓", "-", "poet", "succeeded", "0.3s", ""),
}


def test_every_status_has_its_own_row_icon_label_time_and_note() -> None:
    view, _ = every_status_view()
    rows = view_rows(view)
    assert list(rows) == list(EXPECTED)
    for task_id, (icon, capability, agent, status, elapsed, note) in EXPECTED.items():
        row = rows[task_id]
        assert (row[""], row["task"], row["capability"], row["agent"], row["status"]) == (
            icon,
            task_id,
            capability,
            agent,
            status,
        ), task_id
        if elapsed is not None:
            assert row["time"] == elapsed, task_id
        if note is not None:
            assert row["note"] == note, task_id
    assert rows["approval"]["note"].startswith(f"approve with: orquestra approve {RUN} approval")


def test_running_rows_count_their_own_time_from_their_start() -> None:
    view, _ = every_status_view()
    rows = view_rows(view)
    # TaskStarted came 2 s and 1 s before rendering; the run's own start (t=100) plays no part.
    assert 2.0 <= float(rows["running"]["time"].rstrip("s")) < 3.0
    assert 1.0 <= float(rows["checked"]["time"].rstrip("s")) < 2.0


def test_each_status_is_drawn_in_its_own_colour() -> None:
    view, _ = every_status_view()
    coloured = render(view, colour=True)
    lines = {line.split("\x1b")[0]: line for line in coloured.splitlines()}
    assert lines
    for task_id, status in (
        ("done", TaskStatus.SUCCEEDED),
        ("broken", TaskStatus.FAILED),
        ("downstream", TaskStatus.SKIPPED),
        ("optional", TaskStatus.SKIPPED),
        ("stopped", TaskStatus.CANCELLED),
        ("running", TaskStatus.RUNNING),
        ("waiting", TaskStatus.PENDING),
    ):
        line = next(line for line in coloured.splitlines() if re.search(rf"\b{task_id}\b", line))
        assert styled(ICONS[status], STYLES[status]) in line, task_id
        assert styled(status.value, STYLES[status]) in line, task_id
    awaiting = next(line for line in coloured.splitlines() if re.search(r"\bapproval\b", line))
    assert styled("awaiting approval", "bold blue") in awaiting


def test_a_failed_check_shows_until_the_next_answer() -> None:
    graph = TaskGraph(tasks=(_task("draft"),))
    view = ProgressView(graph, {"draft": "writer"})
    failed = ResultChecked(RUN, "draft", "writer", False, ("not_refusal", "not_echo"), ("not_refusal: refused",), 1)
    feed(view, TaskReady(RUN, "draft"), TaskStarted(RUN, "draft"), failed)
    assert view_rows(view)["draft"]["note"] == "check failed: not_refusal: refused"
    twice = ResultChecked(RUN, "draft", "writer", False, ("a", "b"), ("a: empty", "b: echoed the prompt"), 2)
    feed(view, twice)
    assert view_rows(view)["draft"]["note"] == "check failed: a: empty (+1 more)"
    feed(view, ResultChecked(RUN, "draft", "writer", True, ("a", "b"), (), 3))
    assert view_rows(view)["draft"]["note"] == ""
    feed(view, failed, TaskRetrying(RUN, "draft", 1, "TimeoutError", 0.5))
    assert view_rows(view)["draft"]["note"] == "retry 1 in 0.5s: TimeoutError"


def test_the_agent_that_answered_replaces_the_one_first_assigned() -> None:
    graph = TaskGraph(tasks=(_task("draft"),))
    view = ProgressView(graph, {"draft": "writer"})
    assert view_rows(view)["draft"]["agent"] == "writer"
    feed(view, TaskStarted(RUN, "draft"), ResultChecked(RUN, "draft", "reviewer", True, ("not_empty",)))
    assert view_rows(view)["draft"]["agent"] == "reviewer"


# ---------------------------------------------------------------------------------------------- real runs


async def _work(task: Task, inputs: Mapping[str, Any]) -> str:
    await asyncio.sleep(0.01)
    if task.id.startswith("bad"):
        raise ValueError(f"{task.id} broke")
    return f"{task.id} done"


async def test_a_real_run_with_a_failure_shows_failed_skipped_and_succeeded_rows() -> None:
    graph = make_graph({"ok": [], "bad": [], "after_bad": ["bad"], "last": ["after_bad"], "after_ok": ["ok"]})
    view = ProgressView(graph)
    engine = Engine(_work, retry=RetryPolicy(retries=0))
    engine.subscribe(view)
    await engine.run(graph)
    rows = table_rows(render(view), ("", "task", "capability", "status", "time", "note"))
    assert {task_id: (row[""], row["status"]) for task_id, row in rows.items()} == {
        "ok": ("✓", "succeeded"),
        "bad": ("✗", "failed"),
        "after_bad": ("↷", "skipped"),
        "last": ("↷", "skipped"),
        "after_ok": ("✓", "succeeded"),
    }
    assert rows["after_bad"]["time"] == rows["last"]["time"] == ""
    assert rows["last"]["note"] == "because 'bad' did not succeed"
    assert rows["ok"]["time"].endswith("s") and rows["bad"]["note"] == "ValueError: bad broke"


async def test_a_cancelled_real_run_times_only_the_tasks_that_ran() -> None:
    async def slow(task: Task, inputs: Mapping[str, Any]) -> str:
        await asyncio.sleep(5)
        return "never"

    graph = make_graph({"first": [], "second": ["first"]})
    view = ProgressView(graph)
    engine = Engine(slow)
    engine.subscribe(view)
    execution = engine.start(graph)
    await asyncio.sleep(0.2)
    execution.cancel("interrupted by Ctrl-C")
    await execution
    rows = table_rows(render(view), ("", "task", "capability", "status", "time", "note"))
    assert (rows["first"][""], rows["first"]["status"], rows["first"]["note"]) == (
        "■",
        "cancelled",
        "stopped while running",
    )
    assert 0.1 <= float(rows["first"]["time"].rstrip("s")) < 1.0
    assert (rows["second"]["status"], rows["second"]["time"]) == ("cancelled", "")


def test_a_patch_revives_a_skipped_task_and_adds_new_ones_as_pending() -> None:
    graph = TaskGraph(tasks=(_task("fetch"), _task("report", deps=("fetch",))))
    view = ProgressView(graph, lambda task: f"agent-of-{task.id}")
    feed(
        view,
        TaskStarted(RUN, "fetch", at=100.0),
        TaskFailed(RUN, "fetch", "ValueError: offline", 1.0, at=101.0),
        TaskSkipped(RUN, "report", "fetch", at=101.0),
    )
    assert view_rows(view)["report"]["status"] == "skipped"
    patch = GraphPatch(add=(_task("mirror"),), rewire={"report": ("mirror",)}, reason="try the mirror")
    patched = TaskGraph(tasks=(_task("fetch"), _task("report", deps=("mirror",)), _task("mirror")))
    feed(view, GraphPatched(RUN, patch, patched))
    rows = view_rows(view)
    assert (rows["report"][""], rows["report"]["status"], rows["report"]["time"], rows["report"]["note"]) == (
        "·",
        "pending",
        "",
        "",
    )
    assert (rows["mirror"]["status"], rows["mirror"]["agent"]) == ("pending", "agent-of-mirror")
    assert rows["fetch"]["status"] == "failed"


def test_a_task_added_back_after_a_patch_removed_it_is_a_new_row() -> None:
    graph = TaskGraph(tasks=(_task("a"), _task("b", deps=("a",))))
    view = ProgressView(graph)
    feed(view, TaskStarted(RUN, "a", at=100.0), TaskFailed(RUN, "a", "boom", 1.0, at=101.0))
    removed = TaskGraph(tasks=(_task("b"),))
    feed(view, GraphPatched(RUN, GraphPatch(remove=("a",), rewire={"b": ()}), removed))
    assert "a" not in view_rows(view)
    back = TaskGraph(tasks=(_task("b"), _task("a")))
    feed(view, GraphPatched(RUN, GraphPatch(add=(_task("a"),)), back))
    rows = view_rows(view)
    assert (rows["a"]["status"], rows["a"]["time"], rows["a"]["note"]) == ("pending", "", "")


# ---------------------------------------------------------------------------------------------- manifest runs


MANIFEST = """\
name: columns
agents:
  - name: writer_agent
    model: scripted
tasks:
  - name: draft
    agent: writer_agent
    instruction: Write a draft about otters.
  - name: facts
    capability: research
    instruction: "Find facts for: {{ tasks.draft.output }}"
    depends_on: [draft]
  - name: extra
    capability: writing
    instruction: Only when asked.
    run_if: "false"
  - name: after_extra
    capability: analysis
    instruction: "Use {{ tasks.extra.output }}"
    depends_on: [extra]
"""


def test_a_manifest_run_shows_capabilities_agents_and_skips_truthfully(tmp_path: Path) -> None:
    path = tmp_path / "columns.yaml"
    path.write_text(MANIFEST)
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """Test app."""

    app.command("apply")(apply_command)
    result = CliRunner().invoke(app, ["apply", str(path), "--model", "scripted"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output, LIVE_COLUMNS)
    cells = {task_id: (row["capability"], row["agent"], row["status"]) for task_id, row in rows.items()}
    assert cells == {
        "draft": ("-", "writer_agent", "succeeded"),  # the inline agent declares no capability
        "facts": ("research", "researcher", "succeeded"),
        "extra": ("writing", "writer", "skipped"),
        "after_extra": ("analysis", "analyst", "skipped"),
    }
    assert (rows["extra"][""], rows["extra"]["time"], rows["extra"]["note"]) == ("↷", "", "run_if was false")
    assert rows["after_extra"]["note"] == "'extra' was skipped"
    assert "(2 succeeded, 2 skipped)" in result.output

    # The run store says the same: skipped, with no time and no output.
    with open_store() as store:
        stored = store.get(store.list(1)[0].id)
    tasks = {task.task_id: task for task in stored.tasks}
    assert (tasks["extra"].status, tasks["extra"].elapsed, tasks["extra"].output) == ("skipped", None, None)
    assert tasks["extra"].error == "skipped: run_if was false"
    assert stored.run.tasks_done == 2
    shown = CliRunner().invoke(mounted(runs_app, "runs"), ["runs", "show", stored.run.id], env={"COLUMNS": "200"})
    shown_rows = table_rows(shown.output, ("task", "capability", "agent", "status", "elapsed", "checks", "error"))
    assert shown_rows["draft"]["capability"] == "-" and shown_rows["draft"]["agent"] == "writer_agent"
    assert (shown_rows["extra"]["status"], shown_rows["extra"]["elapsed"]) == ("skipped", "")


# ---------------------------------------------------------------------------------------------- runs show


async def test_runs_show_lists_each_tasks_check_failures() -> None:
    graph = make_graph({"draft": [], "edit": ["draft"]})
    engine: Engine

    async def answer(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "draft":
            engine.events.emit(
                ResultChecked(RUN, "draft", "writer", False, ("not_empty", "not_echo"), ("not_empty: empty",), 1)
            )
            engine.events.emit(ResultChecked(RUN, "draft", "reviewer", True, ("not_empty", "not_echo"), (), 2))
        else:
            failures = ("not_refusal: the answer refuses", "not_echo: it repeats the prompt")
            engine.events.emit(ResultChecked(RUN, "edit", "writer", False, ("not_refusal", "not_echo"), failures, 1))
            raise ValueError("the answer failed its checks")
        return "a draft"

    engine = Engine(answer, retry=RetryPolicy(retries=0))
    with open_store() as store:
        engine.subscribe(store.subscriber(RUN, "write it"))
        result = await engine.run(graph, run_id=RUN)
        store.finish(RUN, answer="", usage={}, status=result.status.value, agents={"draft": "writer", "edit": "writer"})
        events = [event for event in store.get(RUN).events if event.type == "ResultChecked"]
    assert [event.payload["failures"] for event in events] == [
        ["not_empty: empty"],
        [],
        ["not_refusal: the answer refuses", "not_echo: it repeats the prompt"],
    ]
    shown = CliRunner().invoke(mounted(runs_app, "runs"), ["runs", "show", RUN], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    tasks = table_rows(shown.output, ("task", "capability", "agent", "status", "elapsed", "checks", "error"))
    assert (tasks["draft"]["checks"], tasks["draft"]["agent"]) == ("failed 1 of 2", "reviewer")
    assert (tasks["edit"]["checks"], tasks["edit"]["status"]) == ("failed 1 of 1", "failed")
    section = shown.output[shown.output.index("check failures") :]
    failures = section.splitlines()
    assert re.search(r"draft\s+1\s+writer\s+not_empty: empty", section)
    assert re.search(r"edit\s+1\s+writer\s+not_refusal: the answer refuses", section)
    assert re.search(r"edit\s+1\s+writer\s+not_echo: it repeats the prompt", section)
    assert not any(re.search(r"draft\s+2", line) for line in failures)  # the passing answer is no failure


def test_the_answer_check_says_confirmed_not_confirmed_or_not_judged_and_why() -> None:
    lines = [
        render(run_notice(AnswerChecked("r1", passed, why, "64.80 * 0.15", "9.72")) or Text(""), colour=True)
        for passed, why in [(True, "the answer states 9.72"), (False, "the answer states 74.52"), (None, "too few")]
    ]
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in lines] == [
        "answer check confirmed: the answer states 9.72",
        "answer check not confirmed: the answer states 74.52",
        "answer check not judged: too few",
    ]
    assert styled("confirmed", "green") in lines[0] and styled("not confirmed", "red") in lines[1]


def test_a_replan_is_a_panel_titled_with_its_reason_and_other_events_say_nothing() -> None:
    text = render(run_notice(Replanned("r1", "task 'a' failed", GraphPatch(), "+ b: research")) or Text(""))
    assert "replan: task 'a' failed" in text and "+ b: research" in text
    assert run_notice(TaskReady("r1", task_id="a")) is None
