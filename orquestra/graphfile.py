"""Task graphs to and from files: YAML or JSON, a mapping with `tasks` or a bare list of tasks.

Two formats hold a graph: the plain one (tasks with an `id`, as `dump_graph` writes) and the workflow manifest
(tasks with a `name`, as `orquestra plan --save` writes). `load_graph` reads both; `task_format` tells them apart,
and `orquestra.manifest.load_manifest` reads both too, so every command takes either file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import ValidationError

from orquestra.datafile import Document, FieldPath, describe_fields, read_document
from orquestra.exceptions import UserError
from orquestra.graph import TaskGraph

if TYPE_CHECKING:
    from orquestra.registry import Registry

GRAPH_FILE_KEYS = ("tasks", "run_id", "status", "statuses")
"""The keys of a graph file's mapping: its tasks, and the record `orquestra graph show RUN -f json` adds to them."""

TaskFormat = Literal["graph", "manifest"]
"""'graph': tasks with an `id` (the plain format). 'manifest': tasks with a `name` (a workflow manifest)."""


def task_format(data: Any) -> TaskFormat | None:
    """The format of parsed file data, told by its first task; None when that task shows neither.

    With None, the caller's own loader runs and names what is missing.
    """
    tasks = data if isinstance(data, list) else data.get("tasks") if isinstance(data, dict) else None
    first = tasks[0] if isinstance(tasks, list) and tasks else None
    if not isinstance(first, dict):
        return None
    if "name" in first:
        return "manifest"
    return "graph" if "id" in first else None


def load_graph(path: str | Path, registry: Registry | None = None) -> TaskGraph:
    """Read and check a graph file; every problem is a `UserError` naming the file, the line and the field.

    A workflow manifest goes through the manifest loader and all its checks, then becomes its graph; `registry`
    (the configured one by default) resolves the agents it names. A key of the mapping not in `GRAPH_FILE_KEYS`
    is refused, as the manifest loader refuses a field it does not know.
    """
    return graph_from_document(read_document(Path(path)), registry)


def graph_from_document(document: Document, registry: Registry | None = None) -> TaskGraph:
    """`load_graph` of a file already read: each loader hands the other the parsed file, never its path."""
    data = document.data
    if task_format(data) == "manifest":
        from orquestra.manifest import manifest_from_document  # here: running manifests needs the whole team stack

        return manifest_from_document(document, registry).to_graph()
    prefix: FieldPath = ("tasks",)
    if isinstance(data, list):
        data, prefix = {"tasks": data}, ()
    if not isinstance(data, dict) or "tasks" not in data:
        raise UserError(f"{document.source}: expected a mapping with a 'tasks' list, or a list of tasks")
    for key in data:
        if key not in GRAPH_FILE_KEYS:
            known = ", ".join(GRAPH_FILE_KEYS)
            raise UserError(f"{document.where((str(key),))}: unknown field (a graph file holds {known})")
    try:
        return TaskGraph.model_validate({"tasks": data["tasks"]})
    except ValidationError as error:  # its fields are under `tasks`, which sits at `prefix` in the document
        raise UserError(describe_fields(error, document.source, document.lines, prefix, skip=1)) from None


def dump_graph(graph: TaskGraph, path: str | Path) -> None:
    """Write `graph` as YAML (or JSON when the file name ends in .json)."""
    path = Path(path)
    data = {"tasks": [task.model_dump(mode="json", exclude_defaults=True) for task in graph.tasks]}
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
