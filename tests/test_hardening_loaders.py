"""Graph files and manifests that would hang, exhaust memory or crash a loader: each is one line naming the file.

Alias bombs, self-referencing aliases, deep nesting, integers past Python's digit limit, devices, NUL bytes,
duplicate and unknown keys: the loaders (`read_document`, `load_graph`, `load_manifest`) refuse them with a
`UserError` whose message is one line naming the file (and the line where there is one), within a wall-time
bound the test enforces (no speed is asserted), and the CLI ends with exit code 2 and that line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orquestra.bounded_yaml import MAX_ALIAS_NODES, MAX_DEPTH
from orquestra.cli import names_a_file
from orquestra.datafile import read_document, read_text
from orquestra.exceptions import UserError
from orquestra.graphfile import load_graph
from orquestra.manifest import load_manifest
from orquestra.registry import Registry

from .helpers import assert_user_error, orquestra, within_wall

AGENTS = "name: bomb\nagents: [{name: bot, model: scripted}]\ntasks: [{name: t, agent: bot, instruction: hi}]\n"


def alias_bomb(levels: int) -> str:
    """Nested aliases: each level stands for nine of the one before (380 bytes at 8 levels, 43 million nodes)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, levels)]
    return "\n".join(lines) + "\n"


def refused(path: Path, *fragments: str, loader=read_document) -> str:
    """The one-line message of the `UserError` that loading `path` raises, checked against `fragments`."""
    with pytest.raises(UserError) as caught:
        within_wall(lambda: loader(path))
    message = caught.value.message
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("loader", [load_manifest, load_graph, read_document])
def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_budget(tmp_path, loader):
    path = write(tmp_path, "bomb.yaml", AGENTS + alias_bomb(8))
    message = refused(path, "invalid YAML", f"aliases stand for more than {MAX_ALIAS_NODES} nodes", loader=loader)
    assert message.startswith(f"{path}: line 8:")  # the fifth level, where the budget runs out


def test_aliases_within_the_budget_still_load(tmp_path):
    text = "tasks:\n  - &base {id: a, capability: research, instruction: do it}\n  - {<<: *base, id: b}\n"
    graph = load_graph(write(tmp_path, "graph.yaml", text))
    assert [(task.id, task.instruction) for task in graph.tasks] == [("a", "do it"), ("b", "do it")]


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"])
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path, text):
    refused(write(tmp_path, "self.yaml", text), "line 1: invalid YAML: alias *a refers to a node that contains it")


def test_an_anchor_defined_twice_is_refused(tmp_path):
    refused(write(tmp_path, "twice.yaml", "a: &x 1\nb: &x 2\n"), "line 2", "anchor &x is defined twice")


# ---------------------------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 3_000, 100_000])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path, depth, suffix):
    path = write(tmp_path, f"deep{suffix}", "[" * depth + "]" * depth)
    refused(path, f"nested deeper than {MAX_DEPTH} levels")


def test_aliases_cannot_nest_deeper_than_the_text(tmp_path):
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 3_000))
    refused(write(tmp_path, "chain.yaml", chain), f"nested deeper than {MAX_DEPTH} levels through aliases")


def test_nesting_within_the_bound_loads(tmp_path):
    depth = MAX_DEPTH - 1  # lists inside lists, the innermost holding one scalar: MAX_DEPTH levels
    for suffix in (".yaml", ".json"):
        path = write(tmp_path, f"ok{suffix}", "[" * depth + "1" + "]" * depth)
        assert read_document(path).data is not None


# ---------------------------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("long.yaml", "retries: " + "9" * 5_000 + "\n", ["line 1: invalid YAML: an integer of more than"]),
        ("long.json", '{"retries": ' + "9" * 5_000 + "}", ["invalid JSON: an integer of more than"]),
        ("date.yaml", "when: 2020-13-45\n", ["line 1: invalid YAML: cannot read '2020-13-45' as timestamp"]),
        ("int.yaml", "n: !!int ''\n", ["invalid YAML: cannot read '' as int"]),
        ("bool.yaml", "n: !!bool maybe\n", ["invalid YAML: cannot read 'maybe' as bool"]),
        ("stamp.yaml", "n: !!timestamp soon\n", ["invalid YAML: cannot read 'soon' as timestamp"]),
        ("nul.yaml", "tasks:\n  - id: a\x00b\n", ["line 2: invalid YAML: unacceptable character #x0000"]),
        ("nul.json", '{"tasks": "a\x00b"}', ["line 1: invalid JSON: Invalid control character"]),
        ("latin1.yaml", "name: caf\xe9\n", ["line 1: cannot read: not UTF-8 text"]),
    ],
)
def test_malformed_scalars_are_one_line_errors(tmp_path, name, text, fragments):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1") if name.startswith("latin1") else text.encode("utf-8"))
    refused(path, *fragments)


# ---------------------------------------------------------------------------------------------- files


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading must not block
    refused(fifo, "cannot read: it is not a regular file")
    refused(Path("/dev/zero"), "cannot read: it is not a regular file")
    refused(tmp_path, "cannot read: it is a directory")


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    path = write(tmp_path, "big.yaml", "x" * 101)
    with pytest.raises(UserError, match=r"big\.yaml: the file is larger than 100 bytes"):
        read_text(path, max_bytes=100)
    assert read_text(path, max_bytes=101) == "x" * 101


# ---------------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("dup.yaml", "tasks:\n  - id: a\n    id: b\n", ["line 3: tasks[0].id: duplicate key"]),
        ("dup.json", '{"tasks": [\n {"id": "a",\n  "id": "b"}]}', ["line 3: tasks[0].id: duplicate key"]),
        ("top.yaml", "tasks: []\ntasks: []\n", ["line 2: tasks: duplicate key"]),
    ],
)
def test_a_key_given_twice_is_refused_naming_line_and_field(tmp_path, name, text, fragments):
    path = write(tmp_path, name, text)
    refused(path, *fragments, loader=load_graph)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_graph_file_with_an_unknown_top_level_key_is_refused(tmp_path, suffix):
    data = {"tasks": [{"id": "a", "instruction": "x", "capability": "research"}], "colour": "red"}
    text = (
        json.dumps(data, indent=1)
        if suffix == ".json"
        else "tasks:\n  - {id: a, instruction: x, capability: research}\ncolour: red\n"
    )
    path = write(tmp_path, f"graph{suffix}", text)
    refused(path, "colour: unknown field", loader=load_graph)


def test_a_graph_files_validation_error_names_its_line(tmp_path):
    text = "tasks:\n  - {id: a, instruction: x, capability: research}\n  - id: b\n    instruction: y\n"
    refused(
        write(tmp_path, "graph.yaml", text), "line 3: tasks[1].capability: required field is missing", loader=load_graph
    )


def test_both_loaders_word_a_tasks_unknown_field_alike(tmp_path):
    graph = "tasks:\n  - {id: a, instruction: x, capability: research, bogus: 1}\n"
    manifest = (
        "name: m\nagents: [{name: bot, model: scripted}]\ntasks:\n  - {name: t, agent: bot, instruction: x, bogus: 1}\n"
    )
    said = "line {}: tasks[0].bogus: unknown field"
    assert refused(write(tmp_path, "graph.yaml", graph), loader=load_graph).endswith(said.format(2))
    assert refused(write(tmp_path, "flow.yaml", manifest), loader=load_graph).endswith(said.format(4))
    two = graph.replace("bogus: 1", "bogus: 1, other: 2")
    refused(write(tmp_path, "two.yaml", two), said.format(2) + " (and 1 more problem)", loader=load_graph)


def test_a_manifest_of_more_than_max_tasks_is_one_line(tmp_path):
    tasks = "".join(f"  - {{name: t{index}, agent: bot, instruction: hi}}\n" for index in range(10_001))
    path = write(tmp_path, "many.yaml", "name: many\nagents: [{name: bot, model: scripted}]\ntasks:\n" + tasks)
    message = refused(
        path, "tasks: 10001 entries; at most 10000 are allowed", loader=lambda p: load_manifest(p, Registry.load())
    )
    assert "line 3" in message


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("command", [("graph", "show"), ("run",), ("apply",)])
def test_the_cli_gives_one_line_and_exit_2_for_a_hostile_file(tmp_path, command):
    bomb = write(tmp_path, "bomb.yaml", AGENTS + alias_bomb(8))
    extra = ("-m", "scripted") if command == ("run",) else ()
    assert_user_error(orquestra(*command, str(bomb), *extra, timeout=60), str(bomb), "aliases stand for more than")


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("self.yaml", "a: &a [*a]\n", "refers to a node that contains it"),
        ("deep.json", "[" * 5_000 + "]" * 5_000, "nested deeper than"),
        ("long.json", '{"tasks": ' + "1" * 5_000 + "}", "an integer of more than"),
        ("nul.yaml", "tasks:\n  - id: a\x00\n", "unacceptable character #x0000"),
        ("nul.json", '{"tasks": [{"id": "a\x00"}]}', "line 1: invalid JSON: Invalid control character at column 21"),
    ],
)
def test_graph_show_gives_one_line_for_a_malformed_file(tmp_path, name, text, fragment):
    path = write(tmp_path, name, text)
    assert_user_error(orquestra("graph", "show", str(path), timeout=60), str(path), fragment)


def test_a_device_as_a_graph_file_is_one_line(tmp_path):
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    assert_user_error(orquestra("graph", "show", str(zero), timeout=60), str(zero), "not a regular file")
    assert_user_error(orquestra("apply", "/dev/zero", timeout=60), "/dev/zero", "not a regular file")
    # Without a graph file's suffix too: a device is a file to refuse, not a goal to plan or a run to look up.
    assert_user_error(orquestra("graph", "show", "/dev/zero", timeout=60), "/dev/zero", "not a regular file")
    assert_user_error(orquestra("run", "/dev/zero", "-m", "scripted", timeout=60), "/dev/zero", "not a regular file")


def test_a_goal_longer_than_a_file_name_is_a_goal(tmp_path):
    goal = "Compare three note-taking apps for a student, " * 6  # one path component of 282 characters
    assert names_a_file(goal) is False
    done = orquestra("run", goal, "-m", "scripted", "--no-memory", env={"ORQUESTRA_HOME": str(tmp_path)}, timeout=60)
    assert "Traceback" not in done.stderr and "File name too long" not in done.stderr, done.stderr
    assert "scripted did not write a valid plan" in done.stderr  # it was planned: the echo model cannot plan
    assert_user_error(orquestra("graph", "show", goal, timeout=60), "no such file")


def test_a_json_manifest_error_names_its_line(tmp_path):
    data = {
        "name": "j",
        "agents": [{"name": "bot", "model": "scripted"}],
        "tasks": [{"name": "a", "agent": "ghost", "instruction": "hi"}],
    }
    path = write(tmp_path, "flow.json", json.dumps(data, indent=2))
    refused(path, "line 12: tasks[0].agent: unknown agent 'ghost'", loader=lambda p: load_manifest(p, Registry.load()))
