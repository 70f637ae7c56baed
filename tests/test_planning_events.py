"""Planning shows signs of life: started, each task as the model writes it, then the checked plan."""

from __future__ import annotations

import json

from orquestra import AutoTeam
from orquestra.events import Event, Planned, PlanningStarted, TaskDrafted
from orquestra.models import ScriptedModel
from orquestra.planner import PlannedTask, _DraftWatcher

PLAN = {
    "tasks": [
        {"id": "price", "instruction": "Find the price of a widget.", "capability": "research"},
        {"id": "total", "instruction": "Compute the cost of 12.", "capability": "math", "depends_on": ["price"]},
        {"id": "note", "instruction": "Write one sentence.", "capability": "writing", "depends_on": ["total"]},
    ]
}


def test_each_task_is_reported_once_when_complete():
    seen: list[PlannedTask] = []
    watch = _DraftWatcher(seen.append)
    text = json.dumps(PLAN)
    cut = text.index('"instruction": "Compute')
    watch(text[:cut])  # the second task is still being written: only the first is complete
    assert [task.id for task in seen] == ["price"]
    watch(text[: text.index('{"id": "note"')])
    assert [task.id for task in seen] == ["price", "total"]
    watch(text)
    watch(text)  # seen again (a re-ask, say): nothing is reported twice
    assert [task.id for task in seen] == ["price", "total", "note"]
    assert seen[1].instruction == "Compute the cost of 12."


def test_a_task_cut_after_one_of_its_dependencies_is_not_reported():
    """Text ending in a comma inside a task's `depends_on` is not the end of the task."""
    seen: list[PlannedTask] = []
    plan = {"tasks": [*PLAN["tasks"][:2], {**PLAN["tasks"][2], "depends_on": ["price", "total"]}]}
    text = json.dumps(plan)
    watch = _DraftWatcher(seen.append)
    watch(text[: text.rindex('"price",') + len('"price",')])  # inside the last task's depends_on
    assert [task.id for task in seen] == ["price", "total"]
    watch(text)
    assert seen[-1].id == "note" and seen[-1].depends_on == ["price", "total"]


def test_a_restarted_answer_is_announced_and_its_tasks_are_not_reported_twice():
    seen: list[PlannedTask] = []
    restarts: list[bool] = []
    watch = _DraftWatcher(seen.append, lambda: restarts.append(True))
    text = json.dumps(PLAN)
    watch(text)
    watch(text[:40])  # does not extend what was seen: a re-asked answer
    watch(text)
    assert restarts == [True] and [task.id for task in seen] == ["price", "total", "note"]


def test_a_half_written_instruction_is_not_reported():
    seen: list[PlannedTask] = []
    text = json.dumps(PLAN)
    _DraftWatcher(seen.append)(text[: text.index("of a widget")])
    assert seen == []


async def test_the_team_emits_planning_events_in_order(tmp_path):
    def answer(messages):
        return PLAN

    team = AutoTeam(model=ScriptedModel(answer), memory=False, store=False)
    events: list[Event] = []
    result = await team.plan("Price 12 widgets and write a note", subscribers=[events.append], run_id="r1")
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["PlanningStarted", "TaskDrafted", "TaskDrafted", "TaskDrafted", "Planned"]
    assert isinstance(events[0], PlanningStarted) and events[0].model == "scripted"
    drafted = [event for event in events if isinstance(event, TaskDrafted)]
    assert [(e.task_id, e.capability) for e in drafted] == [
        ("price", "research"),
        ("total", "math"),
        ("note", "writing"),
    ]
    assert isinstance(events[-1], Planned) and events[-1].graph == result.graph
    assert all(event.run_id == "r1" for event in events)


def test_orquestra_plan_prints_each_task_as_it_is_drafted(monkeypatch):
    from typer.testing import CliRunner

    from orquestra import cli

    def scripted_team(*args, **options):
        return AutoTeam(model=ScriptedModel(lambda messages: PLAN), memory=False, store=False)

    monkeypatch.setattr(cli, "_team", scripted_team)
    result = CliRunner().invoke(cli.app, ["plan", "Price 12 widgets and write a note"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("drafted")]
    assert lines == [
        "drafted price (research) Find the price of a widget.",
        "drafted total (math) Compute the cost of 12.",
        "drafted note (writing) Write one sentence.",
    ]
    assert result.output.index("drafted note") < result.output.index("plan: 3 tasks")
