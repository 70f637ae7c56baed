"""Command-line options that several commands share, declared once so their flags and help stay the same."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from orquestra.exceptions import UserError

if TYPE_CHECKING:
    from orquestra.planner import PlanningStrategy

STRATEGIES = ("auto", "single", "staged")
"""The planner's strategies (`orquestra.planner.PlanningStrategy`, repeated so that the CLI starts without it)."""

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
PlanningStrategyOption = Annotated[
    str,
    typer.Option(
        "--planner",
        help="How the planner asks the model: auto (by model), single (the whole graph in one answer) or "
        "staged (decompose, assign, link: for small models).",
    ),
]


def planning_strategy(value: str) -> PlanningStrategy:
    """The `--planner` value, checked; a `UserError` naming the choices otherwise."""
    if value not in STRATEGIES:
        raise UserError(f"--planner: unknown strategy '{value}' (choose {', '.join(STRATEGIES)})")
    return cast("PlanningStrategy", value)
