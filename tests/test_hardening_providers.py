"""Hardening of providers and runs: transient faults retried everywhere (9), every ending kept (10), the budget
checked before every attempt (11), nothing left open after a run (12).

How the OpenAI and Anthropic adapters meet each kind of fault, and the budget, is in `test_provider_contract.py`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from orquestra import RunStatus
from orquestra.budget import Budget
from orquestra.budget_meter import BudgetMeter, MeteredModel
from orquestra.events import Event, ModelRetrying
from orquestra.exceptions import (
    BudgetExceeded,
    InvalidOutput,
    MalformedResponse,
    ModelConfigError,
    ModelError,
    ModelUnavailable,
    ReaskRefused,
    TransientError,
)
from orquestra.exit_codes import exit_code
from orquestra.models import Message, ModelResponse, RetryingModel, ScriptedModel
from orquestra.models.openai import OpenAIModel
from orquestra.store import open_store
from orquestra.team import AutoTeam
from tests.fake_providers import FakeOpenAI, text
from tests.test_fault_injection import openai_team
from tests.test_team import team_brain

CHAT = [Message("system", "Judge."), Message("user", "Is 2+2 four?")]
GOAL = "How much do our widgets cost in total?"


class Verdict(BaseModel):
    ok: bool
    note: str


def quick(model: Any, retries: int = 3) -> RetryingModel:
    return RetryingModel(model, retries=retries, initial_delay=0.001, max_delay=0.002)


def failing(times: int, fault: type[TransientError], then: Any) -> ScriptedModel:
    """A scripted model whose first `times` calls raise `fault`, then answers `then`."""
    calls = 0

    def answer(messages: Sequence[Message]) -> Any:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise fault(f"flaky: failure {calls}")
        return then

    return ScriptedModel(answer, name="flaky")


# ------------------------------------------------------------------ 9: every transient fault is retried


@pytest.mark.parametrize("fault", [ModelUnavailable, MalformedResponse, TransientError])
async def test_a_transient_failure_in_a_structured_call_stays_transient_and_is_retried(fault):
    model = failing(2, fault, {"ok": True, "note": "fine"})
    with pytest.raises(fault):  # not InvalidOutput: the base structured hands provider failures on
        await model.structured(CHAT, Verdict)
    verdict, usage = await quick(failing(2, fault, {"ok": True, "note": "fine"})).structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fine") and usage.requests == 1


async def test_an_answer_with_a_lone_surrogate_is_stored_and_quoted_on():
    # A JSON escape ("\ud800") makes a character no UTF-8 encoder takes: SQLite's, or the next request's.
    def respond(body: dict[str, Any]) -> Any:
        if "Your task (price)" in str(body["messages"][-1]["content"]):
            return text("A widget costs 7. \ud800")
        return openai_team(body)

    with FakeOpenAI(respond) as server:
        model = quick(OpenAIModel("gpt-test", api_key="sk-test-key-0001", base_url=server.base_url))
        result = await AutoTeam(model=model, memory=False).arun(GOAL)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["price"] == "A widget costs 7. \ufffd"
    with open_store() as store:
        assert store.get(result.run.run_id).run.status == "succeeded"


def brain_failing_first(step: str):
    """The team's brain, failing the first call of `step` ('planner' or 'final answer') with a 503."""
    failed = False

    def brain(messages: Sequence[Message]) -> Any:
        nonlocal failed
        if f"{step} of a team" in messages[0].content and not failed:
            failed = True
            raise ModelUnavailable("brain: HTTP 503: Service Unavailable")
        return team_brain(messages)

    return brain


@pytest.mark.parametrize("step", ["planner", "final answer"])
async def test_a_team_retries_its_own_model_and_shows_each_retry_as_an_event(step):
    events: list[Event] = []
    team = AutoTeam(model=quick(ScriptedModel(brain_failing_first(step), name="brain")), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    assert result.status is RunStatus.SUCCEEDED
    (retry,) = [event for event in events if isinstance(event, ModelRetrying)]
    assert (retry.run_id, retry.model, retry.attempt) == (result.run.run_id, "brain", 1)
    assert "HTTP 503" in retry.error
    with open_store() as store:
        logged = [event.type for event in store.get(result.run.run_id).events]
    assert "ModelRetrying" in logged  # planning's retries too: planning is part of the run's log


async def test_a_task_call_retry_is_an_event_of_the_run_log():
    calls = 0

    def brain(messages: Sequence[Message]) -> Any:
        nonlocal calls
        if "Your task (price)" in messages[-1].content and not calls:
            calls += 1
            raise MalformedResponse("brain: the server's answer is not valid JSON")
        return team_brain(messages)

    team = AutoTeam(model=quick(ScriptedModel(brain, name="brain")), memory=False)
    result = await team.arun(GOAL)
    with open_store() as store:
        (retry,) = [event for event in store.get(result.run.run_id).events if event.type == "ModelRetrying"]
    assert retry.payload["model"] == "brain" and "not valid JSON" in retry.payload["error"]


# ------------------------------------------------------------------ 10: every ending keeps what was done


def brain_failing_at_the_answer(failure: Exception):
    def brain(messages: Sequence[Message]) -> Any:
        if "final answer of a team" in messages[0].content:
            raise failure
        return team_brain(messages)

    return brain


@pytest.mark.parametrize(
    "failure",
    [
        ModelError("brain: HTTP 400: the answer step broke"),
        ModelConfigError("brain: the API key was refused (HTTP 401); check OPENAI_API_KEY"),
    ],
)
async def test_a_failure_at_the_answer_step_keeps_the_run_and_says_why(failure):
    team = AutoTeam(model=ScriptedModel(brain_failing_at_the_answer(failure), name="brain"), memory=False)
    result = await team.arun(GOAL)
    assert result.status is RunStatus.FAILED and exit_code(result.status) == 1
    assert result.run.reason == f"the answer step failed: {failure}"
    assert result.outputs == {"price": "A widget costs 7.", "count": "We need 12 widgets.", "total": "The total is 84."}
    assert result.answer.startswith(f"No answer was written (the answer step failed: {failure}). The results so far:")
    assert "[total] The total is 84." in result.answer
    assert result.usage.requests == 5  # plan, price, count, total (tool call and answer); the answer step spent none
    with open_store() as store:
        stored = store.get(result.run.run_id).run
    assert (stored.status, stored.reason, stored.answer) == ("failed", result.run.reason, result.answer)
    assert stored.usage is not None and stored.usage["requests"] == 5 and stored.tasks_done == 3


async def test_a_run_cancelled_while_the_answer_is_written_is_recorded_as_cancelled():
    writing = asyncio.Event()

    async def slow_answer() -> None:
        writing.set()
        await asyncio.sleep(30)

    class Brain(ScriptedModel):
        async def request(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
            if "final answer of a team" in messages[0].content:
                await slow_answer()
            return await super().request(messages, **options)

    team = AutoTeam(model=Brain(team_brain, name="brain"), memory=False)
    running = asyncio.ensure_future(team.arun(GOAL))
    await asyncio.wait_for(writing.wait(), 10)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    with open_store() as store:
        (stored,) = store.list(1)
    assert (stored.status, stored.reason) == ("cancelled", "cancelled while the answer was written")
    assert stored.usage is not None and stored.usage["requests"] == 5 and stored.tasks_done == 3


# ------------------------------------------------------------------ 11: the budget is checked before every attempt


INVALID_PLAN = {"tasks": [{"id": "a", "instruction": "word " * 150, "capability": "research", "depends_on": ["a"]}]}


async def test_no_reask_starts_once_the_budget_is_spent():
    model = ScriptedModel(lambda messages: {"ok": "not a boolean", "note": "word " * 150}, name="wordy")
    meter = BudgetMeter(Budget(max_tokens=100))
    with pytest.raises(ReaskRefused, match="tokens budget is spent") as caught:
        await MeteredModel(model, meter).structured(CHAT, Verdict, max_retries=2)
    assert len(model.calls) == 1  # the re-ask was refused before it started
    assert meter.usage.requests == 1 and meter.usage.total_tokens == caught.value.usage.total_tokens
    assert isinstance(caught.value, InvalidOutput | BudgetExceeded) and "word" in (caught.value.raw or "")


async def test_a_retry_after_the_time_budget_is_spent_does_not_start():
    model = RetryingModel(failing(5, ModelUnavailable, "late"), retries=5, initial_delay=0.2, max_delay=0.2)
    meter = BudgetMeter(Budget(max_seconds=0.1))
    with pytest.raises(BudgetExceeded, match="time budget is spent"):
        await MeteredModel(model, meter).request(CHAT)
    assert len(model.wrapped.calls) == 1


async def test_a_planner_whose_reask_the_budget_refuses_and_whose_answer_is_no_plan_is_out_of_budget():
    planner = ScriptedModel(lambda messages: {"tasks": "not a list"}, name="planner")
    team = AutoTeam(model=planner, memory=False, store=False, budget=Budget(max_tokens=5))
    with pytest.raises(BudgetExceeded, match="not a plan: planner did not write a valid plan, and the tokens budget"):
        await team.plan("do a thing")
    assert len(planner.calls) == 1


async def test_a_planner_whose_reask_the_budget_refuses_repairs_its_first_answer():
    planner = ScriptedModel(lambda messages: INVALID_PLAN, name="planner")
    team = AutoTeam(model=planner, memory=False, store=False, budget=Budget(max_tokens=100))
    plan = await team.plan("do a thing")
    assert len(planner.calls) == 1
    assert [task.id for task in plan.graph.tasks] == ["a"] and plan.repairs


# ------------------------------------------------------------------ 12: nothing stays open after a run


def open_files() -> list[str]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            pass  # closed while we looked
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.timeout(120)
async def test_two_hundred_teams_leave_no_descriptor_open():
    async def one_run() -> None:
        team = AutoTeam(model=ScriptedModel(team_brain, name="brain"), memory=False)  # the run store on
        assert (await team.arun(GOAL)).status is RunStatus.SUCCEEDED

    await one_run()  # the first run imports and caches what every run shares
    before = open_files()
    for _ in range(200):
        await one_run()
    assert len(open_files()) == len(before)
    assert not [path for path in open_files() if "runs.sqlite3" in path]
    with open_store() as store:
        assert store.count() == 201


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.timeout(120)
async def test_teams_with_memory_close_it_after_each_run():
    async def one_run() -> None:
        team = AutoTeam(model=ScriptedModel(team_brain, name="brain"))  # the Chroma memory and the run store
        assert (await team.arun(GOAL)).status is RunStatus.SUCCEEDED

    await one_run()
    before = len(open_files())
    for _ in range(20):
        await one_run()
    # Chroma's engine closes its SQLite connections in its own time: a few may still be closing.
    assert len(open_files()) - before <= 3
    assert not [path for path in open_files() if "runs.sqlite3" in path]


async def test_a_team_given_a_store_leaves_it_open(tmp_path):
    with open_store(tmp_path) as store:
        team = AutoTeam(model=ScriptedModel(team_brain, name="brain"), memory=False, store=store)
        await team.arun(GOAL)
        await team.arun(GOAL)
        assert store.count() == 2  # still usable: the caller's to close
