from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import typer

from orquestra import Task, TaskGraph

T = TypeVar("T")

WALL = 5.0
"""Seconds one generated case may take, on a slow shared machine; the bounded work takes milliseconds."""


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


def within_wall(function: Callable[[], T], wall: float = WALL) -> T:
    """What `function` returns or raises, or a test failure if it takes longer than `wall` seconds.

    It runs in a daemon thread the test waits on for no longer, so a hang fails the test instead of stalling
    the suite. This bounds time only: it never asserts a speed.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed to the test's own thread, which judges it
            outcome["error"] = error

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(wall)
    if thread.is_alive():
        pytest.fail(f"a case took longer than {wall} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """The command refused a user's mistake: exit 2, one `error:` line naming each fragment, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("error:") and "\n" not in line, line
    for fragment in fragments:
        assert fragment in line, line
