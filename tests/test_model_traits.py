"""What a model class declares about its provider, and what reads it: retries, and requests at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orquestra import RunStatus
from orquestra.cli_eval import build_model
from orquestra.config import ProviderSettings, load_settings
from orquestra.models import Message, Model, ModelResponse, RetryingModel, ScriptedModel
from orquestra.models.anthropic import AnthropicModel
from orquestra.models.base import request_slot
from orquestra.models.local import LocalModel
from orquestra.models.openai import OpenAIModel
from orquestra.models.redacting import RedactedModel
from orquestra.registry import AgentCard, Registry
from orquestra.team import AutoTeam
from orquestra.weights import QWEN_05B


@pytest.mark.parametrize(
    ("model_class", "needs_retries", "max_concurrent_requests"),
    [(OpenAIModel, True, None), (AnthropicModel, True, None), (LocalModel, False, 1), (ScriptedModel, False, None)],
)
def test_each_adapter_declares_its_providers_traits(model_class, needs_retries, max_concurrent_requests):
    assert model_class.needs_retries is needs_retries
    assert model_class.max_concurrent_requests == max_concurrent_requests


def test_a_wrapper_has_the_traits_of_the_model_it_wraps():
    wrapped = RedactedModel(RetryingModel(LocalModel()))
    assert (wrapped.needs_retries, wrapped.max_concurrent_requests) == (False, 1)


def test_every_embedded_model_shares_one_slot_through_its_wrappers():
    default = request_slot(LocalModel())
    small = request_slot(RedactedModel(RetryingModel(LocalModel(weights=QWEN_05B))))
    assert default is not None and default == small and default[1] == 1
    assert request_slot(ScriptedModel()) is None


def test_an_eval_retries_the_models_whose_requests_may_fail_in_passing(tmp_path, monkeypatch):
    monkeypatch.setenv("ORQUESTRA_HOME", str(tmp_path))
    settings = load_settings()
    keyed = type(settings)(home=settings.home, openai=ProviderSettings(api_key="sk-traits-test-0123456789"))
    assert isinstance(build_model("openai:gpt-5-mini", keyed), RetryingModel)
    assert not isinstance(build_model("scripted", settings), RetryingModel)


class InFlight:
    """How many requests are being answered at once, and the most there ever were."""

    def __init__(self) -> None:
        self.now = self.most = 0


class Slow(Model):
    """Answers each request after a moment, counting the requests in flight."""

    def __init__(self, name: str, gauge: InFlight) -> None:
        self.name = name
        self.gauge = gauge

    async def request(self, messages, *, tools=(), output_schema=None, tool_choice="auto") -> ModelResponse:
        self.gauge.now += 1
        self.gauge.most = max(self.gauge.most, self.gauge.now)
        await asyncio.sleep(0.05)
        self.gauge.now -= 1
        return ModelResponse(text="done", model=self.name)


class OneAtATime(Slow):
    """Like `Slow`, from a class that answers one request at a time, whichever of its models is asked."""

    max_concurrent_requests = 1


def brain(messages: Sequence[Message]) -> dict | str:
    if "planner of a team" in messages[0].content:
        tasks = [{"id": "a", "instruction": "Do a", "capability": "alpha", "depends_on": []}]
        tasks.append({"id": "b", "instruction": "Do b", "capability": "beta", "depends_on": []})
        return {"tasks": tasks}
    return "Both are done [a] [b]."


@pytest.mark.parametrize(("model_class", "most_at_once"), [(OneAtATime, 1), (Slow, 2)])
async def test_a_team_gives_a_limited_model_class_one_slot(model_class, most_at_once):
    gauge = InFlight()
    registry = Registry(
        [
            AgentCard(name="first", description="Does a.", capabilities=("alpha",), model="one:first"),
            AgentCard(name="second", description="Does b.", capabilities=("beta",), model="one:second"),
        ]
    )
    models = {spec: model_class(spec, gauge) for spec in ("one:first", "one:second")}
    team = AutoTeam(registry=registry, model=ScriptedModel(brain, name="brain"), models=models, memory=False)
    result = await team.arun("Do a and b.")
    assert result.run.status is RunStatus.SUCCEEDED
    assert gauge.most == most_at_once
