"""Built-in tools. Each takes a `ToolContext` first, then its JSON arguments as keyword arguments."""

from orquestra.exceptions import ToolError
from orquestra.tools.context import ToolContext

__all__ = ["ToolContext", "ToolError"]
