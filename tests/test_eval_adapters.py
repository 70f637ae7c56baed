"""Adapters and suite files on the committed fixture samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orquestra.evals.adapters import load_own, load_taskbench, load_tool_catalogue, load_worfbench
from orquestra.evals.cases import LabelledGraph
from orquestra.evals.suite import load_suite
from orquestra.exceptions import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "evals"
TASKBENCH = FIXTURES / "data" / "taskbench" / "huggingface"


def test_taskbench_cases_have_the_catalogue_and_gold_tool_graphs():
    cases = {case.id: case for case in load_taskbench(TASKBENCH)}
    assert len(cases) == 7
    single = cases["57993067"]
    assert single.gold == LabelledGraph(("Object Detection",)) and single.shape == "single"
    assert "Object Detection" in single.catalogue and not single.free_text
    assert single.goal.startswith("I need to identify and label objects")
    dag = cases["19276184"]
    labels = dag.gold.labels
    assert dag.shape == "dag"
    assert (labels.index("Image Classification"), labels.index("Text Generation")) in dag.gold.edges
    chain = cases["30123865"]
    assert chain.shape == "chain" and len(chain.gold.edges) == 3
    # Known noise: a 'dag' made of two unconnected chains keeps its edges and is a dag by shape.
    assert cases["33805217"].shape == "dag" and len(cases["33805217"].gold.edges) == 2


def test_taskbench_drops_links_to_tools_missing_from_the_sample(tmp_path):
    (tmp_path / "tool_desc.json").write_text(json.dumps({"nodes": [{"id": "A", "desc": "a"}, {"id": "B"}]}))
    record = {
        "id": 1,
        "user_request": "do it",
        "task_nodes": [{"task": "A"}, {"task": "B"}],
        "task_links": [{"source": "A", "target": "B"}, {"source": "A", "target": "Z"}, {"source": "A", "target": "B"}],
    }
    (tmp_path / "gold_dev.jsonl").write_text(json.dumps(record) + "\n")
    [case] = load_taskbench(tmp_path)
    assert case.gold.edges == ((0, 1),) and case.catalogue == {"A": "a", "B": "B"} and case.id == "1"


def test_taskbench_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "tool_desc.json").write_text(json.dumps({"nodes": []}))
    (tmp_path / "gold_dev.jsonl").write_text('{"id": 1, "user_request": "x", "task_nodes": []}\n{oops\n')
    with pytest.raises(UserError, match=r"gold_dev.jsonl: line 2: invalid JSON"):
        load_taskbench(tmp_path)
    (tmp_path / "gold_dev.jsonl").write_text('{"id": 1, "task_nodes": []}\n')
    with pytest.raises(UserError, match=r"line 1: field 'user_request'"):
        load_taskbench(tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_taskbench(tmp_path / "missing")


def test_worfbench_cases_are_free_text_with_start_and_end_dropped():
    cases = {case.id: case for case in load_worfbench([FIXTURES / "worfbench" / "mini.jsonl"])}
    assert len(cases) == 6
    dag = cases["toolbench_25"]
    assert dag.free_text and dag.catalogue == {}
    assert dag.goal.startswith("Task:")
    assert len(dag.gold.labels) == 3 and sorted(dag.gold.edges) == [(0, 2), (1, 2)]
    assert dag.shape == "dag"
    assert cases["alfworld_112"].shape == "chain" and len(cases["alfworld_112"].gold.edges) == 4
    # Noisy record: one node whose only edge is START -> 1 (no END edge).
    assert cases["alfworld_549"].gold.edges == () and cases["alfworld_549"].shape == "single"


def test_own_format_reads_capabilities_and_steps():
    cases = {case.id: case for case in load_own(FIXTURES / "own-cases.yaml")}
    assert cases["dag"].gold == LabelledGraph(("research", "research", "writing"), ((0, 2), (1, 2)))
    assert cases["dag"].catalogue["math"] == "Computes numbers."
    assert cases["chain"].shape == "chain" and cases["one"].shape == "single"
    steps = cases["steps"]
    assert steps.free_text and steps.catalogue == {} and steps.gold.labels[0] == "Boil the water."


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("cases: []\n", "field 'cases'"),
        ("cases:\n  - {id: a, goal: g, gold: [{id: x}]}\n", "exactly one of 'capability' or 'step'"),
        ("cases:\n  - {id: a, goal: g, gold: [{id: x, capability: c, depends_on: [y]}]}\n", "unknown task 'y'"),
        ("cases:\n  - {id: a, goal: g, gold: [{id: x, capability: c}], extra: 1}\n", "field 'cases.0.extra'"),
    ],
)
def test_own_format_errors_name_the_file_and_field(tmp_path, content, fragment):
    path = tmp_path / "cases.yaml"
    path.write_text(content)
    with pytest.raises(UserError) as error:
        load_own(path)
    assert str(path) in error.value.message and fragment in error.value.message


def test_suites_resolve_data_against_their_folder_or_the_data_option(tmp_path):
    suite = load_suite(FIXTURES / "suite-taskbench.yaml")
    assert suite.data_path() == TASKBENCH and len(suite.cases()) == 7
    elsewhere = tmp_path / "downloads"
    (elsewhere / "taskbench").mkdir(parents=True)
    (elsewhere / "taskbench" / "huggingface").symlink_to(TASKBENCH)
    moved = load_suite(FIXTURES / "suite-taskbench.yaml", elsewhere)
    assert moved.data_path() == elsewhere / "taskbench" / "huggingface" and len(moved.cases()) == 7
    # Paths outside data/ stay relative to the suite file.
    own = load_suite(FIXTURES / "suite-own.yaml", elsewhere)
    assert own.data_path() == FIXTURES / "own-cases.yaml"
    # The fixture holds both kinds of case; one suite must not mix them (they are scored differently).
    with pytest.raises(UserError, match="mixes free-text steps and capabilities"):
        own.cases()
    assert len(load_suite(FIXTURES / "suite-worfbench.yaml").cases()) == 6


def test_shipped_suites_load_and_the_own_example_uses_the_builtin_capabilities():
    root = Path(__file__).parent.parent / "evals" / "planning"
    for path in sorted(root.glob("*.yaml")):
        load_suite(path)
    example = load_suite(root / "example-own.yaml").cases()
    assert example and {"research", "math", "writing"} <= set(example[0].catalogue)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name: x\nadapter: nope\ndata: d\n", "field 'adapter'"),
        ("name: x\nadapter: taskbench\n", "needs 'data'"),
        ("name: x\nadapter: worfbench\ndata: d\n", "'files'"),
        ("name: x\nadapter: taskbench\ndata: data/nowhere\n", "field 'data'"),
        ("name: x\nadapter: taskbench\ndata: [d\n", "invalid YAML"),
    ],
)
def test_suite_errors_name_the_file_and_field(tmp_path, content, fragment):
    path = tmp_path / "suite.yaml"
    path.write_text(content)
    with pytest.raises(UserError) as error:
        load_suite(path).cases()
    assert str(path) in error.value.message and fragment in error.value.message


def test_tool_catalogues_read_taskbench_folders_and_worfbench_tool_lists(tmp_path):
    taskbench = load_tool_catalogue(TASKBENCH)
    assert "Object Detection" in taskbench
    tools = load_tool_catalogue(FIXTURES / "worfbench" / "mini.jsonl")
    assert tools and "Finish" not in tools
    assert all(isinstance(name, str) and description for name, description in tools.items())
    lines = (FIXTURES / "worfbench" / "mini.jsonl").read_text().splitlines()
    (tmp_path / "alfworld.jsonl").write_text("\n".join(line for line in lines if "alfworld_" in line) + "\n")
    with pytest.raises(UserError, match="no tool lists"):
        load_tool_catalogue(tmp_path / "alfworld.jsonl")
    with pytest.raises(UserError, match="tool catalogue not found"):
        load_tool_catalogue(tmp_path / "missing.jsonl")


def test_a_merged_suite_plans_every_case_against_the_union_of_catalogues(tmp_path):
    tools = load_tool_catalogue(FIXTURES / "worfbench" / "mini.jsonl")
    own = load_tool_catalogue(TASKBENCH)
    suite = tmp_path / "merged.yaml"
    suite.write_text(
        "name: merged\nadapter: taskbench\ndata: data/taskbench\nfiles: [huggingface]\n"
        f"extra_catalogues: [data/taskbench/huggingface, {FIXTURES / 'worfbench' / 'mini.jsonl'}]\n"
        f"catalogue_size: {len(own) + len(tools) - 1}\n"
    )
    cases = load_suite(suite, FIXTURES / "data").cases()
    assert len(cases) == 7 and cases[0].id.startswith("huggingface/")
    for case in cases:
        assert len(case.catalogue) == len(own) + len(tools) - 1  # cut at catalogue_size
        assert set(case.gold.labels) <= set(case.catalogue) and set(own) <= set(case.catalogue)
    # The shipped merged suite passes 250 tools with the development data (when it is there).
    shipped = Path(__file__).parent.parent / "evals" / "planning" / "taskbench-merged.yaml"
    assert load_suite(shipped).spec.catalogue_size == 260


def test_merge_options_belong_to_taskbench_suites(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("name: x\nadapter: worfbench\ndata: d\nfiles: [a.jsonl]\nextra_catalogues: [b]\n")
    with pytest.raises(UserError, match="belong to 'taskbench' suites"):
        load_suite(path)
    path.write_text("name: x\nadapter: taskbench\ndata: data/taskbench/huggingface\nextra_catalogues: [data/nowhere]\n")
    with pytest.raises(UserError, match="field 'extra_catalogues'"):
        load_suite(path, FIXTURES / "data").cases()
