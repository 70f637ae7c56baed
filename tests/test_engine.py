from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from orquestra import Engine, GraphPatch, RunStatus, Task
from orquestra.engine import RetryPolicy, TaskStatus, TaskTimeout
from orquestra.events import (
    Event,
    GraphPatched,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskReady,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from orquestra.exceptions import PatchRefused, TransientError

from .helpers import make_graph

FAST_RETRY = RetryPolicy(retries=2, initial_delay=0.001, max_delay=0.01, jitter=0.0)


async def echo(task: Task, inputs: Mapping[str, Any]) -> str:
    await asyncio.sleep(0)
    return f"{task.id}({','.join(f'{k}={v}' for k, v in inputs.items())})"


async def test_outputs_and_inputs_flow_along_edges():
    graph = make_graph({"a": [], "b": [], "c": ["a", "b"]})
    result = await Engine(echo).run(graph)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == {"a": "a()", "b": "b()", "c": "c(a=a(),b=b())"}
    assert result.finished == ["a", "b", "c"]
    assert result.reason == ""


async def test_a_task_starts_when_its_own_dependencies_finish_not_its_layer():
    # 'slow' only finishes once 'after_fast' has started: a layer-by-layer engine would deadlock here.
    after_fast_started = asyncio.Event()

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "slow":
            await asyncio.wait_for(after_fast_started.wait(), timeout=5)
        if task.id == "after_fast":
            after_fast_started.set()
        return task.id

    graph = make_graph({"fast": [], "slow": [], "after_fast": ["fast"], "end": ["slow", "after_fast"]})
    result = await Engine(run_task).run(graph)
    assert result.status is RunStatus.SUCCEEDED, result.reason


async def test_global_concurrency_limit_is_respected_and_used():
    running = 0
    peak = 0

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return task.id

    graph = make_graph({f"t{i}": [] for i in range(20)})
    result = await Engine(run_task, max_concurrency=3).run(graph)
    assert result.status is RunStatus.SUCCEEDED
    assert peak == 3


async def test_per_key_limits():
    running: dict[str, int] = {"gpt": 0, "claude": 0}
    peak: dict[str, int] = {"gpt": 0, "claude": 0}

    def key(task: Task) -> str:
        return "gpt" if task.id.startswith("g") else "claude"

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        k = key(task)
        running[k] += 1
        peak[k] = max(peak[k], running[k])
        await asyncio.sleep(0.01)
        running[k] -= 1
        return task.id

    graph = make_graph({**{f"g{i}": [] for i in range(8)}, **{f"c{i}": [] for i in range(8)}})
    engine = Engine(run_task, limits={"gpt": 2}, limit_key=key)
    result = await engine.run(graph)
    assert result.status is RunStatus.SUCCEEDED
    assert peak["gpt"] == 2
    assert peak["claude"] == 8  # no limit for this key


async def test_transient_errors_are_retried_with_events():
    calls: dict[str, int] = {}

    async def flaky(task: Task, inputs: Mapping[str, Any]) -> str:
        calls[task.id] = calls.get(task.id, 0) + 1
        if calls[task.id] < 3:
            raise TransientError("rate limited", retry_after=0.02)
        return "ok"

    events: list[Event] = []
    engine = Engine(flaky, retry=FAST_RETRY)
    engine.subscribe(events.append)
    result = await engine.run(make_graph({"a": []}))
    assert result.status is RunStatus.SUCCEEDED
    assert calls["a"] == 3
    retries = [e for e in events if isinstance(e, TaskRetrying)]
    assert [e.attempt for e in retries] == [1, 2]
    assert all(e.delay >= 0.02 for e in retries), "Retry-After must be honoured"
    assert "rate limited" in retries[0].error


async def test_retries_give_up_after_the_limit_and_non_transient_errors_are_not_retried():
    calls: dict[str, int] = {}

    async def failing(task: Task, inputs: Mapping[str, Any]) -> str:
        calls[task.id] = calls.get(task.id, 0) + 1
        if task.id == "transient":
            raise ConnectionError("reset")
        raise ValueError("bad input")

    graph = make_graph({"transient": [], "permanent": []})
    result = await Engine(failing, retry=FAST_RETRY).run(graph)
    assert calls == {"transient": 3, "permanent": 1}
    assert result.status is RunStatus.FAILED
    assert isinstance(result.errors["transient"], ConnectionError)
    assert "task 'permanent' failed: ValueError: bad input" in result.reason


async def test_per_task_retries_override_the_policy():
    calls = 0

    async def failing(task: Task, inputs: Mapping[str, Any]) -> str:
        nonlocal calls
        calls += 1
        raise TransientError("busy")

    graph = make_graph({"a": []}).model_copy()
    graph = type(graph)(tasks=[graph["a"].model_copy(update={"retries": 0})])
    await Engine(failing, retry=FAST_RETRY).run(graph)
    assert calls == 1


async def test_timeout_per_task():
    async def slow(task: Task, inputs: Mapping[str, Any]) -> str:
        await asyncio.sleep(10 if task.id == "slow" else 0)
        return task.id

    graph = make_graph({"slow": [], "quick": []})
    tasks = [graph["slow"].model_copy(update={"timeout": 0.05, "retries": 0}), graph["quick"]]
    result = await Engine(slow).run(type(graph)(tasks=tasks))
    assert result.statuses == {"slow": TaskStatus.FAILED, "quick": TaskStatus.SUCCEEDED}
    assert isinstance(result.errors["slow"], TaskTimeout)
    assert "longer than 0.05 s" in str(result.errors["slow"])


async def test_engine_timeout_applies_when_the_task_sets_none():
    async def slow(task: Task, inputs: Mapping[str, Any]) -> str:
        await asyncio.sleep(10)
        return task.id

    result = await Engine(slow, timeout=0.02, retry=RetryPolicy(retries=0)).run(make_graph({"a": []}))
    assert isinstance(result.errors["a"], TaskTimeout)


async def test_failure_skips_dependents_while_independent_branches_finish():
    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "bad":
            raise RuntimeError("boom")
        await asyncio.sleep(0.01)
        return task.id

    graph = make_graph({"bad": [], "child": ["bad"], "grandchild": ["child"], "other": [], "other2": ["other"]})
    events: list[Event] = []
    engine = Engine(run_task)
    engine.subscribe(events.append)
    result = await engine.run(graph)
    assert result.status is RunStatus.FAILED
    assert result.statuses == {
        "bad": TaskStatus.FAILED,
        "child": TaskStatus.SKIPPED,
        "grandchild": TaskStatus.SKIPPED,
        "other": TaskStatus.SUCCEEDED,
        "other2": TaskStatus.SUCCEEDED,
    }
    skipped = {e.task_id: e.because for e in events if isinstance(e, TaskSkipped)}
    assert skipped == {"child": "bad", "grandchild": "bad"}


async def test_cancel_stops_cleanly_and_says_what_finished():
    started = asyncio.Event()
    was_cancelled = []

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "long":
            started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                was_cancelled.append(task.id)
                raise
        return task.id

    graph = make_graph({"quick": [], "long": ["quick"], "after": ["long"]})
    execution = Engine(run_task).start(graph)
    await started.wait()
    execution.cancel("interrupted by the test")
    result = await execution
    assert result.status is RunStatus.CANCELLED
    assert result.reason == "interrupted by the test"
    assert result.finished == ["quick"]
    assert result.statuses["long"] is TaskStatus.CANCELLED
    assert result.statuses["after"] is TaskStatus.CANCELLED
    assert was_cancelled == ["long"]


async def test_cancelling_the_waiter_cancels_the_run():
    cancelled = []

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(task.id)
            raise
        return task.id

    waiter = asyncio.create_task(Engine(run_task).run(make_graph({"a": [], "b": []})))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert sorted(cancelled) == ["a", "b"]


async def test_events_in_order_for_every_subscriber_even_when_one_fails(caplog):
    first: list[Event] = []
    second: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    engine = Engine(echo)
    engine.subscribe(first.append)
    engine.subscribe(broken)
    unsubscribe = engine.subscribe(second.append)
    result = await engine.run(make_graph({"a": [], "b": ["a"]}))
    assert result.status is RunStatus.SUCCEEDED
    kinds = [(type(e).__name__, getattr(e, "task_id", None)) for e in first]
    assert kinds == [
        ("RunStarted", None),
        ("TaskReady", "a"),
        ("TaskStarted", "a"),
        ("TaskSucceeded", "a"),
        ("TaskReady", "b"),
        ("TaskStarted", "b"),
        ("TaskSucceeded", "b"),
        ("RunFinished", None),
    ]
    assert second == first
    assert all(e.run_id == result.run_id for e in first)
    assert isinstance(first[0], RunStarted) and isinstance(first[-1], RunFinished)
    assert first[-1].status == "succeeded"
    assert len(caplog.records) == 1 and "failed on RunStarted" in caplog.records[0].message  # logged once
    unsubscribe()
    seen = len(second)
    await engine.run(make_graph({"z": []}))
    assert len(second) == seen and len(first) > seen


class TestPatchWhileRunning:
    async def test_new_ready_tasks_start_at_once_and_running_ones_are_not_interrupted(self):
        gate = asyncio.Event()
        order: list[str] = []

        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            order.append(f"start {task.id}")
            if task.id == "long":
                await gate.wait()
            order.append(f"end {task.id}")
            return f"{task.id}<{','.join(inputs)}>"

        graph = make_graph({"a": [], "long": [], "b": ["a"]})
        events: list[Event] = []
        engine = Engine(run_task)
        engine.subscribe(events.append)
        execution = engine.start(graph)
        while "end b" not in order:
            await asyncio.sleep(0.001)
        new_task = Task(id="extra", instruction="use a", capability="research", depends_on=("a",))
        execution.apply(GraphPatch(add=(new_task,), reason="a was thin"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert "end extra" in order and "end long" not in order  # started at once, 'long' still running
        gate.set()
        result = await execution
        assert result.status is RunStatus.SUCCEEDED
        assert result.outputs["extra"] == "extra<a>"
        assert [t.id for t in result.graph.tasks] == ["a", "long", "b", "extra"]
        patched = [e for e in events if isinstance(e, GraphPatched)]
        assert len(patched) == 1 and patched[0].patch.reason == "a was thin"

    async def test_patch_touching_a_started_task_is_refused_and_the_run_goes_on(self):
        gate = asyncio.Event()

        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            await gate.wait()
            return task.id

        execution = Engine(run_task).start(make_graph({"a": [], "b": ["a"]}))
        await asyncio.sleep(0)
        with pytest.raises(PatchRefused):
            execution.apply(GraphPatch(remove=("a",)))
        execution.apply(GraphPatch(remove=("b",)))  # still pending: allowed
        gate.set()
        result = await execution
        assert result.status is RunStatus.SUCCEEDED
        assert list(result.statuses) == ["a"]

    async def test_pending_task_rewired_onto_a_failed_task_is_skipped(self):
        gate = asyncio.Event()

        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            if task.id == "bad":
                raise RuntimeError("no")
            await gate.wait()
            return task.id

        execution = Engine(run_task).start(make_graph({"bad": [], "slow": [], "later": ["slow"]}))
        for _ in range(5):
            await asyncio.sleep(0)
        assert execution.statuses["bad"] is TaskStatus.FAILED
        execution.apply(GraphPatch(rewire={"later": ("slow", "bad")}))
        assert execution.statuses["later"] is TaskStatus.SKIPPED
        gate.set()
        result = await execution
        assert result.statuses["slow"] is TaskStatus.SUCCEEDED
        assert result.statuses["later"] is TaskStatus.SKIPPED

    async def test_removing_the_last_pending_task_ends_the_run(self):
        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            if task.id == "bad":
                raise RuntimeError("no")
            return task.id

        events: list[Event] = []
        engine = Engine(run_task)
        engine.subscribe(events.append)
        result = await engine.run(make_graph({"ok": [], "bad": []}))
        assert {type(e) for e in events} >= {TaskReady, TaskStarted, TaskSucceeded, TaskFailed}
        assert result.status is RunStatus.FAILED


async def test_several_runs_on_one_engine_do_not_interfere():
    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        await asyncio.sleep(0.001)
        return task.id + "".join(inputs.values())

    engine = Engine(run_task, max_concurrency=8)
    graphs = [make_graph({f"a{i}": [], f"b{i}": [f"a{i}"]}) for i in range(50)]
    results = await asyncio.gather(*(engine.run(g) for g in graphs))
    for i, result in enumerate(results):
        assert result.outputs == {f"a{i}": f"a{i}", f"b{i}": f"b{i}a{i}"}
    assert len({r.run_id for r in results}) == 50


def test_bad_concurrency_is_refused():
    with pytest.raises(ValueError, match="max_concurrency must be at least 1"):
        Engine(echo, max_concurrency=0)


class TestStopHoldAndRevive:
    async def test_stop_lets_running_tasks_finish_and_starts_nothing_new(self):
        gate = asyncio.Event()

        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            if task.id == "running":
                await gate.wait()
            return task.id

        execution = Engine(run_task).start(make_graph({"running": [], "later": ["running"]}))
        await asyncio.sleep(0)
        execution.stop("goal met early")
        assert execution.stopping
        gate.set()
        result = await execution
        assert result.status is RunStatus.STOPPED and result.reason == "goal met early"
        assert result.statuses == {"running": TaskStatus.SUCCEEDED, "later": TaskStatus.CANCELLED}
        assert result.outputs == {"running": "running"}

    async def test_hold_keeps_the_run_open_for_a_patch(self):
        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            return task.id

        execution = Engine(run_task).start(make_graph({"only": []}))
        execution.hold()
        for _ in range(5):
            await asyncio.sleep(0)
        assert execution.statuses["only"] is TaskStatus.SUCCEEDED and execution.result is None
        extra = Task(id="extra", instruction="x", capability="c", depends_on=("only",))
        execution.apply(GraphPatch(add=(extra,)))
        execution.release()
        result = await execution
        assert result.finished == ["only", "extra"]

    async def test_a_patch_revives_skipped_tasks_around_a_failure(self):
        async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
            if task.id == "broken":
                raise RuntimeError("source offline")
            return f"{task.id}<{','.join(inputs)}>"

        execution = Engine(run_task).start(make_graph({"broken": [], "report": ["broken"]}))
        execution.hold()
        for _ in range(5):
            await asyncio.sleep(0)
        assert execution.statuses["report"] is TaskStatus.SKIPPED
        alternative = Task(id="mirror", instruction="use the mirror", capability="c")
        with pytest.raises(PatchRefused):
            execution.apply(GraphPatch(rewire={"broken": ()}))  # a failed task cannot be changed
        execution.apply(GraphPatch(add=(alternative,), remove=("broken",), rewire={"report": ("mirror",)}))
        execution.release()
        result = await execution
        assert result.outputs["report"] == "report<mirror>"
        assert result.status is RunStatus.SUCCEEDED
        assert "source offline" in str(result.superseded["broken"])  # the failure stays on record
        with pytest.raises(RuntimeError, match="can no longer be applied"):
            execution.apply(GraphPatch(remove=("report",)))


async def test_defer_holds_back_dependents_until_resumed_so_a_patch_can_change_them():
    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        return f"{task.id}<{','.join(inputs)}>"

    engine = Engine(run_task)
    execution: Any = None

    def judge(event: Event) -> None:
        if isinstance(event, TaskSucceeded) and event.task_id == "source":
            execution.defer("source")

    engine.subscribe(judge)
    execution = engine.start(make_graph({"source": [], "report": ["source"]}))
    for _ in range(5):
        await asyncio.sleep(0)
    assert execution.statuses["report"] is TaskStatus.PENDING  # held back, still patchable
    check = Task(id="check", instruction="double-check the source", capability="c", depends_on=("source",))
    execution.apply(GraphPatch(add=(check,), rewire={"report": ("source", "check")}))
    execution.resume("source")
    result = await execution
    assert result.outputs["report"] == "report<source,check>"


async def test_a_task_raising_stop_run_ends_the_run_on_purpose():
    from orquestra.exceptions import StopRun

    async def run_task(task: Task, inputs: Mapping[str, Any]) -> str:
        if task.id == "b":
            raise StopRun("enough for today")
        await asyncio.sleep(0.01)
        return task.id

    result = await Engine(run_task).run(make_graph({"a": [], "b": [], "c": ["b"]}))
    assert result.status is RunStatus.STOPPED and result.reason == "enough for today"
    assert result.statuses == {"a": TaskStatus.SUCCEEDED, "b": TaskStatus.CANCELLED, "c": TaskStatus.CANCELLED}
