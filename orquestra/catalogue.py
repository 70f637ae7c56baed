"""Fitting a catalogue of capabilities into the planner's prompt, however large the catalogue is.

A catalogue that fits the model's context window is shown whole. One that does not is first shown with each
description cut to its first sentence; if that is still too long, the capabilities most relevant to the goal
are kept, as many as fit. Relevance is hybrid: the cosine similarity of local sentence embeddings (of the goal
and of each of its clauses, so that a goal of several steps finds a tool for each step) plus a bonus for the
goal's rarer words and for words of the capability's name. Without the local embeddings the word scores
alone rank the catalogue. What was cut is said in a note the plan carries.

Measured on TaskBench's three domains merged into one catalogue of 260 tools (89 goals, 269 gold tools):
90% of the gold tools rank in the top 40 by embeddings of the whole goal and its clauses, 95% with the word
bonuses added, and 98% in the top 85, about as many as the embedded model's 4096-token window holds.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from orquestra.exceptions import ModelConfigError

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], NDArray[np.float32]]
"""Texts in, unit vectors out (one row per text), as `LocalEmbedder.embed`."""

WORD_WEIGHT = 0.25
"""Weight of the rare-word overlap (0 to 1) beside the cosine similarity (at most 1)."""
NAME_WEIGHT = 0.1
"""Weight of the share of the capability name's words that the goal uses."""

_STOP_WORDS = frozenset(
    "a an the of to for and or in on with from by is are be this that these it its as at into your you my me "
    "i we our can could would should will please need want using use used given some any all then also".split()
)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "no.", "mr.", "dr.")


@dataclass(frozen=True)
class CatalogueView:
    """The part of a catalogue that a prompt shows: capabilities and descriptions, and what was left out."""

    shown: dict[str, str]
    """Capability -> description as shown, the most relevant first when the catalogue was cut."""
    total: int
    """How many capabilities the whole catalogue has."""
    shortened: bool = False
    """Whether descriptions were cut to their first sentence."""

    @property
    def cut(self) -> bool:
        """True when some capabilities are not shown."""
        return len(self.shown) < self.total

    def note(self) -> str | None:
        """What a user should know about the view, or None when the whole catalogue was shown as it is."""
        if self.cut:
            how = ", each described by its first sentence" if self.shortened else ""
            return (
                f"the catalogue has {self.total} capabilities, more than fit the planner's context; "
                f"the planner saw the {len(self.shown)} most relevant to the goal{how}"
            )
        if self.shortened:
            return (
                f"the catalogue's {self.total} descriptions were cut to their first sentence to fit the planner's "
                "context"
            )
        return None


def first_sentence(text: str) -> str:
    """The first sentence of `text` (all of it when it has one only); abbreviations like "e.g." do not end one."""
    text = " ".join(text.split())
    for match in re.finditer(r"[.!?](?=\s|$)", text):
        end = match.end()
        word = text[:end].rsplit(" ", 1)[-1].lower()
        if word in _ABBREVIATIONS or len(text[:end]) < 12:
            continue
        return text[:end]
    return text


async def fit_catalogue(
    catalogue: Mapping[str, str],
    fits: Callable[[Mapping[str, str]], Awaitable[bool]],
    ranked: Callable[[], Awaitable[Sequence[str]]],
) -> CatalogueView:
    """The largest view of `catalogue` for which `fits` is true, by the rules in the module docstring.

    `ranked` gives the capabilities, most relevant first; it is only called when the catalogue must be cut.
    When not even one capability fits, the view is empty: the caller must make room elsewhere.
    """
    whole = dict(catalogue)
    if await fits(whole):
        return CatalogueView(whole, len(whole))
    short = {name: first_sentence(description) for name, description in whole.items()}
    shortened = short != whole
    if shortened and await fits(short):
        return CatalogueView(short, len(whole), shortened=True)
    order = [name for name in await ranked() if name in short]
    low, high = 0, len(order) - 1  # the largest count known to fit, and the largest that might
    while low < high:
        middle = (low + high + 1) // 2
        if await fits({name: short[name] for name in order[:middle]}):
            low = middle
        else:
            high = middle - 1
    return CatalogueView({name: short[name] for name in order[:low]}, len(whole), shortened=shortened)


# ---------------------------------------------------------------------------------------------- relevance


def rank(goal: str, catalogue: Mapping[str, str], embed: Embed | None) -> list[str]:
    """The capabilities of `catalogue`, the most relevant to `goal` first (see the module docstring).

    With `embed` None, or when the local embeddings are not installed, the word scores alone decide.
    """
    names = list(catalogue)
    if not names:
        return []
    texts = [f"{name}: {catalogue[name]}" for name in names]
    scores = _word_scores(goal, names, texts)
    if embed is not None:
        try:
            scores = scores + _similarities(goal, texts, embed)
        except ModelConfigError as error:
            _warn_once(f"planner: capabilities are ranked by their words only ({error})")
    order = sorted(range(len(names)), key=lambda index: (-scores[index], names[index]))
    return [names[index] for index in order]


def in_goal_order(goal: str, names: Sequence[str], catalogue: Mapping[str, str], embed: Embed | None) -> list[str]:
    """`names` in the order the goal asks for them: by the position of the clause of the goal each matches best.

    Capabilities that match the same clause, or any when the goal has one clause, keep their order.
    """
    parts = clauses(goal)
    if embed is None or len(parts) < 2 or len(names) < 2:
        return list(names)
    try:
        vectors = _cached([f"{name}: {catalogue[name]}" for name in names], embed)
        positions = (vectors @ embed(parts).T).argmax(axis=1)
    except ModelConfigError:
        return list(names)
    order = sorted(range(len(names)), key=lambda index: (int(positions[index]), index))
    return [names[index] for index in order]


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def clauses(goal: str) -> list[str]:
    """The parts of a goal that may each need a capability: its sentences, and steps joined by 'then'."""
    parts = re.split(
        r"(?<=[.!?;])\s+|,\s*(?:and\s+)?(?:then|after that|finally|next)\s+|\s+(?:and then|then|after that)\s+",
        goal.strip(),
    )
    return [part for part in parts if len(part) > 12]


def _similarities(goal: str, texts: Sequence[str], embed: Embed) -> NDArray[np.float64]:
    """Per text, its best cosine similarity with the goal or one of its clauses."""
    vectors = _cached(texts, embed)
    queries = embed([goal, *clauses(goal)[:12]])
    best: NDArray[np.float64] = (vectors @ queries.T).max(axis=1).astype(np.float64)
    return best


def _word_scores(goal: str, names: Sequence[str], texts: Sequence[str]) -> NDArray[np.float64]:
    """Per capability: the share of its (idf-weighted) words that the goal uses, and of its name's words."""
    wanted = _words(goal)
    documents = [_words(text) for text in texts]
    frequency: dict[str, int] = {}
    for document in documents:
        for word in document:
            frequency[word] = frequency.get(word, 0) + 1
    count = len(documents)

    def idf(word: str) -> float:
        return math.log((count + 1) / frequency[word])

    scores = np.zeros(count)
    for index, (name, document) in enumerate(zip(names, documents, strict=True)):
        shared = sum(idf(word) for word in document & wanted)
        words_of_name = _words(name)
        named = len(words_of_name & wanted) / len(words_of_name) if words_of_name else 0.0
        scores[index] = WORD_WEIGHT * shared / (1 + sum(idf(word) for word in document)) + NAME_WEIGHT * named
    return scores


def _words(text: str) -> set[str]:
    """Content words of `text`, camelCase and snake_case split, cut to five letters (a crude stem)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ").lower()
    return {word[:5] for word in re.findall(r"[a-z0-9]+", spaced) if len(word) > 2 and word not in _STOP_WORDS}


# A catalogue is embedded once per process: an eval plans every case against the same one. Vectors are kept
# per embedding function (the function of a bound method: every LocalEmbedder shares one model).
_CACHE_LIMIT = 20_000
_cache: dict[tuple[object, str], NDArray[np.float32]] = {}
_cache_lock = threading.Lock()


def _cached(texts: Sequence[str], embed: Embed) -> NDArray[np.float32]:
    owner: object = getattr(embed, "__func__", embed)
    with _cache_lock:
        missing = list(dict.fromkeys(text for text in texts if (owner, text) not in _cache))
    if missing:
        vectors = embed(missing)
        with _cache_lock:
            if len(_cache) + len(missing) > _CACHE_LIMIT:
                _cache.clear()
            _cache.update(((owner, text), vector) for text, vector in zip(missing, vectors, strict=True))
    with _cache_lock:
        rows = [_cache.get((owner, text)) for text in texts]
    if any(row is None for row in rows):  # evicted meanwhile by another thread: embed them again
        return embed(texts)
    return np.stack([row for row in rows if row is not None])
