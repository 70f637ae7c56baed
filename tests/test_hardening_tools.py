"""Issue 11, items 3 and 13: tools run off the event loop within bounds, and large texts stay out of the rows.

Item 3: the calculator used to run on the event loop without bounds: `factorial(10**7)` and
`4000000**4000000` ran past a 5 s task timeout, and a parallel 0.1 s task finished only at 5.66 s.
Item 13: `write_file` accepted 200 MB and the whole content went into one event row of the run store.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orquestra import Registry, Task, TaskGraph
from orquestra.agent import AgentRunner
from orquestra.cli_runs import runs_app
from orquestra.dispatch import Dispatcher
from orquestra.engine import Engine, RetryPolicy, RunStatus
from orquestra.events import Event, TaskFailed, TaskSucceeded, ToolCalled
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall
from orquestra.registry import AgentCard, ToolCard
from orquestra.store import RunStore, open_store
from orquestra.tools import ToolContext, ToolError
from orquestra.tools.calculator import calculate
from orquestra.tools.context import ToolLimits
from orquestra.tools.files import read_file, write_file
from orquestra.tools.textcalls import read_text_calls
from orquestra.tools.toolbox import Toolbox
from tests.helpers import mounted

# ---------------------------------------------------------------- tools of the tests' own

_released = threading.Event()
"""Set at the end of each test, so that a napping tool's thread ends soon after the test that started it."""


def nap(context: ToolContext) -> str:
    """A synchronous tool that blocks its thread for seconds (a slow library call, a stuck socket)."""
    _released.wait(20)
    return "rested"


def huge_result(context: ToolContext) -> str:
    return "x" * 50_000


@pytest.fixture(autouse=True)
def _release_naps() -> Any:
    _released.clear()
    yield
    _released.set()


NAP = ToolCard(
    name="nap",
    description="Rest a while.",
    arguments={"type": "object", "properties": {}},
    entry_point="tests.test_hardening_tools:nap",
)
HUGE = ToolCard(
    name="huge",
    description="Say a lot.",
    arguments={"type": "object", "properties": {}},
    entry_point="tests.test_hardening_tools:huge_result",
)


def _registry() -> Registry:
    builtin = Registry.load()
    agent = AgentCard(
        name="worker", description="Works.", capabilities=("work",), tools=("calculator", "write_file", "nap")
    )
    return Registry([agent], [*builtin.tools.values(), NAP, HUGE])


def _runner(
    model: ScriptedModel, workspace: Path, events: list[Event], limits: ToolLimits | None = None
) -> AgentRunner:
    return AgentRunner(
        dispatcher=Dispatcher(_registry()),
        model_for=lambda spec: model,
        default_model="scripted",
        workspace=workspace,
        emit=events.append,
        run_id="run1",
        tool_limits=limits or ToolLimits(),
    )


def _calls_then_answer(*calls: ToolCall) -> ScriptedModel:
    """A model that makes `calls` on its first turn, then answers with what the last tool said."""

    def answer(messages: Sequence[Message]) -> str | ModelResponse:
        if len(messages) == 2:
            return ModelResponse(text="", model="scripted", tool_calls=calls)
        return f"done: {messages[-1].content[:200]}"

    return ScriptedModel(answer)


WORK = Task(id="work", instruction="Do the work.", capability="work", expected_output="a note")

# ---------------------------------------------------------------- item 3: the calculator bounds its own work


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("factorial(10**7)", "factorial(10000000) would have about 65657060 digits"),
        ("4000000**4000000", "4000000 ** 4000000 would have about 26408240 digits"),
        ("9**9**9", "digits"),
        ("(10**4000) * (10**4000)", "the product would have about 8001 digits"),
        ("1 << 10**6", "digits"),
        ("round(5, -10**9)", "round to -1000000000 places"),
        ("factorial(10**400)", "too large"),
        ("'x' * 10**10", "is text; the calculator works with numbers only"),
        ("'%0999999999d' % 1", "is text"),
        ("(1).__class__", "not available"),
        ("1 + " * 2000 + "1", "the calculator takes at most 2000"),
        ("+".join(["1"] * 900), "nested too deeply"),
    ],
)
def test_the_calculator_refuses_work_too_large_to_finish(tmp_path: Path, expression: str, said: str) -> None:
    with pytest.raises(ToolError, match="cannot evaluate") as refused:
        calculate(ToolContext(tmp_path), expression)
    assert said in refused.value.message
    assert len(refused.value.message) < 400  # one line for the model, not the number itself


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("5000000 ** 2", "25000000000000"),  # simpleeval's own bound refused any base above 4,000,000
        ("2 ** 10", "1024"),
        ("round(2.675, 2)", "2.67"),
        ("(10**40) >> 100", "7888609052"),
        ("2 ** -4000000", "0"),
    ],
)
def test_sums_within_the_bounds_are_still_computed(tmp_path: Path, expression: str, value: str) -> None:
    assert calculate(ToolContext(tmp_path), expression) == value


def test_the_largest_numbers_allowed_are_computed_whole(tmp_path: Path) -> None:
    assert len(calculate(ToolContext(tmp_path), "2 ** 4000")) == 1205
    assert len(calculate(ToolContext(tmp_path), "factorial(1000)")) == 2568


@pytest.mark.timeout(10)
async def test_a_refused_calculation_goes_back_to_the_model_as_the_tool_result(tmp_path: Path) -> None:
    events: list[Event] = []
    model = _calls_then_answer(ToolCall("c1", "calculator", {"expression": "factorial(10**7)"}))
    output = await _runner(model, tmp_path / "ws", events)(WORK, {})
    tool_message = model.calls[1][-1]
    assert tool_message.role == "tool" and tool_message.content.startswith("error: cannot evaluate 'factorial(10**7)'")
    assert "digits" in tool_message.content and output.startswith("done: error: cannot evaluate")


# ---------------------------------------------------------------- item 3: synchronous tools run off the loop


@pytest.mark.timeout(15)
async def test_a_slow_synchronous_tool_neither_holds_up_a_parallel_task_nor_outlives_its_timeout(
    tmp_path: Path,
) -> None:
    events: list[Event] = []
    runner = _runner(_calls_then_answer(ToolCall("c1", "nap", {})), tmp_path / "ws", events)

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "quick":
            await asyncio.sleep(0.1)
            return "quick done"
        return await runner(task, inputs)

    graph = TaskGraph(
        tasks=[
            Task(id="slow", instruction="Rest.", capability="work", timeout=1.0),
            Task(id="quick", instruction="Be quick.", capability="work", timeout=1.0),
        ]
    )
    engine = Engine(run_task, retry=RetryPolicy(retries=0))
    engine.subscribe(events.append)
    result = await engine.run(graph)

    assert not _released.is_set()  # the run ended while the tool still napped: nothing waited for it
    assert result.statuses["quick"] == "succeeded" and result.outputs["quick"] == "quick done"
    assert result.statuses["slow"] == "failed" and result.status is RunStatus.FAILED
    assert "task 'slow' took longer than 1 s" in result.reason
    ended = [(type(event).__name__, event.task_id) for event in events if isinstance(event, TaskSucceeded | TaskFailed)]
    assert ended == [("TaskSucceeded", "quick"), ("TaskFailed", "slow")]


@pytest.mark.timeout(10)
async def test_a_tool_past_its_own_time_limit_tells_the_model(tmp_path: Path) -> None:
    toolbox = Toolbox([NAP], ToolContext(tmp_path, ToolLimits(max_seconds=0.2)))
    assert await toolbox.call(ToolCall("c1", "nap", {})) == "error: tool 'nap' did not finish within 0.2 s"


@pytest.mark.timeout(60)
def test_a_process_whose_tool_never_returns_still_ends_when_its_task_times_out(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, threading
        from pathlib import Path
        from orquestra import Task, TaskGraph
        from orquestra.engine import Engine, RetryPolicy
        from orquestra.models import ToolCall
        from orquestra.registry import ToolCard
        from orquestra.tools import ToolContext
        from orquestra.tools.context import ToolLimits
        from orquestra.tools.toolbox import Toolbox

        card = ToolCard(name="stuck", description="Never returns.", arguments={"type": "object"},
                        entry_point="threading:Event")  # replaced below by a function that blocks for good
        toolbox = Toolbox([card], ToolContext(Path("."), ToolLimits(max_seconds=None)))
        toolbox._functions["stuck"] = lambda context: threading.Event().wait()

        async def run_task(task, inputs):
            return await toolbox.call(ToolCall("c1", "stuck", {}))

        graph = TaskGraph(tasks=[Task(id="t", instruction="Wait.", capability="work", timeout=0.5)])
        result = asyncio.run(Engine(run_task, retry=RetryPolicy(retries=0)).run(graph))
        print(result.status.value, result.reason)
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=45, cwd=Path(__file__).parent.parent
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "failed task 't' failed: task 't' took longer than 0.5 s"


# ---------------------------------------------------------------- item 13: caps on arguments and results


def test_write_file_refuses_content_over_its_limit_and_writes_nothing(tmp_path: Path) -> None:
    context = ToolContext(tmp_path, ToolLimits(max_write_chars=10))
    assert write_file(context, "ok.txt", "x" * 10) == "wrote 10 characters to ok.txt"
    with pytest.raises(ToolError, match="content of 11 characters is too long: write_file writes at most 10"):
        write_file(context, "big.txt", "x" * 11)
    assert not (tmp_path / "big.txt").exists()


def test_write_file_refuses_more_than_its_default_limit(tmp_path: Path) -> None:
    limit = ToolLimits().max_write_chars
    with pytest.raises(ToolError, match=f"write_file writes at most {limit} characters"):
        write_file(ToolContext(tmp_path), "big.txt", "x" * (limit + 1))
    assert not (tmp_path / "big.txt").exists()


async def test_a_call_with_oversized_arguments_is_refused_before_it_runs(tmp_path: Path) -> None:
    toolbox = Toolbox(Registry.load().tools.values(), ToolContext(tmp_path, ToolLimits(max_argument_chars=1_000)))
    content = "y" * 5_000
    result = await toolbox.call(ToolCall("c1", "write_file", {"path": "a.txt", "content": content}))
    assert result == (
        "error: the arguments of 'write_file' hold 5016 characters of text; one tool call takes at most 1000:"
        " send less, or split the work over several calls"
    )
    assert not (tmp_path / "a.txt").exists()
    kept = toolbox.recordable({"path": "a.txt", "content": content})
    assert kept["path"] == "a.txt" and kept["content"].endswith("… [4800 more characters left out]")
    small = {"path": "a.txt", "content": "short"}
    assert toolbox.recordable(small) is small


def test_read_file_reads_no_more_than_its_limit(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("z" * 1_000)
    text = read_file(ToolContext(tmp_path, ToolLimits(max_read_chars=100)), "long.txt")
    assert text == "z" * 100 + "\n[truncated: the file has 1000 bytes; only its first 100 characters were read]"


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_read_file_refuses_a_pipe_instead_of_waiting_on_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ToolError, match="cannot read 'pipe': it is not a regular file"):
        read_file(ToolContext(tmp_path), "pipe")


async def test_any_tool_result_is_cut_at_the_result_limit(tmp_path: Path) -> None:
    toolbox = Toolbox([HUGE], ToolContext(tmp_path, ToolLimits(max_result_chars=300)))
    result = await toolbox.call(ToolCall("c1", "huge", {}))
    assert result == "x" * 300 + "\n[truncated: the result has 50000 characters; these are the first 300]"


async def test_an_error_quoting_a_huge_argument_stays_short(tmp_path: Path) -> None:
    toolbox = Toolbox(Registry.load().tools.values(), ToolContext(tmp_path))
    result = await toolbox.call(ToolCall("c1", "write_file", {"path": "../" + "p" * 100_000, "content": "x"}))
    assert result.startswith("error: path '../ppp") and "is outside the run's workspace" in result
    assert len(result) < 400
    wrong_type = await toolbox.call(ToolCall("c2", "calculator", {"expression": ["9" * 100_000]}))
    assert wrong_type.startswith("error: bad arguments for 'calculator' at 'expression'") and len(wrong_type) < 800


async def test_a_refused_oversized_call_is_kept_only_as_a_preview(tmp_path: Path) -> None:
    events: list[Event] = []
    limits = ToolLimits(max_argument_chars=1_000)
    content = "w" * 50_000
    model = _calls_then_answer(ToolCall("c1", "write_file", {"path": "big.txt", "content": content}))
    output = await _runner(model, tmp_path / "ws", events, limits)(WORK, {})

    assert output.startswith("done: error: the arguments of 'write_file' hold 50018 characters")
    assert not (tmp_path / "ws" / "big.txt").exists()
    (called,) = [event for event in events if isinstance(event, ToolCalled)]
    assert len(called.arguments["content"]) < 300 and called.arguments["path"] == "big.txt"
    # The conversation sent back to the model carries the preview, not the 50,000 characters again.
    assert sum(len(json.dumps(message.tool_calls, default=str)) for message in model.calls[1]) < 2_000


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="max_write_chars must be at least 1"):
        ToolLimits(max_write_chars=0)
    with pytest.raises(ValueError, match="max_seconds must be positive"):
        ToolLimits(max_seconds=0)


# ---------------------------------------------------------------- item 13: large outputs stored by reference


async def _record(store: RunStore, run_id: str, outputs: Mapping[str, Any]) -> None:
    async def run_task(task: Task, inputs: Mapping[str, Any]) -> Any:
        return outputs[task.id]

    graph = TaskGraph(tasks=[Task(id=task_id, instruction="Say it.", capability="work") for task_id in outputs])
    engine = Engine(run_task, retry=RetryPolicy(retries=0))
    engine.subscribe(store.subscriber(run_id, "a goal"))
    result = await engine.run(graph, run_id=run_id)
    store.finish(run_id, answer="the answer", usage={}, status=result.status.value)


async def test_a_long_output_is_stored_by_reference_and_read_back_whole(tmp_path: Path) -> None:
    long = "a long output " * 10_000 + "THE END"
    with RunStore(tmp_path / "runs.sqlite3") as store:
        await _record(store, "run000000001", {"long": long, "short": "a short output"})
        stored = store.get("run000000001")
        exported = store.export("run000000001")

    outputs = {task.task_id: task.output for task in stored.tasks}
    assert outputs == {"long": long, "short": "a short output"}
    succeeded = {
        event.payload["task_id"]: event.payload["output"] for event in stored.events if event.type == "TaskSucceeded"
    }
    assert succeeded == {"long": long, "short": "a short output"}
    assert {task["task_id"]: task["output"] for task in exported["tasks"]}["long"] == long

    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
        rows = db.execute("SELECT payload FROM events WHERE type = 'TaskSucceeded'").fetchall()
        (task_row,) = db.execute("SELECT output FROM tasks WHERE task_id = 'long'").fetchall()
    db.close()
    assert max(len(payload) for (payload,) in rows) < 2_000  # a reference and a preview, not 140,000 characters
    assert len(task_row[0]) < 2_000 and json.loads(task_row[0])["chars"] == len(long)
    (file,) = (tmp_path / "runs" / "run000000001").iterdir()
    assert file.read_text(encoding="utf-8") == long


async def test_runs_show_and_export_still_show_a_long_output(tmp_path: Path) -> None:
    long = "word " * 5_000 + "THE LAST WORDS"
    with open_store() as store:
        await _record(store, "dddddd000004", {"long": long})
    app = mounted(runs_app, "runs")
    shown = CliRunner().invoke(app, ["runs", "show", "dddddd"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "output of long" in shown.output and "THE LAST WORDS" in shown.output
    exported = CliRunner().invoke(app, ["runs", "export", "dddddd"])
    assert json.loads(exported.stdout)["tasks"][0]["output"] == long


async def test_deleting_a_run_deletes_its_stored_texts(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite3", inline_chars=10) as store:
        await _record(store, "run000000001", {"a": "more than ten characters"})
        assert list((tmp_path / "runs" / "run000000001").iterdir())
        store.delete("run000000001")
    assert not (tmp_path / "runs" / "run000000001").exists()


async def test_an_output_that_looks_like_a_reference_is_shown_as_written(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not for the run")
    forged = [
        json.dumps({"$stored": "../../secret", "chars": 1, "preview": "x"}),
        json.dumps({"$stored": "0" * 64, "chars": 1, "preview": "x"}),  # well formed, but no such text
    ]
    with RunStore(tmp_path / "runs.sqlite3") as store:
        await _record(store, "run000000001", {"one": forged[0], "two": forged[1], "dict": {"$stored": "../x"}})
        stored = store.get("run000000001")
    outputs = {task.task_id: task.output for task in stored.tasks}
    assert outputs["one"] == forged[0] and outputs["two"] == forged[1]
    assert json.loads(outputs["dict"] or "") == {"$stored": "../x"}


# ---------------------------------------------------------------- found by the fuzzing: calls written as text


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # RecursionError from the JSON decoder
        '{"tool": "calculator", "arguments": ' + "[" * 5_000 + "]" * 5_000 + "}",
        "calculator(" + "-" * 100_000 + "1)",  # MemoryError from the parser's stack
        "calculator(x=" + "[" * 3_000 + "]" * 3_000 + ")",
    ],
)
def test_deeply_nested_text_does_not_crash_the_reader(text: str) -> None:
    found = read_text_calls(text, {"calculator": CALCULATOR_SCHEMA})
    assert all(isinstance(call, ToolCall) for call in found.calls)


def test_a_json_call_whose_arguments_hold_an_empty_key_reads_as_an_argument() -> None:
    found = read_text_calls('{"tool": "calculator", "arguments": {"": "6*7"}}', {"calculator": CALCULATOR_SCHEMA})
    (call,) = found.calls
    assert call.arguments == {"expression": "6*7"}


CALCULATOR_SCHEMA = Registry.load().tools["calculator"].arguments


async def test_a_large_write_is_recorded_by_reference_not_whole_in_its_event_row(tmp_path: Path) -> None:
    content = "line of a long file\n" * 5_000  # 100,000 characters: within the limits, so it is written
    model = _calls_then_answer(ToolCall("c1", "write_file", {"path": "long.txt", "content": content}))
    with RunStore(tmp_path / "runs.sqlite3") as store:
        record = store.subscriber("run000000001", "a goal")
        runner = _runner(model, tmp_path / "ws", [])
        runner.emit, runner.run_id = record, "run000000001"
        engine = Engine(runner, retry=RetryPolicy(retries=0))
        engine.subscribe(record)
        result = await engine.run(TaskGraph(tasks=[WORK]), run_id="run000000001")
        stored = store.get("run000000001")

    assert result.status is RunStatus.SUCCEEDED and (tmp_path / "ws" / "long.txt").read_text() == content
    (called,) = [event.payload for event in stored.events if event.type == "ToolCalled"]
    assert called["arguments"] == {"path": "long.txt", "content": content}
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
        (row,) = db.execute("SELECT payload FROM events WHERE type = 'ToolCalled'").fetchone()
    db.close()
    assert len(row) < 2_000 and '"$stored"' in row
