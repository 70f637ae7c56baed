from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import typer

from orquestra import Task, TaskGraph


def make_graph(edges: dict[str, Iterable[str]], capability: str = "research") -> TaskGraph:
    """A graph from {task id: its dependencies}, in the dict's order."""
    return TaskGraph(
        tasks=[
            Task(id=task_id, instruction=f"do {task_id}", capability=capability, depends_on=tuple(deps))
            for task_id, deps in edges.items()
        ]
    )


def mounted(sub_app: typer.Typer, name: str) -> typer.Typer:
    """`sub_app` under a root app as command `name`, as `orquestra.cli` mounts it, without the rest of the CLI."""
    root = typer.Typer(pretty_exceptions_enable=False)

    @root.callback()
    def _root() -> None:
        """Test app."""

    root.add_typer(sub_app, name=name)
    return root


def orquestra(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The `orquestra` command run in a subprocess: no provider keys of this machine, wide output, `env` on top."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return subprocess.run(
        [sys.executable, "-m", "orquestra", *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )
