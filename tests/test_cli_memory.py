"""`orquestra memory list/search/show/forget` on a temporary ORQUESTRA_HOME."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from orquestra.cli_memory import memory_app
from orquestra.exceptions import UserError
from orquestra.graph import Task, TaskGraph
from orquestra.memory import ChromaMemory, RunMemory, TaskMemory, memory_path
from tests.helpers import mounted

GRAPH = TaskGraph(
    tasks=(
        Task(id="facts", instruction="Gather facts", capability="research"),
        Task(id="summary", instruction="Summarise them", capability="writing", depends_on=("facts",)),
    )
)
RUNS = [
    RunMemory(
        "r-vectors",
        "compare vector databases for a RAG prototype",
        "succeeded",
        GRAPH,
        [
            TaskMemory("facts", "research", "researcher", True, "Chroma is embedded; Weaviate is a server"),
            TaskMemory("summary", "writing", "writer", True, "a two-paragraph comparison"),
        ],
        ["ask for benchmark numbers early"],
        "Chroma for a prototype, Weaviate at scale.",
        created_at=1_700_000_000.0,
    ),
    RunMemory(
        "r-lisbon",
        "plan a 3-day trip to Lisbon",
        "failed",
        GRAPH,
        [TaskMemory("facts", "research", "researcher", False, "timed out")],
        created_at=1_700_100_000.0,
        reason="task 'facts' failed",
    ),
    RunMemory(
        "r-markup",
        "explain [bold red]rich markup[/bold red] to a beginner",
        "succeeded",
        GRAPH,
        answer="Use [link=https://example.com]links[/link] like this.",
        created_at=1_700_200_000.0,
    ),
]

runner = CliRunner()


@pytest.fixture
def home():
    with ChromaMemory(memory_path()) as memory:
        memory.remember_all(RUNS)
    return memory_path()


def app() -> typer.Typer:
    return mounted(memory_app, "memory")


def invoke(*args: str):
    return runner.invoke(app(), ["memory", *args], env={"COLUMNS": "200"})


def test_list_shows_the_newest_runs_first(home):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("r-markup") < out.index("r-lisbon") < out.index("r-vectors")
    assert "compare vector databases for a RAG prototype" in out
    assert "failed" in out and "0/1 ok" in out and "2/2 ok" in out
    assert "3 of 3 runs" in out
    assert "[bold red]rich markup[/bold red]" in out  # printed as written, not interpreted
    limited = invoke("list", "-n", "1")
    assert "r-markup" in limited.output and "r-lisbon" not in limited.output


def test_list_on_a_new_home_says_so_and_creates_nothing():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    assert "no runs remembered yet" in result.output
    assert not memory_path().exists()


def test_search_finds_runs_by_meaning(home):
    result = invoke("search", "a long weekend in Portugal", "-k", "2")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("r-")]
    assert len(lines) == 2 and lines[0].startswith("r-lisbon")
    assert "similarity" in result.output


def test_show_prints_goal_graph_tasks_lessons_and_answer(home):
    result = invoke("show", "r-vectors")
    assert result.exit_code == 0, result.output
    out = result.output
    for fragment in (
        "compare vector databases for a RAG prototype",
        "succeeded",
        "graph: 2 tasks",
        "facts",
        "summary",
        "Chroma is embedded; Weaviate is a server",
        "researcher",
        "lesson: ask for benchmark numbers early",
        "Chroma for a prototype, Weaviate at scale.",
    ):
        assert fragment in out, fragment
    failed = invoke("show", "r-lisbon").output
    assert "failed (task 'facts' failed)" in failed and "timed out" in failed
    markup = invoke("show", "r-markup").output
    assert "[link=https://example.com]links[/link]" in markup


def test_forget_removes_the_run_and_says_which(home):
    result = invoke("forget", "r-lisbon")
    assert result.exit_code == 0, result.output
    assert "forgot run r-lisbon: plan a 3-day trip to Lisbon" in result.output
    assert "r-lisbon" not in invoke("list").output
    with ChromaMemory(home) as memory:
        assert memory.get("r-lisbon") is None and memory.count() == 2


@pytest.mark.parametrize("command", ["show", "forget"])
def test_an_unknown_id_is_a_user_error(home, command):
    result = invoke(command, "r-nope")
    assert isinstance(result.exception, UserError)
    assert "no remembered run with id 'r-nope'" in result.exception.message
    assert "\n" not in result.exception.message


def test_a_broken_memory_is_one_line_saying_what_to_do(home):
    (home / "records.sqlite3").write_bytes(b"not a database" * 100)
    result = invoke("list")
    assert isinstance(result.exception, UserError)
    message = result.exception.message
    assert "\n" not in message and str(home) in message and "move the folder away" in message


MAIN = """
import orquestra.cli as cli
from orquestra.cli_memory import memory_app
if "memory" not in [group.name for group in cli.app.registered_groups]:
    cli.app.add_typer(memory_app, name="memory")
cli.main()
"""


def test_the_orquestra_command_prints_one_line_and_exits_2(home):
    result = subprocess.run(
        [sys.executable, "-c", MAIN, "memory", "forget", "r-nope"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert line.startswith("error:") and "\n" not in line and "r-nope" in line
    assert "Traceback" not in result.stderr
