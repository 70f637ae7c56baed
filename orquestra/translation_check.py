"""An independent check of a run's translation: the answer translated back must say what the goal's text says.

A translation has no figure to work out again, and a small model's translation can drop or swap a word
("un café" for "a cup of coffee", "Tram" for "train") while every task check passes. So before a run that
answers a request to translate an English text is reported as succeeded, the answer is translated back into
English by the model, seeing the answer alone, and each content word of the original (stemmed, numbers
written out) must be in the translation back, which must add none of its own (but the goal's: a question
such as "How do you say this in Italian?" may come back too). A word lost or added fails the check, named
in its reason.

The round trip can fail a fair translation ("vehicle" back for "car") and pass a wrong one that the model
mends on the way back; the check holds a run to what it can show, and says which words it missed.

Not judged (the run's status stands): goals that ask for no translation, texts that are not English or that
the goal does not give, and checks that cannot be made (no valid answer, a provider down).
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from orquestra.answer_check import AnswerCheck
from orquestra.exceptions import OrquestraError
from orquestra.models import Message, Model
from orquestra.prompts import render

if TYPE_CHECKING:
    import snowballstemmer

MAX_ANSWER_CHARS = 2_000
"""The most characters of an answer that are translated back: a translation of a short text is short."""

_ASKS = re.compile(r"\btranslat\w*|\bhow (?:do|would|can|should) (?:you|i|we|one) (?:say|write)\b", re.IGNORECASE)
# Words that carry no content of their own: the round trip may well render them otherwise.
_FUNCTION_WORDS = frozenset(
    """a an the is are am was were be been being of in on at to for from by with and or but not do does did
    i me you he him she it we us they them my your his her its our their this that these those there here
    please very so as what where when how which who whom would will shall can could should may might must
    s t o""".split()
)
# English function words no other common language writes alike: a text with none of them is not English.
_ENGLISH_ONLY = frozenset(
    "the is are am was were of and to my your his her our their this that it you we they what where how does".split()
)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\d+(?:[.,]\d+)?")
_OCLOCK = re.compile(r"\bo['’]clock\b", re.IGNORECASE)
_INTO_ENGLISH = re.compile(r"\b(?:into|in|to)\s+English\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“«](?P<text>[^\"“”«»]+)[\"”»]")
_SINGLE_QUOTED = re.compile(r"(?<!\w)['‘](?P<text>[^'‘’]+)['’](?!\w)")
_AFTER_COLON = re.compile(r":\s*(?P<text>\S.*)$", re.DOTALL)
_AFTER_QUESTION = re.compile(r"\?\s*(?P<text>[^?]*\w[^?]*\??)\s*$", re.DOTALL)
ENGLISH_PROSE_WORDS = 3
ENGLISH_PROSE_SHARE = 0.1
"""An answer with this many of English's own little words, and at least this share of its words, is English."""
MIN_TEXT_WORDS = 2
"""A text to translate has at least this many words (fewer is likely a label, not the text)."""


def asks_for_translation(goal: str) -> bool:
    """Whether `goal` is worded as a request to translate (`Translate into French:`, `How do you say...`)."""
    return _ASKS.search(goal) is not None


def text_to_translate(goal: str) -> str | None:
    """The text `goal` asks to translate: in double quotes, after a colon, or after the question that asks.

    None when the goal gives no such text, or asks for a translation into English.
    """
    if _INTO_ENGLISH.search(goal):
        return None
    for pattern in (_QUOTED, _SINGLE_QUOTED, _AFTER_COLON, _AFTER_QUESTION):
        found = pattern.search(goal)
        if found is not None and len(_words(found["text"])) >= MIN_TEXT_WORDS:
            return found["text"].strip()
    return None


async def check_translation(model: Model, goal: str, answer: str) -> AnswerCheck:
    """Whether `answer`, translated back into English by `model`, says every content word of the goal's text."""
    if not asks_for_translation(goal):
        return AnswerCheck(None, "the goal asks for no translation")
    text = text_to_translate(goal)
    if text is None:
        return AnswerCheck(None, "the goal gives no English text to translate that the check can find")
    what = f"translate {text!r}"
    if not _ENGLISH_ONLY & _words(text):
        return AnswerCheck(None, "the text to translate is not in English", what)
    translation = _without(answer, [goal, text])
    if _is_english(translation):  # English prose about the translation: judge what it quotes, not the prose
        translation = " ".join(
            found["text"] for pattern in (_QUOTED, _SINGLE_QUOTED) for found in pattern.finditer(translation)
        )
    if not _content(translation) - _content(text):
        return AnswerCheck(False, "the answer gives no translation of the text", what, claims=False)
    try:
        back = await _translated_back(model, translation)
    except OrquestraError as error:  # a provider down, the budget spent: the run's claim stands
        return AnswerCheck(None, f"the check could not be made: {error}", what)
    missing = sorted(_content(text) - _content(back))
    # Words of the goal's own ("How do you say this in Italian?") may come back from a translated question.
    added = sorted(_content(back) - _content(text) - _content(goal))
    if not missing and not added:
        return AnswerCheck(True, f"translated back, the answer reads {back!r}", what, back)
    faults = []
    if missing:
        faults.append("lacks " + ", ".join(repr(word) for word in _spelled(text, missing)))
    if added:
        faults.append("adds " + ", ".join(repr(word) for word in _spelled(back, added)))
    why = f"translated back, the answer reads {back!r}, which {' and '.join(faults)}"
    return AnswerCheck(False, why, what, back)


async def _translated_back(model: Model, translation: str) -> str:
    messages = [
        Message("system", render("translation_check/back.j2")),
        Message("user", translation[:MAX_ANSWER_CHARS]),
    ]
    response = await model.request(messages)
    return " ".join(response.text.split())


def _without(answer: str, quoted: list[str]) -> str:
    """`answer` without the goal's own words in it (an answer that quotes the text says it in English)."""
    for text in sorted(quoted, key=len, reverse=True):
        words = [re.escape(word) for word in text.split()]
        if words:
            answer = re.sub(r"\s+".join(words), " ", answer, flags=re.IGNORECASE)
    return answer


def _is_english(text: str) -> bool:
    """Whether `text` reads as English prose: a translation into another language has none of its little words."""
    words = _WORD.findall(text.casefold())
    little = sum(word in _ENGLISH_ONLY for word in words)
    return little >= ENGLISH_PROSE_WORDS and little >= len(words) * ENGLISH_PROSE_SHARE


def _plain(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def _words(text: str) -> set[str]:
    return set(_WORD.findall(_OCLOCK.sub(" ", text).casefold()))


def _content(text: str) -> set[str]:
    """The stems of `text`'s content words, numbers written out in words (8 and eight are one word)."""
    stems: set[str] = set()
    for word in _words(text) - _FUNCTION_WORDS:
        for part in _number_words(word):
            if part not in _FUNCTION_WORDS:
                stems.add(_stemmer().stemWord(part.replace("’", "'").split("'")[0]))
    return stems


def _number_words(word: str) -> list[str]:
    """`word`, or the words of the number it writes (`12` is `twelve`)."""
    if not word[0].isdigit():
        return [word]
    from num2words import num2words

    number = word.replace(",", ".")
    try:
        return re.findall(r"[a-z]+", num2words(float(number) if "." in number else int(number)))
    except (ValueError, OverflowError, NotImplementedError):
        return [word]


def _spelled(text: str, stems: list[str]) -> list[str]:
    """The words of `text` whose stems are `stems`, as the text spells them."""
    found = {stem: stem for stem in stems}
    for word in _words(text):
        stem = _stemmer().stemWord(word.split("'")[0])
        if stem in found and found[stem] == stem:
            found[stem] = word
    return [found[stem] for stem in stems]


@cache
def _stemmer() -> snowballstemmer.stemmer:
    import snowballstemmer

    return snowballstemmer.stemmer("english")
