"""Long-term memory of past runs: goals, final graphs, who did which task and how it went, lessons, answers.

The planner recalls the past runs nearest in meaning to a new goal; the dispatcher asks how often an agent
succeeded at a capability. `Memory` is the interface, with three implementations: `ChromaMemory` (on disk,
under ``<ORQUESTRA_HOME>/memory``), `InMemoryMemory` (a dict, for tests of callers) and `DisabledMemory`.
`open_memory` is what the run loop calls: a memory that is broken never stops a run, it only warns.

The folder of a `ChromaMemory` holds:

- Chroma's files: one collection, ``runs``, whose documents are the goals (embedded by `LocalEmbedder`) and
  whose ids are run ids. Chroma is only the index by meaning.
- ``records.sqlite3``: each run as JSON (for `get`, and `list` newest first without scanning the index), and per
  (agent, capability) how many tasks succeeded out of how many, so `success_rate` is one indexed lookup.
- ``memory.lock``: Chroma's `PersistentClient` is not safe for two processes at once (each keeps the vector index
  in memory and writes it back), so every Chroma operation holds an exclusive lock on this file, and a process
  reopens its client when a counter in ``records.sqlite3`` shows that another process wrote since it looked.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import sqlite3
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import TypeAdapter

from orquestra._home import memory_path as memory_path  # public here too, beside the memory it locates
from orquestra.embeddings import DIMENSION, LocalEmbedder, check_installed
from orquestra.exceptions import MemoryUnavailable as MemoryUnavailable
from orquestra.graph import TaskGraph
from orquestra.redaction import contains_secret, redact
from orquestra.trimming import shorten

logger = logging.getLogger(__name__)

RECALL_FLOOR = 0.25
"""The least similarity `recall` returns: below it, goals of this embedder are about something else."""
ANSWER_CHARS = 20_000
SUMMARY_CHARS = 2_000
LESSON_CHARS = 1_000
COLLECTION = "runs"
HNSW: dict[str, Any] = {"space": "cosine"}
"""The vector index's settings, fixed when the collection is created."""
CHROMA_BATCH = 1_000
"""Runs per Chroma write: Chroma refuses batches over a limit of its own (about 5,000)."""

Embed = Callable[[Sequence[str]], Sequence[NDArray[np.float32]]]
"""Texts in, unit vectors out: what `InMemoryMemory` needs of an embedder."""


@dataclass(frozen=True)
class TaskMemory:
    """How one task of a past run went."""

    task_id: str
    capability: str
    agent: str
    """The agent that ran the task, as named in the registry."""
    succeeded: bool
    summary: str = ""
    """A short account of the output or of the error."""


@dataclass(frozen=True)
class RunMemory:
    """One past run, as memory keeps it."""

    run_id: str
    goal: str
    outcome: str
    """How the run ended: ``succeeded``, ``failed``, ``cancelled``, ``stopped``, ``budget``..."""
    graph: TaskGraph
    """The graph as it stood at the end of the run."""
    tasks: list[TaskMemory] = field(default_factory=list)
    lessons: list[str] = field(default_factory=list)
    """What to do (or avoid) next time, in plain words."""
    answer: str = ""
    created_at: float = field(default_factory=time.time)
    """When the run ended, in seconds since the epoch."""
    reason: str = ""
    """Why the run ended early, if it did."""


@dataclass(frozen=True)
class Recalled:
    """A remembered run and how similar its goal is to the text searched for, from 0 to 1."""

    run: RunMemory
    similarity: float


_RUN_JSON = TypeAdapter(RunMemory)


def _trimmed(run: RunMemory) -> RunMemory:
    """The run as memory keeps it: long texts cut, configured secrets redacted from every field.

    Texts are cut to a size worth keeping (and showing to a planner later); see `orquestra.redaction`.
    """
    run = replace(
        run,
        answer=shorten(run.answer, ANSWER_CHARS),
        lessons=[shorten(lesson, LESSON_CHARS) for lesson in run.lessons],
        tasks=[replace(task, summary=shorten(task.summary, SUMMARY_CHARS)) for task in run.tasks],
    )
    record = _RUN_JSON.dump_json(run).decode()
    return _RUN_JSON.validate_json(redact(record)) if contains_secret(record) else run


class Memory(ABC):
    """What Orquestra remembers of past runs. Every implementation passes `tests/test_memory.py`."""

    enabled: bool = True
    """False for `DisabledMemory`, which remembers nothing."""

    def remember(self, run: RunMemory) -> None:
        """Keep a run; a run with the same id replaces it (and its tasks' counts)."""
        self.remember_all([run])

    @abstractmethod
    def remember_all(self, runs: Sequence[RunMemory]) -> None:
        """Keep many runs at once (faster than one by one)."""

    @abstractmethod
    def search(self, text: str, k: int = 5) -> builtins.list[Recalled]:
        """The `k` runs whose goals are nearest in meaning to `text`, most similar first."""

    def recall(self, goal: str, k: int = 5, *, min_similarity: float = RECALL_FLOOR) -> builtins.list[Recalled]:
        """Past runs worth showing a planner for `goal`: like `search`, without the unrelated ones."""
        return [found for found in self.search(goal, k) if found.similarity >= min_similarity]

    @abstractmethod
    def success_rate(self, agent: str, capability: str) -> float | None:
        """The share of `agent`'s remembered tasks of `capability` that succeeded; None if it never had one."""

    @abstractmethod
    def get(self, run_id: str) -> RunMemory | None:
        """One run by id, or None."""

    @abstractmethod
    def forget(self, run_id: str) -> bool:
        """Drop a run (and its tasks from the counts); False when there was none."""

    @abstractmethod
    def count(self) -> int:
        """How many runs are remembered."""

    @abstractmethod
    def list(self, limit: int = 20) -> builtins.list[RunMemory]:
        """The newest runs, newest first."""

    def close(self) -> None:
        """Release files and connections (a later call opens them again). Nothing to release here."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- in memory


class _Tally:
    """Per (agent, capability): tasks that succeeded, tasks in all."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = {}

    def add(self, run: RunMemory, sign: int) -> None:
        for task in run.tasks:
            entry = self.counts.setdefault((task.agent, task.capability), [0, 0])
            entry[0] += sign * task.succeeded
            entry[1] += sign

    def rate(self, agent: str, capability: str) -> float | None:
        succeeded, total = self.counts.get((agent, capability), (0, 0))
        return succeeded / total if total > 0 else None


class InMemoryMemory(Memory):
    """Memory in a dict, lost when the process ends; same behaviour as `ChromaMemory`.

    Args:
        embedder: Texts to unit vectors; `LocalEmbedder` by default. Tests may pass something cheaper.

    """

    def __init__(self, embedder: Embed | None = None) -> None:
        self._embed: Embed = embedder or LocalEmbedder()
        self._runs: dict[str, tuple[RunMemory, NDArray[np.float32]]] = {}
        self._tally = _Tally()
        self._lock = threading.Lock()

    def remember_all(self, runs: Sequence[RunMemory]) -> None:
        """Keep many runs at once."""
        vectors = self._embed([run.goal for run in runs]) if runs else []
        with self._lock:
            for run, vector in zip(runs, vectors, strict=True):
                if run.run_id in self._runs:
                    self._tally.add(self._runs[run.run_id][0], -1)
                run = _trimmed(run)
                self._runs[run.run_id] = (run, np.asarray(vector, dtype=np.float32))
                self._tally.add(run, +1)

    def search(self, text: str, k: int = 5) -> builtins.list[Recalled]:
        """The `k` runs nearest in meaning to `text`."""
        with self._lock:
            entries = builtins.list(self._runs.values())
        if not entries or k < 1:
            return []
        query = np.asarray(self._embed([text])[0], dtype=np.float32)
        scores = np.stack([vector for _, vector in entries]) @ query
        best = np.argsort(-scores, kind="stable")[:k]
        return [Recalled(entries[i][0], _similarity(float(scores[i]))) for i in best]

    def success_rate(self, agent: str, capability: str) -> float | None:
        """Share of the agent's tasks of this capability that succeeded."""
        with self._lock:
            return self._tally.rate(agent, capability)

    def get(self, run_id: str) -> RunMemory | None:
        """One run by id."""
        entry = self._runs.get(run_id)
        return entry[0] if entry else None

    def forget(self, run_id: str) -> bool:
        """Drop a run."""
        with self._lock:
            entry = self._runs.pop(run_id, None)
            if entry is not None:
                self._tally.add(entry[0], -1)
        return entry is not None

    def count(self) -> int:
        """How many runs."""
        return len(self._runs)

    def list(self, limit: int = 20) -> builtins.list[RunMemory]:
        """The newest runs first."""
        with self._lock:
            runs = [run for run, _ in self._runs.values()]
        return sorted(runs, key=lambda run: (-run.created_at, run.run_id))[: max(limit, 0)]


def _similarity(cosine: float) -> float:
    return min(max(cosine, 0.0), 1.0)


# ---------------------------------------------------------------------------------------------- disabled


class DisabledMemory(Memory):
    """A memory that keeps nothing and recalls nothing: memory turned off, or unusable."""

    enabled = False

    def remember_all(self, runs: Sequence[RunMemory]) -> None:
        """Forget at once."""

    def search(self, text: str, k: int = 5) -> builtins.list[Recalled]:
        """Nothing."""
        return []

    def success_rate(self, agent: str, capability: str) -> float | None:
        """Never seen."""
        return None

    def get(self, run_id: str) -> RunMemory | None:
        """None."""
        return None

    def forget(self, run_id: str) -> bool:
        """Nothing to forget."""
        return False

    def count(self) -> int:
        """Zero."""
        return 0

    def list(self, limit: int = 20) -> builtins.list[RunMemory]:
        """Nothing."""
        return []


# ---------------------------------------------------------------------------------------------- on disk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, created_at REAL NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at DESC, run_id);
CREATE TABLE IF NOT EXISTS skills (
    agent TEXT NOT NULL, capability TEXT NOT NULL, succeeded INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (agent, capability)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state VALUES ('generation', 0);
"""


class _Records:
    """The runs as JSON and the per-agent counts, in SQLite (safe for several processes on its own)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        """Create the tables if missing; call it under the memory's lock (two creators at once collide)."""
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: nothing stays open between calls, in any process.
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def bump(self) -> int:
        """Count one more write; returns the new generation."""
        with self._connect() as db:
            row = db.execute("UPDATE state SET value = value + 1 WHERE key = 'generation' RETURNING value").fetchone()
        return int(row[0])

    def generation(self) -> int:
        """How many writes the folder has seen, from any process."""
        with self._connect() as db:
            return int(db.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()[0])

    def put(self, runs: Sequence[RunMemory]) -> None:
        with self._connect() as db:
            for run in runs:
                old = db.execute("SELECT record FROM runs WHERE run_id = ?", (run.run_id,)).fetchone()
                if old:
                    self._count(db, _RUN_JSON.validate_json(old[0]), -1)
                record = _RUN_JSON.dump_json(run).decode()
                db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", (run.run_id, run.created_at, record))
                self._count(db, run, +1)

    def delete(self, run_id: str) -> RunMemory | None:
        with self._connect() as db:
            row = db.execute("DELETE FROM runs WHERE run_id = ? RETURNING record", (run_id,)).fetchone()
            run = _RUN_JSON.validate_json(row[0]) if row else None
            if run is not None:
                self._count(db, run, -1)
        return run

    @staticmethod
    def _count(db: sqlite3.Connection, run: RunMemory, sign: int) -> None:
        db.executemany(
            "INSERT INTO skills VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "succeeded = succeeded + excluded.succeeded, total = total + excluded.total",
            [(task.agent, task.capability, sign * task.succeeded, sign) for task in run.tasks],
        )

    def get(self, run_ids: Sequence[str]) -> dict[str, RunMemory]:
        marks = ", ".join("?" * len(run_ids))
        with self._connect() as db:
            rows = db.execute(f"SELECT run_id, record FROM runs WHERE run_id IN ({marks})", run_ids).fetchall()
        return {run_id: _RUN_JSON.validate_json(record) for run_id, record in rows}

    def newest(self, limit: int) -> builtins.list[RunMemory]:
        with self._connect() as db:
            rows = db.execute("SELECT record FROM runs ORDER BY created_at DESC, run_id LIMIT ?", (limit,))
            return [_RUN_JSON.validate_json(record) for (record,) in rows]

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])

    def rate(self, agent: str, capability: str) -> float | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT succeeded, total FROM skills WHERE agent = ? AND capability = ?", (agent, capability)
            ).fetchone()
        return row[0] / row[1] if row and row[1] > 0 else None


class ChromaMemory(Memory):
    """Memory in a folder: Chroma for recall by meaning, SQLite for records and counts.

    Several processes may use the same folder at once: Chroma operations take turns on a file lock.

    Args:
        path: The folder; created when missing.
        embedder: The embedding function; always given to Chroma, also when reopening (Chroma's default one
            would download a model).
        lock_timeout: Seconds to wait for another process's Chroma operation before giving up (`TimeoutError`).

    Raises:
        Exception: whatever Chroma, SQLite or the file system raise for a folder that cannot be used;
            `open_memory` turns that into a warning.

    """

    def __init__(self, path: Path, embedder: LocalEmbedder | None = None, *, lock_timeout: float = 30.0) -> None:
        self.path = path
        self.embedder = embedder or LocalEmbedder()
        self.lock_timeout = lock_timeout
        path.mkdir(parents=True, exist_ok=True)
        self._records = _Records(path / "records.sqlite3")
        self._lock = threading.RLock()
        self._client: Any = None
        self._collection: Any = None
        self._generation = -1
        with _file_lock(path / "memory.lock", lock_timeout):
            self._records.create()
        with self._chroma():  # open now, so that a broken folder shows at once
            pass

    @contextlib.contextmanager
    def _chroma(self) -> Iterator[Any]:
        """The collection, held for this process alone; reopened if another process wrote since."""
        with self._lock, _file_lock(self.path / "memory.lock", self.lock_timeout):
            generation = self._records.generation()
            if self._collection is None or generation != self._generation:
                self._open()
                self._generation = generation
            yield self._collection

    def _open(self) -> None:
        import chromadb
        from chromadb.config import Settings
        from chromadb.utils.embedding_functions import register_embedding_function

        self._close_client()
        # Reopening a collection rebuilds its embedding function by name, from Chroma's registry.
        register_embedding_function(LocalEmbedder)  # type: ignore[no-untyped-call]
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        self._client = chromadb.PersistentClient(path=str(self.path), settings=settings)
        self._collection = self._client.get_or_create_collection(
            COLLECTION, embedding_function=self.embedder, configuration={"hnsw": dict(HNSW)}
        )
        # Load the vector index now, so that a damaged one shows here rather than in the middle of a run.
        probe = np.zeros((1, DIMENSION), dtype=np.float32)
        probe[0, 0] = 1.0
        self._collection.query(query_embeddings=probe, n_results=1, include=[])

    def remember_all(self, runs: Sequence[RunMemory]) -> None:
        """Keep many runs at once: one embedding pass, one Chroma write, one SQLite transaction."""
        runs = [_trimmed(run) for run in {run.run_id: run for run in runs}.values()]  # the last of each id
        if not runs:
            return
        vectors = self.embedder.embed([run.goal for run in runs])
        with self._chroma() as collection:
            # Bump first: if what follows fails halfway, other processes still reload what Chroma holds.
            self._generation = self._records.bump()
            for start in range(0, len(runs), CHROMA_BATCH):
                part = slice(start, start + CHROMA_BATCH)
                collection.upsert(
                    ids=[run.run_id for run in runs[part]],
                    embeddings=vectors[part],
                    documents=[run.goal for run in runs[part]],
                    metadatas=[{"outcome": run.outcome, "created_at": run.created_at} for run in runs[part]],
                )
            self._records.put(runs)

    def search(self, text: str, k: int = 5) -> builtins.list[Recalled]:
        """The `k` runs nearest in meaning to `text`."""
        if k < 1:
            return []
        vector = self.embedder.embed([text])
        with self._chroma() as collection:
            found = collection.query(query_embeddings=vector, n_results=k, include=["distances"])
        ids, distances = found["ids"][0], found["distances"][0]
        records = self._records.get(ids)
        # A run whose record is missing was half-written by a failed remember: skip it.
        return [
            Recalled(records[run_id], _similarity(1.0 - distance))
            for run_id, distance in zip(ids, distances, strict=True)
            if run_id in records
        ]

    def success_rate(self, agent: str, capability: str) -> float | None:
        """One indexed lookup in SQLite; no Chroma, no lock."""
        return self._records.rate(agent, capability)

    def get(self, run_id: str) -> RunMemory | None:
        """One run by id."""
        return self._records.get([run_id]).get(run_id)

    def forget(self, run_id: str) -> bool:
        """Drop a run from the index, the records and the counts."""
        with self._chroma() as collection:
            self._generation = self._records.bump()
            collection.delete(ids=[run_id])
            return self._records.delete(run_id) is not None

    def count(self) -> int:
        """How many runs."""
        return self._records.count()

    def list(self, limit: int = 20) -> builtins.list[RunMemory]:
        """The newest runs first, from SQLite's index on time."""
        return self._records.newest(max(limit, 0))

    def close(self) -> None:
        """Close Chroma's client (its files and threads)."""
        with self._lock:
            self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._collection = None


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock across processes, released by the OS if the holder dies."""
    deadline = time.monotonic() + timeout
    with path.open("a+b") as handle:
        while not _try_lock(handle.fileno()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: another process held the memory for over {timeout:g} s")
            time.sleep(0.005)
        try:
            yield
        finally:
            _unlock(handle.fileno())


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------- for the run loop


class GuardedMemory(Memory):
    """Wraps a memory so that its failures never stop a run: each one is logged, and the call returns nothing.

    The first failure of each operation is a warning; later ones are debug messages, so a broken memory
    does not flood the console.
    """

    def __init__(self, inner: Memory, where: Path | str) -> None:
        self.inner = inner
        self.where = where
        self._warned: set[str] = set()

    def _guard(self, operation: str, call: Callable[[], Any], default: Any) -> Any:
        try:
            return call()
        except Exception as error:  # any failure of memory must leave the run going
            level = logging.DEBUG if operation in self._warned else logging.WARNING
            self._warned.add(operation)
            logger.log(level, "memory at %s: %s failed (%s); the run goes on without it", self.where, operation, error)
            return default

    def remember_all(self, runs: Sequence[RunMemory]) -> None:
        """Keep runs, or warn."""
        self._guard("remember", lambda: self.inner.remember_all(runs), None)

    def search(self, text: str, k: int = 5) -> builtins.list[Recalled]:
        """Search, or warn and find nothing."""
        found: builtins.list[Recalled] = self._guard("recall", lambda: self.inner.search(text, k), [])
        return found

    def success_rate(self, agent: str, capability: str) -> float | None:
        """The rate, or None on failure."""
        rate: float | None = self._guard("success_rate", lambda: self.inner.success_rate(agent, capability), None)
        return rate

    def get(self, run_id: str) -> RunMemory | None:
        """The run, or None on failure."""
        run: RunMemory | None = self._guard("get", lambda: self.inner.get(run_id), None)
        return run

    def forget(self, run_id: str) -> bool:
        """Forget, or False on failure."""
        return bool(self._guard("forget", lambda: self.inner.forget(run_id), False))

    def count(self) -> int:
        """The count, or 0 on failure."""
        return int(self._guard("count", self.inner.count, 0))

    def list(self, limit: int = 20) -> builtins.list[RunMemory]:
        """The newest runs, or none on failure."""
        runs: builtins.list[RunMemory] = self._guard("list", lambda: self.inner.list(limit), [])
        return runs

    def close(self) -> None:
        """Close the inner memory."""
        self._guard("close", self.inner.close, None)


def open_store(path: Path) -> ChromaMemory:
    """The `ChromaMemory` in `path`, or `MemoryUnavailable` saying why not and what to do."""
    try:
        check_installed()
        return ChromaMemory(path)
    except BaseException as error:
        # Ctrl-C, exit and cancellation propagate; anything else (Rust panics from Chroma too) means unusable.
        if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
            raise
        reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line, whatever Chroma said
        raise MemoryUnavailable(
            f"memory at {path} cannot be used ({reason}). Check it with `orquestra memory list`; if it stays "
            f"broken, move the folder away (mv {path} {path}.broken) and the next run starts a new memory"
        ) from error


def open_memory(home: Path | None = None, *, enabled: bool = True) -> Memory:
    """The memory a run uses; never raises.

    Returns a `DisabledMemory` when `enabled` is False, and also (after ONE warning naming the folder and
    what to do) when the folder cannot be used: damaged, unreadable, not a folder, or the embedding model
    missing. Otherwise a `ChromaMemory` wrapped in `GuardedMemory`, so that later failures only warn too.
    """
    if not enabled:
        return DisabledMemory()
    path = memory_path(home)
    try:
        store = open_store(path)
    except MemoryUnavailable as error:
        logger.warning("%s; this run goes on without memory.", error.message)
        return DisabledMemory()
    return GuardedMemory(store, path)
