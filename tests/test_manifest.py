from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from orquestra.approval import ApprovalRequest, Decision
from orquestra.cli_apply import apply_command
from orquestra.engine import RunStatus, TaskStatus
from orquestra.graph import Task, TaskGraph
from orquestra.manifest import (
    ManifestError,
    Skipped,
    apply_manifest,
    dump_manifest,
    graph_to_manifest,
    load_manifest,
)
from orquestra.models import Message, ScriptedModel
from orquestra.registry import Registry
from orquestra.team import AutoTeam

BLOG = """\
name: Blog Post Creation
description: A blog post about AI orchestration.
agents:
  - name: writer_agent
    model: scripted
    persona: Write crisply.
  - name: editor_agent
    provider: scripted
    description: Edits drafts.
tasks:
  - name: draft_blog_post
    agent: writer_agent
    instruction: "Write a blog post about AI orchestration."
  - name: edit_blog_post
    agent: editor_agent
    instruction: "Review the draft: {{ tasks.draft_blog_post.output }}"
    depends_on: [draft_blog_post]
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def task_line(messages: Sequence[Message]) -> str:
    """The 'Your task (id): instruction' line of the prompt."""
    user = next(m.content for m in messages if m.role == "user")
    return next(line for line in user.splitlines() if line.startswith("Your task"))


def team_with(responder: object) -> AutoTeam:
    return AutoTeam(model=ScriptedModel(responder), memory=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- valid manifests


async def test_inline_agents_run_and_templates_see_upstream_outputs(tmp_path, registry):
    manifest = load_manifest(write(tmp_path, BLOG), registry)
    assert [agent.model_string() for agent in manifest.agents] == ["scripted", "scripted"]

    def respond(messages: Sequence[Message]) -> str:
        line = task_line(messages)
        return "DRAFT TEXT" if "draft_blog_post" in line else f"edited<{line}>"

    result = await apply_manifest(manifest, team=team_with(respond))
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.outputs["draft_blog_post"] == "DRAFT TEXT"
    assert "Review the draft: DRAFT TEXT" in result.outputs["edit_blog_post"]
    assert result.statuses == {"draft_blog_post": TaskStatus.SUCCEEDED, "edit_blog_post": TaskStatus.SUCCEEDED}


async def test_persona_reaches_the_system_prompt_and_quoted_inputs_are_not_repeated(tmp_path, registry):
    manifest = load_manifest(write(tmp_path, BLOG), registry)
    model = ScriptedModel(lambda messages: "DRAFT TEXT")
    await apply_manifest(manifest, team=AutoTeam(model=model, memory=False))
    writer_call, editor_call = model.calls
    assert "Write crisply." in writer_call[0].content
    assert "--- draft_blog_post ---" not in editor_call[1].content  # the template already quotes it


async def test_a_registry_agent_by_name(tmp_path, registry):
    path = write(
        tmp_path,
        """\
        name: Research
        tasks:
          - name: facts
            agent: researcher
            instruction: Find facts about tea.
        """,
    )
    manifest = load_manifest(path, registry)
    graph = manifest.to_graph()
    assert graph["facts"].agent == "researcher"
    assert graph["facts"].capability == registry.agent("researcher").capabilities[0]
    result = await apply_manifest(manifest, team=team_with(lambda messages: "tea facts"))
    assert result.outputs == {"facts": "tea facts"}


def test_inline_agents_offer_their_own_name_as_capability(tmp_path, registry):
    graph = load_manifest(write(tmp_path, BLOG), registry).to_graph()
    assert graph["draft_blog_post"].capability == "writer_agent"
    assert graph["edit_blog_post"].depends_on == ("draft_blog_post",)


# ---------------------------------------------------------------------------------------------- errors


ERRORS = {
    "bad_yaml": ("name: x\ntasks:\n  - name: a\n    instruction: [unclosed\n", "line 5", "invalid YAML"),
    "unknown_agent": (
        BLOG.replace("agent: editor_agent", "agent: editor"),
        "line 15: tasks[1].agent: unknown agent 'editor'",
    ),
    "unknown_field": (
        BLOG.replace("    persona:", "    colour: red\n    persona:"),
        "line 6: agents[0].colour",
        "unknown field",
    ),
    "not_upstream": (
        BLOG.replace("    depends_on: [draft_blog_post]\n", ""),
        "line 16: tasks[1].instruction",
        "'draft_blog_post', which is not upstream of 'edit_blog_post'",
    ),
    "template_syntax": (
        BLOG.replace("{{ tasks.draft_blog_post.output }}", "{{ tasks. }}"),
        "line 16: tasks[1].instruction",
        "template syntax error: expected name or number",
    ),
    "cycle": (
        BLOG.replace(
            'instruction: "Write a blog post about AI orchestration."',
            'instruction: "Write."\n    depends_on: [edit_blog_post]',
        ),
        "depends_on: cycle: ",
    ),
    "duplicate_task": (
        BLOG.replace("name: edit_blog_post", "name: draft_blog_post"),
        "line 14: tasks[1].name",
        "duplicate",
    ),
    "run_if_syntax": (BLOG + '    run_if: "tasks.draft_blog_post.output =="\n', "line 18: tasks[1].run_if", "syntax"),
    "run_if_not_upstream": (
        BLOG + '    run_if: "tasks.edit_blog_post.skipped"\n',
        "line 18: tasks[1].run_if",
        "'edit_blog_post'",
    ),
    "loop_over_tasks": (
        BLOG.replace("{{ tasks.draft_blog_post.output }}", "{% for t in tasks %}{{ t }}{% endfor %}"),
        "only as tasks.NAME",
    ),
    "unknown_variable": (BLOG.replace("tasks.draft_blog_post.output", "item"), "unknown variable 'item'"),
    "unknown_dependency": (BLOG.replace("[draft_blog_post]", "[draft]"), "line 17: tasks[1].depends_on[0]", "'draft'"),
    "missing_field": (
        BLOG.replace('    instruction: "Write a blog post about AI orchestration."\n', ""),
        "tasks[0].instruction",
        "required",
    ),
    "unknown_tool": (
        BLOG.replace("    persona:", "    tools: [teleport]\n    persona:"),
        "agents[0].tools[0]",
        "'teleport'",
    ),
    "duplicate_key": (
        BLOG.replace("    persona:", "    model: other\n    persona:"),
        "line 6: agents[0].model",
        "duplicate key",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_every_error_names_file_line_and_field(tmp_path, registry, case):
    text, *fragments = ERRORS[case]
    path = write(tmp_path, text, "blog.yaml")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, registry)
    message = caught.value.message
    assert message.startswith(f"{path}: line "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# ---------------------------------------------------------------------------------------------- run_if and map

CONDITIONS = """\
name: Conditions
agents:
  - name: bot
    model: scripted
tasks:
  - name: check
    agent: bot
    instruction: Is it ready?
  - name: ship
    agent: bot
    instruction: "Ship it."
    depends_on: [check]
    run_if: "'yes' in tasks.check.output"
  - name: announce
    agent: bot
    instruction: "Announce: {{ tasks.ship.output }}"
    depends_on: [ship]
  - name: report
    agent: bot
    instruction: "Report (shipped skipped: {{ tasks.ship.skipped }}, check said {{ tasks.check.output }})"
    depends_on: [ship]
    run_if_skipped: true
"""


async def test_run_if_true_runs_the_task_and_its_dependents(tmp_path, registry):
    manifest = load_manifest(write(tmp_path, CONDITIONS), registry)
    result = await apply_manifest(manifest, team=team_with(lambda m: "yes" if "(check)" in task_line(m) else "ok"))
    assert all(status is TaskStatus.SUCCEEDED for status in result.statuses.values())
    assert set(result.outputs) == {"check", "ship", "announce", "report"}


async def test_run_if_false_skips_the_task_and_its_dependents_unless_they_opt_in(tmp_path, registry):
    manifest = load_manifest(write(tmp_path, CONDITIONS), registry)
    result = await apply_manifest(
        manifest, team=team_with(lambda m: "no" if "(check)" in task_line(m) else task_line(m))
    )
    assert result.statuses["ship"] is TaskStatus.SKIPPED
    assert result.statuses["announce"] is TaskStatus.SKIPPED
    assert result.statuses["report"] is TaskStatus.SUCCEEDED
    assert "shipped skipped: True, check said no" in result.outputs["report"]
    assert set(result.outputs) == {"check", "report"}
    assert isinstance(result.run.outputs["ship"], Skipped)


async def test_run_if_is_never_python(tmp_path, registry):
    text = CONDITIONS.replace("'yes' in tasks.check.output", "tasks.check.output.__class__.__mro__")
    manifest = load_manifest(write(tmp_path, text), registry)
    result = await apply_manifest(manifest, team=team_with(lambda m: "yes"))
    assert result.statuses["ship"] is TaskStatus.FAILED
    assert "run_if" in str(result.run.errors["ship"])


MAP = """\
name: Map
agents:
  - name: bot
    model: scripted
tasks:
  - name: topics
    agent: bot
    instruction: List topics.
  - name: write
    agent: bot
    instruction: "Write about {{ item }} (after {{ tasks.topics.output | length }} chars)"
    depends_on: [topics]
    map: tasks.topics.output
  - name: combine
    agent: bot
    instruction: "Combine: {{ tasks.write.output | join(' | ') }}"
    depends_on: [write]
"""


@pytest.mark.parametrize(
    "listing", ['["tea", "coffee", "cocoa"]', '```json\n["tea", "coffee", "cocoa"]\n```', "tea\ncoffee\n\ncocoa"]
)
async def test_map_runs_once_per_item_and_keeps_order(tmp_path, registry, listing):
    manifest = load_manifest(write(tmp_path, MAP), registry)

    def respond(messages: Sequence[Message]) -> str:
        line = task_line(messages)
        if "(topics)" in line:
            return listing
        if "(write)" in line:
            return line.split("Write about ")[1].split(" (")[0].upper()
        return line

    result = await apply_manifest(manifest, team=team_with(respond))
    assert result.outputs["write"] == ["TEA", "COFFEE", "COCOA"]
    assert "Combine: TEA | COFFEE | COCOA" in result.outputs["combine"]


def test_item_is_only_known_to_map_tasks(tmp_path, registry):
    text = MAP.replace("    map: tasks.topics.output\n", "")
    with pytest.raises(ManifestError, match=r"line 11: tasks\[1\].instruction: unknown variable 'item'"):
        load_manifest(write(tmp_path, text), registry)


# ---------------------------------------------------------------------------------------------- dynamic


async def test_dynamic_manifest_runs_under_the_loop(tmp_path, registry):
    manifest = load_manifest(write(tmp_path, "dynamic: true\n" + BLOG), registry)
    assert manifest.dynamic and manifest.goal == "A blog post about AI orchestration."
    result = await apply_manifest(manifest, team=team_with(lambda m: "fine"))
    assert result.run.status is RunStatus.SUCCEEDED
    assert result.loop.graphs


async def test_manifest_tasks_and_inline_agents_can_require_approval(tmp_path, registry):
    text = BLOG.replace(
        "    description: Edits drafts.\n", "    description: Edits drafts.\n    requires_approval: true\n"
    )
    text += (
        "  - name: notes\n    agent: writer_agent\n    instruction: Jot notes.\n"
        "    depends_on: [draft_blog_post]\n    requires_approval: true\n"
    )
    manifest = load_manifest(write(tmp_path, text), registry)
    asked: list[tuple[str, tuple[str, ...]]] = []

    def approver(request: ApprovalRequest) -> Decision:
        asked.append((request.task.id, request.reasons))
        if request.task.id == "notes":
            return Decision.edit("Jot notes on {{ tasks.draft_blog_post.output }}")
        return Decision.reject("not now")

    model = ScriptedModel(lambda m: "fine")
    team = AutoTeam(model=model, memory=False, store=False, approver=approver)
    result = await apply_manifest(manifest, team=team)
    # The edited instruction ran, rendered as a template like the one it replaced.
    assert any("Your task (notes): Jot notes on fine" in call[-1].content for call in model.calls)
    assert sorted(asked) == [
        ("edit_blog_post", ("agent 'editor_agent' requires approval",)),
        ("notes", ("the plan asks for approval",)),
    ]
    assert result.run.statuses["notes"].value == "succeeded"
    assert result.run.statuses["edit_blog_post"].value == "failed"


# ---------------------------------------------------------------------------------------------- round trip


def test_plan_graph_to_manifest_and_back_is_the_same_graph(tmp_path, registry):
    graph = TaskGraph(
        tasks=(
            Task(
                id="market",
                instruction="Research the market.",
                capability="research",
                expected_output="notes",
                requires_approval=True,
            ),
            Task(id="numbers", instruction="Compute {{ nothing }} here", capability="math", retries=1),
            Task(
                id="brief",
                instruction="Write the brief.",
                capability="writing",
                depends_on=("market", "numbers"),
                agent="writer",
                timeout=30.0,
            ),
        )
    )
    path = tmp_path / "plan.yaml"
    dump_manifest(graph_to_manifest(graph, name="launch"), path)
    loaded = load_manifest(path, registry)
    assert loaded.name == "launch"
    back = loaded.to_graph()
    plain = [task for task in graph.tasks if task.id != "numbers"]
    assert [task for task in back.tasks if task.id != "numbers"] == plain
    assert back["numbers"].instruction == "{% raw %}Compute {{ nothing }} here{% endraw %}"
    assert back["numbers"].model_copy(update={"instruction": "Compute {{ nothing }} here"}) == graph["numbers"]
    assert yaml.safe_load(path.read_text())["tasks"][0] == {
        "name": "market",
        "capability": "research",
        "instruction": "Research the market.",
        "expected_output": "notes",
        "requires_approval": True,
    }


async def test_raw_instructions_reach_the_agent_literally(tmp_path, registry):
    graph = TaskGraph(tasks=(Task(id="a", instruction="Say {{ x }}", capability="research"),))
    path = tmp_path / "plan.yaml"
    dump_manifest(graph_to_manifest(graph), path)
    result = await apply_manifest(load_manifest(path, registry), team=team_with(task_line))
    assert result.outputs["a"] == "Your task (a): Say {{ x }}"


# ---------------------------------------------------------------------------------------------- CLI


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("apply")(apply_command)

    @app.command("other")
    def other() -> None:
        """Keep typer in multi-command mode, as in the real app."""

    return app


def test_cli_apply_prints_outputs_and_summary(tmp_path):
    path = write(tmp_path, BLOG)
    result = CliRunner().invoke(cli(), ["apply", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "draft_blog_post" in result.stdout and "edit_blog_post" in result.stdout
    assert "Blog Post Creation: succeeded" in result.stdout and "2 succeeded" in result.stdout


def test_cli_apply_errors_are_one_line_and_exit_2(tmp_path):
    path = write(tmp_path, BLOG.replace("agent: editor_agent", "agent: editor"), "blog.yaml")
    result = CliRunner().invoke(cli(), ["apply", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error:") and "\n" not in line, line
    assert "line 15: tasks[1].agent: unknown agent 'editor'" in line
