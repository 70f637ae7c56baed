r"""Text from outside, made safe to print on a terminal: the one helper for every untrusted string shown.

Task instructions and outputs, ids, agent notes, error messages and file names come from files, models and
tools. Printed raw, an escape sequence among them acts on the terminal (``\x1b]0;...`` retitles the window,
``\x1b[2J`` clears the screen, a carriage return overwrites a line) and a bidirectional override reorders what
a reader sees. Rich's `Text` strips only a few control codes (BEL, BS, VT, FF, CR), and markup in a plain
string (``[/x]``) is parsed, or raises. `clean` shows every C0 and C1 control character but newline and tab,
DEL, and the bidirectional controls as a visible escape, and `plain` wraps the result in a `Text`, which rich
never parses as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.style import Style
    from rich.text import Text

_BIDI = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS = [code for code in range(0x20) if code not in (0x09, 0x0A)] + [0x7F, *range(0x80, 0xA0), *_BIDI]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in _CONTROLS}
_JSON_TABLE = {code: f"\\u{code:04x}" for code in _CONTROLS}
_ONE_LINE_TABLE = {**_TABLE, 0x09: "\\t", 0x0A: "\\n"}


def clean(text: object, *, one_line: bool = False) -> str:
    r"""`text` (made a string) with each control character written as an escape, e.g. ``\x1b``.

    With `one_line`, newline and tab are escaped too: for messages promised to fit on one line.
    """
    return str(text).translate(_ONE_LINE_TABLE if one_line else _TABLE)


def json_text(text: str) -> str:
    r"""JSON text (from `json.dumps`) with every control character that `clean` escapes as a ``\u`` escape.

    Outside strings JSON is plain ASCII, so the text stays valid JSON of the same data; `json.dumps` escapes C0
    controls itself, but not DEL, C1 or the bidirectional ones when ``ensure_ascii`` is off.
    """
    return text.translate(_JSON_TABLE)


def plain(text: object, style: str | Style = "", *, one_line: bool = False) -> Text:
    """A rich `Text` of `clean(text)`: printed as it reads, never as markup or terminal commands."""
    from rich.text import Text  # here: `orquestra.exceptions` uses `clean`, and importing it must stay light

    return Text(clean(text, one_line=one_line), style=style)


def error_line(message: object, label: str = "error:") -> Text:
    """``error: MESSAGE`` on one line, the label in bold red: what the CLI prints for a user's mistake."""
    from rich.text import Text

    return Text.assemble((label, "bold red"), " ", clean(message, one_line=True))


__all__ = ["clean", "error_line", "json_text", "plain"]
