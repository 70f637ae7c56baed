"""Fault injection: short team runs complete while 30% of the model calls fail transiently, in every way.

Each suite runs 100 team runs (a plan, three tasks, a tool call and the answer) against a provider that fails
30% of the requests: the fake OpenAI and Anthropic servers send HTTP 429, 500 and 503, drop the connection,
answer with truncated JSON, an HTML page or a body of the wrong shape, or answer too late for the client's
timeout; a model of one's own raises each of Orquestra's transient errors. Every run must succeed, and every
kind of fault must show in the run's `ModelRetrying` events. The models retry quickly here (tiny backoff), so
a suite takes seconds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from orquestra import RunStatus
from orquestra.events import Event, ModelRetrying
from orquestra.exceptions import MalformedResponse, ModelUnavailable, TransientError
from orquestra.models import Message, Model, ModelResponse, RetryingModel, ScriptedModel
from orquestra.team import AutoTeam
from tests.fake_providers import FAULTS, Faults, Reply, json_reply, text, tool_call
from tests.sdk_providers import ANTHROPIC, OPENAI
from tests.test_team import PLAN, team_brain

RUNS = 100
FAULT_RATE = 0.3
GOAL = "How much do our widgets cost in total?"
TIMEOUT = 0.5
"""The client's timeout. Short, but not so short that a busy machine's ordinary answer misses it eleven times
in a row."""
NEVER = 60.0
"""How late a "timeout" fault answers: past the whole test (the server stops waiting when the test ends), so
that a busy machine whose client notices its timeout late still never reads the late answer."""
CONCURRENT_RUNS = 10


def quick(model: Model) -> RetryingModel:
    """`model` with a tiny backoff and the default retries: enough for 30% faults (2 in a million calls fail)."""
    return RetryingModel(model, initial_delay=0.001, max_delay=0.005)


def answer_as_the_team(system: str, last: str, tool_result: bool) -> Reply:
    """The answer `tests.test_team.team_brain` gives, as a fake server's reply."""
    if "planner of a team" in system:
        return json_reply(PLAN)
    if "final answer of a team" in system:
        return text("Total cost is 84 [total], from [price] and [count].")
    if tool_result:
        return text(f"The total is {last}.")
    if "Your task (price)" in last:
        return text("A widget costs 7.")
    if "Your task (count)" in last:
        return text("We need 12 widgets.")
    if "Your task (total)" in last:
        return tool_call("calculator", {"expression": "7*12"})
    raise AssertionError(f"unexpected prompt: {last[:200]}")


def openai_team(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    last = messages[-1]
    return answer_as_the_team(messages[0]["content"], str(last["content"]), last["role"] == "tool")


def anthropic_team(body: dict[str, Any]) -> Reply:
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "".join(block.get("text", "") for block in system)
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return answer_as_the_team(system, content, False)
    results = [block for block in content if block.get("type") == "tool_result"]
    if results:
        return answer_as_the_team(system, str(results[-1]["content"]), True)
    return answer_as_the_team(system, "".join(block.get("text", "") for block in content), False)


async def run_all(make_team: Callable[[], AutoTeam]) -> tuple[Counter[str], list[ModelRetrying]]:
    """`RUNS` runs, `CONCURRENT_RUNS` at a time: how each ended, and the `ModelRetrying` events of all."""
    endings: Counter[str] = Counter()
    retries: list[ModelRetrying] = []

    def count(event: Event) -> None:
        if isinstance(event, ModelRetrying):
            retries.append(event)

    async def one() -> None:
        result = await make_team().arun(GOAL, subscribers=[count])
        endings[result.status.value] += 1
        assert result.outputs == {
            "price": "A widget costs 7.",
            "count": "We need 12 widgets.",
            "total": "The total is 84.",
        }
        assert result.answer == "Total cost is 84 [total], from [price] and [count]."

    for _ in range(RUNS // CONCURRENT_RUNS):
        await asyncio.gather(*(one() for _ in range(CONCURRENT_RUNS)))
    return endings, retries


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("provider", "team", "seed"),
    [(OPENAI, openai_team, 11), (ANTHROPIC, anthropic_team, 12)],
    ids=[OPENAI.name, ANTHROPIC.name],
)
async def test_every_run_completes_with_a_provider_failing_30_percent_of_requests(provider, team, seed):
    faults = Faults(team, rate=FAULT_RATE, seed=seed, slow=NEVER)
    with provider.fake(faults) as server:
        model = quick(provider.model(server.base_url, timeout=TIMEOUT))
        endings, retries = await run_all(lambda: AutoTeam(model=model, memory=False, store=False))
    assert endings == {RunStatus.SUCCEEDED.value: RUNS}
    assert set(faults.injected) == set(FAULTS)
    faulted = sum(faults.injected.values())
    assert faulted / (faulted + faults.answered) == pytest.approx(FAULT_RATE, abs=0.05)
    assert_one_retry_per_fault(retries, faults.injected)


SYMPTOMS = {
    "429": "HTTP 429",
    "500": "HTTP 500",
    "503": "HTTP 503",
    "dropped connection": "cannot reach",
    "truncated JSON": "not valid JSON",
    "HTML page": "did not answer with a",
    "wrong shape": "malformed",
    "timeout": "no answer within",
}
"""What a retry event says for each kind of fault."""


def assert_one_retry_per_fault(retries: list[ModelRetrying], injected: Counter[str]) -> None:
    """Each fault cost an attempt, and each retry is an event saying what went wrong.

    There may be more retries than faults: on a busy machine a real answer, or a fault, may come after the
    client's short timeout, and is then retried as a timeout.
    """
    assert len(retries) >= sum(injected.values())
    for kind in injected:
        assert any(SYMPTOMS[kind] in retry.error for retry in retries), kind
    assert all(retry.attempt >= 1 and retry.delay >= 0 and retry.model.endswith("-test") for retry in retries)


TRANSIENT: Sequence[Callable[[str], TransientError]] = (
    lambda message: ModelUnavailable(f"own: HTTP 503: {message}"),
    lambda message: ModelUnavailable(f"own: HTTP 429: {message}", retry_after=0.0),
    lambda message: MalformedResponse(f"own: the server's answer is not valid JSON ({message})"),
    lambda message: TransientError(f"own: connection reset ({message})"),
)


async def test_every_run_completes_with_a_model_of_ones_own_failing_30_percent_of_calls():
    """A custom model that raises: the team retries it through the same wrapper as the providers."""
    draws = random.Random(13)
    raised: Counter[str] = Counter()

    def flaky(messages: Sequence[Message]) -> str | dict[str, Any] | ModelResponse:
        if draws.random() < FAULT_RATE:
            error = draws.choice(TRANSIENT)("injected")
            raised[type(error).__name__] += 1
            raise error
        return team_brain(messages)

    model = quick(ScriptedModel(flaky, name="own"))  # the team would wrap it alike, with a longer backoff
    endings, retries = await run_all(lambda: AutoTeam(model=model, memory=False, store=False))
    assert endings == {RunStatus.SUCCEEDED.value: RUNS}
    assert set(raised) == {"ModelUnavailable", "MalformedResponse", "TransientError"}
    assert len(retries) == sum(raised.values())
    assert {retry.model for retry in retries} == {"own"}


def test_a_team_retries_a_model_of_its_own_through_the_retry_wrapper():
    team = AutoTeam(model=ScriptedModel(team_brain, name="own"), memory=False, store=False)
    chain, seen = team.model(), []
    while chain is not None:
        seen.append(type(chain).__name__)
        chain = getattr(chain, "wrapped", None)
    assert seen == ["RedactedModel", "RetryingModel", "ScriptedModel"]
