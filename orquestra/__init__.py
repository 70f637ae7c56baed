"""Orquestra: turn a goal into a team of AI agents.

A planner writes a task graph, a dispatcher gives each task to the best agent of a registry, and an engine
runs the graph with independent tasks in parallel.
"""

from orquestra.approval import ApprovalPolicy, ApprovalRejected, ApprovalRequest, Decision
from orquestra.budget import Budget
from orquestra.dispatch import Assignment, Dispatcher
from orquestra.engine import Engine, Execution, RetryPolicy, RunResult, RunStatus, TaskStatus
from orquestra.exceptions import (
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
