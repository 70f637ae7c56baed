"""The run store records real engine runs, survives two writing processes, and never breaks a run."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orquestra.engine import Engine, RetryPolicy, RunStatus
from orquestra.graph import GraphPatch, Task, TaskGraph
from orquestra.store import RunStore, UnknownRun, open_store, store_path, to_jsonable
from tests.helpers import make_graph


async def _run_task(task: Task, inputs: Mapping[str, Any]) -> str:
    await asyncio.sleep(0)
    if task.id.startswith("bad"):
        raise ValueError(f"{task.id} broke")
    return f"{task.id} done with {sorted(inputs)}"


async def record_run(store: RunStore, graph: TaskGraph, run_id: str, goal: str = "a goal") -> RunStatus:
    engine = Engine(_run_task, retry=RetryPolicy(retries=0))
    engine.subscribe(store.subscriber(run_id, goal, model="scripted"))
    result = await engine.run(graph, run_id=run_id)
    store.finish(
        run_id,
        answer=f"answer of {run_id}",
        usage={"requests": 3, "input_tokens": 10, "output_tokens": 5, "cost": 0.0},
        graph_json=result.graph.model_dump_json(),
        status=result.status.value,
        reason=result.reason,
        agents={task.id: "researcher" for task in result.graph.tasks},
    )
    return result.status


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "runs.sqlite3") as opened:
        yield opened


async def test_a_run_is_recorded_with_its_tasks_events_answer_and_usage(store: RunStore) -> None:
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


async def test_export_is_json_ready_and_ids_resolve_by_prefix(store: RunStore) -> None:
    await record_run(store, make_graph({"a": [], "b": ["a"]}), "abcdef123456")
    await record_run(store, make_graph({"a": []}), "abcdef999999")

    exported = store.export("abcdef12")
    assert json.loads(json.dumps(exported)) == exported
    assert exported["run"]["id"] == "abcdef123456"
    assert [task["task_id"] for task in exported["tasks"]] == ["a", "b"]
    assert exported["events"][0]["type"] == "RunStarted"

    with pytest.raises(UnknownRun, match="ambiguous"):
        store.get("abcdef")
    with pytest.raises(UnknownRun, match="at least 6 characters"):
        store.get("abc")
    with pytest.raises(UnknownRun, match="no recorded run with id 'zzzzzzzz'"):
        store.export("zzzzzzzz")


async def test_list_is_newest_first_and_delete_removes_everything(store: RunStore) -> None:
    for index in range(3):
        await record_run(store, make_graph({"a": []}), f"run{index:09d}", goal=f"goal {index}")
    assert [run.id for run in store.list()] == ["run000000002", "run000000001", "run000000000"]
    assert [run.id for run in store.list(limit=1)] == ["run000000002"]
    assert store.count() == 3

    assert store.delete("run000000001") == "run000000001"
    assert store.count() == 2
    with pytest.raises(UnknownRun):
        store.get("run000000001")
    with sqlite3.connect(store.path) as db:
        leftovers = db.execute("SELECT count(*) FROM events WHERE run_id = 'run000000001'").fetchone()
    db.close()
    assert leftovers == (0,)


async def test_a_patch_updates_the_recorded_graph_and_tasks(store: RunStore) -> None:
    graph = make_graph({"a": [], "b": ["a"], "c": ["a"]})
    gate = asyncio.Event()

    async def slow(task: Task, inputs: Mapping[str, Any]) -> str:
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


async def test_a_broken_store_warns_once_and_never_stops_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = RunStore(tmp_path / "runs.sqlite3")
    subscriber = broken.subscriber("broken000001", "goal")
    broken.close()  # every write now fails with sqlite3.ProgrammingError
    engine = Engine(_run_task)
    engine.subscribe(subscriber)
    with caplog.at_level(logging.WARNING, logger="orquestra.store"):
        result = await engine.run(make_graph({"a": [], "b": ["a"]}), run_id="broken000001")
        recorded = broken.finish("broken000001", answer="", usage={}, status="succeeded")
    assert result.status is RunStatus.SUCCEEDED
    assert recorded is False
    warnings = [record for record in caplog.records if record.name == "orquestra.store"]
    assert len(warnings) == 2  # one from the subscriber for the whole run, one from finish
    assert all(record.levelno == logging.WARNING for record in warnings)


def test_events_of_other_runs_are_ignored(store: RunStore) -> None:
    from orquestra.events import TaskStarted

    store.subscriber("mine00000001")(TaskStarted("other0000001", "a"))
    assert store.count() == 0


@dataclass
class _Odd:
    when: object
    items: tuple[int, ...]


def test_to_jsonable_handles_dataclasses_models_enums_and_anything_else() -> None:
    graph = make_graph({"a": []})
    value = {"status": RunStatus.FAILED, "odd": _Odd(object, (1, 2)), "graph": graph, 3: frozenset({1})}
    data = to_jsonable(value)
    assert data["status"] == "failed"
    assert data["odd"] == {"when": "<class 'object'>", "items": [1, 2]}
    assert data["graph"]["tasks"][0]["id"] == "a"
    assert data["3"] == [1]
    json.dumps(data)


def test_open_store_lives_under_the_home(tmp_path: Path) -> None:
    with open_store(tmp_path / "home") as opened:
        assert opened.path == store_path(tmp_path / "home") == tmp_path / "home" / "runs.sqlite3"
    with sqlite3.connect(opened.path) as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert mode == "wal"


def test_many_connections_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # The first open of a file switches it to WAL; SQLite refuses a second switch at the same moment with
    # "database is locked" and no busy wait. Races on fresh files made that happen a few times in a hundred.
    for attempt in range(40):
        home = tmp_path / f"home{attempt}"
        go = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_it(home: Path = home, go: threading.Barrier = go, errors: list[BaseException] = errors) -> None:
            go.wait()
            try:
                with open_store(home):
                    pass
            except BaseException as error:  # collected for the assertion below
                errors.append(error)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


def _record_in_process(home: str, run_id: str, tasks: int, go: Any) -> None:
    """Runs in a child process: record one run of `tasks` independent tasks into the shared home."""
    # Both children wait here after their (slow) imports, so that their writes really overlap.
    go.wait(60)  # a Barrier: returns once both children got here
    with open_store(Path(home)) as child_store:
        graph = make_graph({f"t{index}": [] for index in range(tasks)})
        asyncio.run(record_run(child_store, graph, run_id, goal=run_id))


@pytest.mark.slow
def test_two_processes_writing_at_once_both_record_complete_runs(tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    # spawn, not fork: a forked child would inherit the test runner's threads and event loop state.
    context = multiprocessing.get_context("spawn")
    go = context.Barrier(2)
    children = [
        context.Process(target=_record_in_process, args=(str(home), run_id, 150, go))
        for run_id in ("process00001", "process00002")
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0, 0]

    with open_store(home) as shared:
        assert shared.count() == 2
        for run_id in ("process00001", "process00002"):
            stored = shared.get(run_id)
            assert stored.run.status == "succeeded" and stored.run.answer == f"answer of {run_id}"
            assert (stored.run.tasks_done, stored.run.tasks_total) == (150, 150)
            # RunStarted, then Ready/Started/Succeeded per task, then RunFinished: nothing lost.
            assert len(stored.events) == 2 + 3 * 150
            assert [event.seq for event in stored.events] == list(range(len(stored.events)))
