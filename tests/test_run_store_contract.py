"""The run store's contract (`orquestra.run_storage.RunStorage`), one suite that every implementation passes.

A new backend joins by adding itself to `STORES`. What only the SQLite store promises (a file on disk, WAL,
several processes, a broken connection) stays in ``test_store.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orquestra import redaction
from orquestra.approval import Decision
from orquestra.engine import Engine, RunStatus
from orquestra.events import ApprovalRequested, Planned, PlanningStarted, RunFinished, RunStarted, TaskStarted
from orquestra.exceptions import UnknownApproval, UnknownRun
from orquestra.graph import GraphPatch, Task
from orquestra.memory_run_store import InMemoryRunStore
from orquestra.redaction import REDACTED, register_secret
from orquestra.run_storage import RunStorage
from orquestra.store import RunStore
from orquestra.store_files import INLINE_CHARS
from tests.helpers import make_graph
from tests.test_store import record_run

STORES: dict[str, Callable[[Path], RunStorage]] = {
    "sqlite": lambda folder: RunStore(folder / "runs.sqlite3"),
    "memory": lambda folder: InMemoryRunStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStorage]:
    with STORES[request.param](tmp_path) as opened:
        yield opened


# ---------------------------------------------------------------- recording a run


async def test_a_run_is_recorded_with_its_tasks_events_answer_and_usage(store: RunStorage) -> None:
    graph = make_graph({"facts": [], "bad_check": [], "summary": ["facts"], "after_bad": ["bad_check"]})
    status = await record_run(store, graph, "run000000001", "compare [bold]databases[/bold]")
    assert status is RunStatus.FAILED

    stored = store.get("run000000001")
    run = stored.run
    assert (run.goal, run.status, run.model) == ("compare [bold]databases[/bold]", "failed", "scripted")
    assert "bad_check" in run.reason and run.finished_at is not None and run.finished_at >= run.started_at
    assert run.answer == "answer of run000000001"
    assert run.usage == {"requests": 3, "input_tokens": 10, "output_tokens": 5, "cost": 0.0}
    assert run.graph is not None and [task["id"] for task in run.graph["tasks"]] == [t.id for t in graph.tasks]
    assert (run.tasks_done, run.tasks_total) == (2, 4)

    tasks = {task.task_id: task for task in stored.tasks}
    assert [task.task_id for task in stored.tasks] == ["facts", "bad_check", "summary", "after_bad"]
    assert tasks["facts"].status == "succeeded" and tasks["facts"].output == "facts done with []"
    assert tasks["summary"].output == "summary done with ['facts']"
    assert tasks["bad_check"].status == "failed" and tasks["bad_check"].error == "ValueError: bad_check broke"
    assert tasks["after_bad"].status == "skipped" and "bad_check" in (tasks["after_bad"].error or "")
    assert all(task.agent == "researcher" and task.capability == "research" for task in stored.tasks)
    assert tasks["facts"].elapsed is not None

    types = [event.type for event in stored.events]
    assert [event.seq for event in stored.events] == list(range(len(types)))
    assert types[0] == "RunStarted" and types[-1] == "RunFinished"
    assert {"TaskReady", "TaskStarted", "TaskSucceeded", "TaskFailed", "TaskSkipped"} <= set(types)
    started = stored.events[0].payload
    assert started["graph"]["tasks"][0]["id"] == "facts"  # the pydantic graph, dumped as JSON data
    finished = stored.events[-1].payload
    assert finished["status"] == "failed" and "elapsed" in finished


async def test_a_patch_updates_the_recorded_graph_and_tasks(store: RunStorage) -> None:
    graph = make_graph({"a": [], "b": ["a"], "c": ["a"]})
    gate = asyncio.Event()

    async def slow(task: Task, inputs: object) -> str:
        if task.id == "a":
            await gate.wait()
        return task.id

    engine = Engine(slow)
    engine.subscribe(store.subscriber("patched00001", "patching"))
    execution = engine.start(graph, run_id="patched00001")
    await asyncio.sleep(0)
    execution.apply(
        GraphPatch(add=(Task(id="d", instruction="do d", capability="writing", depends_on=("a",)),), remove=("c",))
    )
    gate.set()
    await execution

    stored = store.get("patched00001")
    assert [task.task_id for task in stored.tasks] == ["a", "b", "d"]
    assert {task.status for task in stored.tasks} == {"succeeded"}
    assert stored.run.graph is not None and [task["id"] for task in stored.run.graph["tasks"]] == ["a", "b", "d"]
    patched = next(event for event in stored.events if event.type == "GraphPatched")
    assert patched.payload["patch"]["remove"] == ["c"]


def test_events_of_other_runs_are_ignored(store: RunStorage) -> None:
    store.subscriber("mine00000001")(TaskStarted("other0000001", "a"))
    assert store.count() == 0


def test_a_run_planned_first_is_recorded_from_its_planning_on(store: RunStorage) -> None:
    record = store.subscriber("planned00001", "plan then run", model="local")
    graph = make_graph({"a": []})
    record(PlanningStarted("planned00001", "plan then run", "local", at=100.0))
    stored = store.get("planned00001")
    assert (stored.run.goal, stored.run.status, stored.run.model, stored.tasks) == (
        "plan then run",
        "running",
        "local",
        [],
    )
    assert stored.run.graph is None
    record(Planned("planned00001", graph))
    record(RunStarted("planned00001", graph=graph, at=105.0))
    stored = store.get("planned00001")
    assert [event.type for event in stored.events] == ["PlanningStarted", "Planned", "RunStarted"]
    assert [task.task_id for task in stored.tasks] == ["a"] and stored.run.started_at == 105.0
    assert store.count() == 1


def test_a_task_keeps_the_status_its_last_event_gave_it(store: RunStorage) -> None:
    record = store.subscriber("status000001", "statuses")
    record(RunStarted("status000001", graph=make_graph({"a": [], "b": []})))
    assert [task.status for task in store.get("status000001").tasks] == ["pending", "pending"]
    assert store.get("status000001").run.status == "running"
    record(TaskStarted("status000001", "a"))
    record(ApprovalRequested("status000001", "b", "researcher", "do b", ("asks",)))
    assert [task.status for task in store.get("status000001").tasks] == ["running", "awaiting approval"]


def test_a_long_output_comes_back_whole(store: RunStorage) -> None:
    long = "x" * (INLINE_CHARS + 10) + " the end"

    async def verbose(task: Task, inputs: object) -> str:
        return long

    engine = Engine(verbose)
    engine.subscribe(store.subscriber("longtext0001", "say a lot"))
    asyncio.run(engine.run(make_graph({"a": []}), run_id="longtext0001"))
    store.finish("longtext0001", answer=long, usage={}, status="succeeded")

    stored = store.get("longtext0001")
    assert stored.tasks[0].output == long and stored.run.answer == long
    succeeded = next(event for event in stored.events if event.type == "TaskSucceeded")
    assert succeeded.payload["output"] == long
    assert store.export("longtext0001")["tasks"][0]["output"] == long


def test_reads_are_fresh_copies(store: RunStorage) -> None:
    asyncio.run(record_run(store, make_graph({"a": []}), "copies000001"))
    first = store.get("copies000001")
    assert first.run.usage is not None
    first.run.usage["requests"] = 99
    first.events[0].payload.clear()
    again = store.get("copies000001")
    assert again.run.usage is not None and again.run.usage["requests"] == 3
    assert again.events[0].payload != {}


# ---------------------------------------------------------------- finishing


def test_finish_may_be_called_again_and_keeps_the_first_end_time(store: RunStorage) -> None:
    asyncio.run(record_run(store, make_graph({"a": []}), "twice0000001"))
    first_end = store.get("twice0000001").run.finished_at
    assert store.finish("twice0000001", answer="again", usage={"requests": 4}, status="cancelled", reason="stop")
    run = store.get("twice0000001").run
    assert (run.answer, run.usage, run.status, run.reason) == ("again", {"requests": 4}, "cancelled", "stop")
    assert run.finished_at == first_end
    assert run.graph is not None  # no graph given: the recorded one stays


def test_finish_of_a_run_never_started_creates_it(store: RunStorage) -> None:
    assert store.finish("unstarted001", answer="", usage={}, status="failed", reason="planning failed")
    stored = store.get("unstarted001")
    assert (stored.run.goal, stored.run.status, stored.run.reason) == ("", "failed", "planning failed")
    assert stored.run.finished_at is not None and stored.tasks == [] and stored.events == []


def test_finish_names_only_agents_no_event_named(store: RunStorage) -> None:
    record = store.subscriber("agents000001")
    graph = make_graph({"a": [], "b": []})
    pinned = graph.model_copy(update={"tasks": (graph.tasks[0].model_copy(update={"agent": "pinned"}), graph.tasks[1])})
    record(RunStarted("agents000001", graph=pinned))
    store.finish("agents000001", answer="", usage={}, status="succeeded", agents={"a": "other", "b": "writer"})
    assert [task.agent for task in store.get("agents000001").tasks] == ["pinned", "writer"]


# ---------------------------------------------------------------- reading


async def test_export_is_json_ready_and_ids_resolve_by_prefix(store: RunStorage) -> None:
    await record_run(store, make_graph({"a": [], "b": ["a"]}), "abcdef123456")
    await record_run(store, make_graph({"a": []}), "abcdef999999")

    exported = store.export("abcdef12")
    assert json.loads(json.dumps(exported)) == exported
    assert exported["run"]["id"] == "abcdef123456"
    assert [task["task_id"] for task in exported["tasks"]] == ["a", "b"]
    assert exported["events"][0]["type"] == "RunStarted"
    assert store.resolve("abcdef12") == "abcdef123456"

    with pytest.raises(UnknownRun, match="ambiguous"):
        store.get("abcdef")
    with pytest.raises(UnknownRun, match="at least 6 characters"):
        store.get("abc")
    with pytest.raises(UnknownRun, match="no recorded run with id 'zzzzzzzz'"):
        store.export("zzzzzzzz")
    with pytest.raises(UnknownRun):
        store.resolve("zzzzzzzz")


async def test_list_is_newest_first(store: RunStorage) -> None:
    for index in range(3):
        await record_run(store, make_graph({"a": []}), f"run{index:09d}", goal=f"goal {index}")
    assert [run.id for run in store.list()] == ["run000000002", "run000000001", "run000000000"]
    assert [run.id for run in store.list(limit=1)] == ["run000000002"]
    assert store.count() == 3
    (newest,) = store.list(limit=1)
    assert (newest.goal, newest.tasks_done, newest.tasks_total) == ("goal 2", 1, 1)


def test_runs_started_at_the_same_time_list_the_later_recorded_first(store: RunStorage) -> None:
    for run_id in ("same00000001", "same00000002"):
        store.subscriber(run_id)(RunStarted(run_id, graph=make_graph({"a": []}), at=1000.0))
    assert [run.id for run in store.list()] == ["same00000002", "same00000001"]


def test_an_empty_store_lists_nothing(store: RunStorage) -> None:
    assert (store.list(), store.count()) == ([], 0)


# ---------------------------------------------------------------- secrets


def test_a_registered_secret_is_written_nowhere(store: RunStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_registered", set())  # registered for this test only
    secret = "Zq8w1PKs0dLxA7r2"
    register_secret(secret)

    async def leaky(task: Task, inputs: object) -> str:
        if task.id == "bad":
            raise ValueError(f"refused {secret}")
        return f"the key is {secret}"

    engine = Engine(leaky)
    engine.subscribe(store.subscriber("secret000001", f"use {secret}", model=f"m-{secret}"))
    asyncio.run(engine.run(make_graph({"a": [], "bad": []}), run_id="secret000001"))
    store.finish("secret000001", answer=f"answer {secret}", usage={"note": secret}, status="failed", reason=secret)
    store.request_approval("secret000001", Task(id="send", instruction=f"send {secret}", capability="x"), [secret])
    store.decide("secret000001", "send", Decision.edit(f"send {secret} later", secret, by="cli"))

    written = json.dumps([store.export("secret000001"), [str(a) for a in store.approvals()]])
    assert secret not in written
    stored = store.get("secret000001")
    assert stored.run.answer == f"answer {REDACTED}" and stored.tasks[0].output == f"the key is {REDACTED}"


# ---------------------------------------------------------------- approvals


def test_the_store_keeps_the_first_decision(store: RunStorage) -> None:
    task = Task(id="send", instruction="Send the invoice", capability="email")
    store.request_approval("run1", task, ["the plan asks for approval"])
    assert store.decision("run1", "send") is None
    assert [a.task_id for a in store.approvals(pending=True)] == ["send"]
    first = Decision.reject("no", by="cli")
    assert store.decide("run1", "send", first) == first
    assert store.decide("run1", "send", Decision.approve(by="repl")) == first
    assert store.decision("run1", "send") == first
    assert store.approvals(pending=True) == []
    with pytest.raises(UnknownApproval, match="task 'other' of run run1 has not asked for approval"):
        store.approval("run1", "other")


def test_approvals_are_oldest_first_and_filtered_by_run(store: RunStorage) -> None:
    for run_id, task_id in (("run1", "a"), ("run2", "b"), ("run1", "c")):
        store.request_approval(run_id, Task(id=task_id, instruction=f"do {task_id}", capability="x"), ["why"])
    assert [(a.run_id, a.task_id) for a in store.approvals()] == [("run1", "a"), ("run2", "b"), ("run1", "c")]
    assert [a.task_id for a in store.approvals("run1")] == ["a", "c"]
    request = store.approval("run2", "b")
    assert (request.instruction, request.reasons, request.decision, request.decided_at) == ("do b", ["why"], None, None)
    with pytest.raises(UnknownApproval):
        store.decide("run3", "z", Decision.approve())
    assert store.decision("run3", "z") is None


def test_a_finished_run_rejects_the_requests_still_waiting(store: RunStorage) -> None:
    store.request_approval("ending000001", Task(id="send", instruction="send", capability="x"), ["why"])
    store.subscriber("ending000001")(RunFinished("ending000001", status="failed", reason="", elapsed=1.0))
    decision = store.decision("ending000001", "send")
    assert decision == Decision.reject("the run ended", by="run")
    assert store.approval("ending000001", "send").decided_at is not None


# ---------------------------------------------------------------- threads


def test_threads_recording_at_once_all_record_complete_runs(store: RunStorage) -> None:
    errors: list[BaseException] = []
    go = threading.Barrier(4)

    def record_one(run_id: str) -> None:
        go.wait()
        try:
            asyncio.run(record_run(store, make_graph({f"t{index}": [] for index in range(20)}), run_id))
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=record_one, args=(f"thread{index:06d}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count() == 4
    for index in range(4):
        stored = store.get(f"thread{index:06d}")
        assert (stored.run.status, stored.run.tasks_done, stored.run.tasks_total) == ("succeeded", 20, 20)
        assert [event.seq for event in stored.events] == list(range(2 + 3 * 20))
