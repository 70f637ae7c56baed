"""What every SDK adapter does the same, checked for OpenAI and Anthropic alike against their fake servers.

Answers, tool calls, JSON and structured output, usage and cost; every HTTP and transport failure as the same
Orquestra error; retries, re-asks and the budget. How each provider's API is spoken on the wire is in
`test_openai_model.py` and `test_anthropic_model.py`.
"""

from __future__ import annotations

import email.utils
import time

import pytest

from orquestra.budget import Budget
from orquestra.budget_meter import BudgetMeter, MeteredModel
from orquestra.exceptions import (
    ContextLengthExceeded,
    InvalidOutput,
    MalformedResponse,
    ModelConfigError,
    ModelError,
    ModelUnavailable,
    ReaskRefused,
    TransientError,
)
from orquestra.models import RetryingModel
from orquestra.models.base import Message, ToolCall
from tests.fake_providers import FakeToolCall, Reply, dropped, error, json_reply, raw, text, tool_call, tool_calls
from tests.sdk_providers import CALCULATOR, CHAT, PROVIDERS, UNREADABLE_KINDS, Provider, Verdict


@pytest.fixture(params=PROVIDERS, ids=lambda provider: provider.name)
def provider(request, monkeypatch) -> Provider:
    for name in request.param.environment:
        monkeypatch.delenv(name, raising=False)
    return request.param


@pytest.fixture
def server(provider):
    with provider.fake() as fake:
        yield fake


@pytest.fixture
def model(provider, server):
    return provider.model(server.base_url)


def cost(provider: Provider, input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * provider.price.input + output_tokens * provider.price.output) / 1_000_000


# ------------------------------------------------------------------ answers


async def test_a_text_answer_comes_with_its_usage_and_cost(provider, server, model):
    server.reply_text("4", input_tokens=1000, output_tokens=250)
    response = await model.request(CHAT)
    assert response.text == "4" and response.tool_calls == () and response.finish_reason == "stop"
    assert response.model == f"{provider.name}:{provider.model_name}"
    usage = response.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 1000, 250)
    assert usage.cost == pytest.approx(cost(provider, 1000, 250))
    (sent,) = server.requests
    assert sent["model"] == provider.model_name
    assert "tools" not in sent and "tool_choice" not in sent and not sent.get("stream")
    assert server.headers[0]["authorization"] == f"Bearer {provider.key}"  # anthropic 2.x sends a bearer token too


def test_the_model_says_where_it_is_served(provider, server, model):
    assert model.describe() == f"{provider.name}:{provider.model_name} at {server.base_url}"


async def test_stream_yields_the_text_in_pieces(server, model):
    server.reply_text("Two plus two is four.")
    pieces = [piece async for piece in model.stream(CHAT)]
    assert len(pieces) > 1 and "".join(pieces) == "Two plus two is four."
    assert server.requests[0]["stream"] is True


async def test_tool_calls_and_their_results_make_a_round_trip(server, model):
    def responder(body):
        # First call: ask for two tools at once; second call (with both results): answer with them.
        results = server.tool_results(body)
        if not results:
            return tool_calls(
                FakeToolCall("calculator", {"expression": "2+2"}, "call_a"),
                FakeToolCall("calculator", {"expression": "3+3"}, "call_b"),
                text="Let me compute.",
            )
        return text(" and ".join(results))

    server.responder = responder
    first = await model.request(CHAT, tools=[CALCULATOR])
    assert first.text == "Let me compute." and first.finish_reason == "tool_calls"
    assert first.tool_calls == (
        ToolCall(id="call_a", name="calculator", arguments={"expression": "2+2"}),
        ToolCall(id="call_b", name="calculator", arguments={"expression": "3+3"}),
    )
    follow_up = [
        *CHAT,
        Message("assistant", first.text, tool_calls=first.tool_calls),
        Message("tool", "4", tool_call_id="call_a", name="calculator"),
        Message("tool", "6", tool_call_id="call_b", name="calculator"),
    ]
    second = await model.request(follow_up, tools=[CALCULATOR])
    assert second.text == "4 and 6"


async def test_a_required_tool_call_is_sent_as_the_apis_required_choice(provider, server, model):
    server.responder = lambda body: tool_call("calculator", {"expression": "7*12"}, id="call_1")
    required = await model.request(CHAT, tools=[CALCULATOR], tool_choice="required")
    await model.request(CHAT, tools=[CALCULATOR])
    assert server.requests[0]["tool_choice"] == provider.required_tool_choice
    assert "tool_choice" not in server.requests[1]  # "auto" is the API's own default: nothing is sent
    assert required.text == "" and required.finish_reason == "tool_calls"
    assert required.tool_calls == (ToolCall(id="call_1", name="calculator", arguments={"expression": "7*12"}),)


async def test_an_output_schema_makes_the_answer_json(server, model):
    server.reply_json({"ok": True, "note": "fine"})
    response = await model.request(CHAT, output_schema=Verdict.model_json_schema())
    assert Verdict.model_validate_json(response.text) == Verdict(ok=True, note="fine")
    assert response.tool_calls == () and response.finish_reason == "stop"


async def test_an_answer_cut_off_at_the_token_limit_says_so(provider, server, model):
    server.reply(text("Two plus", finish_reason=provider.length_reason))
    assert (await model.request(CHAT)).finish_reason == "length"


# ------------------------------------------------------------------ structured output


async def test_structured_output_through_instructor_tools(server, model):
    server.reply_json({"ok": True, "note": "fine"}, input_tokens=100, output_tokens=20)
    verdict, usage = await model.structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fine") and type(verdict) is Verdict
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 100, 20)
    (sent,) = server.requests
    assert server.forced_tool(sent) == "Verdict"


async def test_an_invalid_structured_answer_is_reasked_with_the_validation_error(provider, server, model):
    server.reply_json({"ok": "maybe"}, input_tokens=100, output_tokens=20)
    server.reply_json({"ok": True, "note": "fixed"}, input_tokens=150, output_tokens=30)
    verdict, usage = await model.structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fixed")
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 250, 50)
    assert usage.cost == pytest.approx(cost(provider, 250, 50))
    (reask,) = server.tool_results(server.requests[1])
    assert "Validation Error" in reask and "note" in reask


async def test_structured_gives_up_after_max_retries_with_the_last_answer(server, model):
    for _ in range(3):
        server.reply_json({"ok": "maybe"}, input_tokens=10, output_tokens=2)
    with pytest.raises(InvalidOutput, match="did not write a valid verdict") as caught:
        await model.structured(CHAT, Verdict, max_retries=1)
    assert len(server.requests) == 2  # the first attempt and one retry
    assert caught.value.raw == '{"ok": "maybe"}'
    assert caught.value.usage.requests == 2 and caught.value.usage.input_tokens == 20


async def test_a_structured_answer_cut_off_is_invalid_output_and_an_unreadable_one_is_not(provider, server, model):
    server.reply(json_reply({"ok": True, "note": "fi"}, finish_reason=provider.length_reason))
    with pytest.raises(InvalidOutput, match=provider.cut_off) as caught:
        await model.structured(CHAT, Verdict)
    assert caught.value.usage.requests == 1
    server.responder = lambda body: raw(provider.unreadable["truncated JSON"].body)
    with pytest.raises(ModelError, match="not valid JSON") as unreadable:
        await model.structured(CHAT, Verdict)
    assert not isinstance(unreadable.value, InvalidOutput)


async def test_provider_errors_inside_structured_map_like_requests(provider, server, model):
    server.reply_error(429, headers={"Retry-After": "7"})
    with pytest.raises(ModelUnavailable) as caught:
        await model.structured(CHAT, Verdict)
    assert caught.value.retry_after == 7 and len(server.requests) == 1
    server.reply_error(401, provider.key_refused.format(key=provider.key))
    with pytest.raises(ModelConfigError) as refused:
        await model.structured(CHAT, Verdict)
    assert provider.key not in str(refused.value)


async def test_a_reask_is_refused_once_the_first_answer_spent_the_budget(server, model):
    for _ in range(3):
        server.reply(json_reply({"ok": "no"}, input_tokens=300, output_tokens=100))
    meter = BudgetMeter(Budget(max_tokens=100))
    with pytest.raises(ReaskRefused):
        await MeteredModel(model, meter).structured(CHAT, Verdict, max_retries=2)
    assert len(server.requests) == 1 and meter.usage.total_tokens == 400


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("message", "headers", "seconds"),
    [
        ("Rate limit reached for requests", {"Retry-After": "7"}, 7.0),
        ("Rate limit reached for requests", {"retry-after-ms": "1500", "Retry-After": "2"}, 1.5),
        # A 429 that speaks of tokens exceeded is a rate limit, not a request too long for the model.
        ("Number of request tokens has exceeded your per-minute rate limit", {"Retry-After": "7"}, 7.0),
    ],
)
async def test_a_rate_limit_is_unavailable_with_retry_after_and_not_retried_by_the_sdk(
    server, model, message, headers, seconds
):
    server.reply_error(429, message, headers=headers)
    with pytest.raises(ModelUnavailable, match="429") as caught:
        await model.request(CHAT)
    assert caught.value.retry_after == seconds
    assert len(server.requests) == 1


async def test_retry_after_as_an_http_date(server, model):
    server.reply_error(429, headers={"Retry-After": email.utils.formatdate(time.time() + 60, usegmt=True)})
    with pytest.raises(ModelUnavailable) as caught:
        await model.request(CHAT)
    assert 50 < caught.value.retry_after <= 61


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_and_overload_are_unavailable(server, model, status):
    server.reply_error(status, "The server had an error while processing your request.")
    with pytest.raises(ModelUnavailable, match=str(status)) as caught:
        await model.request(CHAT)
    assert caught.value.retry_after is None
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [429, 529])
async def test_stream_errors_map_like_requests(server, model, status):
    server.reply_error(status, "Overloaded", headers={"Retry-After": "3"})
    with pytest.raises(ModelUnavailable) as caught:
        _ = [piece async for piece in model.stream(CHAT)]
    assert caught.value.retry_after == 3


async def test_a_timeout_is_unavailable(provider, server):
    slow = provider.model(server.base_url, timeout=0.2)
    server.reply(text("too late", delay=5))
    with pytest.raises(ModelUnavailable, match="no answer within 0.2 s"):
        await slow.request(CHAT)
    assert len(server.requests) == 1


async def test_a_refused_connection_is_unavailable(provider):
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        await provider.model(provider.nowhere()).request(CHAT)


@pytest.mark.parametrize("kind", UNREADABLE_KINDS)
async def test_an_unreadable_body_is_a_transient_model_error_with_no_sdk_error_chained(provider, server, model, kind):
    unreadable = provider.unreadable[kind]
    server.reply_raw(unreadable.body, content_type=unreadable.content_type)
    with pytest.raises(MalformedResponse, match=unreadable.says) as caught:
        await model.request(CHAT)
    assert isinstance(caught.value, ModelError) and isinstance(caught.value, TransientError)
    assert not isinstance(caught.value, ModelUnavailable)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit",
    ],
)
async def test_a_context_length_400_is_context_length_exceeded(server, model, message):
    server.reply_error(400, message)
    with pytest.raises(ContextLengthExceeded, match="does not fit") as caught:
        await model.request(CHAT)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("status", "message"), [(404, "The model `gpt-test` does not exist"), (400, "messages: roles must alternate")]
)
async def test_other_client_errors_are_model_errors_with_status_and_message(server, model, status, message):
    server.reply_error(status, message)
    with pytest.raises(ModelError, match=f"HTTP {status}: {message}") as caught:
        await model.request(CHAT)
    assert not isinstance(caught.value, ModelUnavailable | ContextLengthExceeded)


async def test_a_refused_key_is_a_config_error_that_never_shows_the_key(provider, server, model):
    server.reply_error(401, provider.key_refused.format(key=provider.key))
    with pytest.raises(ModelConfigError, match="API key was refused") as caught:
        await model.request(CHAT)
    message = str(caught.value)
    assert provider.key not in message and provider.key[:7] not in message  # not even a masked part of it
    assert provider.adapter.key_variable in message
    assert provider.key not in repr(model)


def test_a_missing_key_is_a_config_error(provider):
    with pytest.raises(ModelConfigError, match=f"{provider.adapter.key_variable} is not set"):
        provider.adapter(provider.model_name)


async def test_key_and_base_url_from_the_environment(provider, server, monkeypatch):
    for name, value in server.env(api_key=provider.key).items():
        monkeypatch.setenv(name, value)
    server.reply_text("from the environment")
    assert (await provider.adapter(provider.model_name).request(CHAT)).text == "from the environment"
    assert server.headers[0]["authorization"] == f"Bearer {provider.key}"


# ------------------------------------------------------------------ retries


def fault(provider: Provider, kind: str) -> Reply:
    """One reply of each kind of transient failure."""
    if kind in provider.unreadable:
        unreadable = provider.unreadable[kind]
        return raw(unreadable.body, content_type=unreadable.content_type)
    return {
        "dropped": dropped(),
        "503": error(503, "Service Unavailable"),
        "429": error(429, "slow down", headers={"Retry-After": "0"}),
        "timeout": text("too late", delay=2),
    }[kind]


@pytest.mark.parametrize("kind", [*UNREADABLE_KINDS, "dropped", "503", "429", "timeout"])
async def test_every_kind_of_fault_is_retried_in_requests_and_structured_calls(provider, server, kind):
    model = RetryingModel(provider.model(server.base_url, timeout=0.2), retries=3, initial_delay=0.001, max_delay=0.002)
    server.reply(fault(provider, kind), text("4"))
    assert (await model.request(CHAT)).text == "4"
    server.reply(fault(provider, kind), json_reply({"ok": True, "note": "four"}))
    verdict, _ = await model.structured(CHAT, Verdict)
    assert verdict.ok and len(server.requests) == 4
