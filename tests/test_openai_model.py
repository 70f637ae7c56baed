from __future__ import annotations

import email.utils
import time

import pytest
from pydantic import BaseModel

from orquestra.exceptions import ContextLengthExceeded, InvalidOutput, ModelConfigError, ModelError, ModelUnavailable
from orquestra.models.base import Message, Price, ToolCall, ToolSpec
from orquestra.models.openai import NO_KEY, OpenAIModel
from tests.fake_providers import FakeOpenAI, free_url, json_reply, raw, text, tool_call

KEY = "sk-test-0123456789SECRET"
PRICE = Price(input=2.0, output=8.0)
CHAT = [Message("system", "Be brief."), Message("user", "What is 2+2?")]
CALCULATOR = ToolSpec(
    "calculator",
    "Evaluate an arithmetic expression.",
    {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


class Verdict(BaseModel):
    ok: bool
    note: str


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def model(server):
    return OpenAIModel("gpt-test", api_key=KEY, base_url=server.base_url, price=PRICE)


async def test_plain_chat_returns_text_usage_and_cost(server, model):
    server.reply_text("4", input_tokens=1000, output_tokens=250)
    response = await model.request(CHAT)
    assert response.text == "4" and response.tool_calls == () and response.finish_reason == "stop"
    assert response.model == "openai:gpt-test"
    usage = response.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 1000, 250)
    assert usage.cost == pytest.approx((1000 * 2.0 + 250 * 8.0) / 1_000_000)
    (sent,) = server.requests
    assert sent["model"] == "gpt-test"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert "tools" not in sent and "response_format" not in sent and not sent.get("stream")
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"


async def test_stream_yields_the_text_in_pieces(server, model):
    server.reply_text("Two plus two is four.")
    pieces = [piece async for piece in model.stream(CHAT)]
    assert len(pieces) > 1 and "".join(pieces) == "Two plus two is four."
    assert server.requests[0]["stream"] is True


async def test_tool_call_round_trip(server, model):
    def responder(body):
        # First call: ask for the tool; second call (with its result): answer with it.
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return tool_call("calculator", {"expression": "2+2"}, id="call_7")
        return text(f"The answer is {results[0]['content']}.")

    server.responder = responder
    first = await model.request(CHAT, tools=[CALCULATOR])
    assert first.tool_calls == (ToolCall(id="call_7", name="calculator", arguments={"expression": "2+2"}),)
    assert first.finish_reason == "tool_calls" and first.text == ""
    assert server.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate an arithmetic expression.",
                "parameters": CALCULATOR.parameters,
            },
        }
    ]
    follow_up = [
        *CHAT,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "4", tool_call_id="call_7", name="calculator"),
    ]
    second = await model.request(follow_up, tools=[CALCULATOR])
    assert second.text == "The answer is 4."
    assistant, result = server.requests[1]["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"] == [
        {"id": "call_7", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+2"}'}}
    ]
    assert result == {"role": "tool", "content": "4", "tool_call_id": "call_7"}


async def test_a_required_tool_call_is_sent_as_tool_choice_required(server, model):
    server.responder = lambda body: tool_call("calculator", {"expression": "7*12"}, id="call_1")
    await model.request(CHAT, tools=[CALCULATOR], tool_choice="required")
    await model.request(CHAT, tools=[CALCULATOR])
    assert server.requests[0]["tool_choice"] == "required"
    assert "tool_choice" not in server.requests[1]  # "auto" is the API's own default: nothing is sent


async def test_tool_arguments_that_are_not_json_are_invalid_output(server, model):
    server.reply_tool_call("calculator", "{not json")
    with pytest.raises(InvalidOutput, match="calculator") as caught:
        await model.request(CHAT, tools=[CALCULATOR])
    assert caught.value.raw == "{not json"


async def test_output_schema_is_sent_as_a_json_schema_response_format(server, model):
    server.reply_json({"ok": True, "note": "fine"})
    schema = Verdict.model_json_schema()
    response = await model.request(CHAT, output_schema=schema)
    assert Verdict.model_validate_json(response.text) == Verdict(ok=True, note="fine")
    assert server.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


async def test_structured_output_through_instructor_tools(server, model):
    server.reply_json({"ok": True, "note": "fine"}, input_tokens=100, output_tokens=20)
    verdict, usage = await model.structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fine") and type(verdict) is Verdict
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 100, 20)
    (sent,) = server.requests
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Verdict"}}
    assert sorted(sent["tools"][0]["function"]["parameters"]["required"]) == ["note", "ok"]


async def test_invalid_structured_answer_is_reasked_with_the_validation_error(server, model):
    server.reply_json({"ok": "maybe"}, input_tokens=100, output_tokens=20)
    server.reply_json({"ok": True, "note": "fixed"}, input_tokens=150, output_tokens=30)
    verdict, usage = await model.structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fixed")
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 250, 50)
    assert usage.cost == pytest.approx((250 * 2.0 + 50 * 8.0) / 1_000_000)
    reask = server.requests[1]["messages"][-1]
    assert reask["role"] == "tool" and "Validation Error" in reask["content"] and "note" in reask["content"]


async def test_structured_gives_up_after_max_retries_with_the_last_answer(server, model):
    for _ in range(3):
        server.reply_json({"ok": "maybe"}, input_tokens=10, output_tokens=2)
    with pytest.raises(InvalidOutput, match="did not write a valid verdict") as caught:
        await model.structured(CHAT, Verdict, max_retries=1)
    assert len(server.requests) == 2  # the first attempt and one retry
    assert caught.value.raw == '{"ok": "maybe"}'
    assert caught.value.usage.requests == 2 and caught.value.usage.input_tokens == 20


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "1500", "Retry-After": "2"}, 1.5)],
)
async def test_rate_limit_is_unavailable_with_retry_after_and_not_retried_by_the_sdk(server, model, headers, seconds):
    server.reply_error(429, "Rate limit reached for requests", headers=headers)
    with pytest.raises(ModelUnavailable, match="429") as caught:
        await model.request(CHAT)
    assert caught.value.retry_after == seconds
    assert len(server.requests) == 1


async def test_retry_after_as_an_http_date(server, model):
    server.reply_error(429, headers={"Retry-After": email.utils.formatdate(time.time() + 60, usegmt=True)})
    with pytest.raises(ModelUnavailable) as caught:
        await model.request(CHAT)
    assert 50 < caught.value.retry_after <= 61


async def test_server_error_is_unavailable(server, model):
    server.reply_error(500, "The server had an error while processing your request.")
    with pytest.raises(ModelUnavailable, match="500") as caught:
        await model.request(CHAT)
    assert caught.value.retry_after is None
    assert len(server.requests) == 1


async def test_timeout_and_refused_connection_are_unavailable(server):
    slow = OpenAIModel("gpt-test", api_key=KEY, base_url=server.base_url, timeout=0.2)
    server.reply(text("too late", delay=5))
    with pytest.raises(ModelUnavailable, match="no answer within 0.2 s"):
        await slow.request(CHAT)
    assert len(server.requests) == 1
    nowhere = OpenAIModel("gpt-test", api_key=KEY, base_url=free_url() + "/v1")
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        await nowhere.request(CHAT)


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        ('{"id": "chatcmpl-1", "choices": [', "application/json", "not valid JSON"),
        ("<html>Bad gateway</html>", "text/html", "did not answer with a chat completion"),
        ('{"unexpected": true}', "application/json", "malformed chat completion"),
    ],
)
async def test_malformed_body_is_a_model_error(server, model, body, content_type, match):
    server.reply_raw(body, content_type=content_type)
    with pytest.raises(ModelError, match=match) as caught:
        await model.request(CHAT)
    assert not isinstance(caught.value, ModelUnavailable)


async def test_context_length_400_is_context_length_exceeded(server, model):
    server.reply_error(
        400,
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
    )
    with pytest.raises(ContextLengthExceeded, match="maximum context length"):
        await model.request(CHAT)


async def test_other_client_errors_are_model_errors_with_status_and_message(server, model):
    server.reply_error(404, "The model `gpt-test` does not exist")
    with pytest.raises(ModelError, match="HTTP 404: The model `gpt-test` does not exist") as caught:
        await model.request(CHAT)
    assert not isinstance(caught.value, ModelUnavailable | ContextLengthExceeded)


async def test_refused_key_is_a_config_error_that_never_shows_the_key(server, model):
    server.reply_error(401, f"Incorrect API key provided: {KEY}. You can find your API key at ...")
    with pytest.raises(ModelConfigError, match="API key was refused") as caught:
        await model.request(CHAT)
    assert KEY not in str(caught.value) and "sk-test" not in str(caught.value)
    assert "OPENAI_API_KEY" in str(caught.value)
    assert KEY not in repr(model)


def test_missing_key_is_a_config_error():
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY is not set.*OPENAI_BASE_URL"):
        OpenAIModel("gpt-test")


async def test_base_url_from_the_environment_needs_no_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    model = OpenAIModel("llama3.2")
    server.reply_text("local answer")
    assert (await model.request(CHAT)).text == "local answer"
    assert server.requests[0]["model"] == "llama3.2"
    assert server.headers[0]["authorization"] == f"Bearer {NO_KEY}"


async def test_provider_errors_inside_structured_map_like_requests(server, model):
    server.reply_error(429, headers={"Retry-After": "7"})
    with pytest.raises(ModelUnavailable) as caught:
        await model.structured(CHAT, Verdict)
    assert caught.value.retry_after == 7 and len(server.requests) == 1
    server.reply_error(401, f"Incorrect API key provided: {KEY}")
    with pytest.raises(ModelConfigError) as refused:
        await model.structured(CHAT, Verdict)
    assert KEY not in str(refused.value)


async def test_stream_errors_map_like_requests(server, model):
    server.reply_error(429, headers={"Retry-After": "3"})
    with pytest.raises(ModelUnavailable) as caught:
        _ = [piece async for piece in model.stream(CHAT)]
    assert caught.value.retry_after == 3


def test_context_window_defaults():
    assert OpenAIModel("gpt-5-mini", api_key=KEY).context_window == 128_000
    assert OpenAIModel("llama3.2", base_url="http://127.0.0.1:1/v1").context_window == 32_768
    assert OpenAIModel("gpt-5-mini", api_key=KEY, context_window=400_000).context_window == 400_000


async def test_structured_answer_cut_off_or_unreadable(server, model):
    server.reply(json_reply({"ok": True, "note": "fi"}, finish_reason="length"))
    with pytest.raises(InvalidOutput, match="cut off") as caught:
        await model.structured(CHAT, Verdict)
    assert caught.value.usage.requests == 1
    server.responder = lambda body: raw('{"choices": [')
    with pytest.raises(ModelError, match="not valid JSON") as unreadable:
        await model.structured(CHAT, Verdict)
    assert not isinstance(unreadable.value, InvalidOutput)
