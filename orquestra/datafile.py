"""Reading YAML and JSON files whose errors name the file, the line and the field, within bounds.

Every file Orquestra reads from a user (graph files, manifests, registry cards, the config file, eval suites)
comes through here, so every reader gets the same limits and the same one-line errors:

- only a regular file is read (a FIFO or ``/dev/zero`` could block or never end), of at most `MAX_FILE_BYTES`;
- YAML goes through `orquestra.bounded_yaml` (no alias bombs, no runaway nesting, no escaping exceptions);
- JSON nests at most `MAX_DEPTH` levels too, and an integer beyond Python's digit limit is an error, not a crash;
- a key given twice in one mapping is refused (PyYAML and `json` would silently keep the last one).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from orquestra import bounded_yaml
from orquestra.bounded_yaml import MAX_DEPTH
from orquestra.exceptions import UserError

if TYPE_CHECKING:
    from pydantic import ValidationError

MAX_FILE_BYTES = 8 * 1024 * 1024
"""The largest file read by default: a graph of `orquestra.graph.MAX_TASKS` tasks takes a few megabytes."""

FieldPath = tuple[str | int, ...]
"""Where a value sits in a document, e.g. ``("tasks", 1, "agent")``."""


def field_name(path: Sequence[str | int]) -> str:
    """``("tasks", 1, "agent")`` as ``tasks[1].agent``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def describe_fields(
    error: ValidationError, source: str, lines: Mapping[FieldPath, int], at: FieldPath = (), *, skip: int = 0
) -> str:
    """One line for the first problem of `error`, as both loaders word it: ``SOURCE: line N: FIELD: what``.

    The field is where the problem sits in the document: under `at`, less the first `skip` parts of the
    validator's own path (a graph file's task list validated as a graph's `tasks`).
    """
    problems = error.errors()
    first = problems[0]
    # A list left with too few items because its item failed is that item's problem, not one more.
    problems = [first] + [
        p for p in problems[1:] if not (p["type"] == "too_short" and first["loc"][: len(p["loc"])] == p["loc"])
    ]
    path: FieldPath = at + tuple(first["loc"])[skip:]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "too_long":
        context = first.get("ctx", {})
        message = f"{context.get('actual_length', 'too many')} entries; at most {context.get('max_length')} are allowed"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
    others = len(problems) - 1
    more = f" (and {others} more {'problem' if others == 1 else 'problems'})" if others else ""
    return f"{source}: line {line_of(lines, path)}: {field_name(path)}: {message}{more}"


def line_of(lines: Mapping[FieldPath, int], path: FieldPath) -> int:
    """The line of `path` in `lines`, or of its nearest enclosing field (a missing field has no line of its own)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def read_text(path: Path, error: type[UserError] = UserError, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file `path`, of at most `max_bytes`; any problem raises `error` naming it."""
    try:
        # Non-blocking, so that opening a FIFO returns at once; its type is checked before anything is read.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{path}: cannot read: it is a directory")
        if not stat.S_ISREG(mode):
            raise error(f"{path}: cannot read: it is not a regular file")
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise error(f"{path}: the file is larger than {max_bytes:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise error(f"{path}: line {line}: cannot read: not UTF-8 text ({problem.reason})") from None


class _LazyLines(Mapping[FieldPath, int]):
    """A line map computed the first time it is read: most files load without a message that needs one."""

    def __init__(self, compute: Callable[[], Mapping[FieldPath, int]]) -> None:
        self._compute = compute
        self._lines: Mapping[FieldPath, int] | None = None

    def _get(self) -> Mapping[FieldPath, int]:
        if self._lines is None:
            self._lines = self._compute()
        return self._lines

    def __getitem__(self, path: FieldPath) -> int:
        return self._get()[path]

    def __iter__(self) -> Iterator[FieldPath]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class Document:
    """A parsed file: its data, and the line of each field for messages that name one."""

    def __init__(self, source: str, text: str, data: Any, lines: Mapping[FieldPath, int] | None) -> None:
        self.source = source
        self.data = data
        self._text = text
        self.lines: Mapping[FieldPath, int] = lines if lines is not None else _LazyLines(self._json_lines)
        """The line of each field (a JSON file's are found only when a message asks for one)."""

    def _json_lines(self) -> Mapping[FieldPath, int]:
        # JSON is (nearly) YAML in flow style: the YAML composer finds its lines well enough for a message.
        try:
            return _field_lines(bounded_yaml.compose(self._text), self.source, UserError)
        except (yaml.YAMLError, UserError):
            return {}

    def lines_under(self, prefix: FieldPath) -> Mapping[FieldPath, int]:
        """The line map with `prefix` before every path: for data that a caller nests (a bare list of tasks)."""
        return _LazyLines(lambda: {(*prefix, *path): line for path, line in self.lines.items()})

    def line(self, path: FieldPath) -> int:
        """The line of `path`, or of its nearest enclosing field (see `line_of`)."""
        return line_of(self.lines, path)

    def where(self, path: FieldPath) -> str:
        """``FILE: line N: FIELD``, the start of a message about the value at `path`."""
        return f"{self.source}: line {self.line(path)}: {field_name(path)}"


def read_document(path: Path, error: type[UserError] = UserError, *, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """Parse `path` as JSON (by its suffix) or YAML; any failure raises `error` naming the file and the line."""
    text = read_text(path, error, max_bytes=max_bytes)
    source = str(path)
    if path.suffix == ".json":
        return Document(source, text, _json(text, source, error), None)
    try:
        node = bounded_yaml.compose(text)
        lines = _field_lines(node, source, error)
        data = bounded_yaml.construct(node)
    except yaml.YAMLError as problem:
        line, message = bounded_yaml.describe(problem, text)
        raise error(f"{source}: line {line}: invalid YAML: {message}") from None
    return Document(source, text, data, lines)


def read_data(path: Path, error: type[UserError] = UserError, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The data of `path` (see `read_document`)."""
    return read_document(path, error, max_bytes=max_bytes).data


def _field_lines(node: yaml.Node | None, source: str, error: type[UserError]) -> dict[FieldPath, int]:
    """The line of every field under `node`; a key given twice in one mapping raises `error` naming both."""
    lines: dict[FieldPath, int] = {}
    stack: list[tuple[yaml.Node, FieldPath]] = [] if node is None else [(node, ())]
    while stack:  # not recursive: aliases can make a tree deeper than the text looks (bounded_yaml bounds it)
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else f"<{key.tag.rsplit(':', 1)[-1]}>"
                line = key.start_mark.line + 1
                if name in seen and isinstance(key, yaml.ScalarNode):
                    raise error(f"{source}: line {line}: {field_name(path + (name,))}: duplicate key")
                seen.add(name)
                lines[path + (name,)] = line
                stack.append((value, path + (name,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (index,)) for index, item in enumerate(node.value))
    return lines


class _Refused(ValueError):
    """A JSON document that parses but breaks a rule of this module."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key '{key}'")
            seen.add(key)
    return result


def _bounded_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _Refused(f"an integer of more than {sys.get_int_max_str_digits()} digits") from None


def _json(text: str, source: str, error: type[UserError]) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except json.JSONDecodeError as problem:
        # Some of json's messages end where its own text goes on with the place: "Invalid control character at".
        where = f" column {problem.colno}" if problem.msg.endswith(" at") else ""
        raise error(f"{source}: line {problem.lineno}: invalid JSON: {problem.msg}{where}") from None
    except RecursionError:
        raise error(f"{source}: invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except _Refused as problem:
        if str(problem).startswith("duplicate key"):
            _field_lines_of_json(text, source, error)  # names the line and the field, when YAML can read the text
        raise error(f"{source}: invalid JSON: {problem}") from None
    if _depth(data) > MAX_DEPTH:
        raise error(f"{source}: invalid JSON: nested deeper than {MAX_DEPTH} levels")
    return data


def _field_lines_of_json(text: str, source: str, error: type[UserError]) -> None:
    try:
        _field_lines(bounded_yaml.compose(text), source, error)
    except yaml.YAMLError:
        pass


def _depth(data: Any) -> int:
    """How deeply `data` nests, a scalar being one level (as `bounded_yaml` counts)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return deepest
