from __future__ import annotations

import json

import pytest

from orquestra import Registry
from orquestra.models import Message, ModelResponse, ScriptedModel
from orquestra.planner import BUILTIN_EXAMPLE, PlanExample, Planner, PlanningError
from orquestra.registry import AgentCard

REGISTRY = Registry(
    [
        AgentCard(name="researcher", description="Finds facts.", capabilities=("research",)),
        AgentCard(name="analyst", description="Does sums.", capabilities=("math", "analysis")),
        AgentCard(name="writer", description="Writes prose.", capabilities=("writing",)),
    ]
)


def task(task_id: str, capability: str = "research", depends_on: list[str] | None = None) -> dict:
    return {"id": task_id, "instruction": f"do {task_id}", "capability": capability, "depends_on": depends_on or []}


def plan(*tasks: dict) -> dict:
    return {"tasks": list(tasks)}


GOOD = plan(task("facts"), task("sum", "math", ["facts"]), task("note", "writing", ["sum"]))
CYCLIC = plan(task("a", depends_on=["c"]), task("b", "math", ["a"]), task("c", "writing", ["b"]))


async def run_planner(*answers: dict | str, retries: int = 1, examples=()) -> tuple:
    model = ScriptedModel(responses=list(answers))
    result = await Planner(model, REGISTRY, retries=retries).plan("find facts, add them up, write a note", examples)
    return result, model


async def test_a_valid_plan_is_used_as_given():
    result, model = await run_planner(GOOD)
    assert [t.id for t in result.graph.tasks] == ["facts", "sum", "note"]
    assert result.graph["note"].depends_on == ("sum",)
    assert result.repairs == [] and result.usage.requests == 1


async def test_validation_error_goes_back_to_the_model_which_fixes_it():
    result, model = await run_planner(CYCLIC, GOOD)
    assert result.repairs == [] and result.usage.requests == 2
    reask = "\n".join(message.content for message in model.calls[1])
    assert "cycle: a -> c -> b -> a" in reask


async def test_a_plan_that_stays_cyclic_is_repaired_by_dropping_the_forward_edge():
    result, _ = await run_planner(CYCLIC, CYCLIC)
    assert result.graph["a"].depends_on == ()
    assert result.graph["c"].depends_on == ("b",)
    assert any("dropped dependency on later task 'c'" in repair for repair in result.repairs)
    assert result.usage.requests == 2


async def test_dangling_and_self_edges_are_dropped():
    bad = plan(task("a", depends_on=["a", "ghost"]), task("b", "writing", ["a"]))
    result, _ = await run_planner(bad, bad)
    assert result.graph["a"].depends_on == () and result.graph["b"].depends_on == ("a",)
    assert "task 'a': dropped its dependency on itself" in result.repairs
    assert "task 'a': dropped dependency on unknown task 'ghost'" in result.repairs


async def test_hallucinated_capability_is_mapped_to_the_closest_known_one():
    bad = plan(task("a", "reserch"), task("b", "telewriting", ["a"]))
    result, model = await run_planner(bad, bad)
    assert result.graph["a"].capability == "research"
    assert result.graph["b"].capability == "writing"
    assert "task 'a': unknown capability 'reserch' mapped to 'research'" in result.repairs
    # the schema sent to the model lists the allowed capabilities
    assert "analysis" in model.calls[0][0].content and "math" in model.calls[0][0].content


async def test_duplicate_ids_are_made_unique_and_edges_follow_the_first():
    bad = plan(task("step"), task("step", "writing", ["step"]))
    result, _ = await run_planner(bad, bad)
    assert [t.id for t in result.graph.tasks] == ["step", "step_2"]
    assert result.graph["step_2"].depends_on == ("step",)


async def test_too_many_tasks_are_cut_to_the_limit():
    many = plan(*(task(f"t{i}") for i in range(12)))
    model = ScriptedModel(responses=[many, many])
    result = await Planner(model, REGISTRY, max_tasks=5, retries=1).plan("goal")
    assert len(result.graph) == 5
    assert "kept the first 5 of 12 tasks" in result.repairs


async def test_unusable_answers_give_a_clear_error():
    with pytest.raises(PlanningError, match="not a plan"):
        await run_planner("I cannot plan that.", "Still no.")
    with pytest.raises(PlanningError, match="could not be repaired: the graph has no tasks"):
        await run_planner({"tasks": []}, {"tasks": []})
    with pytest.raises(PlanningError, match="the goal is empty"):
        await Planner(ScriptedModel(), REGISTRY).plan("  ")


async def test_prompt_carries_catalogue_rules_and_examples():
    example = PlanExample(goal="an old goal", plan=json.dumps(GOOD), lessons="research first")
    _, model = await run_planner(GOOD, examples=[example])
    system, user = model.calls[0][0], model.calls[0][1]
    assert isinstance(system, Message) and system.role == "system"
    assert "- research: researcher - Finds facts." in system.content
    assert "Use between 1 and 8 tasks" in system.content
    assert "Example goal: an old goal" in user.content and "Lessons from that run: research first" in user.content
    assert user.content.rstrip().endswith("Goal: find facts, add them up, write a note")


async def test_builtin_example_only_when_its_capabilities_exist_else_one_from_the_catalogue():
    _, model = await run_planner(GOOD)
    assert BUILTIN_EXAMPLE.goal in model.calls[0][1].content
    narrow = Registry([AgentCard(name="w", description="Writes prose.", capabilities=("writing",))])
    user = Planner(ScriptedModel(), narrow).messages("goal")[1].content
    assert BUILTIN_EXAMPLE.goal not in user
    assert "Example goal: Write prose.\n" in user  # one task for a one-step goal, then a chain
    assert "Example goal: Write prose, then write prose with the result." in user


async def test_a_weak_model_goes_straight_to_repair_without_a_reask():
    model = ScriptedModel(responses=[CYCLIC])
    model.weak = True
    result = await Planner(model, REGISTRY, retries=3).plan("goal")
    assert len(model.calls) == 1 and result.usage.requests == 1
    assert any("closed a cycle" in repair for repair in result.repairs)


async def test_an_answer_cut_off_at_the_token_limit_keeps_the_tasks_written_in_full():
    full = json.dumps(GOOD)
    cut = full[: full.index('"note"') + 20]  # in the middle of the third task
    answer = ModelResponse(text=cut, model="scripted", finish_reason="length")
    model = ScriptedModel(responses=[answer])
    result = await Planner(model, REGISTRY, retries=0).plan("find facts, add them up, write a note")
    assert [t.id for t in result.graph.tasks] == ["facts", "sum"]
    assert result.graph["sum"].depends_on == ("facts",)
    assert result.repairs[0] == "the answer was cut off; kept the 2 tasks written in full"


async def test_an_answer_cut_off_before_any_task_is_complete_is_not_a_plan():
    answer = ModelResponse(text='{"tasks": [{"id": "facts", "instr', model="scripted", finish_reason="length")
    with pytest.raises(PlanningError, match="not a plan: scripted: the answer was cut off at the token limit"):
        await Planner(ScriptedModel(responses=[answer]), REGISTRY, retries=0).plan("goal")
