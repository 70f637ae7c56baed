"""Prompt templates from prompts/, rendered by sandboxed Jinja2 with strict undefined variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from orquestra.exceptions import UserError
from orquestra.resources import data_dir


@lru_cache(maxsize=8)
def _environment(folder: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(folder)),
        undefined=StrictUndefined,
        autoescape=False,  # prompts are plain text for a model, not HTML
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, folder: Path | None = None, **context: Any) -> str:
    """Render template `name` (e.g. ``"agents/agent.j2"``) from `folder`, the built-in prompts by default."""
    environment = _environment(folder or data_dir("prompts"))
    try:
        template = environment.get_template(name)
    except TemplateNotFound:
        raise UserError(f"prompt template '{name}' not found in {folder or 'the built-in prompts'}") from None
    return template.render(**context).strip()
