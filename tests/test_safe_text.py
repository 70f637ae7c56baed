"""Untrusted text reaches the terminal as text: no escape sequence acts, no markup is parsed, errors stay one line.

Instructions, outputs, capabilities, notes and error messages come from files and models; `orquestra.safe_text`
shows their control characters as escapes (``\\x1b``) wherever the CLI prints them, and deep graphs print
without recursion.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from typer.testing import CliRunner

from orquestra.console import ProgressView, graph_tree, mermaid
from orquestra.events import TaskFailed
from orquestra.exceptions import ModelError
from orquestra.models import Message, ScriptedModel
from orquestra.safe_text import clean, error_line, plain
from orquestra.team import AutoTeam

from .helpers import make_graph, orquestra, within_wall
from .test_manifest import cli
from .test_team import team_brain

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
HOSTILE = f"{TITLE}clear{CLEAR}\x9b31m\rover\u202eevil\x7f"


def rendered(renderable: object, *, terminal: bool = True) -> str:
    """What a colour terminal (or, without `terminal`, a file) receives for `renderable`."""
    buffer = io.StringIO()
    colours = "truecolor" if terminal else None
    Console(file=buffer, force_terminal=terminal, color_system=colours, width=200).print(renderable)
    return buffer.getvalue()


def assert_inert(output: str) -> None:
    """None of HOSTILE's commands reaches the terminal raw; each shows as its escape."""
    for raw in ("\x1b]", "\x1b[2J", "\x9b", "\r", "\u202e", "\x07", "\x7f"):
        assert raw not in output, repr(output)
    assert "\\x1b]0;pwned\\x07" in output and "\\x1b[2J" in output and "\\u202e" in output


def test_clean_escapes_every_control_but_newline_and_tab():
    assert clean("a\tb\nc") == "a\tb\nc"
    assert clean("a\tb\nc", one_line=True) == "a\\tb\\nc"
    assert clean(HOSTILE) == "\\x1b]0;pwned\\x07clear\\x1b[2J\\x9b31m\\x0dover\\u202eevil\\x7f"
    assert all(
        clean(chr(code)) != chr(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if code not in (9, 10)
    )


def test_plain_is_never_markup():
    assert rendered(plain("[bold]not bold[/bold] [/oops]")).strip().endswith("[bold]not bold[/bold] [/oops]")
    assert error_line("line 1\nline 2 [/x]").plain == "error: line 1\\nline 2 [/x]"


def test_the_tree_the_progress_table_and_mermaid_show_control_codes_as_escapes():
    graph = make_graph({"a": []}, capability=f"research{CLEAR}")
    graph = graph.model_copy(update={"tasks": (graph.tasks[0].model_copy(update={"instruction": HOSTILE}),)})
    assert_inert(rendered(graph_tree(graph)))
    assert "\x1b" not in mermaid(graph)
    view = ProgressView(graph, {"a": f"agent{TITLE}"})
    view(TaskFailed("run", "a", HOSTILE, 0.0))
    assert_inert(rendered(view))


def test_graph_show_prints_a_hostile_graph_file_inertly(tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"tasks": [{"id": "a", "capability": "research", "instruction": HOSTILE}]}))
    for form in ("tree", "mermaid", "json"):
        result = orquestra("graph", "show", str(path), "-f", form, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x9b" not in result.stdout, (form, result.stdout)


def test_apply_prints_a_hostile_output_inertly(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(
        f"name: {json.dumps(HOSTILE)}\nagents:\n  - {{name: bot, model: scripted}}\ntasks:\n"
        f"  - name: a\n    agent: bot\n    instruction: {json.dumps(HOSTILE)}\n"
    )
    result = CliRunner().invoke(cli(), ["apply", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "\x1b]0;" not in result.stdout and "\x1b[2J" not in result.stdout
    assert result.stdout.count("\\x1b]0;pwned") == 2  # the scripted model echoes the goal; the summary names it


def test_an_error_with_markup_and_a_newline_is_one_line(tmp_path):
    path = tmp_path / "flow.yaml"
    task = '{name: a, agent: "[/x]\\n\\u001b[2J", instruction: hi}'
    path.write_text(f"name: Markup\nagents:\n  - {{name: bot, model: scripted}}\ntasks:\n  - {task}\n")
    result = orquestra("apply", str(path), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in result.stderr, result.stderr
    assert "unknown agent '[/x]\\n\\x1b[2J'" in line, line


def test_registry_list_prints_hostile_cards_inertly(tmp_path):
    (tmp_path / "agents").mkdir()
    (tmp_path / "tools").mkdir()
    agent = {"name": "odd", "description": "x", "capabilities": [f"cap{CLEAR}"], "model": f"scripted{TITLE}"}
    (tmp_path / "agents" / "odd.yaml").write_text(json.dumps(agent))
    tool = {
        "name": "odd_tool",
        "description": f"{TITLE} [bold]not bold[/bold]",
        "arguments": {"type": "object", "properties": {}},
        "entry_point": "orquestra.tools.calculator:calculate",
        "permissions": ["compute"],
    }
    (tmp_path / "tools" / "odd_tool.yaml").write_text(json.dumps(tool))
    result = orquestra("registry", "list", "-r", str(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout, repr(result.stdout)
    assert "\\x1b]0;pwned\\x07 [bold]not bold[/bold]" in result.stdout and "cap\\x1b[2J" in result.stdout


async def test_runs_show_and_memory_show_print_a_hostile_reason_inertly():
    def brain(messages: Sequence[Message]) -> Any:
        if "final answer of a team" in messages[0].content:
            raise ModelError(f"brain: HTTP 400: {HOSTILE}")  # a provider's message, quoted in the run's reason
        return team_brain(messages)

    result = await AutoTeam(model=ScriptedModel(brain, name="brain")).arun("How much do our widgets cost in total?")
    assert HOSTILE in result.run.reason
    for command in (("runs", "show"), ("memory", "show")):
        shown = orquestra(*command, result.run.run_id, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout and "\x9b" not in shown.stdout, (command, shown.stdout)
        assert "\\x1b]0;pwned\\x07" in shown.stdout, (command, shown.stdout)


# ---------------------------------------------------------------------------------------------- deep graphs


def chain(count: int) -> str:
    tasks = [{"id": "t0", "capability": "research", "instruction": "start"}]
    tasks += [
        {"id": f"t{i}", "capability": "research", "instruction": "go", "depends_on": [f"t{i - 1}"]}
        for i in range(1, count)
    ]
    return json.dumps({"tasks": tasks})


def test_graph_show_draws_a_3000_deep_chain_without_recursion(tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(chain(3_000))
    result = orquestra("graph", "show", str(path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "more below (-f mermaid shows all 3000)" in result.stdout
    assert "t2999" in result.stdout  # on the critical path


def test_graph_tree_stops_at_its_depth_and_keeps_the_order_of_a_walk():
    graph = make_graph({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    text = rendered(graph_tree(graph, depth=2), terminal=False)
    assert text.index("b [research]") < text.index("c [research]")
    assert "more below" in text and "shown above" not in text
    full = rendered(graph_tree(graph), terminal=False)
    assert "d (shown above)" in full and full.count("d [research]") == 1  # d has two parents: drawn once


def test_graph_show_of_a_long_manifest_listed_in_reverse(tmp_path):
    count = 1_500
    tasks = [
        f"  - {{name: t{i}, agent: bot, instruction: go, depends_on: [t{i - 1}]}}" for i in range(count - 1, 0, -1)
    ]
    text = (
        "name: chain\nagents: [{name: bot, model: scripted}]\ntasks:\n"
        + "\n".join(tasks)
        + "\n  - {name: t0, agent: bot, instruction: start}\n"
    )
    path = tmp_path / "reverse.yaml"
    path.write_text(text)
    result = within_wall(lambda: orquestra("graph", "show", str(path), timeout=120), 150)
    assert result.returncode == 0, result.stderr
    assert "reverse.yaml: 1500 tasks" in result.stdout
