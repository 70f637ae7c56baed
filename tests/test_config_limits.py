"""Settings from config.yaml that reach every run: retries of transient model failures and tool-call limits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from orquestra import AutoTeam
from orquestra.config import load_settings
from orquestra.exceptions import ModelUnavailable, UserError
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall
from orquestra.tools.context import ToolLimits

PLAN = {"tasks": [{"id": "save", "instruction": "Save the note to note.txt", "capability": "writing"}]}


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_retries_and_tool_limits_are_read_from_the_config_file(tmp_path):
    settings = load_settings(config(tmp_path, "retries: 0\ntools:\n  max_write_chars: 10\n  max_seconds: 5\n"))
    assert settings.retries == 0
    assert settings.tools == ToolLimits(max_write_chars=10, max_seconds=5)
    assert load_settings(config(tmp_path, "model: scripted\n")).tools == ToolLimits()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("retries: -1\n", "retries"),
        ("tools:\n  max_write_chars: 0\n", "tools.max_write_chars"),
        ("tools: {x: 1}\n", "x"),
    ],
)
def test_bad_limits_name_the_file_and_the_field(tmp_path, text, field):
    with pytest.raises(UserError, match=rf"config\.yaml: .*{field}"):
        load_settings(config(tmp_path, text))


def writer(content: str):
    def answer(messages: Sequence[Message]):
        if "planner of a team" in messages[0].content:
            return PLAN
        if messages[-1].role == "tool":
            return f"The tool said: {messages[-1].content}"
        return ModelResponse(
            text="", model="m", tool_calls=(ToolCall("1", "write_file", {"path": "note.txt", "content": content}),)
        )

    return answer


async def test_a_team_keeps_the_configured_tool_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("ORQUESTRA_HOME", str(tmp_path / "home"))
    settings = load_settings(config(tmp_path, "tools:\n  max_write_chars: 10\n"))
    model = ScriptedModel(writer("x" * 11))
    result = await AutoTeam(settings=settings, model=model, memory=False, store=False).arun("Save a note")
    assert not (result.workspace / "note.txt").exists()
    told = [message.content for call in model.calls for message in call if message.role == "tool"]
    assert told and "write_file writes at most 10 characters in one call" in told[0]
    team = AutoTeam(settings=settings, model=ScriptedModel(writer("x" * 10)), memory=False, store=False)
    result = await team.arun("Save a note")
    assert (result.workspace / "note.txt").read_text() == "x" * 10


class FlakyOnce(ScriptedModel):
    """Fails its first request with a transient error, then answers as scripted."""

    failed = False

    async def request(self, messages, **options):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise ModelUnavailable("m: HTTP 503")
        return await super().request(messages, **options)


async def test_a_team_retries_transient_failures_as_often_as_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("ORQUESTRA_HOME", str(tmp_path / "home"))
    brain = writer("short")
    never = AutoTeam(
        settings=load_settings(config(tmp_path, "retries: 0\n")), model=FlakyOnce(brain), memory=False, store=False
    )
    with pytest.raises(ModelUnavailable):
        await never.arun("Save a note")
    once = AutoTeam(
        settings=load_settings(config(tmp_path, "retries: 1\n")), model=FlakyOnce(brain), memory=False, store=False
    )
    result = await once.arun("Save a note")
    assert result.status.value == "succeeded", result.run.reason
