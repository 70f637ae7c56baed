"""What only the Anthropic adapter does: the Messages API's turns and blocks, its answer tool, stream errors.

What it shares with the OpenAI adapter is checked in `test_provider_contract.py`.
"""

from __future__ import annotations

import json

import pytest

from orquestra.exceptions import ModelUnavailable
from orquestra.models.anthropic import OUTPUT_TOOL
from orquestra.models.base import Message, ToolCall
from tests.fake_providers import FakeAnthropic, text
from tests.sdk_providers import ANTHROPIC, CALCULATOR, CHAT, Verdict


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch):
    for name in ANTHROPIC.environment:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def model(server):
    return ANTHROPIC.model(server.base_url)


async def test_the_system_prompt_is_a_parameter_and_each_turn_a_list_of_blocks(server, model):
    server.reply_text("4")
    server.reply_text("Two plus two is four.")
    await model.request(CHAT)
    _ = [piece async for piece in model.stream(CHAT)]
    answered, streamed = server.requests
    assert answered["max_tokens"] == 512 and answered["system"] == "Be brief."
    assert answered["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]
    assert streamed["system"] == "Be brief."


async def test_an_error_event_in_the_middle_of_a_stream_is_unavailable(server, model):
    server.reply(text("Two plus two is four.", stream_error="overloaded_error"))
    pieces: list[str] = []
    with pytest.raises(ModelUnavailable, match="overloaded_error"):
        async for piece in model.stream(CHAT):
            pieces.append(piece)
    assert pieces == ["Two"]


async def test_tool_calls_are_blocks_and_their_results_travel_in_one_user_turn(server, model):
    server.reply_text("-")
    server.reply_text("4 and 6")
    await model.request(CHAT, tools=[CALCULATOR])
    assert server.requests[0]["tools"] == [
        {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "input_schema": CALCULATOR.parameters,
        }
    ]
    assert "tool_choice" not in server.requests[0]
    calls = (
        ToolCall(id="toolu_a", name="calculator", arguments={"expression": "2+2"}),
        ToolCall(id="toolu_b", name="calculator", arguments={"expression": "3+3"}),
    )
    follow_up = [
        *CHAT,
        Message("assistant", "Let me compute.", tool_calls=calls),
        Message("tool", "4", tool_call_id="toolu_a", name="calculator"),
        Message("tool", "6", tool_call_id="toolu_b", name="calculator"),
    ]
    await model.request(follow_up, tools=[CALCULATOR])
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
    await model.request(CHAT, output_schema=schema)
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


async def test_structured_output_sends_the_system_prompt_and_max_tokens_and_forces_one_tool(server, model):
    server.reply_json({"ok": True, "note": "fine"})
    await model.structured(CHAT, Verdict)
    (sent,) = server.requests
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 512
    assert sent["tool_choice"]["type"] == "tool" and sent["tool_choice"]["name"] == "Verdict"
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]


async def test_a_reask_is_a_tool_result_marked_as_an_error(server, model):
    server.reply_json({"ok": "maybe"})
    server.reply_json({"ok": True, "note": "fixed"})
    await model.structured(CHAT, Verdict)
    (result,) = server.requests[1]["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["is_error"] is True
