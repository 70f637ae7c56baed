"""What a tool may touch: the run's own workspace folder, and nothing outside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orquestra.exceptions import OrquestraError


class ToolError(OrquestraError):
    """A tool refused or failed; the message goes back to the model as the tool's result."""


@dataclass(frozen=True)
class ToolContext:
    """Given to every tool call: the workspace folder the run may read and write."""

    workspace: Path

    def resolve(self, relative: str) -> Path:
        """The absolute path of `relative` inside the workspace; a path that escapes it is refused."""
        root = self.workspace.resolve()
        candidate = (root / relative).resolve()
        if candidate != root and root not in candidate.parents:
            raise ToolError(f"path '{relative}' is outside the run's workspace")
        return candidate
