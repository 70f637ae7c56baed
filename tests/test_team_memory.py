"""Long-term memory through the team: a run is remembered, a similar goal recalls it, the planner sees it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orquestra import Registry, RunStatus
from orquestra.memory import InMemoryMemory, open_memory
from orquestra.models import Message, ScriptedModel
from orquestra.registry import AgentCard
from orquestra.team import AutoTeam

REGISTRY = Registry(
    [
        AgentCard(name="alpha", description="Researcher A.", capabilities=("research",)),
        AgentCard(name="beta", description="Researcher B.", capabilities=("research",)),
        AgentCard(name="writer", description="Writes.", capabilities=("writing",)),
    ]
)
PLAN = {
    "tasks": [
        {
            "id": "facts",
            "instruction": "Gather facts about vector databases",
            "capability": "research",
            "depends_on": [],
        },
        {"id": "summary", "instruction": "Summarise them", "capability": "writing", "depends_on": ["facts"]},
    ]
}


def brain(messages: Sequence[Message]) -> object:
    system = messages[0].content
    if "planner of a team" in system:
        return PLAN
    if "final answer of a team" in system:
        return "Chroma and Weaviate compared [summary]."
    return "Chroma is embedded; Weaviate is a server."


@pytest.fixture(scope="module")
def memory():
    return InMemoryMemory()  # the real local embedder


async def test_a_similar_goal_recalls_the_first_run_and_the_planner_receives_it(memory):
    model = ScriptedModel(brain, name="brain")
    team = AutoTeam(registry=REGISTRY, model=model, memory=memory)
    first = await team.arun("Compare the vector databases Chroma and Weaviate")
    assert first.status is RunStatus.SUCCEEDED
    kept = memory.get(first.run.run_id)
    assert kept is not None and kept.outcome == "succeeded" and kept.answer == first.answer
    assert [t.task_id for t in kept.tasks] == ["facts", "summary"]
    assert kept.tasks[0].agent == "alpha" and kept.tasks[0].succeeded

    model.calls.clear()
    second = await team.arun("Which vector database is better, Weaviate or Chroma?")
    planner_prompt = model.calls[0][1].content
    assert "Example goal: Compare the vector databases Chroma and Weaviate" in planner_prompt
    assert '"id": "facts"' in planner_prompt
    assert second.plan is not None and second.plan.recalled == ["Compare the vector databases Chroma and Weaviate"]

    unrelated = memory.recall("How do I bake sourdough bread?", 5)
    assert all(item.run.goal != "Compare the vector databases Chroma and Weaviate" for item in unrelated)


async def test_past_success_breaks_ties_between_equal_agents():
    memory = InMemoryMemory()
    team = AutoTeam(registry=REGISTRY, model=ScriptedModel(brain, name="brain"), memory=memory)
    assert team.dispatcher.candidates("research")[0].name == "alpha"  # by name, with no history
    from orquestra.memory import RunMemory, TaskMemory

    graph = (await team.plan("seed", examples=[])).graph
    memory.remember(
        RunMemory(
            run_id="past",
            goal="an old goal",
            outcome="failed",
            graph=graph,
            tasks=[
                TaskMemory("facts", "research", "alpha", False, "timed out"),
                TaskMemory("facts2", "research", "beta", True, "fine"),
            ],
        )
    )
    assert team.dispatcher.candidates("research")[0].name == "beta"


async def test_a_corrupt_memory_folder_never_stops_a_run(tmp_path, caplog):
    home = tmp_path / "home"
    home.mkdir()
    (home / "memory").write_text("not a folder")
    memory = open_memory(home)
    team = AutoTeam(registry=REGISTRY, model=ScriptedModel(brain, name="brain"), memory=memory)
    result = await team.arun("Compare the vector databases Chroma and Weaviate")
    assert result.status is RunStatus.SUCCEEDED
    assert "memory" in caplog.text.lower()
