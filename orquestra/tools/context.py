"""What a tool may touch: the run's own workspace folder, and nothing outside it; and how much it may take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orquestra.exceptions import ToolError as ToolError


@dataclass(frozen=True)
class ToolLimits:
    """The most one tool call may take in and give back, and how long it may run.

    A call over a limit gets an error (or, for a result, a cut with a note) that goes back to the model: a
    model that wrote too much can write less, and nothing it writes can exhaust the memory of the run.
    """

    max_argument_chars: int = 2_000_000
    """Characters in all the text of one call's arguments together; a larger call is refused before it runs."""
    max_write_chars: int = 1_000_000
    """Characters `write_file` writes in one call."""
    max_read_chars: int = 100_000
    """Characters `read_file` reads from one file; the rest of a longer file is left unread, with a note."""
    max_result_chars: int = 8_000
    """Characters of any tool's result that go back to the model; the rest is cut, with a note saying so."""
    max_seconds: float | None = 60.0
    """Seconds one call may run before the model is told it took too long (None: no limit of its own; the
    task's timeout still applies)."""

    def __post_init__(self) -> None:
        for name in ("max_argument_chars", "max_write_chars", "max_read_chars", "max_result_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"ToolLimits.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"ToolLimits.max_seconds must be positive, got {self.max_seconds}")


@dataclass(frozen=True)
class ToolContext:
    """Given to every tool call: the workspace folder the run may read and write, and the limits of a call."""

    workspace: Path
    limits: ToolLimits = field(default_factory=ToolLimits)

    def resolve(self, relative: str) -> Path:
        """The absolute path of `relative` inside the workspace; a path that escapes it is refused."""
        root = self.workspace.resolve()
        try:
            candidate = (root / relative).resolve()
        except (OSError, ValueError, RuntimeError) as error:  # a NUL byte, a symlink loop
            raise ToolError(f"path {quoted(relative)} cannot be used: {error}") from None
        if candidate != root and root not in candidate.parents:
            raise ToolError(f"path {quoted(relative)} is outside the run's workspace")
        return candidate


QUOTED_CHARS = 120
"""Characters of a model's value that an error message repeats back to it."""


def quoted(value: str) -> str:
    """`value` in quotes for an error message, cut short if long: a model may send megabytes of it."""
    if len(value) <= QUOTED_CHARS:
        return f"'{value}'"
    return f"'{value[:QUOTED_CHARS]}…' ({len(value)} characters)"
