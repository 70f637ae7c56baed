"""Reading and writing text files inside the run's workspace folder only."""

from __future__ import annotations

from orquestra.tools.context import ToolContext, ToolError

MAX_READ_CHARS = 100_000


def read_file(context: ToolContext, path: str) -> str:
    """Return the text of `path`, relative to the workspace (at most `MAX_READ_CHARS` characters)."""
    target = context.resolve(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolError(f"no file '{path}' in the workspace; {_listing(context)}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ToolError(f"cannot read '{path}': {error}") from None
    if len(text) > MAX_READ_CHARS:
        return text[:MAX_READ_CHARS] + f"\n[truncated: {len(text) - MAX_READ_CHARS} more characters]"
    return text


def write_file(context: ToolContext, path: str, content: str) -> str:
    """Write `content` to `path`, relative to the workspace, creating folders as needed."""
    target = context.resolve(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    except OSError as error:
        raise ToolError(f"cannot write '{path}': {error}") from None
    return f"wrote {len(content)} characters to {path}"


MAX_LISTED = 20


def _listing(context: ToolContext) -> str:
    """The workspace's files, for a model that guessed a path: small models copy example paths."""
    root = context.workspace.resolve()
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) if root.is_dir() else []
    if not files:
        return "the workspace has no files yet"
    shown = ", ".join(files[:MAX_LISTED]) + (f" and {len(files) - MAX_LISTED} more" if len(files) > MAX_LISTED else "")
    return f"the files there are: {shown}"
