"""Reading YAML and JSON files whose errors name the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from orquestra.exceptions import UserError


def read_text(path: Path, error: type[UserError] = UserError) -> str:
    """The UTF-8 text of `path`; a missing or unreadable file raises `error` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path}: cannot read: {problem}") from None


def read_data(path: Path, error: type[UserError] = UserError) -> Any:
    """Parse `path` as JSON (by its suffix) or YAML; any failure raises `error` naming the file and line."""
    text = read_text(path, error)
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as problem:
            raise error(f"{path}: line {problem.lineno}: invalid JSON: {problem.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise error(f"{path}: {where}invalid YAML: {getattr(problem, 'problem', None) or problem}") from None
