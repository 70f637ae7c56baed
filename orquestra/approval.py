"""Human approval: which tasks wait for a person, and the gate that makes them wait.

A task needs approval when the plan says so (`Task.requires_approval`), when an agent that may run it says
so (`AgentCard.requires_approval`), or when the team's `ApprovalPolicy` names its capability, one of its
agents, or a tool one of its agents may use. The engine calls the `ApprovalGate` before a task takes its
concurrency slot, so a waiting task holds nothing back: only its own branch waits.

A decision comes from whichever source answers first: the callbacks given to the team (an app's function,
the REPL's prompt) or the run store, where `orquestra approve RUN TASK` writes from another process. With a
store, the store is the arbiter: the first decision written there wins, and every source agrees on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from orquestra.dispatch import Assignment
from orquestra.events import ApprovalDecided, ApprovalRequested, Event
from orquestra.exceptions import Refused
from orquestra.graph import Task

if TYPE_CHECKING:
    from orquestra.store import RunStore

log = logging.getLogger(__name__)

Verdict = Literal["approved", "edited", "rejected"]

POLL_INTERVAL = 0.25
"""Seconds between looks at the run store for a decision made by another process."""


class ApprovalRejected(Refused):
    """A person rejected a task (or no decision came in time): the task fails and its dependents are skipped."""


@dataclass(frozen=True)
class Decision:
    """A decision on one task: approve it as planned, run it with another instruction, or reject it."""

    verdict: Verdict
    note: str = ""
    """Why (a rejection's reason, or a remark)."""
    instruction: str | None = None
    """The new instruction of an edit."""
    by: str = ""
    """Who or what decided: 'cli', 'repl', 'callback', 'timeout', or a name."""

    def __post_init__(self) -> None:
        # An approver's typo must not fail open: an unknown verdict would otherwise let the task run.
        if self.verdict not in ("approved", "edited", "rejected"):
            raise ValueError(f"unknown verdict '{self.verdict}' (approved, edited or rejected)")
        if self.verdict == "edited" and not (self.instruction or "").strip():
            raise ValueError("an edit needs a new instruction")

    @classmethod
    def approve(cls, note: str = "", *, by: str = "") -> Decision:
        """Run the task as planned."""
        return cls("approved", note, None, by)

    @classmethod
    def reject(cls, reason: str = "", *, by: str = "") -> Decision:
        """Do not run the task: it fails, and its dependents are skipped."""
        return cls("rejected", reason, None, by)

    @classmethod
    def edit(cls, instruction: str, note: str = "", *, by: str = "") -> Decision:
        """Run the task with `instruction` instead of the planned one."""
        return cls("edited", note, instruction, by)


@dataclass(frozen=True)
class ApprovalRequest:
    """What a person is asked to decide on: the task, the agent that will run it, and why it needs approval."""

    run_id: str
    task: Task
    agent: str
    reasons: tuple[str, ...]


Approver = Callable[[ApprovalRequest], Decision | Awaitable[Decision]]
"""A source of decisions: a function, sync or async, that answers one request."""


class ApprovalPolicy(BaseModel):
    """Which tasks wait for approval beyond those the plan and the agent cards mark.

    Example (config.yaml): ``approval: {tools: [write_file], timeout: 600}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tools: tuple[str, ...] = Field(default=(), description="Any task whose agents may use one of these tools.")
    capabilities: tuple[str, ...] = Field(default=(), description="Any task needing one of these capabilities.")
    agents: tuple[str, ...] = Field(default=(), description="Any task one of these agents may run.")
    every_task: bool = Field(default=False, description="Every task waits for approval.")
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds to wait for a decision before rejecting the task; none waits."
    )

    def reasons(self, task: Task, assignment: Assignment) -> list[str]:
        """Why `task` needs approval, one line per rule that asks for it; empty when it needs none.

        Every agent of the assignment counts, fallbacks included: a fallback may run the task too.
        """
        reasons: list[str] = []
        if task.requires_approval:
            reasons.append("the plan asks for approval")
        if self.every_task:
            reasons.append("the policy asks for approval of every task")
        if task.capability in self.capabilities:
            reasons.append(f"the policy asks for approval of capability '{task.capability}'")
        for agent in assignment.chain():
            if agent.requires_approval:
                reasons.append(f"agent '{agent.name}' requires approval")
            if agent.name in self.agents:
                reasons.append(f"the policy asks for approval of agent '{agent.name}'")
            reasons.extend(f"agent '{agent.name}' may use tool '{tool}'" for tool in agent.tools if tool in self.tools)
        return list(dict.fromkeys(reasons))


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
        store: RunStore | None = None,
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
