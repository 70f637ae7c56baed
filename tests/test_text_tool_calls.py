"""A server that answers tool calls as text (as llama.cpp's does) still gets its tools run, through the real SDK."""

from __future__ import annotations

import json
from typing import Any

from orquestra import AutoTeam
from orquestra.agent import TEXT_RESULTS_NEXT
from orquestra.engine import RunStatus
from orquestra.events import Event, ResultChecked, ToolCalled
from orquestra.models.openai import OpenAIModel

from .fake_providers import FakeOpenAI, Reply, json_reply, text

PLAN = {
    "tasks": [{"id": "cost", "instruction": "Compute the cost of 12 widgets at 7 dollars each.", "capability": "math"}]
}
FENCED_CALL = 'I will use the calculator.\n```json\n{"tool": "calculator", "arguments": {"expression": "12 * 7"}}\n```'


def said(body: dict[str, Any]) -> str:
    return "\n".join(json.dumps(message.get("content", "")) for message in body["messages"])


def responder(first_answer: str, later: str):
    def respond(body: dict[str, Any]) -> Reply:
        if "planner of a team" in said(body):
            return json_reply(PLAN)
        last = body["messages"][-1]
        if last["role"] == "user" and str(last["content"]).startswith("Result of calculator:"):
            return text(later)
        return text(first_answer)

    return respond


async def run(server: FakeOpenAI, tmp_path) -> tuple[Any, list[Event]]:
    model = OpenAIModel("qwen-local", base_url=server.base_url)
    team = AutoTeam(model=model, memory=False, store=False)
    events: list[Event] = []
    result = await team.arun("How much do 12 widgets at 7 dollars cost?", subscribers=[events.append])
    return result, events


async def test_a_fenced_call_in_text_runs_the_tool_and_its_result_is_the_answer(tmp_path):
    with FakeOpenAI(responder(FENCED_CALL, "12 widgets cost 84 dollars.")) as server:
        result, events = await run(server, tmp_path)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["cost"] == "12 widgets cost 84 dollars."
    called = [event for event in events if isinstance(event, ToolCalled)]
    assert [(event.tool, event.result) for event in called] == [("calculator", "84")]
    # The call went back as text the server can read, not as tool messages it may not take.
    agent_requests = [body for body in server.requests if "planner of a team" not in said(body)]
    follow_up = agent_requests[1]["messages"]
    assert follow_up[-2] == {"role": "assistant", "content": FENCED_CALL}
    assert follow_up[-1] == {"role": "user", "content": f"Result of calculator: 84\n{TEXT_RESULTS_NEXT}"}


async def test_a_writer_that_changes_the_tools_number_fails_its_check_and_the_run_says_so(tmp_path):
    with FakeOpenAI(responder(FENCED_CALL, "12 widgets cost 96 dollars.")) as server:
        result, events = await run(server, tmp_path)
    assert result.status is not RunStatus.SUCCEEDED
    verdicts = [event for event in events if isinstance(event, ResultChecked)]
    assert verdicts and not any(event.passed for event in verdicts)
    assert "tool_numbers: calculator computed 84, but the answer states 12, 96" in verdicts[0].failures[0]


async def test_an_unexecuted_call_never_becomes_the_output(tmp_path):
    call = '{"tool": "calculator", "arguments": {"expression": "12 * 7"}}'
    with FakeOpenAI(responder(call, call)) as server:  # the model never stops calling
        result, events = await run(server, tmp_path)
    assert "cost" not in result.outputs or "calculator" not in str(result.outputs["cost"])
    assert result.status is not RunStatus.SUCCEEDED
