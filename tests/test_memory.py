"""One conformance suite for every `Memory`, then what only the on-disk memory and `open_memory` promise."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from orquestra import memory as memory_module
from orquestra.graph import Task, TaskGraph
from orquestra.memory import (
    ANSWER_CHARS,
    ChromaMemory,
    DisabledMemory,
    GuardedMemory,
    InMemoryMemory,
    Memory,
    RunMemory,
    TaskMemory,
    open_memory,
)

GRAPH = TaskGraph(
    tasks=(
        Task(id="research", instruction="Find the facts", capability="research"),
        Task(id="write", instruction="Write it up", capability="writing", depends_on=("research",)),
    )
)


def make_run(run_id: str, goal: str, *, created_at: float = 1_000.0, **changes) -> RunMemory:
    fields = {
        "outcome": "succeeded",
        "tasks": [
            TaskMemory("research", "research", "researcher", True, "found three sources"),
            TaskMemory("write", "writing", "writer", True, "wrote 300 words"),
        ],
        "lessons": ["cite the sources"],
        "answer": f"the answer to {goal}",
        **changes,
    }
    return RunMemory(run_id=run_id, goal=goal, graph=GRAPH, created_at=created_at, **fields)


VECTOR_DBS = make_run("r-vectors", "compare vector databases for a RAG prototype", created_at=1_000.0)
LISBON = make_run("r-lisbon", "plan a 3-day trip to Lisbon", created_at=2_000.0)
BREAD = make_run("r-bread", "bake sourdough bread at home", created_at=3_000.0)


@pytest.fixture(params=["in-memory", "chroma"])
def memory(request, tmp_path):
    store: Memory = InMemoryMemory() if request.param == "in-memory" else ChromaMemory(tmp_path / "memory")
    yield store
    store.close()


# ---------------------------------------------------------------------------------------------- conformance


def test_a_run_comes_back_as_it_went_in(memory):
    memory.remember(VECTOR_DBS)
    assert memory.get("r-vectors") == VECTOR_DBS
    assert memory.get("r-unknown") is None
    assert memory.count() == 1


def test_long_answers_are_trimmed(memory):
    memory.remember(make_run("r-long", "write a novel", answer="x" * (ANSWER_CHARS * 3)))
    answer = memory.get("r-long").answer
    assert len(answer) <= ANSWER_CHARS + 100 and "characters cut" in answer


def test_recall_orders_by_similarity_and_finds_a_similar_goal(memory):
    memory.remember_all([VECTOR_DBS, LISBON, BREAD])
    found = memory.search("benchmark Weaviate against Chroma and Qdrant", k=3)
    assert [item.run.run_id for item in found][0] == "r-vectors"
    similarities = [item.similarity for item in found]
    assert similarities == sorted(similarities, reverse=True)
    assert all(0.0 <= value <= 1.0 for value in similarities)
    recalled = memory.recall("which vector database should our RAG prototype use?")
    assert [item.run.run_id for item in recalled] == ["r-vectors"]  # the unrelated runs stay out
    assert recalled[0].run == VECTOR_DBS
    assert memory.search("anything", k=0) == []


def test_success_rate_counts_tasks_per_agent_and_capability(memory):
    failed = make_run(
        "r-failed",
        "research solar prices",
        outcome="failed",
        tasks=[TaskMemory("research", "research", "researcher", False, "timed out")],
    )
    memory.remember_all([VECTOR_DBS, LISBON, failed])
    assert memory.success_rate("researcher", "research") == pytest.approx(2 / 3)
    assert memory.success_rate("writer", "writing") == 1.0
    assert memory.success_rate("writer", "research") is None
    assert memory.success_rate("nobody", "research") is None
    memory.remember(failed)  # the same run again replaces it: nothing is counted twice
    assert memory.success_rate("researcher", "research") == pytest.approx(2 / 3)
    memory.forget("r-failed")
    assert memory.success_rate("researcher", "research") == 1.0


def test_list_is_newest_first(memory):
    memory.remember_all([LISBON, BREAD, VECTOR_DBS])
    assert [run.run_id for run in memory.list()] == ["r-bread", "r-lisbon", "r-vectors"]
    assert [run.run_id for run in memory.list(limit=2)] == ["r-bread", "r-lisbon"]


def test_forget_removes_a_run_everywhere(memory):
    memory.remember_all([VECTOR_DBS, LISBON])
    assert memory.forget("r-vectors") is True
    assert memory.get("r-vectors") is None
    assert [run.run_id for run in memory.list()] == ["r-lisbon"]
    assert all(item.run.run_id != "r-vectors" for item in memory.search("compare vector databases", k=5))
    assert memory.count() == 1
    assert memory.forget("r-vectors") is False


def test_the_same_id_twice_in_one_batch_keeps_the_last(memory):
    memory.remember_all([LISBON, replace(LISBON, outcome="failed"), BREAD])
    assert memory.get("r-lisbon").outcome == "failed"
    assert memory.count() == 2 and memory.success_rate("researcher", "research") == 1.0


def test_an_empty_memory_recalls_nothing(memory):
    assert memory.recall("anything") == []
    assert memory.list() == [] and memory.count() == 0


# ---------------------------------------------------------------------------------------------- on disk


def test_runs_survive_reopening(tmp_path):
    with ChromaMemory(tmp_path / "memory") as first:
        first.remember_all([VECTOR_DBS, LISBON])
    with ChromaMemory(tmp_path / "memory") as again:
        assert again.get("r-lisbon") == LISBON
        assert again.recall("compare vector databases for semantic search")[0].run.run_id == "r-vectors"
        assert again.success_rate("writer", "writing") == 1.0
        assert again.count() == 2


def test_large_batches_are_written_in_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(memory_module, "CHROMA_BATCH", 2)
    with ChromaMemory(tmp_path / "memory") as store:
        store.remember_all([VECTOR_DBS, LISBON, BREAD])
        for run in (VECTOR_DBS, LISBON, BREAD):
            assert store.search(run.goal, k=1)[0].run == run


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import orquestra.memory as memory
    sys.path.insert(0, {tests!r})
    from test_memory import make_run

    # Write the vector index to disk every 10 vectors (Chroma's default is 1000), so that two processes
    # that do not take turns overwrite each other's index within a few writes.
    memory.HNSW = {{"space": "cosine", "sync_threshold": 10, "batch_size": 10}}
    path, name, batches = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    (path.parent / f"ready-{{name}}").touch()
    while len(list(path.parent.glob("ready-*"))) < int(sys.argv[4]):  # start together
        time.sleep(0.005)
    with memory.ChromaMemory(path) as store:
        for batch in range(batches):
            runs = [make_run(f"{{name}}-{{batch}}-{{i}}", f"{{name}} {{batch}} {{i}} goal number {{batch * 7 + i}}")
                    for i in range(10)]
            store.remember_all(runs)
            store.search(runs[0].goal, 3)
    """
).format(tests=str(Path(__file__).parent))


def _start(path: Path, name: str, batches: int, together: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    args = [sys.executable, "-c", CHILD, str(path), name, str(batches), str(together)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen[str]) -> None:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output


def test_two_processes_remembering_at_once_leave_every_run_readable(tmp_path):
    path = tmp_path / "memory"
    children = [_start(path, name, batches=6, together=2) for name in ("A", "B")]
    for child in children:
        _finish(child)
    with ChromaMemory(path) as store:
        assert store.count() == 120
        for run in store.list(limit=200):
            assert store.get(run.run_id) == run
            assert store.search(run.goal, k=1)[0].run.run_id == run.run_id, f"{run.run_id} lost from the index"


def test_an_open_memory_sees_what_another_process_remembered(tmp_path):
    path = tmp_path / "memory"
    with ChromaMemory(path) as store:
        store.remember(VECTOR_DBS)
        assert store.search("goal number 3", k=5)[0].run.run_id == "r-vectors"
        _finish(_start(path, "other", batches=1, together=1))
        assert store.count() == 11
        assert store.search("other 0 3 goal number 3", k=1)[0].run.run_id == "other-0-3"


# ---------------------------------------------------------------------------------------------- open_memory


def test_open_memory_creates_the_folder_and_works(tmp_path):
    memory = open_memory(tmp_path / "home")
    try:
        assert isinstance(memory, GuardedMemory) and memory.enabled
        assert (tmp_path / "home" / "memory").is_dir()
        memory.remember(LISBON)
        assert memory.recall("a weekend in Lisbon")[0].run.run_id == "r-lisbon"
    finally:
        memory.close()


def test_open_memory_uses_orquestra_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORQUESTRA_HOME", str(tmp_path / "elsewhere"))
    open_memory().close()
    assert (tmp_path / "elsewhere" / "memory" / "records.sqlite3").is_file()


def test_disabled_memory_recalls_nothing(tmp_path):
    memory = open_memory(tmp_path / "home", enabled=False)
    assert isinstance(memory, DisabledMemory) and not memory.enabled
    memory.remember(LISBON)
    assert memory.recall("plan a 3-day trip to Lisbon") == [] and memory.search("Lisbon") == []
    assert memory.get("r-lisbon") is None and memory.list() == [] and memory.count() == 0
    assert memory.success_rate("writer", "writing") is None and memory.forget("r-lisbon") is False
    assert not (tmp_path / "home").exists()


def _break_sqlite(folder: Path) -> None:
    (folder / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)


def _break_records(folder: Path) -> None:
    (folder / "records.sqlite3").write_bytes(b"this is not a database" * 100)


def _records_become_a_folder(folder: Path) -> None:
    (folder / "records.sqlite3").unlink()
    (folder / "records.sqlite3").mkdir()


def _replace_with_a_file(folder: Path) -> None:
    for item in folder.iterdir():
        if item.is_dir():
            for file in item.iterdir():
                file.unlink()
            item.rmdir()
        else:
            item.unlink()
    folder.rmdir()
    folder.write_text("not a folder")


def _break_the_index(folder: Path) -> None:
    for segment in (item for item in folder.iterdir() if item.is_dir()):
        for file in segment.iterdir():
            file.write_bytes(b"junk")


@pytest.fixture(scope="module")
def full_memory(tmp_path_factory) -> Path:
    """A memory folder holding more runs than Chroma keeps in its log, so that the index is on disk."""
    path = tmp_path_factory.mktemp("full") / "memory"
    with ChromaMemory(path) as store:
        store.remember_all([make_run(f"r{i}", f"goal {i}") for i in range(1001)])
    return path


@pytest.mark.parametrize(
    "damage", [_break_sqlite, _break_records, _records_become_a_folder, _replace_with_a_file, _break_the_index]
)
def test_a_broken_memory_warns_once_and_is_disabled(tmp_path, caplog, damage, full_memory):
    home = tmp_path / "home"
    shutil.copytree(full_memory, home / "memory")
    damage(home / "memory")
    with caplog.at_level(logging.WARNING, logger="orquestra.memory"):
        memory = open_memory(home)
    assert isinstance(memory, DisabledMemory)
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(home / "memory") in message and "orquestra memory list" in message and "move the folder" in message
    assert memory.recall("goal 1") == []


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_memory_is_disabled(tmp_path, caplog):
    home = tmp_path / "home"
    open_memory(home).close()
    (home / "memory").chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="orquestra.memory"):
            assert isinstance(open_memory(home), DisabledMemory)
    finally:
        (home / "memory").chmod(0o755)
    assert len(caplog.records) == 1


def test_failures_at_run_time_warn_once_and_the_run_goes_on(tmp_path, caplog):
    memory = open_memory(tmp_path / "home")
    memory.remember(LISBON)
    assert isinstance(memory, GuardedMemory)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    inner = memory.inner
    inner.search = broken  # type: ignore[method-assign]
    inner.remember_all = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="orquestra.memory"):
        assert memory.recall("Lisbon") == []
        assert memory.recall("Lisbon again") == []
        memory.remember(BREAD)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages  # one per operation, not one per call
    assert "recall failed (disk on fire)" in messages[0] and "remember failed" in messages[1]
    assert memory.get("r-lisbon") == LISBON  # what still works keeps working
    memory.close()
