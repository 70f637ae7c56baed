"""Manifest templates, `run_if` and `map` with bounds: no hang, no memory blow-up, no change to run state.

A template that would run away (huge powers and products, nested loops, recursion, giant widths) fails its
task with one line naming the task, the field and the bound; `map` fans out to at most `max_map_items`
items; templates and expressions see read-only copies of other tasks' outputs; and what the load-time
checks let through (bare names, Jinja's globals, unknown task fields) is refused when the file loads.
Every case runs under a wall-time bound the test enforces; no speed is asserted.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import pytest
from jinja2 import TemplateError

from orquestra.engine import RunStatus, TaskStatus
from orquestra.frozen import freeze
from orquestra.graph import Ancestry
from orquestra.manifest import DEFAULT_MAX_MAP_ITEMS, ManifestError, apply_manifest, load_manifest
from orquestra.models import Message, ScriptedModel
from orquestra.registry import Registry
from orquestra.team import AutoTeam
from orquestra.templating import BoundedEnvironment, TemplateLimitError, TemplateLimits

from .helpers import within_wall


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def task_line(messages: Sequence[Message]) -> str:
    user = next(m.content for m in messages if m.role == "user")
    return next(line for line in user.splitlines() if line.startswith("Your task"))


def flow(instruction: str = "Go on.", *, run_if: str | None = None) -> str:
    """Two tasks: `m` (a map over two items, so its output is a list) and `t`, which reads `m`."""
    lines = [
        "name: Bounds",
        "agents:",
        "  - name: bot",
        "    model: scripted",
        "tasks:",
        "  - name: m",
        "    agent: bot",
        "    instruction: 'Item {{ item }}'",
        "    map: \"['a', 'b']\"",
        "  - name: t",
        "    agent: bot",
        "    depends_on: [m]",
        f"    instruction: {json.dumps(instruction)}",
    ]
    if run_if is not None:
        lines.append(f"    run_if: {json.dumps(run_if)}")
    return "\n".join(lines) + "\n"


def answer(messages: Sequence[Message]) -> str:
    line = task_line(messages)
    return line.split("Item ")[1].upper() if "Item " in line else "done"


def run_flow(tmp_path: Path, registry: Registry, text: str, responder=answer):
    """Load and apply a manifest with a scripted model, under the wall-time bound."""
    manifest = load_manifest(write(tmp_path, text), registry)
    model = ScriptedModel(responder)
    team = AutoTeam(model=model, memory=False, store=False)
    result = within_wall(lambda: asyncio.run(apply_manifest(manifest, team=team)), 60)
    return result, model


# ---------------------------------------------------------------------------------------------- bounds


RUNAWAY = {
    "power": ("{{ (9**9)**(9**9) }}", "'**' would make an integer of more than"),
    "repeat": ("{{ 'x' * 10**10 }}", "'*' would pass 1,000,000 characters"),
    "loops": (
        "{% for a in tasks.m.output[0] * 500 %}{% for b in tasks.m.output[0] * 500 %}{% endfor %}{% endfor %}",
        "more than 100,000 steps",
    ),
    "recursion": ("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}", "calls nest more than 30 deep"),
    "width": ("{{ 'x' | center(10**9) }}", "the filter 'center' would pass"),
    "percent": ("{{ '%0999999999d' % 1 }}", "width would pass"),
    "format": ("{{ '{:>999999999}'.format(1) }}", "width would pass"),
    "replace": ("{{ (tasks.m.output[0] * 1000) | replace('', tasks.m.output[0] * 1000) }}", "'replace' would pass"),
    "concat": ("{% set s = 'x' * 900000 %}{{ s ~ s }}", "'~' would pass"),
    "percent key": ("{% set s = ('%(a)s' * 100000) % {'a': 'x' * 999999} %}", "'%' would pass"),
    "format fields": ("{% set s = ('{0}' * 300000).format('x' * 999999) %}", "the call of 'format' would pass"),
    "format filter": ("{% set s = ('%(a)s' * 100000) | format(a='x' * 999999) %}", "the filter 'format' would pass"),
    "sum of lists": ("{{ ([[1]] * 999999) | sum(start=[]) | length }}", "the filter 'sum' adds numbers only"),
}


@pytest.mark.parametrize("case", sorted(RUNAWAY))
def test_a_runaway_template_fails_its_task_with_one_line(tmp_path, registry, case):
    template, fragment = RUNAWAY[case]
    result, _ = run_flow(tmp_path, registry, flow(template))
    assert result.statuses["t"] is TaskStatus.FAILED
    message = str(result.run.errors["t"])
    assert message.startswith("task 't': instruction: ") and "\n" not in message, message
    assert fragment in message, message


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [("(9**9)**(9**9) > 0", "'**' would make"), ("('x' * 10**10) | length > 0", "'*' would pass")],
)
def test_a_runaway_run_if_fails_its_task_with_one_line(tmp_path, registry, expression, fragment):
    result, _ = run_flow(tmp_path, registry, flow(run_if=expression))
    message = str(result.run.errors["t"])
    assert message.startswith("task 't': run_if: ") and fragment in message, message


def test_the_environment_bounds_each_way_to_make_work():
    env = BoundedEnvironment(TemplateLimits(max_chars=1_000, max_steps=50, max_seconds=5.0, max_call_depth=5))
    refusals = {
        "{% for i in x %}{% for j in x %}{% endfor %}{% endfor %}": "more than 50 steps",
        "{{ x * 1000 }}": "'*' would pass 1,000 characters",
        "{{ x | join(x * 100) }}": "'join' would pass",
        "{{ x | indent(999) }}": "'indent' would pass",
        "{{ [1] | batch(10**6, 0) | list }}": "'batch' would pass",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}": "nest more than 5 deep",
        "{{ 2 ** 100000 }}": "digits",
        # A format is as long as the values its fields show, however often it shows each one.
        "{% set s = ('%(a)s' * 10) % {'a': x * 20} %}": "'%' would pass",
        "{% set s = ('%s' * 10) % ((x * 20,) * 10) %}": "'%' would pass",
        "{% set s = ('%(a)s' * 10) | format(a=x * 20) %}": "the filter 'format' would pass",
        "{% set s = ('{0}' * 10).format(x * 20) %}": "the call of 'format' would pass",
        "{% set s = ('{a}' * 10).format_map({'a': x * 20}) %}": "the call of 'format_map' would pass",
        # Summing lists copies the total once per item: quadratic within one step.
        "{% set s = [[1], [2]] | sum(start=[]) %}": "the filter 'sum' adds numbers only",
    }
    for source, fragment in refusals.items():
        with pytest.raises(TemplateLimitError, match=fragment.replace("*", r"\*")):
            within_wall(lambda source=source: env.from_string(source).render(x="abcdefghij"))
    assert env.from_string("{{ x | upper }} {{ x * 2 }}").render(x="ab") == "AB abab"
    within_bounds = (
        "{{ '%s-%(a)s' % {'a': x} if false else '%s-%s' % (x, 1) }} {{ '{0}{n}'.format(x, n=2) }} {{ [1, 2] | sum }}"
    )
    assert env.from_string(within_bounds).render(x="ab") == "ab-1 ab2 3"


def test_an_expression_runs_under_the_same_bounds():
    env = BoundedEnvironment()
    expression = env.compile_expression("x * n", undefined_to_none=False)
    assert env.evaluate(expression, {"x": "ab", "n": 3}) == "ababab"
    with pytest.raises(TemplateLimitError):
        env.evaluate(expression, {"x": "ab", "n": 10**9})


def test_a_template_sees_no_globals():
    env = BoundedEnvironment()
    for name in ("range", "lipsum", "cycler", "joiner", "namespace", "dict"):
        with pytest.raises(TemplateError, match=f"'{name}' is undefined"):
            env.from_string(f"{{{{ {name}() }}}}").render()


# ---------------------------------------------------------------------------------------------- map


def listing(count: int):
    def respond(messages: Sequence[Message]) -> str:
        line = task_line(messages)
        return "\n".join(f"topic {index}" for index in range(count)) if "(topics)" in line else "written"

    return respond


MAP = """\
name: Fan out
{cap}
agents:
  - name: bot
    model: scripted
tasks:
  - name: topics
    agent: bot
    instruction: List topics.
  - name: write
    agent: bot
    instruction: "Write about {{{{ item }}}}"
    depends_on: [topics]
    map: tasks.topics.output
"""


def test_a_map_past_max_map_items_fails_naming_the_task_and_calls_no_agent(tmp_path, registry):
    result, model = run_flow(tmp_path, registry, MAP.format(cap=""), listing(DEFAULT_MAX_MAP_ITEMS + 1))
    assert result.statuses["write"] is TaskStatus.FAILED
    message = str(result.run.errors["write"])
    assert message == "task 'write': map: 1,001 items, more than max_map_items (1,000) allows", message
    assert len(model.calls) == 1  # the topics task alone: no item ran


def test_max_map_items_is_set_in_the_manifest(tmp_path, registry):
    result, model = run_flow(tmp_path, registry, MAP.format(cap="max_map_items: 3"), listing(3))
    assert result.run.status is RunStatus.SUCCEEDED and len(result.outputs["write"]) == 3
    result, _ = run_flow(tmp_path, registry, MAP.format(cap="max_map_items: 2"), listing(3))
    assert "more than max_map_items (2) allows" in str(result.run.errors["write"])


def test_max_map_items_has_bounds(tmp_path, registry):
    with pytest.raises(ManifestError, match=r"line 2: max_map_items: Input should be greater than or equal to 1"):
        load_manifest(write(tmp_path, MAP.format(cap="max_map_items: 0")), registry)


SLOW_RENDER = "{% for i in [1] * 1000 %}{{ ([1] * 999999) | sort | length }}{% endfor %} {{ item }}"
"""A render that runs into its time bound (2 s) on any machine, a step at a time."""

SLOW_MAP = f"""\
name: Slow
agents:
  - name: bot
    model: scripted
tasks:
  - name: each
    agent: bot
    instruction: {json.dumps(SLOW_RENDER)}
    map: "[1] * 50"
    TIMEOUT
  - name: quick
    agent: bot
    instruction: Say hi.
"""


def apply_slow_map(tmp_path: Path, registry: Registry, timeout: str = ""):
    manifest = load_manifest(write(tmp_path, SLOW_MAP.replace("TIMEOUT", timeout)), registry)
    team = AutoTeam(model=ScriptedModel(answer), memory=False, store=False)
    # Rendered on the event loop, one item after another, the 50 items took 100 s a try, and nothing else ran.
    return within_wall(lambda: asyncio.run(apply_manifest(manifest, team=team)), 30)


def test_a_map_stops_at_its_first_failed_item(tmp_path, registry):
    result = apply_slow_map(tmp_path, registry)
    assert "task 'each': instruction: the template runs longer than 2 s" in str(result.run.errors["each"])
    assert result.statuses["quick"] is TaskStatus.SUCCEEDED


def test_a_slow_render_lets_the_tasks_timeout_fire_and_other_tasks_run(tmp_path, registry):
    # Well below the render's own 2 s deadline, so that a busy machine cannot reach that one first.
    result = apply_slow_map(tmp_path, registry, timeout="timeout: 0.25")
    assert "took longer than 0.25 s" in str(result.run.errors["each"])
    assert result.statuses["quick"] is TaskStatus.SUCCEEDED


# ---------------------------------------------------------------------------------------------- read-only state


FORGERY = "{{ tasks.m.output.clear() }}{{ tasks.m.output.append('FORGED') }}"


def test_a_template_cannot_change_another_tasks_output(tmp_path, registry):
    result, _ = run_flow(tmp_path, registry, flow(FORGERY))
    assert result.statuses["t"] is TaskStatus.FAILED
    assert "\n" not in str(result.run.errors["t"])
    assert result.outputs["m"] == ["A", "B"]
    assert result.run.outputs["m"] == ["A", "B"]


def test_run_if_cannot_change_another_tasks_output(tmp_path, registry):
    result, _ = run_flow(tmp_path, registry, flow(run_if="tasks.m.output.append('FORGED') or true"))
    assert result.statuses["t"] is TaskStatus.FAILED
    assert result.run.outputs["m"] == ["A", "B"]


def test_templates_still_read_lists_as_lists(tmp_path, registry):
    output = "tasks.m.output"
    template = (
        f"{{{{ {output} | join('+') }}}} {{{{ {output} | length }}}} {{{{ {output}[1] }}}} {{{{ {output} | tojson }}}}"
    )
    result, _ = run_flow(
        tmp_path, registry, flow(template), lambda m: answer(m) if "Item" in task_line(m) else task_line(m)
    )
    assert result.outputs["t"] == 'Your task (t): A+B 2 B ["A", "B"]'


def test_freeze_copies_deeply_into_read_only_types():
    original = {"a": [1, {"b": {2}}], "c": "text"}
    frozen = freeze(original)
    assert isinstance(frozen, MappingProxyType) and frozen["a"] == (1, frozen["a"][1])
    assert frozen["a"][1]["b"] == frozenset({2})
    with pytest.raises(TypeError):
        frozen["a"] = 1  # type: ignore[index]
    original["a"].append(3)
    assert frozen["a"] == (1, frozen["a"][1])  # a copy: later changes to the original do not show


# ---------------------------------------------------------------------------------------------- load-time checks


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("run_if: foo", "tasks[1].run_if: unknown variable 'foo'"),
        ("run_if: tasks", "tasks[1].run_if: refer to other tasks only as tasks.NAME"),
        ("map: items", "tasks[1].map: unknown variable 'items'"),
        ("instruction: {{ range(3) }}", "unknown variable 'range'"),
        ("instruction: {{ lipsum() }}", "unknown variable 'lipsum'"),
        ("instruction: {{ cycler(1, 2) }}", "unknown variable 'cycler'"),
        ("instruction: {{ joiner() }}", "unknown variable 'joiner'"),
        ("instruction: {% set ns = namespace(a=1) %}{{ ns.a }}", "unknown variable 'namespace'"),
        ("instruction: {{ dict(a=1) }}", "unknown variable 'dict'"),
        ("instruction: {{ tasks.m.outptu }}", "tasks.m has no field 'outptu'"),
        ("instruction: {{ " + "(" * 300 + "1" + ")" * 300 + " }}", "template syntax error: the template nests"),
        ("instruction: {{ 1" + " | abs" * 200 + " }}", "nests more than 100 levels deep"),
        ("instruction: " + "{% for a in 'x' %}" * 30 + "{% endfor %}" * 30, "template cannot be compiled"),
        ("instruction: " + "{% if 1 %}" * 120 + "{% endif %}" * 120, "nests more than 100 levels deep"),
        ("instruction: {{ " + "9" * 5000 + " }}", "an integer of more than 4300 digits"),
    ],
)
def test_what_would_fail_at_run_time_is_refused_at_load(tmp_path, registry, field, fragment):
    if field.startswith("instruction: "):
        text = flow(field.removeprefix("instruction: "))
    else:
        text = flow("{{ tasks.m.output }}") + f"    {field}\n"
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        within_wall(lambda: load_manifest(path, registry))
    message = caught.value.message
    assert message.startswith(f"{path}: line ") and "\n" not in message, message
    assert fragment in message, message


def test_a_long_chain_listed_in_reverse_loads(tmp_path, registry):
    count = 1_500
    tasks = [
        f"  - {{name: t{i}, agent: bot, instruction: 'after {{{{ tasks.t{i - 1}.output }}}}', depends_on: [t{i - 1}]}}"
        for i in range(count - 1, 0, -1)
    ]
    tasks.append("  - {name: t0, agent: bot, instruction: start}")
    text = "name: chain\nagents: [{name: bot, model: scripted}]\ntasks:\n" + "\n".join(tasks) + "\n"
    manifest = within_wall(lambda: load_manifest(write(tmp_path, text), registry), 120)
    assert len(manifest.tasks) == count


def test_ancestry_answers_transitive_dependencies_without_recursion():
    chain = {f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(5_000)}
    ancestry = Ancestry(chain)
    assert ancestry.is_upstream("t0", "t4999") and not ancestry.is_upstream("t4999", "t0")
    assert not ancestry.is_upstream("t3", "t3") and not ancestry.is_upstream("ghost", "t1")
