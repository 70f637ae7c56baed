"""What only the OpenAI adapter does: the chat completions format, keyless compatible servers, context windows.

What it shares with the Anthropic adapter is checked in `test_provider_contract.py`.
"""

from __future__ import annotations

import pytest

from orquestra.exceptions import InvalidOutput, ModelConfigError
from orquestra.models.base import Message, ToolCall
from orquestra.models.openai import NO_KEY, OpenAIModel
from tests.fake_providers import FakeOpenAI
from tests.sdk_providers import CALCULATOR, CHAT, OPENAI, Verdict

KEY = OPENAI.key


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    for name in OPENAI.environment:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def model(server):
    return OPENAI.model(server.base_url)


async def test_a_chat_is_sent_as_chat_completion_messages(server, model):
    server.reply_text("4")
    await model.request(CHAT)
    (sent,) = server.requests
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert "response_format" not in sent


async def test_tools_are_functions_and_their_results_tool_messages(server, model):
    server.reply_text("-")
    server.reply_text("The answer is 4.")
    await model.request(CHAT, tools=[CALCULATOR])
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
    call = ToolCall(id="call_7", name="calculator", arguments={"expression": "2+2"})
    follow_up = [
        *CHAT,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "4", tool_call_id="call_7", name="calculator"),
    ]
    await model.request(follow_up, tools=[CALCULATOR])
    assistant, result = server.requests[1]["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"] == [
        {"id": "call_7", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+2"}'}}
    ]
    assert result == {"role": "tool", "content": "4", "tool_call_id": "call_7"}


async def test_tool_arguments_that_are_not_json_are_invalid_output(server, model):
    server.reply_tool_call("calculator", "{not json")
    with pytest.raises(InvalidOutput, match="calculator") as caught:
        await model.request(CHAT, tools=[CALCULATOR])
    assert caught.value.raw == "{not json"


async def test_output_schema_is_sent_as_a_json_schema_response_format(server, model):
    server.reply_json({"ok": True, "note": "fine"})
    schema = Verdict.model_json_schema()
    await model.request(CHAT, output_schema=schema)
    assert server.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


async def test_structured_output_forces_a_function_with_every_field_required(server, model):
    server.reply_json({"ok": True, "note": "fine"})
    await model.structured(CHAT, Verdict)
    (sent,) = server.requests
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Verdict"}}
    assert sorted(sent["tools"][0]["function"]["parameters"]["required"]) == ["note", "ok"]


def test_a_missing_key_points_to_a_compatible_server_as_well():
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY is not set.*OPENAI_BASE_URL"):
        OpenAIModel("gpt-test")


async def test_base_url_from_the_environment_needs_no_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    model = OpenAIModel("llama3.2")
    server.reply_text("local answer")
    assert (await model.request(CHAT)).text == "local answer"
    assert server.requests[0]["model"] == "llama3.2"
    assert server.headers[0]["authorization"] == f"Bearer {NO_KEY}"


def test_context_window_defaults():
    assert OpenAIModel("gpt-5-mini", api_key=KEY).context_window == 128_000
    assert OpenAIModel("llama3.2", base_url="http://127.0.0.1:1/v1").context_window == 32_768
    assert OpenAIModel("gpt-5-mini", api_key=KEY, context_window=400_000).context_window == 400_000
