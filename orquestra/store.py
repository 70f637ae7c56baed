"""The run store: every run, its tasks and its full event log, in SQLite under the home folder.

The store only reads events (like the console view), through `RunStore.subscriber`, plus the final answer and
usage through `RunStore.finish`. It lives at ``<ORQUESTRA_HOME>/runs.sqlite3``. Several processes may share one
home: the database runs in WAL mode (readers never block the writer), waits for a busy lock instead of failing,
and keeps every transaction to one event, so no process holds the lock for long. Texts too long for a row (a
long output, the content of a large file a tool wrote) go to a file of ``<ORQUESTRA_HOME>/runs/<run id>/``,
the row holding a reference and a preview (`orquestra.store_files`); reading a run puts them back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from orquestra._home import store_path
from orquestra.approval import Decision
from orquestra.events import (
    Event,
    GraphPatched,
    PlanningStarted,
    RunFinished,
    RunStarted,
)
from orquestra.exceptions import UnknownApproval as UnknownApproval
from orquestra.exceptions import UnknownRun
from orquestra.graph import Task, TaskGraph
from orquestra.redaction import redact
from orquestra.run_records import (
    ApprovalRecord,
    EventRecord,
    RunRecord,
    StoredRun,
    TaskRecord,
    event_payload,
    task_change,
    to_jsonable,
)
from orquestra.store_files import INLINE_CHARS, TextFiles

log = logging.getLogger(__name__)

MIN_PREFIX = 6
"""The shortest run id prefix that `RunStore.get` resolves; shorter ones match too many runs to be useful."""

BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another process's lock before it gives up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    goal TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    reason TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL,
    model TEXT NOT NULL DEFAULT '',
    usage TEXT,
    answer TEXT,
    graph TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    capability TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    output TEXT,
    error TEXT,
    elapsed REAL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    at REAL NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    instruction TEXT NOT NULL,
    reasons TEXT NOT NULL,
    requested_at REAL NOT NULL,
    verdict TEXT,
    note TEXT NOT NULL DEFAULT '',
    new_instruction TEXT,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at REAL,
    PRIMARY KEY (run_id, task_id)
);
"""


_Summaries = list[RunRecord]


def open_store(home: Path | None = None) -> RunStore:
    """Open (creating it if needed) the run store of `home`, the configured home folder by default."""
    return RunStore(store_path(home))


def _is_locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


@retry(
    retry=retry_if_exception(_is_locked),
    stop=stop_after_delay(BUSY_TIMEOUT),
    wait=wait_random_exponential(multiplier=0.01, max=0.25),
    reraise=True,
)
def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting out another process doing the same.

    SQLite answers "database is locked" at once, without its busy handler, when a second connection asks
    for WAL while the first is converting the file; so the wait is ours.
    """
    db.execute("PRAGMA journal_mode = WAL")


class RunStore:
    """Runs, tasks and events in one SQLite file; safe to share between threads and processes.

    Use it as a context manager, or call `close`: the connection must not outlive the store.
    """

    def __init__(self, path: Path, *, inline_chars: int = INLINE_CHARS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.texts = TextFiles(self.path.parent / self.path.stem, inline_chars)
        """Where texts longer than `inline_chars` go (`<home>/runs/<run id>/`), a reference left in their row."""
        # Autocommit mode: each write opens its own short `BEGIN IMMEDIATE` transaction (see `_write`).
        # check_same_thread is off because callers move work to threads (asyncio.to_thread); the lock
        # serialises use of the one connection.
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            _enable_wal(self._db)
            # In WAL mode NORMAL loses no data on a crash, only the last commits on power loss, and spares
            # an fsync per event: this is what keeps a write per event cheap.
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[_RedactingWriter]:
        """One short write transaction, taking the write lock up front; every text written is redacted.

        IMMEDIATE waits for the lock (busy_timeout) at BEGIN; a deferred transaction that reads first and
        writes later could instead fail with "database is locked" when another process wrote in between.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _RedactingWriter(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---------------------------------------------------------------- recording

    def subscriber(self, run_id: str, goal: str = "", *, model: str = "") -> Callable[[Event], None]:
        """An engine subscriber that records every event of run `run_id` and keeps its run and tasks current.

        Events of other runs (an engine may run several) are ignored. A failed write is logged once as a
        warning and never reaches the engine: losing a record must not stop a run.
        """
        seq = 0
        warned = False
        started: dict[str, float] = {}
        """When each task of the run started, for the time of a task cancelled while it ran."""

        def record(event: Event) -> None:
            nonlocal seq, warned
            if event.run_id != run_id:
                return
            try:
                self._record(event, seq, goal, model, started)
                seq += 1
            except Exception as error:
                if not warned:
                    warned = True
                    log.warning("the run store %s could not record run %s: %s", self.path, run_id, error)

        return record

    def _record(self, event: Event, seq: int, goal: str, model: str, started: dict[str, float]) -> None:
        payload = json.dumps(self.texts.spill(event.run_id, event_payload(event)), ensure_ascii=False)
        with self._write() as db:
            if isinstance(event, PlanningStarted):  # a run that is planned first begins with its planning
                db.execute(
                    "INSERT INTO runs (id, goal, status, started_at, model) VALUES (?, ?, 'running', ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (event.run_id, goal, event.at, model),
                )
            if isinstance(event, RunStarted):
                db.execute(
                    "INSERT INTO runs (id, goal, status, started_at, model, graph) VALUES (?, ?, 'running', ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET goal = excluded.goal, started_at = excluded.started_at,"
                    " model = excluded.model, graph = excluded.graph",
                    (event.run_id, goal, event.at, model, event.graph.model_dump_json()),
                )
                self._sync_tasks(db, event.run_id, event.graph)
            # Written after RunStarted's row so that every logged event belongs to a known run.
            db.execute(
                "INSERT OR REPLACE INTO events (run_id, seq, type, at, payload) VALUES (?, ?, ?, ?, ?)",
                (event.run_id, seq, type(event).__name__, event.at, payload),
            )
            self._update(db, event, started)

    def _update(self, db: _RedactingWriter, event: Event, started: dict[str, float]) -> None:
        """Bring the runs and tasks tables up to date with `event`; `started` holds the tasks' start times."""
        change = task_change(event, started)
        if change is not None:
            task_id, fields = change
            if fields.get("output") is not None:
                fields["output"] = self.texts.spill_text(event.run_id, fields["output"])
            columns = ", ".join(f"{name} = ?" for name in fields)  # names from `task_change`, never from data
            db.execute(
                f"UPDATE tasks SET {columns} WHERE run_id = ? AND task_id = ?",
                (*fields.values(), event.run_id, task_id),
            )
        match event:
            case GraphPatched(graph=graph):
                db.execute("UPDATE runs SET graph = ? WHERE id = ?", (graph.model_dump_json(), event.run_id))
                self._sync_tasks(db, event.run_id, graph)
            case RunFinished(status=status, reason=reason):
                db.execute(
                    "UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE id = ?",
                    (status, reason, event.at, event.run_id),
                )
                # Nothing waits for these any more: close them, so `orquestra approve` stops offering them.
                db.execute(
                    "UPDATE approvals SET verdict = 'rejected', note = 'the run ended', decided_by = 'run',"
                    " decided_at = ? WHERE run_id = ? AND verdict IS NULL",
                    (event.at, event.run_id),
                )
            case _:
                pass

    @staticmethod
    def _sync_tasks(db: _RedactingWriter, run_id: str, graph: TaskGraph) -> None:
        """Make the run's task rows match `graph`: new tasks pending, removed ones gone, statuses kept."""
        ids = [task.id for task in graph.tasks]
        placeholders = ",".join("?" * len(ids))
        db.execute(f"DELETE FROM tasks WHERE run_id = ? AND task_id NOT IN ({placeholders})", (run_id, *ids))
        db.executemany(
            "INSERT INTO tasks (run_id, task_id, capability, agent) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (run_id, task_id) DO UPDATE SET capability = excluded.capability,"
            " agent = CASE WHEN excluded.agent = '' THEN tasks.agent ELSE excluded.agent END",
            [(run_id, task.id, task.capability, task.agent or "") for task in graph.tasks],
        )

    def finish(
        self,
        run_id: str,
        *,
        answer: str,
        usage: Mapping[str, Any],
        graph_json: str | None = None,
        status: str,
        reason: str = "",
        agents: Mapping[str, str] | None = None,
    ) -> bool:
        """Record how run `run_id` ended: its answer, usage, final graph and, optionally, each task's agent.

        Like the subscriber it never raises: it logs a warning and returns False when the write failed.
        """
        now = time.time()
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO runs (id, status, reason, started_at, finished_at, usage, answer, graph)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
                    " reason = excluded.reason, finished_at = COALESCE(runs.finished_at, excluded.finished_at),"
                    " usage = excluded.usage, answer = excluded.answer, graph = COALESCE(excluded.graph, runs.graph)",
                    (run_id, status, reason, now, now, json.dumps(to_jsonable(usage)), answer, graph_json),
                )
                if agents:
                    # Only where no event named the agent: the one that answered beats the one first assigned.
                    db.executemany(
                        "UPDATE tasks SET agent = ? WHERE run_id = ? AND task_id = ? AND agent = ''",
                        [(agent, run_id, task_id) for task_id, agent in agents.items()],
                    )
        except Exception as error:
            log.warning("the run store %s could not record the end of run %s: %s", self.path, run_id, error)
            return False
        return True

    # ---------------------------------------------------------------- approvals

    def request_approval(self, run_id: str, task: Task, reasons: Sequence[str]) -> None:
        """Record that `task` of `run_id` waits for a decision (replacing an older request for the same id)."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO approvals (run_id, task_id, instruction, reasons, requested_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, task.id, task.instruction, json.dumps(list(reasons)), time.time()),
            )

    def decide(self, run_id: str, task_id: str, decision: Decision) -> Decision:
        """Record `decision` unless one was recorded first; returns the decision in effect.

        Raises `UnknownApproval` when the task never asked for approval.
        """
        with self._write() as db:
            changed = db.execute(
                "UPDATE approvals SET verdict = ?, note = ?, new_instruction = ?, decided_by = ?, decided_at = ?"
                " WHERE run_id = ? AND task_id = ? AND verdict IS NULL",
                (decision.verdict, decision.note, decision.instruction, decision.by, time.time(), run_id, task_id),
            ).rowcount
        if changed:
            return decision
        record = self.approval(run_id, task_id)
        assert record.decision is not None  # the row exists (approval() raises otherwise) and is decided
        return record.decision

    def decision(self, run_id: str, task_id: str) -> Decision | None:
        """The decision on `task_id` of `run_id`, or None while it waits (or was never asked)."""
        record = self._approval(run_id, task_id)
        return None if record is None else record.decision

    def approval(self, run_id: str, task_id: str) -> ApprovalRecord:
        """The approval request of `task_id` in `run_id`; `UnknownApproval` when there is none."""
        record = self._approval(run_id, task_id)
        if record is None:
            raise UnknownApproval(f"task '{task_id}' of run {run_id} has not asked for approval")
        return record

    def _approval(self, run_id: str, task_id: str) -> ApprovalRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? AND task_id = ?", (run_id, task_id)
            ).fetchone()
        return None if row is None else _approval_record(row)

    def approvals(self, run_id: str | None = None, *, pending: bool = False) -> list[ApprovalRecord]:
        """Approval requests, oldest first: of one run or of all, only those still waiting when `pending`."""
        where, params = [], []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if pending:
            where.append("verdict IS NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals{clause} ORDER BY requested_at", params
            ).fetchall()
        return [_approval_record(row) for row in rows]

    # ---------------------------------------------------------------- reading

    def list(self, limit: int = 20) -> _Summaries:
        """The most recent runs, newest first, with their task counts (no events, no outputs)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.*, (SELECT count(*) FROM tasks t WHERE t.run_id = r.id AND t.status = 'succeeded'),"
                " (SELECT count(*) FROM tasks t WHERE t.run_id = r.id)"
                " FROM runs r ORDER BY r.started_at DESC, r.rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_run_record(row) for row in rows]

    def count(self) -> int:
        """How many runs the store holds."""
        with self._lock:
            (total,) = self._db.execute("SELECT count(*) FROM runs").fetchone()
        return int(total)

    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id is `run_id` or starts with it (at least `MIN_PREFIX` characters).

        Raises `UnknownRun` when no run, or more than one, matches.
        """
        with self._lock:
            if self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                return run_id
            matches = []
            if len(run_id) >= MIN_PREFIX:
                # substr, not LIKE: an id may hold '_', which LIKE reads as a wildcard.
                matches = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY started_at DESC LIMIT 6",
                        (len(run_id), run_id),
                    )
                ]
        if len(matches) == 1:
            return str(matches[0])
        if matches:
            raise UnknownRun(f"run id '{run_id}' is ambiguous: it starts {', '.join(matches)}; give more characters")
        hint = f" (a prefix needs at least {MIN_PREFIX} characters)" if len(run_id) < MIN_PREFIX else ""
        raise UnknownRun(f"no recorded run with id '{run_id}'{hint} (see `orquestra runs list`)")

    def get(self, run_id: str) -> StoredRun:
        """The run `run_id` (or a unique prefix of it) with its tasks and events; `UnknownRun` if none."""
        full_id = self.resolve(run_id)
        with self._lock:
            run = self._db.execute(
                "SELECT r.*, (SELECT count(*) FROM tasks t WHERE t.run_id = r.id AND t.status = 'succeeded'),"
                " (SELECT count(*) FROM tasks t WHERE t.run_id = r.id) FROM runs r WHERE r.id = ?",
                (full_id,),
            ).fetchone()
            tasks = self._db.execute(
                "SELECT task_id, capability, agent, status, output, error, elapsed FROM tasks"
                " WHERE run_id = ? ORDER BY rowid",
                (full_id,),
            ).fetchall()
            events = self._db.execute(
                "SELECT seq, type, at, payload FROM events WHERE run_id = ? ORDER BY seq", (full_id,)
            ).fetchall()
        if run is None:  # deleted by another process between resolve and here
            raise UnknownRun(f"no recorded run with id '{run_id}' (see `orquestra runs list`)")
        texts = self.texts
        return StoredRun(
            run=_run_record(run),
            tasks=[_task_record(row, texts.restore_text(full_id, row[4])) for row in tasks],
            events=[
                EventRecord(seq, kind, at, texts.restore(full_id, json.loads(payload)))
                for seq, kind, at, payload in events
            ],
        )

    def export(self, run_id: str) -> dict[str, Any]:
        """The run `run_id` with its tasks and events as JSON data; `UnknownRun` if none."""
        exported: dict[str, Any] = dataclasses.asdict(self.get(run_id))
        return exported

    def delete(self, run_id: str) -> str:
        """Delete the run `run_id` (or a unique prefix of it) with its tasks, events and approvals; returns its id."""
        full_id = self.resolve(run_id)
        with self._write() as db:
            for table, column in (("events", "run_id"), ("tasks", "run_id"), ("approvals", "run_id"), ("runs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (full_id,))
        self.texts.delete(full_id)
        return full_id


def _task_record(row: tuple[Any, ...], output: str | None) -> TaskRecord:
    task_id, capability, agent, status, _, error, elapsed = row
    return TaskRecord(task_id, capability, agent, status, output, error, elapsed)


class _RedactingWriter:
    """The store's connection as its writes use it: every text parameter is redacted before it reaches the file.

    Whatever a run holds (an answer, an output, an error, a goal) may echo a configured secret; redacting what
    is written, in one place, keeps every secret out of the file, its exports and `runs show`.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement with redacted parameters."""
        return self._db.execute(sql, _redacted(parameters))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        """Run one statement per row of redacted parameters."""
        return self._db.executemany(sql, (_redacted(row) for row in rows))


def _redacted(parameters: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(redact(value) if isinstance(value, str) else value for value in parameters)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, goal, status, reason, started_at, finished_at, model, usage, answer, graph, done, total = row
    return RunRecord(
        id=run_id,
        goal=goal,
        status=status,
        reason=reason,
        started_at=started_at,
        finished_at=finished_at,
        model=model,
        usage=json.loads(usage) if usage else None,
        answer=answer,
        graph=json.loads(graph) if graph else None,
        tasks_done=done,
        tasks_total=total,
    )


__all__ = [
    "ApprovalRecord",
    "EventRecord",
    "RunRecord",
    "RunStore",
    "StoredRun",
    "TaskRecord",
    "UnknownRun",
    "open_store",
    "store_path",
    "to_jsonable",
]


_APPROVAL_COLUMNS = (
    "run_id, task_id, instruction, reasons, requested_at, verdict, note, new_instruction, decided_by, decided_at"
)


def _approval_record(row: tuple[Any, ...]) -> ApprovalRecord:
    run_id, task_id, instruction, reasons, requested_at, verdict, note, new_instruction, by, decided_at = row
    decision = None if verdict is None else Decision(verdict, note, new_instruction, by)
    return ApprovalRecord(run_id, task_id, instruction, json.loads(reasons), requested_at, decision, decided_at)
