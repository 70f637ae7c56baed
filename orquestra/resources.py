"""Where the built-in registry and prompt templates live, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The built-in folder `name` ("registry" or "prompts").

    A wheel carries it inside the package under `_data/`; a source checkout (and an editable install)
    has it at the top of the project.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"Orquestra's built-in '{name}' folder is missing; reinstall the package")
