"""Task graphs to and from files: YAML or JSON, a mapping with `tasks` or a bare list of tasks."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from orquestra.datafile import read_data
from orquestra.exceptions import UserError, describe_validation_error
from orquestra.graph import TaskGraph


def load_graph(path: str | Path) -> TaskGraph:
    """Read and check a graph file; every problem is a `UserError` naming the file and the field."""
    path = Path(path)
    data = read_data(path)
    if isinstance(data, list):
        data = {"tasks": data}
    if not isinstance(data, dict) or "tasks" not in data:
        raise UserError(f"{path}: expected a mapping with a 'tasks' list, or a list of tasks")
    try:
        return TaskGraph.model_validate({"tasks": data["tasks"]})
    except ValidationError as error:
        raise UserError(f"{path}: {describe_validation_error(error)}") from None


def dump_graph(graph: TaskGraph, path: str | Path) -> None:
    """Write `graph` as YAML (or JSON when the file name ends in .json)."""
    path = Path(path)
    data = {"tasks": [task.model_dump(mode="json", exclude_defaults=True) for task in graph.tasks]}
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
