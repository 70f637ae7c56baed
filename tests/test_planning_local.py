"""Planning on the real embedded models: stages that decompose, constrain and link, and a cut-off answer.

The stages are tested on the fast model (`local:small`); what the README promises of the default model,
a team rather than one task, is tested on the default.
"""

from __future__ import annotations

import pytest

from orquestra.models.local import LocalModel
from orquestra.planner import Planner
from orquestra.registry import Registry
from orquestra.weights import QWEN_05B, QWEN_15B

pytestmark = pytest.mark.slow

GOAL = "Read notes.txt, summarise it in three bullet points, then translate the summary into French."


@pytest.fixture(scope="module")
def small(weights_home):
    return LocalModel(weights_home / "models" / QWEN_05B.filename, n_threads=1)


def assert_checked(graph, registry: Registry) -> None:
    """Known capabilities only, and every dependency on an earlier task of the plan."""
    seen: set[str] = set()
    for task in graph.tasks:
        assert task.capability in registry.capabilities()
        assert set(task.depends_on) <= seen, f"{task.id} depends on a later or unknown task"
        seen.add(task.id)


async def test_the_staged_planner_splits_a_multi_step_goal_into_linked_tasks(small):
    registry = Registry.load()
    result = await Planner(small, registry, strategy="staged").plan(GOAL)
    graph = result.graph
    assert len(graph) >= 2, [task.instruction for task in graph.tasks]
    assert_checked(graph, registry)
    assert any(task.depends_on for task in graph.tasks)  # the later steps use the earlier ones' results
    assert result.usage.requests in (2, 3)  # decompose, link, and assign unless the shortlist decided


async def test_a_decomposition_cut_off_by_the_token_limit_still_plans(weights_home):
    tight = LocalModel(weights_home / "models" / QWEN_05B.filename, n_threads=1, max_tokens=24)
    registry = Registry.load()
    result = await Planner(tight, registry, strategy="staged").plan(GOAL)
    assert len(result.graph) >= 1
    assert_checked(result.graph, registry)
    assert any("decompose answer was cut off" in note for note in result.repairs)


async def test_the_default_model_plans_a_team_for_a_multi_step_goal(weights_home):
    default = LocalModel(weights_home / "models" / QWEN_15B.filename, weights=QWEN_15B, n_threads=1)
    registry = Registry.load()
    result = await Planner(default, registry).plan(GOAL)
    assert len(result.graph) >= 2, [task.instruction for task in result.graph.tasks]
    assert_checked(result.graph, registry)
