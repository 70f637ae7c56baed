from __future__ import annotations

from pathlib import Path

import pytest

from orquestra import Registry
from orquestra.exceptions import RegistryError


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_builtin_starter_set_covers_the_planner_capabilities():
    registry = Registry.load()
    assert {"researcher", "analyst", "writer", "reviewer", "coder"} <= set(registry.agents)
    assert {"research", "analysis", "writing", "review", "coding", "math"} <= registry.capabilities()
    assert {"calculator", "read_file", "write_file"} <= set(registry.tools)
    assert registry.tools["calculator"].entry_point == "orquestra.tools.calculator:calculate"


def test_user_folder_extends_and_overrides_without_touching_the_package(tmp_path):
    write(
        tmp_path,
        "agents/lawyer.yaml",
        "name: lawyer\ndescription: Reads contracts.\ncapabilities: [legal_review]\n",
    )
    write(
        tmp_path,
        "agents/writer.yaml",
        "name: writer\ndescription: A cheaper writer.\ncapabilities: [writing]\ncost: 0.1\nmodel: scripted\n",
    )
    registry = Registry.load(tmp_path)
    assert "legal_review" in registry.capabilities()
    assert registry.agents["writer"].cost == 0.1 and registry.agents["writer"].model == "scripted"
    assert "researcher" in registry.agents  # the built-in ones are still there
    assert "lawyer" not in Registry.load().agents


def test_agents_for_orders_by_priority_then_cost_then_name(tmp_path):
    for name, cost, priority in (("b", 1, 0), ("a", 1, 0), ("cheap", 0.5, 0), ("vip", 9, 5)):
        write(
            tmp_path,
            f"agents/{name}.yaml",
            f"name: {name}\ndescription: x\ncapabilities: [x]\ncost: {cost}\npriority: {priority}\n",
        )
    registry = Registry.load(tmp_path, builtin=False)
    assert [card.name for card in registry.agents_for("x")] == ["vip", "cheap", "a", "b"]
    assert registry.agents_for("nothing") == []


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("agents/bad.yaml", "name: bad\ndescription: x\n", r"bad\.yaml: field 'capabilities': Field required"),
        ("agents/bad.yaml", "name: bad\ndescription: x\ncapabilities: []\n", r"field 'capabilities'"),
        ("agents/bad.yaml", "name: Bad Name\ndescription: x\ncapabilities: [x]\n", r"field 'name'"),
        ("agents/bad.yaml", "name: bad\ndescription: x\ncapabilities: [x]\ncost: -1\n", r"field 'cost'"),
        ("agents/bad.yaml", "name: bad\ndescription: x\ncapabilities: [x]\ncolour: red\n", r"field 'colour'"),
        ("agents/bad.yaml", "name: bad\n  description: [x\n", r"bad\.yaml: line \d+: invalid YAML"),
        ("agents/bad.yaml", "- just\n- a list\n", r"bad\.yaml: expected a mapping of fields"),
        (
            "agents/bad.yaml",
            "name: bad\ndescription: x\ncapabilities: [x]\ntools: [teleport]\n",
            r"agent 'bad': field 'tools': unknown tool 'teleport'",
        ),
        (
            "agents/bad.yaml",
            "name: bad\ndescription: x\ncapabilities: [x]\nfallbacks: [nobody]\n",
            r"agent 'bad': field 'fallbacks': unknown agent 'nobody'",
        ),
        (
            "tools/t.yaml",
            "name: t\ndescription: x\narguments: {type: string}\nentry_point: m:f\n",
            r"t\.yaml: field 'arguments': must be a JSON schema with type: object",
        ),
        (
            "tools/t.yaml",
            "name: t\ndescription: x\narguments: {type: object}\nentry_point: not an entry point\n",
            r"t\.yaml: field 'entry_point'",
        ),
    ],
)
def test_loading_errors_name_the_file_and_the_field(tmp_path, relative, text, expected):
    write(tmp_path, relative, text)
    with pytest.raises(RegistryError, match=expected):
        Registry.load(tmp_path)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(RegistryError, match="nowhere: registry folder not found"):
        Registry.load(tmp_path / "nowhere")


def test_unknown_agent_lists_the_known_ones():
    with pytest.raises(RegistryError, match=r"no agent named 'ghost' \(known: analyst, coder"):
        Registry.load().agent("ghost")
