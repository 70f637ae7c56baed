"""Reading and writing text files inside the run's workspace folder only, within the call's `ToolLimits`."""

from __future__ import annotations

from itertools import islice

from orquestra.exceptions import ToolError
from orquestra.tools.context import ToolContext, quoted


def read_file(context: ToolContext, path: str) -> str:
    """Return the text of `path`, relative to the workspace: at most `ToolLimits.max_read_chars` characters.

    Only a regular file is read: a pipe or a device could block the call, or never end.
    """
    target = context.resolve(path)
    limit = context.limits.max_read_chars
    try:
        if not target.exists():
            raise ToolError(f"no file {quoted(path)} in the workspace; {_listing(context)}")
        if not target.is_file():
            raise ToolError(f"cannot read {quoted(path)}: it is not a regular file")
        with target.open(encoding="utf-8") as file:
            text = file.read(limit + 1)  # one more than allowed tells whether there is more
            size = target.stat().st_size
    except (OSError, UnicodeDecodeError) as error:
        raise ToolError(f"cannot read {quoted(path)}: {error}") from None
    if len(text) > limit:
        return text[:limit] + f"\n[truncated: the file has {size} bytes; only its first {limit} characters were read]"
    return text


def write_file(context: ToolContext, path: str, content: str) -> str:
    """Write `content` to `path`, relative to the workspace, creating folders as needed.

    Content longer than `ToolLimits.max_write_chars` is refused, and nothing is written.
    """
    limit = context.limits.max_write_chars
    if len(content) > limit:
        raise ToolError(
            f"content of {len(content)} characters is too long: write_file writes at most {limit} characters"
            " in one call; write a shorter text, or split it over several files"
        )
    target = context.resolve(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    except (OSError, UnicodeEncodeError) as error:
        raise ToolError(f"cannot write {quoted(path)}: {error}") from None
    return f"wrote {len(content)} characters to {path}"


MAX_LISTED = 20
MAX_SCANNED = 1_000
"""Entries of the workspace looked at for the listing: a workspace of a million files must not stall a call."""


def _listing(context: ToolContext) -> str:
    """The workspace's files, for a model that guessed a path: small models copy example paths."""
    root = context.workspace.resolve()
    entries = islice(root.rglob("*"), MAX_SCANNED) if root.is_dir() else iter(())
    files = sorted(str(path.relative_to(root)) for path in entries if path.is_file())
    if not files:
        return "the workspace has no files yet"
    more = len(files) - MAX_LISTED
    shown = ", ".join(files[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")
    return f"the files there are: {shown}"
