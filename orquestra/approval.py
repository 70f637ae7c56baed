"""Human approval as data: which tasks wait for a person, what a person is asked, and what they decide.

A task needs approval when the plan says so (`Task.requires_approval`), when an agent that may run it says
so (`AgentCard.requires_approval`), or when the team's `ApprovalPolicy` names its capability, one of its
agents, or a tool one of its agents may use. The gate that makes a task wait is in `orquestra.approval_gate`;
this module holds only data, so that the settings and the run store can use it without importing the gate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from orquestra.exceptions import ApprovalRejected as ApprovalRejected

if TYPE_CHECKING:
    # Only in annotations: at run time this module needs no graph and no dispatcher, so the settings that
    # carry an `ApprovalPolicy` import neither (nor, through them, the model layer that reads the settings).
    from orquestra.dispatch import Assignment
    from orquestra.graph import Task

Verdict = Literal["approved", "edited", "rejected"]


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
