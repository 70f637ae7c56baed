"""Orquestra: turn a goal into a team of AI agents.

A planner writes a task graph, a dispatcher gives each task to the best agent of a registry, and an engine
runs the graph with independent tasks in parallel.

The top level holds what a program needs to run a team, a graph or a manifest (`AutoTeam.prepare` makes a
`Run`, the one object that drives a run); the rest lives in the
documented submodules: `orquestra.exceptions` (every error), `orquestra.events` (every event),
`orquestra.engine` (`RetryPolicy`, `Execution`, `RunResult`, `TaskStatus`), `orquestra.registry` (the
cards), `orquestra.dispatch`, `orquestra.approval`, `orquestra.reflect`, `orquestra.manifest` and
`orquestra.models`.

The public names are imported on first use (PEP 562), so that ``import orquestra`` and the command line's
start stay fast: the team stack pulls in the provider SDKs.
"""

import typing as _typing

from orquestra._lazy_names import lazy_getattr as _lazy_getattr

if _typing.TYPE_CHECKING:
    from orquestra.approval import ApprovalPolicy, Decision
    from orquestra.budget import Budget
    from orquestra.engine import Engine, RunStatus
    from orquestra.events import Event
    from orquestra.exceptions import OrquestraError, UserError
    from orquestra.graph import GraphPatch, Task, TaskGraph
    from orquestra.manifest import apply_manifest, load_manifest
    from orquestra.registry import Registry
    from orquestra.run import Run
    from orquestra.team import AutoTeam, TeamResult

__version__ = "0.1.0"

_MODULES = {
    "approval": ("ApprovalPolicy", "Decision"),
    "budget": ("Budget",),
    "engine": ("Engine", "RunStatus"),
    "events": ("Event",),
    "exceptions": ("OrquestraError", "UserError"),
    "graph": ("GraphPatch", "Task", "TaskGraph"),
    "manifest": ("apply_manifest", "load_manifest"),
    "registry": ("Registry",),
    "run": ("Run",),
    "team": ("AutoTeam", "TeamResult"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
"""The module that defines each public name."""


__getattr__ = _lazy_getattr("orquestra", _HOME, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "ApprovalPolicy",
    "AutoTeam",
    "Budget",
    "Decision",
    "Engine",
    "Event",
    "GraphPatch",
    "OrquestraError",
    "Registry",
    "Run",
    "RunStatus",
    "Task",
    "TaskGraph",
    "TeamResult",
    "UserError",
    "__version__",
    "apply_manifest",
    "load_manifest",
]
