"""Configured secrets never leave a run: a planted key, echoed by the provider in every way it can, appears in
no event, result, log, error, store file, memory file, export or CLI output."""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import BaseModel

from orquestra.config import load_settings
from orquestra.events import Event, TaskDrafted
from orquestra.exceptions import InvalidOutput, ModelError
from orquestra.models import Message, Model, ModelResponse, RetryingModel, ScriptedModel, ToolCall, infer_model
from orquestra.models.openai import OpenAIModel
from orquestra.redaction import REDACTED, GrowingText, redact, register_secret
from orquestra.team import AutoTeam
from tests.fake_providers import FakeOpenAI, Reply, error, json_reply, raw, text, tool_call
from tests.helpers import orquestra

KEY = 'Zq8w1P/Ks0d+LxA7"r2Vb5n=Me3T'
"""A key of no provider's shape (no ``sk-``), with characters that JSON and URLs escape."""
MARK = "Ks0d"
"""A piece of the key that every shape of it (as is, JSON-escaped, URL-encoded) contains."""
SHAPES = [KEY, json.dumps(KEY)[1:-1], quote(KEY, safe=""), f"sk-{KEY}"]
GOAL = "How much do our widgets cost in total?"
WORKTREE = Path(__file__).resolve().parents[1]


def echoing_team(key: str) -> Any:
    """A fake OpenAI responder that plays the whole team and echoes `key` in every answer and error it can."""
    failed: set[str] = set()

    def once(step: str, fault: Reply) -> Reply | None:
        if step in failed:
            return None
        failed.add(step)
        return fault

    def respond(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        system, last = messages[0]["content"], messages[-1]
        content = str(last["content"])
        if "planner of a team" in system:
            return once("plan", error(500, f"upstream said: invalid token {key}")) or json_reply(
                {
                    "tasks": [
                        {"id": "price", "instruction": f"Find the price ({key})", "capability": "research"},
                        {"id": "count", "instruction": "Find how many we need", "capability": "research"},
                        {
                            "id": "total",
                            "instruction": "Compute the total cost",
                            "capability": "math",
                            "depends_on": ["price", "count"],
                        },
                    ]
                }
            )
        if "final answer of a team" in system:
            # An HTTP 200 whose body is not JSON, echoing the key (a proxy's page), then an answer echoing it.
            page = raw(f"<html>gateway: your key {key} is in use</html>", content_type="text/html")
            return once("answer", page) or text(f"Total cost is 84 [total], from [price] and [count]. key={key}")
        if last["role"] == "tool":
            return text(f"The total is {content}. Authorised by {json.dumps(key)}.")
        if "Your task (price)" in content:
            return once("price", raw(f"key={key}")) or text(f"A widget costs 7. (sk-{key})")
        if "Your task (count)" in content:
            return text(f"We need 12 widgets. token={quote(key, safe='')}")
        if "Your task (total)" in content:
            return tool_call("calculator", {"expression": "7*12"})
        raise AssertionError(f"unexpected prompt: {content[:200]}")

    return respond


def files_under(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


def leaks(text: str, key: str = KEY) -> list[str]:
    """The shapes of `key` found in `text`."""
    return [shape for shape in [*SHAPES, key, "Ks0d"] if shape and shape in text]


def assert_no_file_holds(folder: Path, mark: str = MARK) -> None:
    holders = [str(path) for path in files_under(folder) if mark.encode() in path.read_bytes()]
    assert not holders, f"the key is in {holders}"


# ------------------------------------------------------------------ the redaction itself


def test_every_shape_of_a_secret_is_redacted(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for shape in SHAPES:
        assert redact(f"before {shape} after") == f"before {REDACTED} after"
    assert redact("a masked key: sk-proj-****************************abcd") == f"a masked key: {REDACTED}"
    assert redact("sk-learn and other words") == "sk-learn and other words"  # too short to be a key


def test_a_key_without_its_prefix_is_redacted_too():
    register_secret("sk-ant-api03-Yh4kd9QmZt7Lp2Xw")
    assert redact("echoed: Yh4kd9QmZt7Lp2Xw.") == f"echoed: {REDACTED}."


def test_a_long_text_the_store_keeps_in_a_file_is_redacted_there_too(monkeypatch, tmp_path):
    from orquestra.store_files import TextFiles

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    texts = TextFiles(tmp_path, inline_chars=100)
    reference = texts.spill("run1", {"output": "x" * 200 + f" the key is {KEY}"})
    assert leaks(json.dumps(reference)) == []
    assert texts.restore("run1", reference)["output"].endswith(f"the key is {REDACTED}")
    assert_no_file_holds(tmp_path)


def test_short_values_are_not_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "abc")
    assert redact("abc abc") == "abc abc"


def test_errors_redact_their_message_and_raw_answer(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert leaks(str(ModelError(f"provider said {KEY}"))) == []
    invalid = InvalidOutput(f"bad {quote(KEY, safe='')}", raw=f'{{"key": "{json.dumps(KEY)[1:-1]}"}}')
    assert leaks(invalid.message) == [] and leaks(invalid.raw or "") == []


async def test_a_teams_models_answer_with_secrets_redacted(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    answers = [
        ModelResponse("", "own", tool_calls=(ToolCall("1", "lookup", {"query": f"key {KEY}", "n": 1}),)),
        {"ok": True, "note": f"it is {quote(KEY, safe='')}"},
    ]
    model = AutoTeam(model=ScriptedModel(responses=[*answers, f"text {KEY}"], name="own"), memory=False).model()
    called = await model.request([Message("user", "go")])
    assert called.tool_calls[0].arguments == {"query": f"key {REDACTED}", "n": 1}
    verdict, _ = await model.structured([Message("user", "judge")], Verdict)
    assert verdict.note == f"it is {REDACTED}"
    assert (await model.request([Message("user", "say")])).text == f"text {REDACTED}"


class Verdict(BaseModel):
    ok: bool
    note: str


# ------------------------------------------------------------------ answers that arrive in pieces


def test_a_secret_cut_anywhere_across_pieces_is_redacted_as_a_whole(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    said = f"the key sk-{KEY}, bare {KEY}; a key-like sk-abcdefghijklmnopqrstuvwxyz0123 end"
    whole = redact(said)
    assert whole == f"the key {REDACTED}, bare {REDACTED}; a key-like {REDACTED} end"
    for first in range(len(said) + 1):
        for second in range(first, len(said) + 1, 5):
            text = GrowingText()
            let_out = [text.add(piece) for piece in (said[:first], said[first:second], said[second:])]
            # Joined, the pieces let out are the whole text redacted: none of them held a part of a secret.
            assert "".join([*let_out, text.end()]) == whole, (first, second)


async def test_a_teams_model_streams_no_secret_cut_across_pieces(monkeypatch):
    key = "sk-proj-Yh4kd9QmZt7Lp2Xw0Rb6"
    said = f"the key {key}, bare {key.removeprefix('sk-proj-')}, done"
    chunks = ("the key sk-proj-Yh4", "kd9QmZt7Lp2Xw0Rb6, bare Yh4kd9", "QmZt7Lp2Xw0Rb6, done")
    assert "".join(chunks) == said
    with FakeOpenAI(lambda body: Reply(text=said, chunks=chunks)) as server:
        for name, value in server.env(api_key=key).items():
            monkeypatch.setenv(name, value)
        model = AutoTeam(model="openai:gpt-test", memory=False).model()
        pieces = [piece async for piece in model.stream([Message("user", "say it")])]
    assert "".join(pieces) == f"the key {REDACTED}, bare {REDACTED}, done"


async def test_a_plan_streamed_into_the_run_holds_no_secret(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    plan = {
        "tasks": [
            {"id": "price", "instruction": f"Find the price ({KEY})", "capability": "research"},
            {"id": "count", "instruction": "Find how many we need", "capability": "research"},
        ]
    }

    def brain(messages: list[Message]) -> Any:
        if "planner of a team" in messages[0].content:
            return plan
        return "A widget costs 7 [price]."

    events: list[Event] = []
    # Written a word at a time, the plan is watched as it grows and its tasks enter the run before it ends.
    team = AutoTeam(model=ScriptedModel(brain, token_latency=0.0005), memory=False)
    result = await team.arun(GOAL, subscribers=[events.append])
    drafted = [event for event in events if isinstance(event, TaskDrafted)]
    assert [event.task_id for event in drafted] == ["price", "count"]
    assert drafted[0].instruction == f"Find the price ({REDACTED})"
    assert not [event for event in events if leaks(repr(event))]
    assert leaks(repr(result.graph)) == [] and leaks(repr(result.run)) == []


# ------------------------------------------------------------------ a whole run, in process


@pytest.fixture
def planted(monkeypatch):
    """A fake OpenAI server that echoes the planted key, with the key and server in the environment."""
    with FakeOpenAI(echoing_team(KEY)) as server:
        for name, value in server.env(api_key=KEY).items():
            monkeypatch.setenv(name, value)
        yield server


async def test_a_key_the_provider_echoes_reaches_no_artifact_of_the_run(planted, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []
    # The key and the server from the environment; the memory and the run store on, under the test's home.
    team = AutoTeam(model=_quick(OpenAIModel("gpt-test")))
    result = await team.arun(GOAL, subscribers=[events.append])
    gc.collect()  # an unretrieved task's error would be logged now
    assert planted.headers[0]["authorization"] == f"Bearer {KEY}"  # the key was really sent (and echoed)
    assert result.status.value == "succeeded"
    assert result.outputs["price"] == f"A widget costs 7. ({REDACTED})"  # what was echoed is there, redacted
    assert result.answer.endswith(f"key={REDACTED}")
    assert REDACTED in result.graph.by_id["price"].instruction
    seen = [repr(event) for event in events] + [repr(result.run), result.answer, repr(result.plan)]
    assert not [text for text in seen if leaks(text)]
    assert leaks(caplog.text) == [] and "never retrieved" not in caplog.text
    captured = capsys.readouterr()
    assert leaks(captured.out + captured.err) == []
    with team.store as store:  # type: ignore[union-attr]
        assert leaks(json.dumps(store.export(result.run.run_id))) == []
    remembered = team.memory.get(result.run.run_id)
    assert remembered is not None and leaks(repr(remembered)) == []
    team.close()
    assert_no_file_holds(Path(os.environ["ORQUESTRA_HOME"]))


async def test_a_key_from_the_config_file_is_redacted_as_well(tmp_path, monkeypatch):
    key = "cfgKey-7Hq2Lm9Rt4Vx1Nz8"
    with FakeOpenAI(echoing_team(key)) as server:
        config = tmp_path / "config.yaml"
        config.write_text(f"openai: {{api_key: '{key}', base_url: '{server.base_url}'}}\n")
        monkeypatch.setenv("ORQUESTRA_CONFIG", str(config))
        model = infer_model("openai:gpt-test", settings=load_settings())
        result = await AutoTeam(model=_quick(model), memory=False).arun(GOAL)
    assert key not in result.answer + json.dumps(result.outputs) + result.run.reason
    assert_no_file_holds(Path(os.environ["ORQUESTRA_HOME"]), mark=key)


async def test_a_refused_key_during_replanning_leaves_no_unretrieved_error(monkeypatch, caplog, capsys):
    def respond(body: dict[str, Any]) -> Reply:
        system = body["messages"][0]["content"]
        if "planner of a team" in system:
            return json_reply({"tasks": [{"id": "price", "instruction": "Find the price", "capability": "research"}]})
        if "Your task" in str(body["messages"][-1]["content"]):
            return error(400, "this agent's request is refused")
        return error(401, f"Incorrect API key provided: {KEY}.")  # reflection, replanning

    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(respond) as server:
        for name, value in server.env(api_key=KEY).items():
            monkeypatch.setenv(name, value)
        result = await AutoTeam(model="openai:gpt-test", memory=False).arun(GOAL)
        gc.collect()
    assert result.status.value == "failed"
    assert "never retrieved" not in caplog.text
    output = capsys.readouterr()
    assert leaks(caplog.text + output.out + output.err) == []


def _quick(model: Model) -> RetryingModel:
    """`model` with a tiny backoff, so that the faults the server injects cost no time."""
    return RetryingModel(model, initial_delay=0.001, max_delay=0.002)


# ------------------------------------------------------------------ the CLI, in a subprocess


def cli(*args: str, env: dict[str, str]) -> str:
    """`orquestra ARGS` in a subprocess running this checkout; stdout and stderr together."""
    done = orquestra(*args, env={**env, "PYTHONPATH": str(WORKTREE)}, cwd=WORKTREE, timeout=120)
    return done.stdout + done.stderr


@pytest.mark.timeout(180)
def test_the_cli_shows_and_stores_no_echoed_key(tmp_path):
    home = tmp_path / "cli-home"
    with FakeOpenAI(echoing_team(KEY)) as server:
        env = {**server.env(api_key=KEY), "ORQUESTRA_HOME": str(home)}
        output = cli("run", GOAL, "--model", "openai:gpt-test", "--save", str(tmp_path / "result.json"), env=env)
        assert "Total cost is 84" in output, output
        run_id = _last_run(home)
        output += cli("runs", "export", run_id, env=env) + cli("runs", "show", run_id, env=env)
        output += cli("runs", "list", env=env)
        output += cli("runs", "export", run_id, "--output", str(tmp_path / "export.json"), env=env)
        output += cli("memory", "list", env=env)
    assert leaks(output) == [] and "Traceback" not in output
    assert f"A widget costs 7. ({REDACTED})" in output
    assert_no_file_holds(home)
    assert_no_file_holds(tmp_path)


@pytest.mark.timeout(120)
def test_the_cli_says_a_refused_key_in_one_line_without_it(tmp_path):
    with FakeOpenAI(lambda body: error(401, f"Incorrect API key provided: {KEY}. See your account.")) as server:
        env = {**server.env(api_key=KEY), "ORQUESTRA_HOME": str(tmp_path / "home")}
        done = orquestra("run", GOAL, "--model", "openai:gpt-test", env={**env, "PYTHONPATH": str(WORKTREE)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: openai:gpt-test: the API key was refused"), done.stderr
    assert f"provided: {REDACTED}." in lines[0]
    assert leaks(done.stdout + done.stderr) == [] and "never retrieved" not in done.stderr


def _last_run(home: Path) -> str:
    from orquestra.store import open_store

    with open_store(home) as store:
        (run,) = store.list(1)
    return run.id
