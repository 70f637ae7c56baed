"""Fitting texts into a model's context window: estimate tokens, and shorten the longest texts first."""

from __future__ import annotations

from collections.abc import Mapping

CHARS_PER_TOKEN = 3.5
"""A conservative average for English prose and code; exact counts need each provider's tokenizer."""


def estimate_tokens(text: str) -> int:
    """A rough token count of `text`, erring on the high side."""
    return int(len(text) / CHARS_PER_TOKEN) + 1


def fit_texts(texts: Mapping[str, str], max_chars: int) -> tuple[dict[str, str], bool]:
    """Shorten `texts` so that together they hold at most `max_chars` characters.

    Short texts are kept whole; the budget left is shared equally among the long ones, each keeping its
    beginning and its end (where conclusions usually are). Returns the texts and whether any was cut.
    """
    total = sum(len(text) for text in texts.values())
    if total <= max_chars:
        return dict(texts), False
    budget = max(max_chars, 0)
    remaining = sorted(texts, key=lambda key: len(texts[key]))
    limits: dict[str, int] = {}
    while remaining:
        share = budget // len(remaining)
        key = remaining[0]
        if len(texts[key]) <= share:
            limits[key] = len(texts[key])
            budget -= len(texts[key])
            remaining.pop(0)
        else:
            for key in remaining:
                limits[key] = share
            break
    return {key: shorten(text, limits[key]) for key, text in texts.items()}, True


def shorten(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its head and tail and saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 0)
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :] if keep // 3 else ""
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut ...]\n{tail}"
