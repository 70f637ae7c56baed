"""Command-line options that several commands share, declared once so their flags and help stay the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RegistryFolders = Annotated[
    list[Path] | None,
    typer.Option(
        "--registry",
        "-r",
        help="A registry folder (agents/, tools/) added on top of the built-in one; repeatable.",
        envvar="ORQUESTRA_REGISTRY",
    ),
]
PlannerModelOption = Annotated[
    str | None,
    typer.Option("--planner-model", help="Model for planning, if not the default.", show_default=False),
]
