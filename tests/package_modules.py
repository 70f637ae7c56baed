"""The modules of the `orquestra` package, found from its files, for tests about the package as a whole."""

from __future__ import annotations

from pathlib import Path

import orquestra

PACKAGE = Path(orquestra.__file__).parent

ENTRY_POINTS = frozenset({"orquestra.__main__"})
"""Modules that run the command line when imported: importing one is running it."""


def module_name(path: Path) -> str:
    """The dotted name of the module in `path`, a file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
"""Each module of the package by dotted name, and its file."""

IMPORTABLE = sorted(set(MODULES) - ENTRY_POINTS)
"""The modules a test may import: all but the entry points."""
