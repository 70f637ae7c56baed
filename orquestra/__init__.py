"""Orquestra: turn a goal into a team of AI agents.

A planner writes a task graph, a dispatcher gives each task to the best agent of a registry, and an engine
runs the graph with independent tasks in parallel.

The public names are imported on first use (PEP 562), so that ``import orquestra`` and the command line's
start stay fast: the team stack pulls in the provider SDKs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orquestra.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from orquestra.approval import ApprovalPolicy, ApprovalRequest, Decision
    from orquestra.budget import Budget
    from orquestra.dispatch import Assignment, Dispatcher
    from orquestra.engine import Engine, Execution, RetryPolicy, RunResult, RunStatus, TaskStatus
    from orquestra.exceptions import (
        ApprovalRejected,
        BudgetExceeded,
        GraphError,
        ModelError,
        OrquestraError,
        PatchRefused,
        RegistryError,
        TransientError,
        UserError,
    )
    from orquestra.graph import GraphPatch, Task, TaskGraph
    from orquestra.reflect import ReflectionMode
    from orquestra.registry import AgentCard, Registry, ToolCard
    from orquestra.team import AutoTeam, TeamResult

__version__ = "0.1.0"

_MODULES = {
    "approval": ("ApprovalPolicy", "ApprovalRequest", "Decision"),
    "budget": ("Budget",),
    "dispatch": ("Assignment", "Dispatcher"),
    "engine": ("Engine", "Execution", "RetryPolicy", "RunResult", "RunStatus", "TaskStatus"),
    "exceptions": (
        "ApprovalRejected",
        "BudgetExceeded",
        "GraphError",
        "ModelError",
        "OrquestraError",
        "PatchRefused",
        "RegistryError",
        "TransientError",
        "UserError",
    ),
    "graph": ("GraphPatch", "Task", "TaskGraph"),
    "reflect": ("ReflectionMode",),
    "registry": ("AgentCard", "Registry", "ToolCard"),
    "team": ("AutoTeam", "TeamResult"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
"""The module that defines each public name."""


__getattr__ = lazy_getattr("orquestra", _HOME, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "AgentCard",
    "ApprovalPolicy",
    "ApprovalRejected",
    "ApprovalRequest",
    "Assignment",
    "AutoTeam",
    "Budget",
    "BudgetExceeded",
    "Decision",
    "Dispatcher",
    "Engine",
    "Execution",
    "GraphError",
    "GraphPatch",
    "ModelError",
    "OrquestraError",
    "PatchRefused",
    "ReflectionMode",
    "Registry",
    "RegistryError",
    "RetryPolicy",
    "RunResult",
    "RunStatus",
    "Task",
    "TaskGraph",
    "TaskStatus",
    "TeamResult",
    "ToolCard",
    "TransientError",
    "UserError",
    "__version__",
]
