"""The gate that makes a task wait for a person's decision.

The engine calls the `ApprovalGate` before a task takes its concurrency slot, so a waiting task holds nothing
back: only its own branch waits. Which tasks wait is the `ApprovalPolicy`'s answer (`orquestra.approval`).

A decision comes from whichever source answers first: the callbacks given to the team (an app's function,
the REPL's prompt) or the run store, where `orquestra approve RUN TASK` writes from another process. With a
store, the store is the arbiter: the first decision written there wins, and every source agrees on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from orquestra.approval import ApprovalPolicy, ApprovalRequest, Approver, Decision
from orquestra.dispatch import Assignment
from orquestra.events import ApprovalDecided, ApprovalRequested, Event
from orquestra.exceptions import ApprovalRejected
from orquestra.graph import Task

if TYPE_CHECKING:
    from orquestra.run_storage import RunStorage

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.25
"""Seconds between looks at the run store for a decision made by another process."""


class ApprovalGate:
    """The engine's gate for one run: lets tasks through, or holds them until a decision comes.

    Args:
        policy: which tasks need approval (beyond the plan's and the agent cards' own marks).
        assign: the dispatcher's assignment of a task to agents.
        run_id: the run this gate belongs to.
        approvers: in-process sources of decisions (callbacks, the REPL).
        store: the run store, through which other processes decide; the arbiter when set.
        emit: where `ApprovalRequested` and `ApprovalDecided` go (settable later, once the engine exists).

    """

    def __init__(
        self,
        policy: ApprovalPolicy,
        assign: Callable[[Task], Assignment],
        run_id: str,
        approvers: Sequence[Approver] = (),
        store: RunStorage | None = None,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self.policy = policy
        self.assign = assign
        self.run_id = run_id
        self.emit = emit
        self.approvers = list(approvers)
        self.store = store

    async def __call__(self, task: Task) -> Task:
        """The task to run: `task` itself, or its edited form; raises `ApprovalRejected` on a rejection."""
        assignment = self.assign(task)
        reasons = self.policy.reasons(task, assignment)
        if not reasons:
            return task
        if not self.approvers and self.store is None:
            raise ApprovalRejected(
                f"task '{task.id}' needs approval ({reasons[0]}), but nothing can approve it here: "
                "give the team an approver, or keep its run store so that `orquestra approve` can"
            )
        request = ApprovalRequest(self.run_id, task, assignment.agent.name, tuple(reasons))
        if self.store is not None:
            await asyncio.to_thread(self.store.request_approval, self.run_id, task, request.reasons)
            if not self.approvers:  # nothing in this process will ask: say how to answer, or it waits unseen
                log.warning(
                    "task '%s' waits for approval (%s): orquestra approve %s %s [--reject REASON | --edit TEXT]",
                    task.id,
                    "; ".join(reasons),
                    self.run_id,
                    task.id,
                )
        self._emit(ApprovalRequested(self.run_id, task.id, request.agent, task.instruction, request.reasons))
        try:
            decision = await self._first_decision(request)
        except BaseException:
            # Cancelled (Ctrl-C, the run stopped) while waiting: close the request, so that `orquestra
            # approve` no longer offers a task nobody waits for.
            if self.store is not None:
                with contextlib.suppress(Exception):  # the store failing here must not hide why the wait ended
                    self.store.decide(self.run_id, task.id, Decision.reject("the run stopped waiting", by="run"))
            raise
        if self.store is not None:
            # The store keeps the first decision written; another process may have decided meanwhile.
            decision = await asyncio.to_thread(self.store.decide, self.run_id, task.id, decision)
        instruction = decision.instruction or task.instruction
        self._emit(ApprovalDecided(self.run_id, task.id, decision.verdict, decision.note, instruction, decision.by))
        if decision.verdict == "rejected":
            by = f" by {decision.by}" if decision.by else ""
            raise ApprovalRejected(f"task '{task.id}' was rejected{by}: {decision.note or 'no reason given'}")
        if decision.verdict == "edited":
            return task.model_copy(update={"instruction": instruction})
        return task

    def _emit(self, event: Event) -> None:
        if self.emit is not None:
            self.emit(event)

    async def _first_decision(self, request: ApprovalRequest) -> Decision:
        sources = [asyncio.ensure_future(_ask(approver, request)) for approver in self.approvers]
        if self.store is not None:
            sources.append(asyncio.ensure_future(self._poll_store(request.task.id)))
        try:
            done, _ = await asyncio.wait(sources, timeout=self.policy.timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                return Decision.reject(f"no decision within {self.policy.timeout:g} s", by="timeout")
            decided = [source for source in done if source.exception() is None]
            if decided:
                return decided[0].result()
            # A source that fails (a callback that raises) must not leave the task waiting for ever: it
            # rejects the task, and the reason says why.
            error = next(iter(done)).exception()
            return Decision.reject(f"the approver failed: {type(error).__name__}: {error}", by="approver")
        finally:
            for source in sources:
                source.cancel()
            await asyncio.gather(*sources, return_exceptions=True)

    async def _poll_store(self, task_id: str) -> Decision:
        assert self.store is not None
        while True:
            decision = await asyncio.to_thread(self.store.decision, self.run_id, task_id)
            if decision is not None:
                return decision
            await asyncio.sleep(POLL_INTERVAL)


async def _ask(approver: Approver, request: ApprovalRequest) -> Decision:
    if inspect.iscoroutinefunction(approver):
        decision = await approver(request)
    else:
        # A plain function may block (input(), an HTTP call): in a thread, it holds up neither the other
        # branches nor the approval timeout.
        answer = await asyncio.to_thread(approver, request)
        decision = await answer if inspect.isawaitable(answer) else answer
    if not isinstance(decision, Decision):
        raise TypeError(f"an approver must return a Decision, not {type(decision).__name__}")
    return decision
