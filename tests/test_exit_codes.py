"""How `orquestra run` and `orquestra apply` end, through the command line: one exit code per ending.

Each test runs the real command in a subprocess (hosted providers faked on loopback, or the `scripted`
model) and checks the exit code, that the output says why, that no traceback shows, and that
`orquestra runs list` records the same status word.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orquestra import exit_codes
from orquestra.engine import RunStatus

from .fake_providers import FakeOpenAI, Reply, error, json_reply, text, tool_call

GOAL = "How much do our widgets cost?"
PLAN = {
    "tasks": [
        {"id": "price", "instruction": "Find the price of a widget", "capability": "research", "depends_on": []},
        {"id": "count", "instruction": "Find how many widgets we need", "capability": "research", "depends_on": []},
        {"id": "total", "instruction": "Compute the total", "capability": "math", "depends_on": ["price", "count"]},
    ]
}
ANSWERS: dict[str, Reply | str] = {"price": "7 dollars", "count": "12 widgets", "total": "84 dollars"}
GRAPH = """\
tasks:
  - {id: price, capability: research, instruction: Find the price of a widget}
  - {id: count, capability: research, instruction: Find how many widgets we need}
  - {id: total, capability: math, instruction: Compute the total, depends_on: [price, count]}
"""
CHAIN = """\
tasks:
  - {id: first, capability: research, instruction: Summarise the market for note-taking apps}
  - {id: second, capability: writing, instruction: Write a short brief from the summary, depends_on: [first]}
"""
STATUS_WORDS = tuple(status.value for status in RunStatus)


def manifest(agent: str = "provider: scripted", *, checks: str = "", dynamic: bool = False) -> str:
    """A two-task workflow; `checks` (YAML flow list) goes on its first task."""
    return (
        "name: Exit codes demo\n"
        + ("dynamic: true\n" if dynamic else "")
        + f"agents:\n  - name: drafter\n    {agent}\n"
        "tasks:\n"
        "  - name: draft\n    agent: drafter\n    instruction: Write a short note about exit codes.\n"
        + (f"    checks: {checks}\n" if checks else "")
        + "  - name: polish\n    agent: drafter\n    instruction: 'Polish the note: {{ tasks.draft.output }}'\n"
        "    depends_on: [draft]\n"
    )


def prompt_text(body: dict[str, Any]) -> str:
    """Everything an OpenAI request says, as one string."""
    return "\n".join(str(message.get("content", "")) for message in body.get("messages", []))


def team(
    answers: dict[str, Reply | str] = ANSWERS,
    *,
    plan: Reply | None = None,
    replan: Reply | None = None,
    answer: Reply | None = None,
) -> Callable[[dict[str, Any]], Reply | str]:
    """A fake team behind the OpenAI API: the planner, the replanner, each task's agent, the final answer."""

    # The default total is computed with the calculator first; a test that scripts the total itself decides.
    compute_total = answers.get("total") == ANSWERS["total"]

    def respond(body: dict[str, Any]) -> Reply | str:
        said = prompt_text(body)
        if "planner of a team" in said:
            return plan or json_reply(PLAN)
        if "You revise the plan" in said:
            return replan or json_reply({"add": [], "remove": [], "rewire": []})
        if "final answer of a team" in said:
            return answer or text("It costs 84 dollars [total].")
        if compute_total and "Your task (total)" in said and body["messages"][-1]["role"] != "tool":
            return tool_call("calculator", {"expression": "7 * 12"})  # a computed figure comes from a tool
        for task_id, reply in answers.items():
            if f"Your task ({task_id})" in said:
                return reply
        return text("?")

    return respond


def environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without provider or Orquestra settings, with a home of the test's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "ORQUESTRA_"))}
    return {**clean, "ORQUESTRA_HOME": str(home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(extra or {})}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orquestra", *args]


def orquestra(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, env=environment(home, env), timeout=120)


def interrupt(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Send Ctrl-C and collect what the process printed."""
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_ends(
    result: subprocess.CompletedProcess[str], code: int, *says: str, home: Path, recorded: str | None
) -> None:
    """Exit `code`, every one of `says` in the output, no traceback, and `runs list` showing `recorded`.

    `recorded` None: no run is recorded (the command ended before one started).
    """
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    for words in says:
        assert words in output, f"{words!r} not in:\n{output}"
    listed = orquestra(home, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    if recorded is None:
        assert not any(re.search(rf"\b{word}\b", listed.stdout) for word in STATUS_WORDS), listed.stdout
        return
    assert "1 of 1 runs" in listed.stdout, listed.stdout
    shown = {word for word in STATUS_WORDS if re.search(rf"\b{word}\b", listed.stdout)}
    assert shown == {recorded}, listed.stdout


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def write(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- orquestra run


def test_run_a_goal_that_succeeds_exits_0(home):
    with FakeOpenAI(team()) as server:
        result = orquestra(home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", env=server.env())
    assert_ends(result, exit_codes.SUCCEEDED, "run succeeded", "It costs 84 dollars", home=home, recorded="succeeded")


def test_run_a_graph_file_that_succeeds_exits_0(home, tmp_path):
    graph = write(tmp_path / "chain.yaml", CHAIN)
    result = orquestra(home, "run", str(graph), "-m", "scripted")
    assert_ends(result, exit_codes.SUCCEEDED, "run succeeded", "2 succeeded", home=home, recorded="succeeded")


def test_run_a_task_that_fails_for_good_exits_1(home, tmp_path):
    graph = write(tmp_path / "widgets.yaml", GRAPH)
    with FakeOpenAI(team({**ANSWERS, "price": text("")})) as server:  # every agent answers nothing
        result = orquestra(home, "run", str(graph), "-m", "openai:gpt-test", env=server.env())
    assert_ends(
        result,
        exit_codes.FAILED,
        "run failed",
        "reason: task 'price' failed",
        "not_empty: the answer is empty",
        "1 failed, 1 succeeded, 1 skipped",
        home=home,
        recorded="failed",
    )


def test_run_a_goal_whose_task_fails_after_a_replan_exits_1(home):
    # The replan works around 'price' with another task but keeps it: the failure stands.
    around = {
        "add": [{"id": "catalogue", "instruction": "Look the price up in the catalogue", "capability": "research"}],
        "rewire": [{"task_id": "total", "depends_on": ["catalogue", "count"]}],
    }
    answers = {**ANSWERS, "price": text(""), "catalogue": "7 dollars"}
    with FakeOpenAI(team(answers, replan=json_reply(around))) as server:
        result = orquestra(home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", env=server.env())
    assert_ends(
        result,
        exit_codes.FAILED,
        "replan: task 'price' failed",
        "+ catalogue (research)",
        "run failed",
        "reason: task 'price' failed",
        home=home,
        recorded="failed",
    )


def test_run_whose_provider_fails_for_good_while_planning_exits_1_in_one_line(home):
    home.mkdir(parents=True, exist_ok=True)
    write(home / "config.yaml", "retries: 3\n")  # the default (10) would take a minute of backoff here
    with FakeOpenAI(lambda body: error(503, "Service Unavailable")) as server:
        result = orquestra(home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", env=server.env())
    assert result.returncode == exit_codes.FAILED, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: openai:gpt-test: HTTP 503: Service Unavailable", result.stderr
    assert len(server.requests) == 4  # the first try and three retries, each announced on one line
    assert result.stderr.count("; retry ") == 3


def test_run_whose_plan_the_budget_allows_no_reask_for_exits_3_in_one_line(home):
    with FakeOpenAI(team(plan=json_reply({"tasks": "not a list"}, input_tokens=200, output_tokens=200))) as server:
        result = orquestra(
            home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", "--max-tokens", "100", env=server.env()
        )
    assert result.returncode == exit_codes.OUT_OF_BUDGET, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the planner's answer is not a plan: ") and "tokens budget is spent" in last, last
    assert len(server.requests) == 1  # no re-ask


def test_run_out_of_tokens_exits_3(home):
    with FakeOpenAI(team()) as server:
        result = orquestra(
            home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", "--max-tokens", "40", env=server.env()
        )
    assert_ends(
        result,
        exit_codes.OUT_OF_BUDGET,
        "run out_of_budget",
        "reason: the tokens budget is nearly spent",
        home=home,
        recorded="out_of_budget",
    )


@pytest.mark.parametrize(
    ("model", "flag", "limit", "why"),
    [
        ("scripted:0.5", "--max-seconds", "0.5", "reason: the time budget is spent"),
        ("scripted", "--max-tokens", "50", "reason: the tokens budget is spent"),
    ],
)
def test_run_a_graph_file_out_of_budget_exits_3(home, tmp_path, model, flag, limit, why):
    graph = write(tmp_path / "chain.yaml", CHAIN)
    result = orquestra(home, "run", str(graph), "-m", model, flag, limit)
    assert_ends(result, exit_codes.OUT_OF_BUDGET, "run out_of_budget", why, home=home, recorded="out_of_budget")


def test_run_at_the_replan_limit_gives_up_exits_4(home):
    answers = {**ANSWERS, "price": "The price of a widget is missing from every source."}
    with FakeOpenAI(team(answers)) as server:
        result = orquestra(
            home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", "--max-replans", "0", env=server.env()
        )
    assert_ends(
        result,
        exit_codes.GAVE_UP,
        "run gave_up",
        "reason: the replan limit (0) is reached; the last reason: task 'price' reports missing information",
        home=home,
        recorded="gave_up",
    )
    assert not any("You revise the plan" in prompt_text(body) for body in server.requests)


def test_run_whose_replan_fails_gives_up_exits_4(home):
    answers = {**ANSWERS, "price": text("")}
    with FakeOpenAI(team(answers, replan=text("I would rather not change the plan."))) as server:
        result = orquestra(home, "run", GOAL, "-m", "openai:gpt-test", "--no-memory", env=server.env())
    assert_ends(
        result,
        exit_codes.GAVE_UP,
        "run gave_up",
        "reason: replanning failed: no valid patch",
        home=home,
        recorded="gave_up",
    )


def test_ctrl_c_while_running_exits_130(home, tmp_path):
    graph = write(tmp_path / "chain.yaml", CHAIN)
    # The first task's answer is slow; its request arriving means the run has started (and its Ctrl-C handler
    # is in place), which no fixed sleep after the "model:" line can promise on a busy machine.
    with FakeOpenAI(team({"first": text("A summary.", delay=60)})) as server:
        process = subprocess.Popen(
            command("run", str(graph), "-m", "openai:gpt-test"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(home, server.env()),
        )
        wait_for(lambda: bool(server.requests), "the first task's request")
        result = interrupt(process)
    assert_ends(
        result,
        exit_codes.INTERRUPTED,
        "run cancelled",
        "reason: interrupted by Ctrl-C",
        "2 cancelled",
        home=home,
        recorded="cancelled",
    )


def test_ctrl_c_while_planning_exits_130(home):
    with FakeOpenAI(team(plan=json_reply(PLAN, delay=60))) as server:
        process = subprocess.Popen(
            command("run", GOAL, "-m", "openai:gpt-test", "--no-memory"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(home, server.env()),
        )
        wait_for(lambda: bool(server.requests), "the planning request")
        result = interrupt(process)
    # Planning is part of the run: the store holds it, cancelled.
    assert_ends(result, exit_codes.INTERRUPTED, "cancelled while planning (Ctrl-C)", home=home, recorded="cancelled")


def test_ctrl_c_while_writing_the_answer_exits_130_and_says_so(home):
    with FakeOpenAI(team(answer=text("It costs 84 dollars [total].", delay=60))) as server:
        process = subprocess.Popen(
            command("run", GOAL, "-m", "openai:gpt-test", "--no-memory"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(home, server.env()),
        )
        wait_for(lambda: any("final answer of a team" in prompt_text(b) for b in server.requests), "the answer")
        result = interrupt(process)
    # The store says how it ended too: cancelled, not the succeeded its tasks alone would say.
    assert_ends(result, exit_codes.INTERRUPTED, "cancelled", home=home, recorded="cancelled")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run", "{graph}", "-m", "scripted", "--bogus"), "No such option: --bogus"),
        (("run", "{missing}", "-m", "scripted"), "no such file"),
        (("run", "{graph}", "-m", "nonsense:x"), "unknown model 'nonsense:x'"),
        (("apply", "{manifest}", "--bogus"), "No such option: --bogus"),
        (("apply", "{missing}"), "no such file"),
    ],
)
def test_an_input_error_exits_2(home, tmp_path, args, says):
    files = {
        "graph": str(write(tmp_path / "chain.yaml", CHAIN)),
        "manifest": str(write(tmp_path / "workflow.yaml", manifest())),
        "missing": str(tmp_path / "missing.yaml"),
    }
    result = orquestra(home, *(arg.format(**files) for arg in args))
    assert_ends(result, exit_codes.USAGE, says, home=home, recorded=None)
    assert says in result.stderr


# ---------------------------------------------------------------------------------------------- orquestra apply


def test_apply_a_manifest_that_succeeds_exits_0(home, tmp_path):
    workflow = write(tmp_path / "workflow.yaml", manifest())
    result = orquestra(home, "apply", str(workflow))
    assert_ends(
        result, exit_codes.SUCCEEDED, "Exit codes demo: succeeded", "2 succeeded", home=home, recorded="succeeded"
    )


def test_apply_a_task_that_fails_for_good_exits_1(home, tmp_path):
    workflow = write(tmp_path / "workflow.yaml", manifest(checks="[{contains: zebra}]"))
    result = orquestra(home, "apply", str(workflow))
    assert_ends(
        result,
        exit_codes.FAILED,
        "Exit codes demo: failed",
        "reason: task 'draft' failed",
        "zebra",
        home=home,
        recorded="failed",
    )


@pytest.mark.parametrize(
    ("agent", "flags", "config", "why"),
    [
        ("provider: scripted\n    model: '0.5'", ("--max-seconds", "0.5"), "", "reason: the time budget is spent"),
        ("provider: scripted", ("--max-tokens", "50"), "", "reason: the tokens budget is spent"),
        ("provider: scripted", (), "budget: {max_tokens: 50}\n", "reason: the tokens budget is spent"),
    ],
    ids=["seconds", "tokens", "config-file"],
)
def test_apply_out_of_budget_exits_3(home, tmp_path, agent, flags, config, why):
    workflow = write(tmp_path / "workflow.yaml", manifest(agent))
    if config:
        home.mkdir()
        write(home / "config.yaml", config)
    result = orquestra(home, "apply", str(workflow), *flags)
    assert_ends(
        result, exit_codes.OUT_OF_BUDGET, "Exit codes demo: out_of_budget", why, home=home, recorded="out_of_budget"
    )


def test_apply_a_dynamic_manifest_whose_replan_fails_gives_up_exits_4(home, tmp_path):
    # The scripted planner echoes instead of writing a patch.
    workflow = write(tmp_path / "workflow.yaml", manifest(checks="[{contains: zebra}]", dynamic=True))
    result = orquestra(home, "apply", str(workflow), "-m", "scripted")
    assert_ends(
        result,
        exit_codes.GAVE_UP,
        "Exit codes demo: gave_up",
        "reason: replanning failed: no valid patch",
        home=home,
        recorded="gave_up",
    )


def test_apply_ctrl_c_while_running_exits_130(home, tmp_path):
    workflow = write(tmp_path / "workflow.yaml", manifest("provider: openai\n    model: gpt-test"))
    with FakeOpenAI(team({"draft": text("A note.", delay=60)})) as server:
        process = subprocess.Popen(
            command("apply", str(workflow)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(home, server.env()),
        )
        wait_for(lambda: bool(server.requests), "the first task's request")
        result = interrupt(process)
    assert_ends(
        result,
        exit_codes.INTERRUPTED,
        "Exit codes demo: cancelled",
        "reason: interrupted by Ctrl-C",
        home=home,
        recorded="cancelled",
    )


def test_apply_an_unknown_model_is_one_line_before_any_progress(home, tmp_path):
    graph = write(tmp_path / "chain.yaml", CHAIN)  # its tasks take the default model: the flag's
    result = orquestra(home, "apply", str(graph), "-m", "nonsense:x")
    assert_ends(result, exit_codes.USAGE, "unknown model 'nonsense:x'", home=home, recorded=None)
    assert result.stdout == ""  # no live view left half drawn before the error
    assert result.stderr.startswith("error: manifest 'chain': unknown model")


def test_run_a_manifest_keeps_the_budget(home, tmp_path):
    workflow = write(tmp_path / "workflow.yaml", manifest())
    result = orquestra(home, "run", str(workflow), "--max-tokens", "50")
    assert_ends(
        result,
        exit_codes.OUT_OF_BUDGET,
        "reason: the tokens budget is spent",
        home=home,
        recorded="out_of_budget",
    )
