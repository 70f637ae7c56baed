"""llama-cpp-python's own OpenAI-compatible server, with the embedded weights, on loopback.

That server answers tool calls as text (a fenced JSON block, say), not as `tool_calls`; this shows that the
calls still run, through the real openai SDK and the real server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from orquestra import Registry, Task
from orquestra.agent import AgentRunner
from orquestra.dispatch import Dispatcher
from orquestra.events import Event, ResultChecked, ToolCalled
from orquestra.exceptions import ModelError
from orquestra.models.openai import OpenAIModel
from orquestra.weights import QWEN_05B, ensure_weights


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# llama-cpp-python's server, started as `python -m llama_cpp.server` would be, but loading the model the way
# Orquestra does on CPUs where llama.cpp's weight repacking crashes (see `safe_weight_layout`).
SERVER = (
    "import runpy; from orquestra.models.local import safe_weight_layout; layout = safe_weight_layout(); "
    "layout.__enter__(); "
    "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)"
)


@pytest.fixture(scope="module")
def llama_server(weights_home, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        SERVER,
        "--model",
        str(ensure_weights(QWEN_05B, home=weights_home)),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "1",
        "--seed",
        "0",
    ]
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {server.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start within 120 s")
                time.sleep(0.5)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
async def test_a_tool_really_runs_through_llama_cpps_server(llama_server, tmp_path):
    model = OpenAIModel("qwen2.5-coder-0.5b", base_url=llama_server, timeout=300)
    events: list[Event] = []
    runner = AgentRunner(
        dispatcher=Dispatcher(Registry.load()),
        model_for=lambda spec: model,
        default_model="server",
        workspace=tmp_path,
        emit=events.append,
        run_id="server",
    )
    task = Task(id="total", instruction="Compute 12 * 7 + 5 with the calculator.", capability="math")
    try:
        output: str | None = await runner(task, {})
    except ModelError:  # the small model may still fumble its answer; the tool call is what this test is about
        output = None
    calls = [event for event in events if isinstance(event, ToolCalled)]
    assert calls, "no tool ran: the server's text-form call was not executed"
    ran = [event for event in calls if event.tool == "calculator" and not event.result.startswith("error")]
    assert ran, [event.result for event in calls]
    verdicts = [event for event in events if isinstance(event, ResultChecked)]
    assert verdicts, "the answer was never checked"
    if output is not None:  # an answer that counted states what a tool computed
        assert any(event.result in output.replace(",", "") for event in ran), (output, [e.result for e in ran])
