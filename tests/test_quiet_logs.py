"""Only Orquestra's own one-line messages reach the terminal: no library's log line or warning, no file:line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .fake_providers import FakeOpenAI, Reply, error, json_reply

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "launch-brief.yaml"
FILE_LINE = re.compile(r"\w\.py:\d+")

# The CLI's entry point, with a scripted model that makes third-party libraries log and warn while it answers,
# and Orquestra log a warning of two lines with an exception attached.
NOISY_MAIN = """
import logging, sys, warnings
from orquestra.models import scripted

answer = scripted.ScriptedModel.request

async def noisy(self, *args, **kwargs):
    logging.getLogger("httpx").warning("HTTP Request: POST http://127.0.0.1/v1 'HTTP/1.1 500'")
    logging.getLogger("instructor.v2.retry").error("Max retries exceeded. Total attempts: 3")
    logging.getLogger("chromadb.telemetry").critical("Failed to send telemetry event")
    warnings.warn_explicit("this API is deprecated", UserWarning, "/site-packages/somelib/api.py", 12, "somelib.api")
    try:
        raise ValueError("the cause")
    except ValueError:
        logging.getLogger("orquestra.loop").warning("replan not applied:\\n  two lines", exc_info=True)
    return await answer(self, *args, **kwargs)

scripted.ScriptedModel.request = noisy
from orquestra.cli import main
main()
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        assert line.startswith(("warning: ", "error: ")), result.stderr
        assert not FILE_LINE.search(line), line
    return lines


def test_third_party_logs_and_warnings_never_reach_the_terminal() -> None:
    home = Path(os.environ["ORQUESTRA_HOME"])
    (home / "memory").mkdir(parents=True)
    (home / "memory" / "records.sqlite3").write_bytes(b"not a database" * 100)  # Orquestra warns, the run goes on
    result = cli("-c", NOISY_MAIN, "run", str(EXAMPLE), "-m", "scripted", "--no-outputs")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = stderr_lines(result)
    memory = [line for line in lines if line.startswith("warning: memory at ")]
    assert len(memory) == 1 and "this run goes on without memory." in memory[0]
    assert "warning: replan not applied: two lines: ValueError: the cause" in lines
    assert set(lines) == {memory[0], "warning: replan not applied: two lines: ValueError: the cause"}
    for leaked in ("HTTP Request", "Max retries", "telemetry", "deprecated", "UserWarning", "Traceback"):
        assert leaked not in result.stderr + result.stdout


def test_a_provider_retry_is_one_orquestra_line_through_the_real_adapter() -> None:
    replies: list[Reply] = [error(503, "overloaded"), json_reply({"tasks": "not a list"})]

    def respond(body: object) -> Reply:
        return replies.pop(0) if len(replies) > 1 else replies[0]

    with FakeOpenAI(respond) as server:
        result = cli(
            "-m", "orquestra", "plan", "Write a haiku", "-m", "openai:gpt-test", "--no-memory", env=server.env()
        )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = stderr_lines(result)
    assert any(line.startswith("warning: ") and "HTTP 503: overloaded; retry 1 in" in line for line in lines), lines
    assert lines[-1].startswith("error: ") and "not a plan" in lines[-1]
    assert "WARNING" not in result.stderr and "Max retries" not in result.stderr
