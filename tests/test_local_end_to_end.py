"""The README's main job on the real embedded model: plan, run and answer a goal from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orquestra.graphfile import load_graph

GOAL = "A shop sells widgets at 7 dollars each. Compute the cost of 12 widgets and write one sentence about it."


def orquestra(*args: str, home) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "ORQUESTRA_"))}
    return subprocess.run(
        [sys.executable, "-m", "orquestra", *args],
        capture_output=True,
        text=True,
        env={**env, "ORQUESTRA_HOME": str(home), "COLUMNS": "200"},
        timeout=600,
    )


@pytest.mark.slow
def test_run_a_goal_on_the_embedded_model_by_default(weights_home):
    result = orquestra("run", GOAL, home=weights_home)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "model: local (Qwen2.5-Coder-0.5B-Instruct" in out and "(default)" in out
    assert "plan:" in out and "run succeeded" in out
    assert "answer" in out or "1 succeeded" in out  # a one-task plan's result is its answer
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_plan_on_the_embedded_model_saves_a_runnable_graph(weights_home, tmp_path):
    plan_file = tmp_path / "plan.yaml"
    result = orquestra("plan", GOAL, "--save", str(plan_file), home=weights_home)
    assert result.returncode == 0, result.stdout + result.stderr
    graph = load_graph(plan_file)
    assert 1 <= len(graph) <= 8
    assert {task.capability for task in graph.tasks} <= {
        "analysis",
        "coding",
        "comparison",
        "extraction",
        "math",
        "research",
        "review",
        "search",
        "summarization",
        "writing",
    }
