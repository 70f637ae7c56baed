"""Built-in tools. Each takes a `ToolContext` first, then its JSON arguments as keyword arguments."""

from orquestra.tools.context import ToolContext, ToolError

__all__ = ["ToolContext", "ToolError"]
