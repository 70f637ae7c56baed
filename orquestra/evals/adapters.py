"""Adapters: read a benchmark's files into `EvalCase`s with gold graphs.

Three formats are read: TaskBench (tools as capabilities, gold tool graphs), WorfBench (free-text steps with
gold graphs) and Orquestra's own (a goal, a catalogue and a gold graph per case, for suites users write).
Every problem with a file is a `UserError` naming the file, and the line or field where there is one.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orquestra.datafile import read_data, read_text
from orquestra.evals.cases import EvalCase, LabelledGraph
from orquestra.evals.metrics import shape_of
from orquestra.exceptions import UserError, describe_validation_error

RecordT = TypeVar("RecordT", bound=BaseModel)

FREE_TEXT_CAPABILITY = "act"

DATASET_MAX_BYTES = 512 * 1024 * 1024
"""The largest benchmark file read: published dataset files pass the limit of a graph file by far."""
"""The one capability of free-text suites: the plan's steps are scored by their text, not their capability."""


# ---------------------------------------------------------------------------------------------- TaskBench


class _TaskBenchNode(BaseModel):
    task: str
    arguments: list[Any] = Field(default_factory=list)


class _TaskBenchLink(BaseModel):
    source: str
    target: str


class _TaskBenchRecord(BaseModel):
    id: str | int
    user_request: str = Field(min_length=1)
    task_nodes: list[_TaskBenchNode]
    task_links: list[_TaskBenchLink] = Field(default_factory=list)


def load_taskbench(folder: Path) -> list[EvalCase]:
    """The cases of a TaskBench domain folder (`tool_desc.json` and `gold_dev.jsonl`).

    The catalogue is the domain's tools, by name, with their descriptions. A link that names a tool missing
    from the sample's nodes is dropped (known noise in the data), as is a repeated link.
    """
    if not folder.is_dir():
        raise UserError(f"{folder}: TaskBench data folder not found (see evals/README.md for the downloads)")
    catalogue = _taskbench_catalogue(folder / "tool_desc.json")
    cases = []
    for where, data in _json_lines(_gold_file(folder)):
        record = _validate(_TaskBenchRecord, data, where)
        labels = tuple(node.task for node in record.task_nodes)
        index = {label: position for position, label in enumerate(labels)}
        edges: list[tuple[int, int]] = []
        for link in record.task_links:
            edge = (index.get(link.source, -1), index.get(link.target, -1))
            if -1 not in edge and edge[0] != edge[1] and edge not in edges:
                edges.append(edge)
        gold = LabelledGraph(labels, tuple(edges))
        cases.append(EvalCase(str(record.id), record.user_request, gold, catalogue, shape=shape_of(gold)))
    return cases


def merge_catalogues(
    cases: Iterable[EvalCase], extra: Sequence[Mapping[str, str]], size: int | None = None
) -> list[EvalCase]:
    """`cases`, each planned against its own catalogue plus the tools of `extra`, in order, up to `size` tools.

    A case keeps all of its own tools (its gold names them); extra tools are added until the catalogue has
    `size` of them (all, without `size`), and a name already present keeps its first description.
    """
    merged = []
    for case in cases:
        catalogue = dict(case.catalogue)
        for source in extra:
            for name, description in source.items():
                if size is not None and len(catalogue) >= size:
                    break
                catalogue.setdefault(name, description)
        merged.append(replace(case, catalogue=catalogue))
    return merged


def load_tool_catalogue(path: Path) -> dict[str, str]:
    """The tools of a catalogue source, by name with their descriptions, in the order they first appear.

    A source is a TaskBench domain folder or its `tool_desc.json`, or a WorfBench function-calling subset
    file (toolbench, toolalpaca, seal_tools), whose records list the tools each task may use in
    `task_and_tools`; the benchmark's `Finish` pseudo-tool is left out.
    """
    if path.is_dir():
        path = path / "tool_desc.json"
    if not path.is_file():
        raise UserError(f"{path}: tool catalogue not found (see evals/README.md for the downloads)")
    if path.suffix == ".json":
        return _taskbench_catalogue(path)
    catalogue: dict[str, str] = {}
    for where, data in _json_lines(path):
        record = _validate(_WorfBenchRecord, data, where)
        for tool in _tool_list(record.task_and_tools):
            name = tool.get("name") or tool.get("api_name")
            description = tool.get("description") or tool.get("api_description") or name
            if isinstance(name, str) and name.strip() and name != "Finish":
                catalogue.setdefault(name.strip(), " ".join(str(description).split()))
    if not catalogue:
        raise UserError(f"{path}: no tool lists found in 'task_and_tools' (is this a function-calling subset?)")
    return catalogue


_TOOL_LIST_MARKERS = ("api_list:", "The api list you can use:", "The tool list you can select from:")
"""What introduces the list of tools in a WorfBench function-calling record's `task_and_tools`."""


def _tool_list(text: str) -> list[Mapping[str, Any]]:
    """The tools listed in a WorfBench task text (a Python literal list of dicts), or none."""
    for marker in _TOOL_LIST_MARKERS:
        start = text.find("[", text.find(marker)) if marker in text else -1
        end = start
        while start >= 0 and (end := text.find("]", end + 1)) >= 0:
            try:
                value = ast.literal_eval(text[start : end + 1])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue  # this bracket closes a nested list: try the next one
            if isinstance(value, list):
                return [tool for tool in value if isinstance(tool, Mapping)]
    return []


def _gold_file(folder: Path) -> Path:
    for name in ("gold_dev.jsonl", "data.jsonl", "gold.jsonl"):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder}: no gold_dev.jsonl (or data.jsonl) in the TaskBench folder")


def _taskbench_catalogue(path: Path) -> dict[str, str]:
    data = read_data(path, max_bytes=DATASET_MAX_BYTES)
    nodes = data.get("nodes") if isinstance(data, Mapping) else None
    if not isinstance(nodes, list):
        raise UserError(f"{path}: expected an object with a 'nodes' list of tools")
    catalogue: dict[str, str] = {}
    for position, node in enumerate(nodes):
        if not isinstance(node, Mapping) or not isinstance(node.get("id"), str):
            raise UserError(f"{path}: field 'nodes.{position}.id': a tool needs a name")
        catalogue[node["id"]] = str(node.get("desc") or node["id"])
    return catalogue


# ---------------------------------------------------------------------------------------------- WorfBench

_EDGES_FIELD = "gold_edges_with_START0_ENDn+1"


class _WorfBenchRecord(BaseModel):
    id: str | int
    task_and_tools: str = Field(min_length=1)
    gold_nodes: list[str] = Field(min_length=1)
    gold_edges: list[tuple[int, int]] = Field(alias=_EDGES_FIELD, default_factory=list)


def load_worfbench(files: Sequence[Path]) -> list[EvalCase]:
    """The cases of WorfBench subset files: the goal is `task_and_tools` (the task and the allowed actions).

    Gold nodes are the step texts; gold edges drop START (0) and END (n+1) and shift the rest to positions.
    Edges outside the node range are dropped rather than failing the whole file.
    """
    cases = []
    for path in files:
        for where, data in _json_lines(path):
            record = _validate(_WorfBenchRecord, data, where)
            size = len(record.gold_nodes)
            edges: list[tuple[int, int]] = []
            for source, target in record.gold_edges:
                edge = (source - 1, target - 1)
                if 1 <= source <= size and 1 <= target <= size and source != target and edge not in edges:
                    edges.append(edge)
            gold = LabelledGraph(tuple(record.gold_nodes), tuple(edges))
            cases.append(
                EvalCase(str(record.id), record.task_and_tools, gold, {}, free_text=True, shape=shape_of(gold))
            )
    return cases


# ---------------------------------------------------------------------------------------------- own format


class GoldTask(BaseModel):
    """One task of a gold graph in Orquestra's own suite format."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    capability: str | None = Field(default=None, description="The capability (catalogue suites).")
    step: str | None = Field(default=None, description="The step's text (free-text suites).")
    depends_on: list[str] = Field(default_factory=list)


class OwnCase(BaseModel):
    """One case: a goal and its gold graph; `capabilities` replaces the file's catalogue for this case."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    gold: list[GoldTask] = Field(min_length=1)
    capabilities: dict[str, str] | None = None

    @model_validator(mode="after")
    def _gold_is_a_graph(self) -> OwnCase:
        ids = [task.id for task in self.gold]
        if len(set(ids)) != len(ids):
            raise ValueError("gold task ids must be unique")
        for task in self.gold:
            if (task.capability is None) == (task.step is None):
                raise ValueError(f"gold task '{task.id}' needs exactly one of 'capability' or 'step'")
            missing = [dep for dep in task.depends_on if dep not in ids or dep == task.id]
            if missing:
                raise ValueError(f"gold task '{task.id}' depends on unknown task '{missing[0]}'")
        kinds = {task.step is None for task in self.gold}
        if len(kinds) > 1:
            raise ValueError("a gold graph uses either capabilities or steps, not both")
        return self


class OwnCases(BaseModel):
    """Orquestra's own format: a shared catalogue (capability -> description) and the cases."""

    model_config = ConfigDict(extra="forbid")

    capabilities: dict[str, str] = Field(default_factory=dict)
    cases: list[OwnCase] = Field(min_length=1)


def load_own(path: Path, default_catalogue: Mapping[str, str] | None = None) -> list[EvalCase]:
    """The cases of an own-format file (YAML or JSON); see `OwnCases`.

    A case without a catalogue of its own uses the file's, or else `default_catalogue` (the registry's).
    """
    data = read_data(path)
    try:
        own = OwnCases.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{path}: {describe_validation_error(error)}") from None
    return own_cases(own, default_catalogue)


def own_cases(own: OwnCases, default_catalogue: Mapping[str, str] | None = None) -> list[EvalCase]:
    """`EvalCase`s of parsed own-format data."""
    cases = []
    for case in own.cases:
        free_text = case.gold[0].step is not None
        catalogue = {} if free_text else dict(case.capabilities or own.capabilities or default_catalogue or {})
        position = {task.id: index for index, task in enumerate(case.gold)}
        labels = tuple(task.step or "" if free_text else task.capability or "" for task in case.gold)
        edges = tuple((position[dep], position[task.id]) for task in case.gold for dep in task.depends_on)
        gold = LabelledGraph(labels, edges)
        cases.append(EvalCase(case.id, case.goal, gold, catalogue, free_text=free_text, shape=shape_of(gold)))
    return cases


# ---------------------------------------------------------------------------------------------- helpers


def _json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """Each record of a JSON-lines file, with 'file: line N' for error messages; blank lines are skipped."""
    for number, line in enumerate(read_text(path, max_bytes=DATASET_MAX_BYTES).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}: line {number}", json.loads(line)
        except json.JSONDecodeError as problem:
            raise UserError(f"{path}: line {number}: invalid JSON: {problem.msg}") from None


def _validate(model: type[RecordT], data: Any, where: str) -> RecordT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{where}: {describe_validation_error(error)}") from None
