"""AutoTeam as an application would use it: sync, async, streamed, and several teams at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orquestra import AutoTeam, Budget, RunStatus, TeamResult, UserError
from orquestra.events import Planned, PlanningStarted, RunFinished, TaskSucceeded, TeamFinished
from orquestra.models import Message, ScriptedModel


def brain(topic: str):
    def answer(messages: Sequence[Message]) -> object:
        system, last = messages[0].content, messages[-1].content
        if "planner of a team" in system:
            return {
                "tasks": [
                    {
                        "id": "facts",
                        "instruction": f"Find facts on {topic}",
                        "capability": "research",
                        "depends_on": [],
                    },
                    {
                        "id": "text",
                        "instruction": f"Write about {topic}",
                        "capability": "writing",
                        "depends_on": ["facts"],
                    },
                ]
            }
        if "final answer of a team" in system:
            return f"All about {topic} [text]"
        assert topic in last, "a team must only see its own goal"
        return f"{topic}: done"

    return answer


def team(topic: str, **options) -> AutoTeam:
    return AutoTeam(model=ScriptedModel(brain(topic), name=f"brain-{topic}", latency=0.01), memory=False, **options)


def test_run_blocks_and_returns_everything_an_app_needs():
    result = team("otters").run("Tell me about otters")
    assert isinstance(result, TeamResult)
    assert result.status is RunStatus.SUCCEEDED
    assert result.answer == "All about otters [text]"
    assert result.outputs == {"facts": "otters: done", "text": "otters: done"}
    assert [t.id for t in result.graph.tasks] == ["facts", "text"]
    assert result.usage.requests == 4 and result.replans == []


async def test_run_inside_an_event_loop_says_to_await_arun():
    with pytest.raises(UserError, match=r"use `await team.arun\(goal\)`"):
        team("otters").run("Tell me about otters")


async def test_stream_yields_typed_events_ending_with_the_result():
    events = [event async for event in team("otters").stream("Tell me about otters")]
    assert isinstance(events[0], PlanningStarted)
    planned = next(event for event in events if isinstance(event, Planned))
    assert [t.id for t in planned.graph.tasks] == ["facts", "text"]
    assert isinstance(events[-1], TeamFinished) and events[-1].result.answer == "All about otters [text]"
    assert [e.task_id for e in events if isinstance(e, TaskSucceeded)] == ["facts", "text"]
    assert any(isinstance(e, RunFinished) for e in events)
    assert len({e.run_id for e in events}) == 1


async def test_leaving_the_stream_early_cancels_the_run():
    stream = team("otters").stream("Tell me about otters")
    async for event in stream:
        if isinstance(event, TaskSucceeded):
            break
    await stream.aclose()
    await asyncio.sleep(0.05)  # nothing left running: no 'text' task finishing in the background
    assert all(not task.get_name().startswith("drive") or task.done() for task in asyncio.all_tasks())


async def test_several_teams_and_runs_at_once_do_not_interfere():
    topics = ["otters", "comets", "tea", "ferns"]
    results = await asyncio.gather(*(team(topic).arun(f"Tell me about {topic}") for topic in topics))
    for topic, result in zip(topics, results, strict=True):
        assert result.answer == f"All about {topic} [text]"
        assert set(result.outputs.values()) == {f"{topic}: done"}
    assert len({result.run.run_id for result in results}) == 4
    shared = team("otters")
    twice = await asyncio.gather(shared.arun("Tell me about otters"), shared.arun("More on otters"))
    assert twice[0].run.run_id != twice[1].run.run_id
    assert all(result.status is RunStatus.SUCCEEDED for result in twice)


def test_budget_through_the_api():
    result = team("otters", budget=Budget(max_tokens=60)).run("Tell me about otters")
    assert result.status is RunStatus.OUT_OF_BUDGET and "budget" in result.run.reason
