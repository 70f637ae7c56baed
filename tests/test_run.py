"""A run is one object: checked before anything runs, then planned, executed and finished, and stoppable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orquestra import AutoTeam, Run, RunStatus, Task, TaskGraph, UserError
from orquestra.events import Event, Planned, PlanningStarted, RunStarted, TaskSucceeded
from orquestra.memory_run_store import InMemoryRunStore
from orquestra.models import Message, ScriptedModel

GOAL = "Write two notes"
TWO = TaskGraph(
    tasks=(
        Task(id="first", instruction="Write the first note", capability="writing"),
        Task(id="second", instruction="Write the second note", capability="writing", depends_on=("first",)),
    )
)


def team(answer=None) -> AutoTeam:
    def default(messages: Sequence[Message]) -> str | dict:
        if "planner of a team" in messages[0].content:
            return {"tasks": [task.model_dump(exclude_defaults=True) for task in TWO.tasks]}
        return "A note."

    return AutoTeam(model=ScriptedModel(answer or default, name="notes"), memory=False, store=False)


def test_a_graph_no_agent_can_run_is_refused_before_anything_runs() -> None:
    juggling = TaskGraph(tasks=(Task(id="j", instruction="Juggle", capability="juggling"),))
    with pytest.raises(UserError, match=r"^plan\.yaml: task 'j' needs capability 'juggling'"):
        team().prepare(graph=juggling, source="plan.yaml")
    with pytest.raises(UserError, match="unknown model 'martian:big'"):
        AutoTeam(model="martian:big", memory=False, store=False).prepare(graph=TWO)


async def test_every_step_reports_to_the_runs_subscribers_under_one_run_id() -> None:
    run = team().prepare(GOAL)
    events: list[Event] = []
    run.subscribe(events.append)
    plan = await run.plan_goal()
    assert [task.id for task in plan.graph.tasks] == ["first", "second"] and run.graph == plan.graph
    await run.execute()
    result = await run.finish()
    assert result.run.status is RunStatus.SUCCEEDED and result.run.run_id == run.run_id
    kinds = [type(event) for event in events]
    assert kinds.index(PlanningStarted) < kinds.index(Planned) < kinds.index(RunStarted)
    assert {event.run_id for event in events} == {run.run_id}


async def test_an_edited_graph_is_checked_before_it_replaces_the_plan() -> None:
    run = team().prepare(GOAL)
    await run.plan_goal()
    with pytest.raises(UserError, match="needs capability 'juggling'"):
        run.use(TaskGraph(tasks=(Task(id="j", instruction="Juggle", capability="juggling"),)))
    assert run.graph is not None and len(run.graph) == 2
    one = TaskGraph(tasks=(TWO.tasks[0],))
    run.use(one)
    result = await run.complete()
    assert list(result.outputs) == ["first"]


async def test_cancelling_while_planning_stops_the_planning() -> None:
    runs: list[Run] = []

    def answer(messages: Sequence[Message]) -> str:
        runs[0].cancel("stopped by the test")
        return "not a plan yet"

    runs.append(team(answer).prepare(GOAL))
    with pytest.raises(asyncio.CancelledError):
        await runs[0].plan_goal()


async def test_cancelling_a_streamed_plan_before_its_first_task_starts_stops_the_planning() -> None:
    runs: list[Run] = []

    def answer(messages: Sequence[Message]) -> str:
        runs[0].cancel("stopped by the test")
        return "not a plan yet"

    runs.append(team(answer).prepare(GOAL, stream=True))
    with pytest.raises(asyncio.CancelledError):
        await runs[0].execute()


async def test_cancelling_while_executing_ends_the_run_cancelled_with_its_finished_results() -> None:
    run = team().prepare(GOAL, TWO)

    def stop_after_the_first(event: Event) -> None:
        if isinstance(event, TaskSucceeded) and event.task_id == "first":
            run.cancel("stopped by the test")

    run.subscribe(stop_after_the_first)
    result = await run.complete()
    assert result.run.status is RunStatus.CANCELLED and "stopped by the test" in result.run.reason
    assert list(result.outputs) == ["first"]


async def test_cancelling_while_the_answer_is_written_keeps_every_result_and_gives_no_answer() -> None:
    runs: list[Run] = []

    def answer(messages: Sequence[Message]) -> str:
        if "final answer of a team" in messages[0].content:
            runs[0].cancel("stopped by the test")
        return "A note."

    runs.append(team(answer).prepare(GOAL, TWO))
    result = await runs[0].complete()
    assert result.run.status is RunStatus.CANCELLED
    assert result.run.reason.endswith("stopped by the test while the answer was written")
    assert result.answer == "" and set(result.outputs) == {"first", "second"}


async def test_a_run_is_finished_only_after_it_is_executed() -> None:
    with pytest.raises(UserError, match="call execute"):
        await team().prepare(GOAL, TWO).finish()


async def test_the_run_store_records_planning_as_part_of_the_run_and_a_planning_failure_with_its_reason() -> None:
    store = InMemoryRunStore()
    recorded = AutoTeam(model=ScriptedModel(_notes, name="notes"), memory=False, store=store)
    result = await recorded.arun(GOAL)
    kinds = [event.type for event in store.get(result.run.run_id).events]
    assert kinds[0] == "PlanningStarted" and kinds.index("Planned") < kinds.index("RunStarted")

    def no_plan(messages: Sequence[Message]) -> str:
        return "not a plan"

    failing = AutoTeam(model=ScriptedModel(no_plan, name="none"), memory=False, store=store)
    run = failing.prepare(GOAL)
    with pytest.raises(UserError):
        await run.complete()
    stored = store.get(run.run_id).run
    assert stored.status == "failed" and stored.reason.startswith("planning failed: ")

    # Planned by a model that exists, for agents whose model does not: the plan fails its check.
    planner = {"planner": ScriptedModel(_notes, name="planner")}
    agents_unmade = AutoTeam(model="martian:big", planner_model="planner", models=planner, memory=False, store=store)
    unrunnable = agents_unmade.prepare(GOAL)
    with pytest.raises(UserError, match="the plan: .*unknown model 'martian:big'"):
        await unrunnable.plan_goal()
    stored = store.get(unrunnable.run_id).run
    assert stored.status == "failed" and "unknown model 'martian:big'" in stored.reason

    unrecorded = AutoTeam(model=ScriptedModel(_notes, name="notes"), memory=False, store=store).prepare(
        GOAL, record=False
    )
    await unrecorded.plan_goal()
    assert store.count() == 3  # a plan that is not a run yet leaves no record


def _notes(messages: Sequence[Message]) -> str | dict:
    if "planner of a team" in messages[0].content:
        return {"tasks": [task.model_dump(exclude_defaults=True) for task in TWO.tasks]}
    return "A note."
