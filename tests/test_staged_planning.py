"""Planning in stages: decompose, assign, link; each stage's answer constrained, the graph checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orquestra import Registry
from orquestra.models import ModelResponse, ScriptedModel
from orquestra.planner import PlanExample, PlannedTask, Planner, PlanningError
from orquestra.registry import AgentCard
from orquestra.staged_planning import StagedPlanner

REGISTRY = Registry(
    [
        AgentCard(name="researcher", description="Finds facts. Uses the web.", capabilities=("research",)),
        AgentCard(name="analyst", description="Does sums.", capabilities=("math",)),
        AgentCard(name="writer", description="Writes prose.", capabilities=("writing",)),
    ]
)
GOAL = "Find the opening hours of the pool, add up the hours a week, and write a note."
STEPS = {
    "steps": [
        "Find the opening hours of the pool.",
        "Add up the hours a week the pool is open.",
        "Write a short note about the weekly hours.",
    ]
}
ASSIGNED = {"find_opening_hours": "research", "add_up_hours": "math", "write_short_note": "writing"}
LINKED = {"add_up_hours": ["find_opening_hours"], "write_short_note": ["add_up_hours"]}


def registry_embed(texts):
    """A vector per text, one axis per kind of work: finding, sums, writing."""
    topics = [("find",), ("add", "sum"), ("writ",)]
    rows = []
    for text in texts:
        row = np.array([1.0 if any(word in text.casefold() for word in words) else 0.0 for words in topics]) + 0.01
        rows.append(row / np.linalg.norm(row))
    return np.array(rows, dtype=np.float32)


def planner(*answers: object, strategy: str = "staged") -> tuple[Planner, ScriptedModel]:
    model = ScriptedModel(responses=list(answers))  # type: ignore[arg-type]
    return Planner(model, REGISTRY, strategy=strategy, embed=registry_embed), model  # type: ignore[arg-type]


async def test_the_stages_make_a_linked_graph_with_ids_from_the_steps():
    the_planner, model = planner(STEPS, LINKED)
    drafted: list[PlannedTask] = []
    result = await the_planner.plan(GOAL, drafted=drafted.append)
    graph = result.graph
    assert [task.id for task in graph.tasks] == ["find_opening_hours", "add_up_hours", "write_short_note"]
    assert [task.capability for task in graph.tasks] == ["research", "math", "writing"]  # the nearest, unasked
    assert graph["write_short_note"].depends_on == ("add_up_hours",)
    assert graph["add_up_hours"].instruction == "Add up the hours a week the pool is open."
    assert result.usage.requests == 2 and result.repairs == []
    assert [task.id for task in drafted] == [task.id for task in graph.tasks]
    systems = {call[0].content for call in model.calls}
    assert len(systems) == 1  # one system message for every stage: a local model evaluates it once
    (system,) = systems
    assert "- research: researcher - Finds facts." in system and "Uses the web" not in system  # first sentences
    decompose, link = (call[1].content for call in model.calls)
    assert "Goal: Find the opening hours" in decompose and "no plan\nhas more than 8 steps" in decompose
    assert "- add_up_hours: Add up the hours a week the pool is open. [math]" in link


async def test_the_model_assigns_among_the_shortlist_when_it_is_longer_than_one():
    model = ScriptedModel(responses=[STEPS, ASSIGNED, LINKED])
    stages = StagedPlanner(model, {"research": "Finds facts.", "math": "Does sums.", "writing": "Writes."}, max_tasks=8)
    stages.shortlist = 3
    graph = await stages.plan(GOAL)
    assert [task.capability for task in graph.tasks] == ["research", "math", "writing"]
    assert "- add_up_hours: Add up the hours a week the pool is open." in model.calls[1][1].content


async def test_an_unknown_capability_is_never_used():
    model = ScriptedModel(responses=[STEPS, {**ASSIGNED, "add_up_hours": "astrology"}, LINKED])
    stages = StagedPlanner(model, {"research": "Finds facts.", "math": "Does sums.", "writing": "Writes."}, max_tasks=8)
    graph = await stages.plan(GOAL)
    assert {task.capability for task in graph.tasks} <= {"research", "math", "writing"}
    assert any("add_up_hours" in note for note in stages.notes)


async def test_a_link_to_a_later_or_unknown_step_is_dropped():
    bad = {"add_up_hours": ["write_short_note", "nowhere"], "write_short_note": ["add_up_hours", "find_opening_hours"]}
    the_planner, _ = planner(STEPS, bad)
    graph = (await the_planner.plan(GOAL)).graph
    assert graph["add_up_hours"].depends_on == ()
    assert graph["write_short_note"].depends_on == ("add_up_hours", "find_opening_hours")


async def test_a_decomposition_cut_off_keeps_the_steps_written_in_full():
    cut = ModelResponse(
        '{"steps": ["Find the opening hours of the pool.", "Add up the hou', "scripted", (), finish_reason="length"
    )
    the_planner, model = planner(cut)
    result = await the_planner.plan(GOAL)
    assert [task.id for task in result.graph.tasks] == ["find_opening_hours"]
    assert any("decompose answer was cut off or out of bounds" in note for note in result.repairs)
    assert len(model.calls) == 1  # one step: nothing to link


async def test_no_step_at_all_is_a_planning_error():
    cut = ModelResponse('{"steps": ["Find the ope', "scripted", (), finish_reason="length")
    the_planner, _ = planner(cut)
    with pytest.raises(PlanningError, match="no steps"):
        await the_planner.plan(GOAL)


async def test_one_capability_needs_no_assignment_call():
    model = ScriptedModel(responses=[STEPS, LINKED])
    stages = StagedPlanner(model, {"step": "Does one step of the goal."}, max_tasks=5)
    graph = await stages.plan(GOAL)
    assert {task.capability for task in graph.tasks} == {"step"} and len(model.calls) == 2


async def test_the_decomposition_is_bounded_by_max_tasks():
    many = {"steps": [f"Do part {n} of the work." for n in range(1, 7)]}
    model = ScriptedModel(responses=[many])
    stages = StagedPlanner(model, {"step": "Does one step."}, max_tasks=3)
    assert await stages.decompose(GOAL) == many["steps"][:3]
    assert any("decompose answer was cut off or out of bounds" in note for note in stages.notes)


async def test_recalled_runs_are_shown_as_decomposition_examples():
    past = PlanExample(
        "Price a bike and write a note.",
        json.dumps({"tasks": [{"id": "p", "instruction": "Find the price of the bike."}]}),
    )
    the_planner, model = planner(STEPS, LINKED)
    await the_planner.plan(GOAL, [past])
    decompose = model.calls[0][1].content
    assert "Price a bike and write a note." in decompose and "Find the price of the bike." in decompose
    assert "city library" not in decompose  # the generic example gives way to the recalled one


async def test_auto_plans_in_stages_only_for_models_that_prefer_it():
    single = {"tasks": [{"id": "all", "instruction": GOAL, "capability": "research", "depends_on": []}]}
    the_planner, model = planner(single, strategy="auto")
    assert not the_planner.staged
    assert [task.id for task in (await the_planner.plan(GOAL)).graph.tasks] == ["all"]
    model = ScriptedModel(responses=[STEPS, LINKED])
    model.plans_in_stages = True
    staged = Planner(model, REGISTRY, embed=registry_embed)
    assert staged.staged and len((await staged.plan(GOAL)).graph) == 3
    assert not Planner(model, REGISTRY, strategy="single").staged


def fake_embed(texts):
    """A vector per text: one axis per topic word, so a step is nearest the capability sharing its word."""
    topics = ["opening", "add", "note", "weather", "music"]
    rows = []
    for text in texts:
        row = np.array([1.0 if topic in text.casefold() else 0.0 for topic in topics]) + 0.01
        rows.append(row / np.linalg.norm(row))
    return np.array(rows, dtype=np.float32)


CATALOGUE = {
    "lookup": "Finds opening hours.",
    "sums": "Can add numbers.",
    "prose": "Writes a note.",
    "forecast": "Tells the weather.",
    "playlist": "Picks music.",
}


async def test_a_shortlist_of_one_assigns_the_nearest_capability_without_asking():
    model = ScriptedModel(responses=[STEPS, LINKED])
    stages = StagedPlanner(model, CATALOGUE, max_tasks=5, shortlist=1, embed=fake_embed)
    graph = await stages.plan(GOAL)
    assert [task.capability for task in graph.tasks] == ["lookup", "sums", "prose"]
    assert len(model.calls) == 2  # decompose and link: the assignment needed no call


async def test_a_shortlist_limits_each_steps_choice_to_its_nearest_capabilities():
    answer = {"find_opening_hours": "playlist", "add_up_hours": "sums", "write_short_note": "prose"}
    model = ScriptedModel(responses=[STEPS, answer, LINKED])
    stages = StagedPlanner(model, CATALOGUE, max_tasks=5, shortlist=2, embed=fake_embed)
    graph = await stages.plan(GOAL)
    # 'playlist' is not among the first step's two nearest: the answer is refused and the nearest given.
    assert graph["find_opening_hours"].capability == "lookup"
    assert [task.capability for task in graph.tasks][1:] == ["sums", "prose"]


async def test_the_first_step_is_drafted_before_the_steps_are_linked():
    drafted: list[PlannedTask] = []
    answers = iter([STEPS, LINKED])
    seen_at_call: list[int] = []

    def respond(messages):
        seen_at_call.append(len(drafted))
        return next(answers)

    the_planner = Planner(ScriptedModel(respond), REGISTRY, strategy="staged", embed=registry_embed)
    await the_planner.plan(GOAL, drafted=drafted.append)
    assert seen_at_call == [0, 1]  # the link call comes after the first step was drafted
    assert drafted[0].id == "find_opening_hours" and drafted[0].depends_on == []
    assert drafted[2].depends_on == ["add_up_hours"]


def test_the_cli_knows_the_planners_strategies():
    from typing import get_args

    from orquestra.cli_options import STRATEGIES
    from orquestra.planner import PlanningStrategy

    assert STRATEGIES == get_args(PlanningStrategy)  # the CLI repeats them so that it starts without the planner
