"""`orquestra repl` driven as a person would, in a pseudo-terminal, with OpenAI faked on loopback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from orquestra.budget import Budget
from orquestra.exceptions import UserError
from orquestra.repl import _parse_budget

from .fake_providers import FakeOpenAI, Reply, json_reply, text, tool_call

PROMPT = "orquestra> "
PLAN = {
    "tasks": [
        {"id": "price", "instruction": "Find the price of a widget", "capability": "research", "depends_on": []},
        {"id": "count", "instruction": "Find how many widgets we need", "capability": "research", "depends_on": []},
        {"id": "total", "instruction": "Compute the total", "capability": "math", "depends_on": ["price", "count"]},
    ]
}
GOAL = "How much do our widgets cost?"


def responder(task_delay: float = 0.0, plan_delay: float = 0.0) -> Callable[[dict[str, Any]], Reply]:
    """Plans PLAN, answers each task (after `task_delay` seconds) and writes the final answer."""

    def respond(body: dict[str, Any]) -> Reply:
        said = json.dumps(body.get("messages", []))
        if "planner of a team" in said:
            return json_reply(PLAN, delay=plan_delay)
        if "final answer of a team" in said:
            return text("It costs 84 dollars [total].")
        if "Your task (total)" in said and body["messages"][-1]["role"] != "tool":
            return tool_call("calculator", {"expression": "7 * 12"})  # a computed figure comes from a tool
        for task_id, answer in (("price", "7 dollars"), ("count", "12 widgets"), ("total", "84 dollars")):
            if f"Your task ({task_id})" in said:
                return text(answer, delay=task_delay)
        return text("?")

    return respond


def spawn(home: Path, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    """Start the REPL in a pseudo-terminal, with a dumb terminal so that the output is plain text."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "ORQUESTRA_"))}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "orquestra.repl", "--no-memory", *args],
        env={**clean, "ORQUESTRA_HOME": str(home), "COLUMNS": "120", "TERM": "dumb", **(env or {})},
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 120),
    )
    child.expect_exact(PROMPT)
    return child


def command(child: pexpect.spawn, line: str) -> str:
    """Type `line`, wait for the prompt to come back, and return what was printed in between."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return str(child.before)


def exit_repl(child: pexpect.spawn) -> None:
    """End the session with /exit and check it ended cleanly."""
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(responder())
    with server:
        yield server


@pytest.mark.slow
def test_commands_and_errors_return_to_the_prompt(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--model", "scripted")
    help_text = command(child, "/help")
    for name in ("/plan", "/run", "/graph", "/why", "/agents", "/model", "/memory", "/history", "/budget", "/exit"):
        assert name in help_text
    assert "researcher" in command(child, "/agents")
    assert "error: unknown command '/bogus'" in command(child, "/bogus")
    assert "model: scripted:0.2" in command(child, "/model scripted:0.2")
    assert "error: unknown model" in command(child, "/model nonsense:thing")
    assert "model: scripted:0.2" in command(child, "/model")
    assert "tokens=500" in command(child, "/budget tokens=500 cost=0.5")
    assert "error: /budget" in command(child, "/budget tokens=lots")
    assert "memory is off" in command(child, "/memory")
    # The echo model cannot write a plan: one error line, then the prompt again.
    planned = command(child, "write a poem")
    assert "error: the planner's answer is not a plan" in planned and "Traceback" not in planned
    assert "no plan yet" in command(child, "/run")
    exit_repl(child)
    assert "/agents" in (tmp_path / "repl_history").read_text()


@pytest.mark.slow
def test_ctrl_d_ends_and_ctrl_c_clears_the_line(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--model", "scripted")
    child.send("half a goal")
    child.sendintr()
    child.expect_exact(PROMPT)
    assert "/agents" in command(child, "/help")  # the cleared text was not sent along
    # A Ctrl-D typed before the prompt switches the terminal to raw mode is eaten by the line discipline, so
    # it is repeated until the session ends.
    while child.isalive():
        child.sendcontrol("d")
        child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=0.5)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.slow
def test_plan_edit_run_then_inspect(tmp_path: Path, openai: FakeOpenAI) -> None:
    editor = "sed -i 's/Compute the total/Add it all up/'"
    child = spawn(tmp_path, "--model", "openai:gpt-test", env={**openai.env(), "EDITOR": editor})
    child.sendline(f"/plan {GOAL}")
    child.expect_exact("run it? [y/N/e(dit)] ")
    assert "plan: 3 tasks" in str(child.before) and "Compute the total" in str(child.before)
    child.sendline("e")
    child.expect_exact("run it? [y/N/e(dit)] ")
    assert "edited plan: 3 tasks" in str(child.before) and "Add it all up" in str(child.before)
    child.sendline("y")
    child.expect_exact(PROMPT)
    ran = str(child.before)
    assert "It costs 84 dollars [total]." in ran and "run succeeded" in ran and "3 succeeded" in ran
    assert any("Add it all up" in json.dumps(body) for body in openai.requests)
    graph = command(child, "/graph")
    assert "total" in graph and "succeeded" in graph
    assert "did not replan" in command(child, "/why")
    assert GOAL in command(child, "/history")
    exit_repl(child)


@pytest.mark.slow
def test_a_goal_line_plans_and_runs(tmp_path: Path, openai: FakeOpenAI) -> None:
    child = spawn(tmp_path, "--model", "openai:gpt-test", env=openai.env())
    out = command(child, GOAL)
    assert "plan: 3 tasks" in out and "It costs 84 dollars [total]." in out
    child.sendline("/plan another goal")
    child.expect_exact("run it? [y/N/e(dit)] ")
    assert "not run" in command(child, "")
    assert "3 succeeded" in command(child, "/run")
    exit_repl(child)


@pytest.mark.slow
def test_ctrl_c_during_a_run_cancels_it_and_the_prompt_returns(tmp_path: Path) -> None:
    with FakeOpenAI(responder(task_delay=30)) as server:
        child = spawn(tmp_path, "--model", "openai:gpt-test", env=server.env())
        child.sendline(GOAL)
        child.expect_exact("plan: 3 tasks")
        while not any("Your task (" in json.dumps(body) for body in list(server.requests)):
            child.expect([pexpect.TIMEOUT], timeout=0.2)  # wait for a task to be running
        child.sendintr()
        child.expect_exact(PROMPT)
        assert "run cancelled" in str(child.before) and "interrupted by Ctrl-C" in str(child.before)
        assert "/run" in command(child, "/help")  # the session goes on
        exit_repl(child)


@pytest.mark.slow
def test_ctrl_c_during_planning_stops_it_and_the_prompt_returns(tmp_path: Path) -> None:
    with FakeOpenAI(responder(plan_delay=30)) as server:
        child = spawn(tmp_path, "--model", "openai:gpt-test", env=server.env())
        child.sendline(GOAL)
        while not server.requests:
            child.expect([pexpect.TIMEOUT], timeout=0.2)  # wait for the planner's request
        child.sendintr()
        child.expect_exact(PROMPT)
        assert "interrupted" in str(child.before)
        assert "no plan yet" in command(child, "/run")
        exit_repl(child)


def test_budget_arguments_set_and_clear_limits() -> None:
    budget = _parse_budget(Budget(max_cost=1.0), "tokens=2000 seconds=30")
    assert budget == Budget(max_tokens=2000, max_cost=1.0, max_seconds=30.0)
    assert _parse_budget(budget, "cost=none").max_cost is None
    for bad in ("tokens", "money=3", "tokens=many", "tokens=-1"):
        with pytest.raises(UserError):
            _parse_budget(budget, bad)


@pytest.mark.slow
def test_a_task_waiting_for_approval_is_asked_at_the_prompt(tmp_path: Path, openai: FakeOpenAI) -> None:
    (tmp_path / "config.yaml").write_text("approval:\n  capabilities: [math]\n")
    child = spawn(tmp_path, "--model", "openai:gpt-test", env=openai.env())
    child.sendline(GOAL)
    child.expect_exact("approve? [y]es / [n]o / [e]dit ")
    asked = str(child.before)
    assert "approve task total (quant)?" in asked and "Compute the total" in asked
    assert "capability 'math'" in asked
    child.sendline("n")
    child.expect_exact("reason: ")
    child.sendline("not today")
    child.expect_exact(PROMPT)
    rejected = str(child.before)
    assert "was rejected by" in rejected and "repl: not today" in rejected and "Traceback" not in rejected
    assert not any("Your task (total)" in json.dumps(body) for body in openai.requests)
    # Run the same plan again, and this time edit the task before it runs.
    child.sendline("/run")
    child.expect_exact("approve? [y]es / [n]o / [e]dit ")
    child.sendline("e")
    child.expect_exact("instruction: ")  # a dumb terminal cannot show the planned one, so none is offered
    child.sendline("Add the price times the count")
    child.expect_exact(PROMPT)
    assert "It costs 84 dollars [total]." in str(child.before)
    sent = [json.dumps(body) for body in openai.requests]
    assert any("Your task (total): Add the price times the count" in body for body in sent), [
        body[body.index("Your task (total") :][:200] for body in sent if "Your task (total" in body
    ]
    exit_repl(child)
