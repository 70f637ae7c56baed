"""Orquestra: turn a goal into a team of AI agents.

A planner writes a task graph, a dispatcher gives each task to the best agent of a registry, and an engine
runs the graph with independent tasks in parallel.
"""

from orquestra.dispatch import Assignment, Dispatcher
from orquestra.engine import Engine, Execution, RetryPolicy, RunResult, RunStatus, TaskStatus
from orquestra.exceptions import (
    GraphError,
    OrquestraError,
    PatchRefused,
    RegistryError,
    TransientError,
    UserError,
)
from orquestra.graph import GraphPatch, Task, TaskGraph
from orquestra.registry import AgentCard, Registry, ToolCard

__version__ = "0.1.0"

__all__ = [
    "AgentCard",
    "Assignment",
    "Dispatcher",
    "Engine",
    "Execution",
    "GraphError",
    "GraphPatch",
    "OrquestraError",
    "PatchRefused",
    "Registry",
    "RegistryError",
    "RetryPolicy",
    "RunResult",
    "RunStatus",
    "Task",
    "TaskGraph",
    "TaskStatus",
    "ToolCard",
    "TransientError",
    "UserError",
    "__version__",
]
