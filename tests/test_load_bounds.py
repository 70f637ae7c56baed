"""Graph files and manifests load in time bounded well below what the 8 MiB file limit would allow.

A file is parsed once (the graph loader hands a manifest to the manifest loader as parsed data, and the other
way round), a template is parsed and run through Jinja's code generator once, and a manifest's templates are
bounded: at most `MAX_TEMPLATE_CHARS` characters each and `MAX_TEMPLATE_NODES` syntax nodes together.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2 import meta

from orquestra import bounded_yaml, manifest
from orquestra.exceptions import UserError
from orquestra.graphfile import load_graph
from orquestra.manifest import _ENV, load_manifest
from orquestra.registry import Registry
from orquestra.template_checks import MAX_TEMPLATE_CHARS, parse_template

from .helpers import WALL, within_wall

HEAD = "name: bounds\nagents: [{name: bot, model: scripted}]\ntasks:\n  - {name: a, agent: bot, instruction: hi}\n"
"""A manifest's first lines: an agent, and a task `a` (line 4) that the others may quote."""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_task(field: str, value: str) -> str:
    """`HEAD` and a task `b` (from line 5) whose `field` holds `value` on its last line, quoted for YAML."""
    extra = "    instruction: go\n" if field != "instruction" else ""
    return HEAD + f"  - name: b\n    agent: bot\n    depends_on: [a]\n{extra}    {field}: {json.dumps(value)}\n"


def message_of(loader, path: Path, wall: float = WALL) -> str:
    with pytest.raises(UserError) as caught:
        within_wall(lambda: loader(path), wall)
    return caught.value.message


# ---------------------------------------------------------------------------------------------- one template


@pytest.mark.parametrize("loader", [load_manifest, load_graph])
def test_a_six_megabyte_template_is_refused_at_load_naming_the_line_and_field(tmp_path, loader):
    body = "word " * 1_200_000 + "{{ tasks.a.output }}"
    path = write(tmp_path, with_task("instruction", body))
    assert path.stat().st_size > 6_000_000
    # Parsing 6 MB of YAML takes PyYAML a few seconds; the template's checks, before its bound, took a minute.
    assert message_of(loader, path, wall=30) == (
        f"{path}: line 8: tasks[1].instruction: the template has {len(body):,} characters; "
        f"at most {MAX_TEMPLATE_CHARS:,} are allowed"
    )


def test_a_template_of_the_limit_loads_and_one_character_more_is_refused(tmp_path):
    quote = " {{ tasks.a.output }}"
    at_limit = "x" * (MAX_TEMPLATE_CHARS - len(quote)) + quote
    loaded = within_wall(lambda: load_manifest(write(tmp_path, with_task("instruction", at_limit))))
    assert loaded.tasks[1].instruction == at_limit
    message = message_of(load_manifest, write(tmp_path, with_task("instruction", "x" + at_limit), "over.yaml"))
    assert f"tasks[1].instruction: the template has {MAX_TEMPLATE_CHARS + 1:,} characters" in message


@pytest.mark.parametrize("field", ["run_if", "map"])
def test_expressions_have_the_same_bound(tmp_path, field):
    expression = "'" + "x" * MAX_TEMPLATE_CHARS + "'"
    message = message_of(load_manifest, write(tmp_path, with_task(field, expression)))
    assert f": line 9: tasks[1].{field}: the template has {len(expression):,} characters" in message


# ---------------------------------------------------------------------------------------------- all templates


def test_templates_past_the_node_budget_are_refused_at_the_one_that_passes_it(tmp_path, monkeypatch):
    # Each task's template has 6 nodes, task a's "hi" 3: with a budget of 30, the fifth task after a passes it.
    monkeypatch.setattr(manifest, "MAX_TEMPLATE_NODES", 30)
    tasks = "".join(
        f"  - {{name: t{i}, agent: bot, depends_on: [a], instruction: 'go {{{{ tasks.a.output }}}}'}}\n"
        for i in range(8)
    )
    path = write(tmp_path, HEAD + tasks)
    assert message_of(load_manifest, path) == (
        f"{path}: line 9: tasks[5].instruction: the manifest's templates have more than 30 syntax nodes together"
    )
    monkeypatch.setattr(manifest, "MAX_TEMPLATE_NODES", 51)  # 3 + 8 * 6: the same file loads
    assert len(load_manifest(path).tasks) == 9


@pytest.mark.parametrize("loader", [load_manifest, load_graph])
def test_ten_thousand_templated_tasks_load_within_a_bound(tmp_path, loader):
    # Each task quotes the one before it. A check that is quadratic in the tasks would take minutes here.
    tasks = "".join(
        f"  - name: t{i}\n    agent: bot\n    depends_on: [t{i - 1}]\n"
        f"    instruction: 'go on {{{{ tasks.t{i - 1}.output }}}}'\n"
        for i in range(1, 10_000)
    )
    path = write(tmp_path, HEAD.replace("name: a,", "name: t0,") + tasks)
    loaded = within_wall(lambda: loader(path), wall=60)
    assert len(loaded.tasks) == 10_000
    assert loaded.tasks[-1].instruction == "go on {{ tasks.t9998.output }}"


# ---------------------------------------------------------------------------------------------- parsing once


@pytest.mark.parametrize(
    ("loader", "text"),
    [
        (load_graph, HEAD),  # a manifest read as a graph
        (load_manifest, "tasks:\n  - {id: a, capability: research, instruction: hi}\n"),  # a graph as a manifest
    ],
)
def test_each_loader_parses_the_file_once(tmp_path, monkeypatch, loader, text):
    registry = Registry.load()  # its cards are files too, read before counting
    calls = []
    compose = bounded_yaml.compose
    monkeypatch.setattr(bounded_yaml, "compose", lambda text: calls.append(1) or compose(text))
    loader(write(tmp_path, text), registry)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------- generating once


@pytest.mark.parametrize(
    "source",
    [
        "{{ tasks.a.output }} and {{ item }}",
        "{% for line in tasks.a.output.splitlines() %}{{ loop.index }}: {{ line }}{% endfor %}",
        "{% set x = tasks.a.output %}{{ x }}{{ y | default('none') }}",
        "{% macro m(v) %}{{ v ~ other }}{% endmacro %}{{ m(tasks.a.output) }}",
        "{% with z = 1 %}{{ z + w }}{% endwith %}{% if cond %}{{ tasks.b.skipped }}{% endif %}",
        "plain text",
    ],
)
def test_one_generation_pass_finds_the_names_jinja_meta_finds(source):
    _, names = _ENV.generate(parse_template(_ENV, source))
    assert names == meta.find_undeclared_variables(parse_template(_ENV, source))
