from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import assert_user_error, orquestra

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "launch-brief.yaml"


def test_run_a_graph_file_shows_progress_results_and_summary(tmp_path):
    saved = tmp_path / "result.json"
    result = orquestra("run", str(EXAMPLE), "--model", "scripted", "--save", str(saved))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "model: scripted" in out
    for task_id in ("market", "pricing", "compare", "brief", "review"):
        assert task_id in out
    assert "run succeeded" in out and "5 succeeded" in out
    assert "[scripted] Overall goal" not in out  # the echo shows the task line
    data = json.loads(saved.read_text())
    assert data["status"] == "succeeded"
    assert set(data["outputs"]) == {"market", "pricing", "compare", "brief", "review"}
    assert data["statuses"]["review"] == "succeeded"


def test_run_json_graph_with_a_user_registry(tmp_path):
    registry = tmp_path / "reg"
    (registry / "agents").mkdir(parents=True)
    (registry / "agents" / "poet.yaml").write_text("name: poet\ndescription: Writes verse.\ncapabilities: [poetry]\n")
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps([{"id": "ode", "instruction": "Write an ode", "capability": "poetry"}]))
    result = orquestra("run", str(graph), "--registry", str(registry), "--model", "scripted")
    assert result.returncode == 0, result.stderr
    assert "poet" in result.stdout and "1 succeeded" in result.stdout


@pytest.mark.parametrize(
    ("content", "suffix", "fragments"),
    [
        ("tasks:\n  - id: a\n    instruction: [x\n", ".yaml", ["line 4", "invalid YAML"]),
        ('{"tasks": [}', ".json", ["line 1", "invalid JSON"]),
        ("hello: world\n", ".yaml", ["expected a mapping with a 'tasks' list"]),
        ("tasks: []\n", ".yaml", ["the graph has no tasks"]),
        (
            "tasks:\n  - {id: a, instruction: x, capability: research, depends_on: [b]}\n"
            "  - {id: b, instruction: x, capability: research, depends_on: [a]}\n",
            ".yaml",
            ["cycle: a -> b -> a"],
        ),
        ("tasks:\n  - {id: a, instruction: x}\n", ".yaml", ["line 2: tasks[0].capability: required field is missing"]),
        (
            "tasks:\n  - {id: a, instruction: x, capability: juggling}\n",
            ".yaml",
            ["task 'a' needs capability 'juggling'"],
        ),
    ],
)
def test_bad_graph_files_give_one_line_and_exit_2(tmp_path, content, suffix, fragments):
    path = tmp_path / f"graph{suffix}"
    path.write_text(content)
    result = orquestra("run", str(path), "--model", "scripted")
    assert_user_error(result, str(path), *fragments)


def test_missing_file_and_bad_model(tmp_path):
    assert_user_error(orquestra("run", str(tmp_path / "nope.yaml"), "-m", "scripted"), "nope.yaml: no such file")
    assert_user_error(orquestra("run", str(EXAMPLE), "--model", "martian:big"), "unknown model 'martian:big'")


def test_bad_flags_exit_2_without_traceback():
    result = orquestra("run", str(EXAMPLE), "--model", "scripted", "--max-concurrency", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_graph_show_tree_mermaid_and_json():
    tree = orquestra("graph", "show", str(EXAMPLE))
    assert tree.returncode == 0
    assert "critical path: market -> compare -> brief -> review" in tree.stdout
    assert "compare (shown above)" in tree.stdout
    mermaid = orquestra("graph", "show", str(EXAMPLE), "--format", "mermaid")
    assert mermaid.stdout.startswith("flowchart TD\n")
    assert "t0 --> t2" in mermaid.stdout and 't2["compare<br/>analysis"]' in mermaid.stdout
    as_json = json.loads(orquestra("graph", "show", str(EXAMPLE), "-f", "json").stdout)
    assert [task["id"] for task in as_json["tasks"]] == ["market", "pricing", "compare", "brief", "review"]
    assert_user_error(orquestra("graph", "show", str(EXAMPLE), "-f", "svg"), "unknown format 'svg'")


def test_registry_list_and_show():
    listing = orquestra("registry", "list")
    assert listing.returncode == 0
    for name in ("researcher", "analyst", "writer", "reviewer", "coder", "calculator", "write_file"):
        assert name in listing.stdout
    shown = orquestra("registry", "show", "analyst")
    assert "capabilities:" in shown.stdout and "calculator" in shown.stdout
    assert_user_error(orquestra("registry", "show", "ghost"), "no agent or tool named 'ghost'")


def test_version():
    result = orquestra("--version")
    assert result.returncode == 0 and result.stdout.startswith("orquestra ")


@pytest.mark.slow
def test_ctrl_c_cancels_cleanly_and_reports_what_finished(tmp_path):
    graph = tmp_path / "chain.yaml"
    graph.write_text(
        "tasks:\n"
        "  - {id: first, instruction: x, capability: research}\n"
        "  - {id: second, instruction: x, capability: research, depends_on: [first]}\n"
        "  - {id: third, instruction: x, capability: research, depends_on: [second]}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "orquestra", "run", str(graph), "--model", "scripted:1.5", "--no-memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()  # printed just before the run starts
    assert "model: scripted:1.5" in first_line
    time.sleep(2.4)  # 'first' has finished, 'second' is running
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "run cancelled" in out and "interrupted by Ctrl-C" in out
    assert "1 succeeded" in out and "2 cancelled" in out
