"""Property-based tests over graph files, manifests and templates: generated, not listed.

Whatever a file holds (any YAML or JSON, hostile fragments, a valid file with bytes changed) the loaders return
a graph or a manifest, or raise a `UserError` whose message is one line naming the file; and whatever a
template computes, a task's render ends with an instruction of bounded size or a one-line `ManifestError`.
Every case ends within `WALL` seconds: each runs in a daemon thread the test waits on for no longer
(`within_wall`), so a hang fails the test instead of stalling the suite. No speed is asserted.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orquestra.datafile import read_document
from orquestra.exceptions import UserError
from orquestra.graph import Task, TaskGraph
from orquestra.graphfile import load_graph
from orquestra.manifest import ManifestError, ManifestRunner, load_manifest
from orquestra.registry import Registry
from orquestra.templating import TemplateLimits

from .helpers import within_wall

FUZZ = settings(
    max_examples=100,
    deadline=None,  # the wall bound is what fails a slow case, and it also stops a hung one
    database=None,  # no example files left in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REGISTRY = Registry.load()
GRAPH = """\
tasks:
  - id: a
    capability: research
    instruction: Find facts.
  - id: b
    capability: writing
    instruction: Write it up.
    depends_on: [a]
"""
MANIFEST = """\
name: Fuzz
agents:
  - {name: bot, model: scripted}
tasks:
  - {name: a, agent: bot, instruction: 'Find facts.'}
  - name: b
    agent: bot
    instruction: "Write up {{ tasks.a.output }}"
    depends_on: [a]
    run_if: "tasks.a.output | length > 1"
"""


def loads_or_refuses(path: Path, loader: Any) -> Any:
    """What `loader` makes of `path`, or None after a one-line `UserError` naming the file; never anything else."""
    try:
        return within_wall(lambda: loader(path))
    except UserError as error:
        assert "\n" not in error.message, error.message
        assert error.message.startswith(str(path)), error.message
        return None


# ---------------------------------------------------------------- strategies

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["research", "writing", "a", "b", "tasks", "id", "name", "instruction", "{{ x }}", "\x1b[2J"]),
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["tasks", "id", "name", "instruction", "capability", "depends_on", "agents", "x"])
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)

# Pieces of YAML that have broken loaders: aliases, tags, deep brackets, long numbers, odd characters.
_FRAGMENTS = st.sampled_from(
    [
        "&a [x, x, x, x, x, x, x, x, x]",
        "[*a, *a, *a, *a, *a, *a, *a, *a, *a]",
        "*a",
        "&a [*a]",
        "&b {k: *b}",
        "{<<: *a}",
        "<<: [*a, *a]",
        "!!int ''",
        "!!binary '@@'",
        "!!timestamp soon",
        "2020-13-45",
        "!!python/name:os.system",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "[" * 200,
        "]" * 200,
        "{" * 150,
        "9" * 5000,
        "0x" + "f" * 5000,
        "1:" * 300 + "1",
        "\x00",
        "\x1b]0;t\x07",
        "\ufeff",
        "\t",
        "? [a]\n: b",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "'unclosed",
        '"\\x"',
        "|\n  x",
        "tasks:",
        "- id: a",
        "  capability: research",
        "  instruction: x",
        "  depends_on: [a]",
        "name: n",
        "agents: []",
    ]
)
_YAML_TEXTS = st.lists(_FRAGMENTS | st.text(max_size=10), min_size=1, max_size=12).map(
    lambda parts: "\n".join(f"k{index}: {part}" if index % 2 else part for index, part in enumerate(parts))
)


@st.composite
def _mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with a few characters replaced, inserted or removed."""
    chars = list(text)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(chars)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        piece = draw(
            st.sampled_from(["&x", "*x", "[", "]", ":", "-", " ", "\n", "{", "}", "'", "\x00", "!!int", "9" * 10])
        )
        if action == "insert" or not chars:
            chars.insert(position, piece)
        elif action == "replace":
            chars[min(position, len(chars) - 1)] = piece
        else:
            del chars[min(position, len(chars) - 1)]
    return "".join(chars)


def _files() -> st.SearchStrategy[tuple[str, str]]:
    """(suffix, text) of a would-be graph file or manifest."""
    as_yaml = _DATA.map(lambda data: (".yaml", yaml.safe_dump(data)))
    as_json = _DATA.map(lambda data: (".json", json.dumps(data)))
    fragments = _YAML_TEXTS.map(lambda text: (".yaml", text))
    mutated = st.one_of(_mutated(GRAPH), _mutated(MANIFEST)).map(lambda text: (".yaml", text))
    json_text = st.text(alphabet='[]{}:,"0123456789-.eEtrufalsn \n\x00abc', max_size=200).map(
        lambda text: (".json", text)
    )
    return st.one_of(as_yaml, as_json, fragments, mutated, json_text)


# ---------------------------------------------------------------- files


@FUZZ
@given(_files())
@example((".yaml", "- ? '\n\n    '\n  : null\n"))  # a key holding newlines, quoted in a validation message
@example((".yaml", MANIFEST.replace("| length", "| ength")))  # an unknown filter, found by the variable check
def test_any_file_loads_or_is_refused_in_one_line(file: tuple[str, str]) -> None:
    suffix, text = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        loads_or_refuses(path, read_document)
        graph = loads_or_refuses(path, load_graph)
        assert graph is None or isinstance(graph, TaskGraph)
        manifest = loads_or_refuses(path, lambda p: load_manifest(p, REGISTRY))
        assert manifest is None or manifest.tasks


# ---------------------------------------------------------------- templates

_NUMBERS = st.sampled_from(
    ["1", "2", "9", "99", "9**9", "10**10", "(9**9)**(9**9)", "-1", "0", "1e308", "2.5", "9" * 40]
)
_TEXTS = st.sampled_from(
    ["'x'", "''", "'abc'", "'%0999999999d'", "'{:>999999999}'", "tasks.m.output", "tasks.m.output[0]"]
)
_LISTS = st.sampled_from(["[1, 2, 3]", "tasks.m.output", "[tasks.m.output] * 3", "'xyz'"])
_OPERATORS = st.sampled_from(["**", "*", "*", "+", "-", "/", "//", "%", "~", "==", "and", "or"])
_FILTERS = st.sampled_from(
    [
        "center({n})",
        "indent({n})",
        "replace('', {t})",
        "join({t})",
        "batch({n}, 0)",
        "list",
        "length",
        "upper",
        "format({t})",
        "wordwrap({n})",
        "truncate({n})",
        "tojson",
        "unique",
        "reverse",
        "first",
        "sort",
        "string",
        "int",
        "round",
        "default({t})",
        "e",
        "slice({n})",
        "sum",
        "title",
        "trim",
        "tojson({n})",
    ]
)


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(
        st.sampled_from(
            ["number", "text", "list", "binop", "filter", "method"] if depth < 3 else ["number", "text", "list"]
        )
    )
    if kind == "number":
        return draw(_NUMBERS)
    if kind == "text":
        return draw(_TEXTS)
    if kind == "list":
        return draw(_LISTS)
    left = draw(_expressions(depth + 1))
    if kind == "binop":
        return f"({left} {draw(_OPERATORS)} {draw(_expressions(depth + 1))})"
    arguments = {"n": draw(_NUMBERS), "t": draw(_TEXTS)}
    if kind == "filter":
        return f"({left} | {draw(_FILTERS).format(**arguments)})"
    method = draw(
        st.sampled_from(
            ["upper()", "replace('', {t})", "center({n})", "join({l})", "split()", "format({t})", "zfill({n})"]
        )
    )
    return f"{left}.{method.format(l=draw(_LISTS), **arguments)}"


@st.composite
def _templates(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["output", "for", "if", "set", "macro"] if depth < 2 else ["output"]))
        expression = draw(_expressions())
        if kind == "output":
            parts.append(f"{{{{ {expression} }}}}")
        elif kind == "for":
            items = draw(_LISTS) if draw(st.booleans()) else expression
            parts.append(f"{{% for v in {items} %}}{draw(_templates(depth + 1))}{{% endfor %}}")
        elif kind == "if":
            parts.append(f"{{% if {expression} %}}{draw(_templates(depth + 1))}{{% endif %}}")
        elif kind == "set":
            parts.append(f"{{% set s = {expression} %}}{{{{ s }}}}")
        else:
            parts.append("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}")
    return "".join(parts)


def _flow(instruction: str, run_if: str | None) -> str:
    condition = f"    run_if: {json.dumps(run_if)}\n" if run_if is not None else ""
    return (
        "name: Fuzz\nagents:\n  - {name: bot, model: scripted}\ntasks:\n"
        "  - {name: m, agent: bot, instruction: 'Item {{ item }}', map: \"['a', 'b']\"}\n"
        f"  - name: t\n    agent: bot\n    depends_on: [m]\n    instruction: {json.dumps(instruction)}\n{condition}"
    )


async def _echo(task: Task, inputs: Any) -> str:
    return task.instruction


@FUZZ
@given(_templates(), st.none() | _expressions())
@example("{{ 1 }}", "('' | first)")  # a run_if whose value is undefined
def test_any_template_renders_within_bounds_or_fails_in_one_line(template: str, run_if: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flow.yaml"
        path.write_text(_flow(template, run_if), encoding="utf-8")
        manifest = loads_or_refuses(path, lambda p: load_manifest(p, REGISTRY))
    if manifest is None:
        return
    runner = ManifestRunner(manifest, _echo)
    task = manifest.to_graph()["t"]
    try:
        output = within_wall(lambda: asyncio.run(runner(task, {"m": ["A" * 1000, "B"]})))
    except ManifestError as error:
        assert "\n" not in error.message and error.message.startswith("task 't': "), error.message
        return
    assert len(str(output)) <= TemplateLimits().max_chars
