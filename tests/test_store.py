"""The SQLite run store: a file under the home, in WAL mode, shared by processes, and never breaking a run.

What every run store promises (recording, reading, finishing, approvals, secrets) is in
``test_run_store_contract.py``, which this store passes too.
"""

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
from orquestra.graph import Task, TaskGraph
from orquestra.run_storage import RunStorage
from orquestra.store import RunStore, UnknownRun, open_store, store_path, to_jsonable
from tests.helpers import make_graph


async def _run_task(task: Task, inputs: Mapping[str, Any]) -> str:
    await asyncio.sleep(0)
    if task.id.startswith("bad"):
        raise ValueError(f"{task.id} broke")
    return f"{task.id} done with {sorted(inputs)}"


async def record_run(store: RunStorage, graph: TaskGraph, run_id: str, goal: str = "a goal") -> RunStatus:
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


async def test_delete_removes_the_run_with_its_rows(store: RunStore) -> None:
    for index in range(3):
        await record_run(store, make_graph({"a": []}), f"run{index:09d}", goal=f"goal {index}")
    assert store.delete("run000000001") == "run000000001"
    assert store.count() == 2
    with pytest.raises(UnknownRun):
        store.get("run000000001")
    with sqlite3.connect(store.path) as db:
        leftovers = db.execute("SELECT count(*) FROM events WHERE run_id = 'run000000001'").fetchone()
    db.close()
    assert leftovers == (0,)


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
