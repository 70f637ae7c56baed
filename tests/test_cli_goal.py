"""`orquestra plan` and `orquestra run "goal"` end to end, with hosted providers faked on loopback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .fake_providers import FakeAnthropic, FakeOpenAI, Reply, error, json_reply, text, tool_call
from .helpers import orquestra

PLAN = {
    "tasks": [
        {"id": "price", "instruction": "Find the price of a widget", "capability": "research", "depends_on": []},
        {"id": "count", "instruction": "Find how many widgets we need", "capability": "research", "depends_on": []},
        {"id": "total", "instruction": "Compute the total", "capability": "math", "depends_on": ["price", "count"]},
    ]
}
GOAL = "How much do our widgets cost?"


def prompt_text(body: dict[str, Any]) -> str:
    """Everything the request says, as one string (OpenAI or Anthropic shape)."""
    parts = [json.dumps(body.get("system", ""))]
    for message in body.get("messages", []):
        parts.append(json.dumps(message.get("content", "")))
    return "\n".join(parts)


def team_responder(plan: dict[str, Any]):
    def respond(body: dict[str, Any]) -> Reply:
        said = prompt_text(body)
        if "planner of a team" in said:
            return json_reply(plan)
        if "final answer of a team" in said:
            return text("It costs 84 dollars [total].", input_tokens=300, output_tokens=20)
        last = body["messages"][-1]
        answered = last["role"] == "tool" or "tool_result" in json.dumps(last.get("content"))
        if "Your task (total)" in said and not answered:
            return tool_call("calculator", {"expression": "7 * 12"})  # a computed figure comes from a tool
        for task_id, answer in (("price", "7 dollars"), ("count", "12 widgets"), ("total", "84 dollars")):
            if f"Your task ({task_id})" in said:
                return text(answer)
        return text("?")

    return respond


def test_run_a_goal_with_openai_plans_runs_and_answers(tmp_path):
    registry = tmp_path / "reg"
    registry.mkdir()
    (registry / "models.yaml").write_text("prices:\n  openai:gpt-test: {input: 1.0, output: 2.0}\n")
    saved = tmp_path / "result.json"
    with FakeOpenAI(team_responder(PLAN)) as server:
        result = orquestra(
            "run",
            GOAL,
            "--model",
            "openai:gpt-test",
            "--registry",
            str(registry),
            "--save",
            str(saved),
            env=server.env(api_key="sk-secret-value-123"),
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "model: openai:gpt-test at http://127.0.0.1:" in out and "(flag)" in out
    assert "plan: 3 tasks" in out and "run succeeded" in out and "3 succeeded" in out
    assert "It costs 84 dollars [total]." in out
    assert "cost: $0.00" in out and "cost: $0.0000" not in out
    assert "sk-secret-value-123" not in out + result.stderr
    data = json.loads(saved.read_text())
    assert data["answer"] == "It costs 84 dollars [total]."
    assert data["outputs"] == {"price": "7 dollars", "count": "12 widgets", "total": "84 dollars"}
    planning = server.requests[0]
    assert planning["model"] == "gpt-test" and planning.get("tools"), "instructor plans through tool calling"
    assert len(server.requests) == 6  # plan, three tasks (the total with its calculator call), the answer
    assert all(request["model"] == "gpt-test" for request in server.requests)


def test_run_a_goal_with_anthropic(tmp_path):
    with FakeAnthropic(team_responder(PLAN)) as server:
        result = orquestra("run", GOAL, "-m", "anthropic:claude-test", env=server.env())
    assert result.returncode == 0, result.stderr
    assert "It costs 84 dollars [total]." in result.stdout
    assert server.requests[0]["model"] == "claude-test"


def test_plan_saves_a_graph_that_run_accepts(tmp_path):
    plan_file = tmp_path / "plan.yaml"
    with FakeOpenAI(team_responder(PLAN)) as server:
        planned = orquestra("plan", GOAL, "-m", "openai:gpt-test", "--save", str(plan_file), env=server.env())
        assert planned.returncode == 0, planned.stderr
        assert "price" in planned.stdout and f"orquestra run {plan_file}" in planned.stdout
        ran = orquestra("run", str(plan_file), "-m", "openai:gpt-test", env=server.env())
    assert ran.returncode == 0, ran.stderr
    assert "3 succeeded" in ran.stdout
    assert "answer" not in ran.stdout.split("succeeded")[-1]  # a graph file has no goal to answer


def test_a_cyclic_plan_is_repaired_and_says_so(tmp_path):
    cyclic = json.loads(json.dumps(PLAN))
    cyclic["tasks"][0]["depends_on"] = ["total"]
    with FakeOpenAI(team_responder(cyclic)) as server:
        result = orquestra("plan", GOAL, "-m", "openai:gpt-test", env=server.env())
    assert result.returncode == 0, result.stderr
    assert "repaired: task 'total': dropped dependency on later task" not in result.stdout
    assert "repaired:" in result.stdout and "closed a cycle" in result.stdout
    assert len(server.requests) == 2  # the validation error went back to the model once, then the repair


def test_refused_key_is_one_line_without_the_key():
    with FakeOpenAI() as server:
        server.reply(error(401, "Incorrect API key provided: sk-secre***23"))
        result = orquestra("run", GOAL, "-m", "openai:gpt-test", env=server.env(api_key="sk-secret-value-123"))
    assert result.returncode == 2
    assert "API key was refused" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert "sk-secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_missing_key_says_how_to_fix_it():
    result = orquestra("run", GOAL, "-m", "openai:gpt-5-mini", env={})
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_rate_limit_is_retried_after_the_servers_delay():
    replies = [error(429, "slow down", headers={"Retry-After": "1"})]

    def respond(body: dict[str, Any]) -> Reply:
        return replies.pop() if replies else team_responder(PLAN)(body)

    with FakeOpenAI(respond) as server:
        result = orquestra("plan", GOAL, "-m", "openai:gpt-test", env=server.env())
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == 2 and "slow down" in result.stderr  # the retry is reported, then succeeds


def test_a_token_budget_stops_the_run_gracefully_and_says_why(tmp_path):
    saved = tmp_path / "result.json"
    with FakeOpenAI(team_responder(PLAN)) as server:
        result = orquestra(
            "run", GOAL, "-m", "openai:gpt-test", "--max-tokens", "40", "--save", str(saved), env=server.env()
        )
    assert result.returncode == 3, result.stderr  # out of budget
    assert "tokens budget is nearly spent" in result.stdout
    data = json.loads(saved.read_text())
    assert data["status"] == "out_of_budget" and data["statuses"]["total"] == "cancelled"
    assert data["ended_by"].startswith("the tokens budget is nearly spent")
    assert data["answer"].startswith("No answer was written (the tokens budget is spent")
    assert not any("Your task (total)" in prompt_text(body) for body in server.requests)


def test_a_second_similar_goal_recalls_the_first_and_no_memory_does_not():
    with FakeOpenAI(team_responder(PLAN)) as server:
        first = orquestra("run", GOAL, "-m", "openai:gpt-test", env=server.env())
        again = orquestra("plan", "What do our widgets cost in total?", "-m", "openai:gpt-test", env=server.env())
        forgetful = orquestra("plan", GOAL, "-m", "openai:gpt-test", "--no-memory", env=server.env())
    assert first.returncode == 0 and again.returncode == 0 and forgetful.returncode == 0, again.stderr
    assert "recalled" not in first.stdout
    assert f"recalled: {GOAL}" in again.stdout
    assert "Example goal: How much do our widgets cost?" in prompt_text(server.requests[-2])
    assert "recalled" not in forgetful.stdout
    assert "Example goal: How much" not in prompt_text(server.requests[-1])
