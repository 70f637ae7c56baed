"""Secrets kept out of everything a run leaves behind: error messages, model answers, the run store, memory.

The secrets are the API keys Orquestra is configured with (`OPENAI_API_KEY` and `ANTHROPIC_API_KEY`, from the
environment or the config file) and every value given to `register_secret`. A secret is replaced by `REDACTED`
wherever it appears, whatever its shape: as it is, without its provider's prefix (``sk-``, ``sk-proj-``,
``sk-ant-...``), JSON-escaped or URL-encoded. Text shaped like a provider key (``sk-`` and 16 or more key
characters, as in a masked key that an API echoes back) is replaced too, configured or not.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import urllib.parse

REDACTED = "***"
"""What a secret is replaced with (no brackets: a terminal's markup would read ``[redacted]`` as a style)."""

SECRET_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
"""Environment variables whose values are secrets."""

MIN_SECRET_CHARS = 8
"""Shorter values are not redacted: they would mask ordinary words, and no provider issues keys that short."""

_KEY_PREFIXES = ("sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-")
"""Providers' key prefixes, longest first: a key echoed without its prefix is still the key."""

_KEY_LIKE = r"\bsk-[A-Za-z0-9_*.\-]{16,}"
_KEY_LIKE_CHARS = len("sk-") + 16
"""The shortest text `_KEY_LIKE` matches."""

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact `value` from now on, in this process (an API key given in code rather than the environment)."""
    if value and len(value.strip()) >= MIN_SECRET_CHARS:
        with _lock:
            _registered.add(value.strip())


def secrets() -> frozenset[str]:
    """Every secret known now: those registered and those in the environment variables of `SECRET_VARIABLES`."""
    from_environment = (os.environ.get(name, "").strip() for name in SECRET_VARIABLES)
    with _lock:
        return frozenset(_registered | {value for value in from_environment if len(value) >= MIN_SECRET_CHARS})


def redact(text: str) -> str:
    """`text` with every secret, in any of its shapes, replaced by `REDACTED`."""
    return _pattern(secrets()).sub(REDACTED, text)


def contains_secret(text: str) -> bool:
    """Whether `text` holds a secret (cheaper than comparing `redact(text)` with `text` for long texts)."""
    return _pattern(secrets()).search(text) is not None


_ANY_PREFIX = r"(?:sk-(?:ant-(?:api03-)?|proj-)?)?"
"""A provider's key prefix, if one stands before a secret: it goes with the secret."""


class GrowingText:
    """A text that arrives in pieces (a streamed answer), redacted as it grows.

    A secret may be cut across two pieces, so what a piece lets out stops short of any place where a secret
    could still begin: the last characters are held back until the pieces after them show that no secret
    starts there, or the text ends. What it lets out, joined, is what `redact` makes of the whole text.
    """

    def __init__(self) -> None:
        self._before = ""
        """The last character let out: a key-like text counts only from a word boundary, which it decides."""
        self._held = ""
        """Written, not let out yet."""

    def add(self, piece: str) -> str:
        """The redacted text that `piece` lets out, possibly none."""
        self._held += piece
        return self._let_out(complete=False)

    def end(self) -> str:
        """The rest of the text, redacted: no more pieces come."""
        return self._let_out(complete=True)

    def _let_out(self, complete: bool) -> str:
        known = secrets()
        pattern = _pattern(known)
        text, start = self._before + self._held, len(self._before)
        matches = list(pattern.finditer(text, start))
        cut = len(text) if complete else _safe_end(text, matches, max(start, len(text) - _longest_match(known)))
        parts, position = [], start
        for match in matches:
            if match.end() > cut:
                break
            parts += [text[position : match.start()], REDACTED]
            position = match.end()
        parts.append(text[position:cut])
        if cut > start:
            self._before = text[cut - 1 : cut]
        self._held = text[cut:]
        return "".join(parts)


def _safe_end(text: str, matches: list[re.Match[str]], cut: int) -> int:
    """`cut`, or earlier: the start of a secret that crosses it, or that reaches the end and may grow."""
    for match in matches:
        if match.start() < cut and (match.end() > cut or match.end() == len(text)):
            return match.start()
    return cut


@functools.lru_cache(maxsize=16)
def _longest_match(known: frozenset[str]) -> int:
    """The most characters a secret's match can span, its prefix included; a key-like text may grow beyond."""
    longest = max((len(shape) for secret in known for shape in _shapes(secret)), default=0)
    return max(longest + len(_KEY_PREFIXES[0]), _KEY_LIKE_CHARS)


@functools.lru_cache(maxsize=16)
def _pattern(known: frozenset[str]) -> re.Pattern[str]:
    """One alternation of every shape of every secret, longest first so that no shorter shape cuts a longer one."""
    shapes = {shape for secret in known for shape in _shapes(secret) if len(shape) >= MIN_SECRET_CHARS}
    alternatives = [re.escape(shape) for shape in sorted(shapes, key=len, reverse=True)]
    secrets = [_ANY_PREFIX + "(?:" + "|".join(alternatives) + ")"] if alternatives else []
    return re.compile("|".join([*secrets, _KEY_LIKE]))


def _shapes(secret: str) -> set[str]:
    """The forms a secret may take in text: itself, without its prefix, JSON-escaped, URL-encoded, repr-escaped."""
    bare = next((secret[len(prefix) :] for prefix in _KEY_PREFIXES if secret.startswith(prefix)), secret)
    shapes = set()
    for form in {secret, bare}:
        shapes |= {form, json.dumps(form)[1:-1], urllib.parse.quote(form, safe=""), repr(form)[1:-1]}
    return shapes
