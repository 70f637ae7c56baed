"""What a run store is: the methods the package calls on one, whatever keeps the records.

`orquestra.store.RunStore` keeps them in SQLite under the home folder; `orquestra.memory_run_store` keeps them
in the process. Both pass one conformance suite (``tests/test_run_store_contract.py``), and a new backend is
done when it passes it too. `AutoTeam(store=...)` takes any of them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from types import TracebackType

    from orquestra.approval import Decision
    from orquestra.events import Event
    from orquestra.graph import Task
    from orquestra.run_records import ApprovalRecord, RunRecord, StoredRun


class RunStorage(Protocol):
    """Runs, their tasks and their event logs, plus the approval requests of their tasks.

    The contract every implementation keeps:

    - Every text written (goal, outputs, errors, answers, event payloads, usage, approvals) is redacted of the
      configured secrets (`orquestra.redaction`) before it is kept, so no read or export shows one.
    - Recording never stops a run: `subscriber`'s callback and `finish` log a failed write and carry on.
    - Data read back is JSON data (lists, dicts, strings, numbers), fresh on each read, however long the texts
      were when written (a backend may keep long ones elsewhere, but returns them whole).
    - Reads of an unknown run raise `orquestra.exceptions.UnknownRun`; reads of an approval never requested
      raise `orquestra.exceptions.UnknownApproval`.
    - A store may be shared between threads.
    """

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None: ...

    def close(self) -> None:
        """Release what the store holds open (a connection); a team calls it as each run ends if it opened it."""
        ...

    def subscriber(self, run_id: str, goal: str = "", *, model: str = "") -> Callable[[Event], None]:
        """An engine subscriber that records every event of run `run_id` and keeps its run and tasks current.

        Events are numbered from 0 in the order they arrive; events of other runs are ignored. A run planned
        first begins with `PlanningStarted`, which creates it (status 'running', no graph yet); `RunStarted`
        creates it where planning did not, records its graph and start, and its tasks ('pending', in the
        graph's order); a `GraphPatched`
        adds the new tasks at the end and drops removed ones. Task statuses follow the events ('ready',
        'running', 'awaiting approval', 'succeeded', 'failed', 'skipped', 'cancelled'); `RunFinished` sets
        the run's status, reason and end time and rejects the approval requests still waiting.
        """
        ...

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
        """Record how run `run_id` ended: its answer, usage, status, reason, final graph and tasks' agents.

        It may be called again (the last call's answer, usage, status and reason win; the first end time
        stays) and for a run never started (which it creates). An agent given here fills only a task whose
        agent no event named. Never raises: returns False, after logging a warning, when the write failed.
        """
        ...

    def list(self, limit: int = 20) -> builtins.list[RunRecord]:
        """The `limit` most recent runs, newest start first (the later recorded first on a tie), no events."""
        ...

    def count(self) -> int:
        """How many runs the store holds."""
        ...

    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id is `run_id` or starts with it (at least `store.MIN_PREFIX` characters).

        Raises `UnknownRun` when no run, or more than one, matches (the message says which).
        """
        ...

    def get(self, run_id: str) -> StoredRun:
        """The run `run_id` (or a unique prefix of it) with its tasks (in the graph's order) and events (by seq)."""
        ...

    def export(self, run_id: str) -> dict[str, Any]:
        """`get(run_id)` as JSON data."""
        ...

    def request_approval(self, run_id: str, task: Task, reasons: Sequence[str]) -> None:
        """Record that `task` of `run_id` waits for a decision (replacing an older request for the same task)."""
        ...

    def decide(self, run_id: str, task_id: str, decision: Decision) -> Decision:
        """Record `decision` unless one was recorded first; returns the decision in effect.

        Raises `UnknownApproval` when the task never asked for approval.
        """
        ...

    def decision(self, run_id: str, task_id: str) -> Decision | None:
        """The decision on `task_id` of `run_id`, or None while it waits (or was never asked)."""
        ...

    def approval(self, run_id: str, task_id: str) -> ApprovalRecord:
        """The approval request of `task_id` in `run_id`; `UnknownApproval` when there is none."""
        ...

    def approvals(self, run_id: str | None = None, *, pending: bool = False) -> builtins.list[ApprovalRecord]:
        """Approval requests, oldest first: of one run or of all, only those still waiting when `pending`."""
        ...


__all__ = ["RunStorage"]
