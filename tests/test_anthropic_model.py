from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from orquestra.exceptions import ContextLengthExceeded, InvalidOutput, ModelConfigError, ModelError, ModelUnavailable
from orquestra.models.anthropic import OUTPUT_TOOL, AnthropicModel
from orquestra.models.base import Message, Price, ToolCall, ToolSpec
from tests.fake_providers import FakeAnthropic, FakeToolCall, free_url, json_reply, raw, text, tool_calls

KEY = "sk-ant-test-0123456789SECRET"
PRICE = Price(input=3.0, output=15.0)
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
def _no_anthropic_env(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def model(server):
    return AnthropicModel("claude-test", api_key=KEY, base_url=server.base_url, price=PRICE, max_tokens=512)


async def test_plain_chat_returns_text_usage_and_cost(server, model):
    server.reply_text("4", input_tokens=1000, output_tokens=250)
    response = await model.request(CHAT)
    assert response.text == "4" and response.tool_calls == () and response.finish_reason == "stop"
    assert response.model == "anthropic:claude-test"
    usage = response.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 1000, 250)
    assert usage.cost == pytest.approx((1000 * 3.0 + 250 * 15.0) / 1_000_000)
    (sent,) = server.requests
    assert sent["model"] == "claude-test" and sent["max_tokens"] == 512
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]
    assert "tools" not in sent and not sent.get("stream")
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"  # anthropic 2.x sends the key as a bearer token


async def test_stream_yields_the_text_in_pieces(server, model):
    server.reply_text("Two plus two is four.")
    pieces = [piece async for piece in model.stream(CHAT)]
    assert len(pieces) > 1 and "".join(pieces) == "Two plus two is four."
    assert server.requests[0]["stream"] is True and server.requests[0]["system"] == "Be brief."


async def test_an_error_event_in_the_middle_of_a_stream_is_unavailable(server, model):
    server.reply(text("Two plus two is four.", stream_error="overloaded_error"))
    pieces: list[str] = []
    with pytest.raises(ModelUnavailable, match="overloaded_error"):
        async for piece in model.stream(CHAT):
            pieces.append(piece)
    assert pieces == ["Two"]


async def test_tool_calls_round_trip_with_results_merged_into_one_user_turn(server, model):
    def responder(body):
        # First call: ask for two tools at once; second call (with both results): answer with them.
        results = [
            block
            for message in body["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block["type"] == "tool_result"
        ]
        if not results:
            return tool_calls(
                FakeToolCall("calculator", {"expression": "2+2"}, "toolu_a"),
                FakeToolCall("calculator", {"expression": "3+3"}, "toolu_b"),
                text="Let me compute.",
            )
        return text(" and ".join(block["content"] for block in results))

    server.responder = responder
    first = await model.request(CHAT, tools=[CALCULATOR])
    assert first.text == "Let me compute." and first.finish_reason == "tool_calls"
    assert first.tool_calls == (
        ToolCall(id="toolu_a", name="calculator", arguments={"expression": "2+2"}),
        ToolCall(id="toolu_b", name="calculator", arguments={"expression": "3+3"}),
    )
    assert server.requests[0]["tools"] == [
        {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "input_schema": CALCULATOR.parameters,
        }
    ]
    assert "tool_choice" not in server.requests[0]
    follow_up = [
        *CHAT,
        Message("assistant", first.text, tool_calls=first.tool_calls),
        Message("tool", "4", tool_call_id="toolu_a", name="calculator"),
        Message("tool", "6", tool_call_id="toolu_b", name="calculator"),
    ]
    second = await model.request(follow_up, tools=[CALCULATOR])
    assert second.text == "4 and 6"
    sent = server.requests[1]
    assert sent["system"] == "Be brief."
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me compute."},
                {"type": "tool_use", "id": "toolu_a", "name": "calculator", "input": {"expression": "2+2"}},
                {"type": "tool_use", "id": "toolu_b", "name": "calculator", "input": {"expression": "3+3"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "4"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "6"},
            ],
        },
    ]


async def test_output_schema_forces_the_answer_tool(server, model):
    server.reply_json({"ok": True, "note": "fine"})
    schema = Verdict.model_json_schema()
    response = await model.request(CHAT, output_schema=schema)
    assert Verdict.model_validate_json(response.text) == Verdict(ok=True, note="fine")
    assert response.tool_calls == () and response.finish_reason == "stop"
    sent = server.requests[0]
    assert sent["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}
    assert sent["tools"][-1]["name"] == OUTPUT_TOOL and sent["tools"][-1]["input_schema"] == schema


async def test_output_schema_with_tools_lets_the_model_call_either(server, model):
    server.reply_json({"ok": False, "note": "no tool needed"})
    response = await model.request(CHAT, tools=[CALCULATOR], output_schema=Verdict.model_json_schema())
    assert json.loads(response.text) == {"ok": False, "note": "no tool needed"}
    sent = server.requests[0]
    assert sent["tool_choice"] == {"type": "any"}
    assert [tool["name"] for tool in sent["tools"]] == ["calculator", OUTPUT_TOOL]


async def test_a_required_tool_call_is_sent_as_tool_choice_any(server, model):
    server.reply_json({"ok": True, "note": "-"})
    server.reply_json({"ok": True, "note": "-"})
    await model.request(CHAT, tools=[CALCULATOR], tool_choice="required")
    await model.request(CHAT, tools=[CALCULATOR])
    assert server.requests[0]["tool_choice"] == {"type": "any"}
    assert "tool_choice" not in server.requests[1]


async def test_structured_output_through_instructor_tools(server, model):
    server.reply_json({"ok": True, "note": "fine"}, input_tokens=100, output_tokens=20)
    verdict, usage = await model.structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fine") and type(verdict) is Verdict
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 100, 20)
    (sent,) = server.requests
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 512
    assert sent["tool_choice"]["type"] == "tool" and sent["tool_choice"]["name"] == "Verdict"
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]


async def test_invalid_structured_answer_is_reasked_with_the_validation_error(server, model):
    server.reply_json({"ok": "maybe"}, input_tokens=100, output_tokens=20)
    server.reply_json({"ok": True, "note": "fixed"}, input_tokens=150, output_tokens=30)
    verdict, usage = await model.structured(CHAT, Verdict)
    assert verdict == Verdict(ok=True, note="fixed")
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 250, 50)
    assert usage.cost == pytest.approx((250 * 3.0 + 50 * 15.0) / 1_000_000)
    (result,) = server.requests[1]["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert "Validation Error" in result["content"] and "note" in result["content"]


async def test_structured_gives_up_after_max_retries_with_the_last_answer(server, model):
    for _ in range(3):
        server.reply_json({"ok": "maybe"}, input_tokens=10, output_tokens=2)
    with pytest.raises(InvalidOutput, match="did not write a valid verdict") as caught:
        await model.structured(CHAT, Verdict, max_retries=1)
    assert len(server.requests) == 2  # the first attempt and one retry
    assert json.loads(caught.value.raw) == {"ok": "maybe"}
    assert caught.value.usage.requests == 2 and caught.value.usage.input_tokens == 20


async def test_rate_limit_is_unavailable_with_retry_after_and_not_retried_by_the_sdk(server, model):
    server.reply_error(
        429, "Number of request tokens has exceeded your per-minute rate limit", headers={"Retry-After": "7"}
    )
    with pytest.raises(ModelUnavailable, match="429") as caught:
        await model.request(CHAT)
    assert caught.value.retry_after == 7
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_and_overload_are_unavailable(server, model, status):
    server.reply_error(status, "Overloaded")
    with pytest.raises(ModelUnavailable, match=str(status)):
        await model.request(CHAT)
    assert len(server.requests) == 1


async def test_timeout_and_refused_connection_are_unavailable(server):
    slow = AnthropicModel("claude-test", api_key=KEY, base_url=server.base_url, timeout=0.2)
    server.reply(text("too late", delay=5))
    with pytest.raises(ModelUnavailable, match="no answer within 0.2 s"):
        await slow.request(CHAT)
    assert len(server.requests) == 1
    nowhere = AnthropicModel("claude-test", api_key=KEY, base_url=free_url())
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        await nowhere.request(CHAT)


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        ('{"id": "msg_1", "content": [', "application/json", "not valid JSON"),
        ("<html>Bad gateway</html>", "text/html", "did not answer with a message"),
        ('{"unexpected": true}', "application/json", "malformed message"),
    ],
)
async def test_malformed_body_is_a_model_error(server, model, body, content_type, match):
    server.reply_raw(body, content_type=content_type)
    with pytest.raises(ModelError, match=match) as caught:
        await model.request(CHAT)
    assert not isinstance(caught.value, ModelUnavailable)


@pytest.mark.parametrize(
    "message",
    ["prompt is too long: 210000 tokens > 200000 maximum", "input length and `max_tokens` exceed context limit"],
)
async def test_context_length_400_is_context_length_exceeded(server, model, message):
    server.reply_error(400, message)
    with pytest.raises(ContextLengthExceeded, match="does not fit"):
        await model.request(CHAT)


async def test_other_client_errors_are_model_errors_with_status_and_message(server, model):
    server.reply_error(400, "messages: roles must alternate")
    with pytest.raises(ModelError, match="HTTP 400: messages: roles must alternate") as caught:
        await model.request(CHAT)
    assert not isinstance(caught.value, ModelUnavailable | ContextLengthExceeded)


async def test_refused_key_is_a_config_error_that_never_shows_the_key(server, model):
    server.reply_error(401, f"invalid x-api-key {KEY}")
    with pytest.raises(ModelConfigError, match="API key was refused") as caught:
        await model.request(CHAT)
    assert KEY not in str(caught.value) and "ANTHROPIC_API_KEY" in str(caught.value)
    assert KEY not in repr(model)


def test_missing_key_is_a_config_error():
    with pytest.raises(ModelConfigError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicModel("claude-test")


async def test_key_and_base_url_from_the_environment(server, monkeypatch):
    for name, value in server.env(api_key=KEY).items():
        monkeypatch.setenv(name, value)
    server.reply_text("from the environment")
    assert (await AnthropicModel("claude-test").request(CHAT)).text == "from the environment"
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"  # anthropic 2.x sends the key as a bearer token


async def test_provider_errors_inside_structured_map_like_requests(server, model):
    server.reply_error(429, headers={"Retry-After": "7"})
    with pytest.raises(ModelUnavailable) as caught:
        await model.structured(CHAT, Verdict)
    assert caught.value.retry_after == 7 and len(server.requests) == 1
    server.reply_error(401, f"invalid x-api-key {KEY}")
    with pytest.raises(ModelConfigError) as refused:
        await model.structured(CHAT, Verdict)
    assert KEY not in str(refused.value)


async def test_stream_errors_map_like_requests(server, model):
    server.reply_error(529, "Overloaded", headers={"Retry-After": "3"})
    with pytest.raises(ModelUnavailable) as caught:
        _ = [piece async for piece in model.stream(CHAT)]
    assert caught.value.retry_after == 3


async def test_truncated_answer_maps_the_stop_reason(server, model):
    server.reply(text("Two plus", finish_reason="max_tokens"))
    assert (await model.request(CHAT)).finish_reason == "length"


async def test_structured_answer_cut_off_or_unreadable(server, model):
    server.reply(json_reply({"ok": True, "note": "fi"}, finish_reason="max_tokens"))
    with pytest.raises(InvalidOutput, match="cut off at max_tokens=512") as caught:
        await model.structured(CHAT, Verdict)
    assert caught.value.usage.requests == 1
    server.responder = lambda body: raw('{"content": [')
    with pytest.raises(ModelError, match="not valid JSON") as unreadable:
        await model.structured(CHAT, Verdict)
    assert not isinstance(unreadable.value, InvalidOutput)
