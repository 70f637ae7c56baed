"""The README's main job on the real embedded model: plan, run and answer a goal from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orquestra.manifest import load_manifest

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
    assert "model: local (Qwen2.5-Coder-1.5B-Instruct" in out and "(default)" in out
    assert "plan:" in out and "run succeeded" in out
    assert "answer" in out or "1 succeeded" in out  # a one-task plan's result is its answer
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_plan_on_the_embedded_model_saves_a_runnable_manifest(weights_home, tmp_path):
    plan_file = tmp_path / "plan.yaml"
    result = orquestra("plan", GOAL, "--save", str(plan_file), home=weights_home)
    assert result.returncode == 0, result.stdout + result.stderr
    graph = load_manifest(plan_file).to_graph()  # the plan is saved as a workflow manifest
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


@pytest.mark.slow
async def test_the_whole_loop_on_the_embedded_model(weights_home, monkeypatch):
    """Plan-free graph, model reflection after every task, then the answer: every step on the real model."""
    from orquestra import RunStatus, Task, TaskGraph
    from orquestra.reflect import Continue, Finish, Replan
    from orquestra.team import AutoTeam

    monkeypatch.setenv("ORQUESTRA_HOME", str(weights_home))
    graph = TaskGraph(
        tasks=[
            Task(id="cost", instruction="Compute 12 * 7 with the calculator.", capability="math"),
            Task(
                id="sentence",
                instruction="Write one sentence about the cost.",
                capability="writing",
                depends_on=["cost"],
            ),
        ]
    )
    team = AutoTeam(model="local", reflection="every-task", max_replans=1)
    meter = team.meter()
    outcome = await team.execute(graph, goal="Say what 12 widgets at 7 dollars cost.", meter=meter)
    result = await team.finish("Say what 12 widgets at 7 dollars cost.", None, outcome)
    # The small model may still write a figure of its own; then the checks catch it and the run says so.
    caught = result.status is RunStatus.FAILED and "failed its checks" in result.run.reason
    assert result.status is RunStatus.SUCCEEDED or caught, result.run.reason
    if result.status is RunStatus.SUCCEEDED:
        assert any("84" in str(output) for output in result.outputs.values())
    assert result.loop.verdicts, "the model was asked for a verdict after the first task"
    assert all(isinstance(v, Continue | Replan | Finish) for v in result.loop.verdicts)
    assert len(result.loop.graphs) == 1 + len(result.replans)
    assert result.answer.strip()
    assert result.usage.requests >= 3  # the agent(s), the reflection, the answer
