"""Deterministic checks of an agent's answer, run before the answer counts as the task's result.

An answer must not be empty, a tool call written as text, a refusal, or an echo of its prompt; the files its
task says it writes must exist in the workspace; a number a tool computed must be the number the answer
states. Users add checks per agent card or per task (`checks:`, `CheckSpec`). A failed check makes the
attempt fail with its reason: the agent is asked again with that reason, then its fallbacks take over, then
the loop replans. Every check is cheap and asks no model.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orquestra.exceptions import CheckFailed as CheckFailed
from orquestra.tools.textcalls import read_text_calls


@dataclass(frozen=True)
class ToolResult:
    """A tool call that ran during the attempt, and what the tool returned."""

    name: str
    arguments: dict[str, Any]
    result: str


@dataclass(frozen=True)
class Attempt:
    """One answer of an agent to a task, with everything a check may look at."""

    output: str
    instruction: str
    expected_output: str = ""
    system_prompt: str = ""
    workspace: Path | None = None
    tool_results: tuple[ToolResult, ...] = ()
    tools: Collection[str] = ()
    """Every tool name known to the registry: a call of any of them written as text is not an answer."""
    goal: str = ""
    inputs: tuple[str, ...] = ()
    """The results of the tasks this one depends on, as the agent saw them."""
    computes: bool = False
    """Whether the agent has a tool that computes: then new figures are its job, not inventions."""
    started: float | None = None
    """When the agent began this attempt (seconds since the epoch, as file times are)."""


Check = Callable[[Attempt], "str | None"]
"""A check: the reason the attempt fails, or None when it passes."""

MATCH_SECONDS = 1.0
"""The longest a `matches` check searches. Some patterns take exponential time on some texts (``(a+)+$`` on
thirty a's and a full stop), and Python's own `re` cannot be stopped, nor lets a task's timeout fire meanwhile:
the `regex` module, which reads the same patterns, can."""


class CheckSpec(BaseModel):
    r"""A check a user adds to an agent card or a task, in YAML. Give one kind per item.

    ``{contains: "total"}``, ``{not_contains: "TODO"}``, ``{matches: "\d+ widgets"}`` (a regular expression,
    searched), ``{min_chars: 200}``, ``{max_chars: 2000}``, ``{file: report.md}`` (the file exists in the
    workspace; with `contains` or `matches`, its text must satisfy them too), ``{function: "pkg.mod:fn"}``
    (called with the `Attempt`; returns a reason to fail, or None/True to pass, False to fail).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    contains: str | None = Field(default=None, description="Text the answer (or the file) must contain.")
    not_contains: str | None = Field(default=None, description="Text the answer must not contain.")
    matches: str | None = Field(default=None, description="A regular expression the answer (or file) must match.")
    min_chars: int | None = Field(default=None, ge=1, description="The fewest characters the answer may have.")
    max_chars: int | None = Field(default=None, ge=1, description="The most characters the answer may have.")
    file: str | None = Field(default=None, description="A file, relative to the workspace, that must exist.")
    function: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="'module:function' called with it."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> CheckSpec:
        kinds = [name for name in ("not_contains", "min_chars", "max_chars", "function") if getattr(self, name)]
        if self.file is None:
            kinds += [name for name in ("contains", "matches") if getattr(self, name) is not None]
        else:
            kinds.append("file")
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of contains, not_contains, matches, min_chars, max_chars, file (with contains"
                f" or matches), function; got {', '.join(kinds) or 'none'}"
            )
        if self.matches is not None:
            try:
                regex.compile(self.matches)
            except regex.error as error:
                raise ValueError(f"field 'matches': not a regular expression: {error}") from None
        return self

    @property
    def name(self) -> str:
        """A short name for events and tables, e.g. ``contains 'total'``."""
        if self.file is not None:
            extra = f" containing {self.contains!r}" if self.contains else ""
            extra += f" matching {self.matches!r}" if self.matches else ""
            return f"file {self.file}{extra}"
        for kind in ("contains", "not_contains", "matches", "min_chars", "max_chars", "function"):
            value = getattr(self, kind)
            if value is not None:
                return f"{kind} {value!r}" if isinstance(value, str) else f"{kind} {value}"
        return "check"  # unreachable: the validator requires one kind

    def check(self, attempt: Attempt) -> str | None:
        """Why `attempt` fails this check, or None."""
        if self.file is not None:
            return _file_check(attempt, self.file, self.contains, self.matches)
        text = attempt.output
        if self.contains is not None and self.contains.casefold() not in text.casefold():
            return f"the answer does not contain {self.contains!r}"
        if self.not_contains is not None and self.not_contains.casefold() in text.casefold():
            return f"the answer contains {self.not_contains!r}"
        if self.matches is not None and (reason := _unmatched(self.matches, text, "the answer")):
            return reason
        if self.min_chars is not None and len(text.strip()) < self.min_chars:
            return f"the answer has {len(text.strip())} characters; at least {self.min_chars} are needed"
        if self.max_chars is not None and len(text.strip()) > self.max_chars:
            return f"the answer has {len(text.strip())} characters; at most {self.max_chars} are allowed"
        if self.function is not None:
            return _function_check(self.function, attempt)
        return None


@dataclass(frozen=True)
class Verdict:
    """The outcome of every check on one attempt."""

    checks: tuple[str, ...]
    failures: tuple[str, ...] = field(default=())
    """``"name: reason"`` for each check that failed."""

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return not self.failures


def run_checks(attempt: Attempt, extra: Iterable[CheckSpec] = ()) -> Verdict:
    """Run the built-in checks, then `extra`, on `attempt`.

    The first built-in failure stops the built-ins: an empty answer is not also a refusal.
    """
    names: list[str] = []
    failures: list[str] = []
    for name, check in BUILT_IN:
        names.append(name)
        reason = check(attempt)
        if reason is not None:
            failures.append(f"{name}: {reason}")
            break
    for spec in extra:
        names.append(spec.name)
        reason = spec.check(attempt)
        if reason is not None:
            failures.append(f"{spec.name}: {reason}")
    return Verdict(tuple(names), tuple(failures))


# ------------------------------------------------------------------------------------------- built-ins


def not_empty(attempt: Attempt) -> str | None:
    """The answer says something."""
    return "the answer is empty" if not attempt.output.strip() else None


def no_tool_call_text(attempt: Attempt) -> str | None:
    """The answer is not a tool call written as text (which would pass the call on instead of its result)."""
    found = read_text_calls(attempt.output, attempt.tools)
    if not found:
        return None
    names = ", ".join(dict.fromkeys(found.names))
    return f"the answer is a call of {names} written as text, not a result: call the tool, or answer in words"


_REFUSAL = re.compile(
    r"^\W*(?:i'?m\s+sorry|i\s+am\s+sorry|sorry,|i\s+apologi[sz]e|unfortunately,?\s+i|as\s+an\s+ai\b"
    r"|i\s+(?:can(?:no|')?t|cannot|am\s+unable\s+to|am\s+not\s+able\s+to|won'?t\s+be\s+able\s+to)"
    r"\s+(?:help|assist|do|provide|complete|fulfil|comply|answer|perform|write|create|access))",
    re.IGNORECASE,
)
_REFUSAL_SPAN = 400
"""A refusal is short: a long answer that opens with an apology may still do the work."""


def not_refusal(attempt: Attempt) -> str | None:
    """The answer does not decline the task."""
    text = attempt.output.strip().replace("\u2019", "'")
    if len(text) <= _REFUSAL_SPAN and _REFUSAL.match(text):
        return f"the answer declines the task ({_first_line(text)!r}) instead of doing it"
    return None


_SHINGLE = 5
_ECHO_SHARE = 0.6
_SHORT_ECHO = 3
"""The fewest words a short answer copied whole from the instructions needs to count as an echo."""
_COPIED_RUN = 10
"""Words in a row copied from the instructions that make an echo, however long the rest of the answer."""


def not_echo(attempt: Attempt) -> str | None:
    """The answer is not mostly a copy of the agent's system prompt or of the task's own instruction.

    An answer that restates the task and adds a figure the task did not have ("The cost of 12 widgets at $7
    each is $84.") did the work: only one that brings no new number can be an echo.
    """
    words = _words(attempt.output)
    system = _words(attempt.system_prompt)
    if len(words) < _SHINGLE + 2:
        # Too short for shingles, but a clause lifted whole from the instructions ("No preamble, no questions
        # back.") is still an echo; a short clause of the task itself may be its answer, so only those count.
        if len(words) >= _SHORT_ECHO and tuple(words) in _shingles(system, len(words)):
            if _no_new_number(attempt.output, attempt.system_prompt):
                return "the answer repeats the agent's instructions instead of doing the task"
        return None
    # A whole sentence of the instructions copied word for word is not the work, whatever else the answer
    # holds (a call written after it, a figure).
    if _shingles(words, _COPIED_RUN) & _shingles(system, _COPIED_RUN):
        return "the answer repeats the agent's instructions instead of doing the task"
    mine = _shingles(words)
    for what, prompt in (("the agent's instructions", attempt.system_prompt), ("the task", attempt.instruction)):
        theirs = _shingles(_words(prompt))
        if not theirs or len(mine & theirs) / len(mine) < _ECHO_SHARE:
            continue
        if _no_new_number(attempt.output, prompt):
            return f"the answer repeats {what} instead of doing the task"
    return None


def _no_new_number(output: str, prompt: str) -> bool:
    """Whether every number `output` writes is one `prompt` already has."""
    return not set(_NUMBER.findall(output)) - set(_NUMBER.findall(prompt))


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


# A slash only with spaces around it: 12/05 is a date, 64.80 / 4 a sum.
_FORMULA = re.compile(r"\d(?:\s*[*×÷^]\s*|\s+/\s+)\(?\s*[$€£]?\s*\d")
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.DOTALL)


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)


def sentences(text: str) -> list[str]:
    """`text` cut into sentences and lines."""
    return _SENTENCE.split(text)


def without_list_numbers(text: str) -> str:
    """`text` without the numbers of its list items (``2. ...``): they are not figures."""
    return _LIST_MARKER.sub(" ", text)


def not_a_formula(attempt: Attempt) -> str | None:
    """The answer gives values, not sums left to work out (`4.25 * 3 * 1.08` with no result after it)."""
    prose = _CODE.sub(" ", attempt.output)
    for sentence in sentences(prose):
        if _FORMULA.search(sentence) and "=" not in sentence and "≈" not in sentence:
            return f"the answer gives a formula instead of its value ({_first_line(sentence.strip())!r}): compute it"
    return None


_FILE = re.compile(
    r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.(?:md|markdown|txt|json|csv|tsv|ya?ml|html?|py|js|ts|sh|toml|ini|xml|rst|tex"
    r"|sql|log))\b"
)
_WRITE_VERB = re.compile(
    r"\b(?:write|writes|writing|written|save|saves|saving|saved|create|creates|creating|store|stores|export"
    r"|exports|produce|produces|output|generate|generates|put)\b",
    re.IGNORECASE,
)
_READ_VERB = re.compile(
    r"\b(?:read|reads|reading|open|opens|load|loads|using|use|from|based|given|provided|see|consult|check)\b",
    re.IGNORECASE,
)


_DESTINATION = re.compile(
    r"\b(?:into|to)\s+(?:(?:a|the|new)\s+)?(?:file\s+)?(?:(?:called|named)\s+)?[`'\"]?$", re.IGNORECASE
)


def promised_files(text: str) -> list[str]:
    """The files `text` says are written (``save the summary to summary.md``), not those it says are read."""
    found: list[str] = []
    for match in _FILE.finditer(text):
        clause = re.split(r"[.;!?\n]\s", text[: match.start()])[-1]
        write = [m.end() for m in _WRITE_VERB.finditer(clause)]
        read = [m.end() for m in _READ_VERB.finditer(clause)]
        # "... into summary.md", "... to a file named out.txt": where the result goes.
        destination = _DESTINATION.search(clause) is not None
        written = destination or (write and (not read or write[-1] > read[-1]))
        if written and match.group(1) not in found:
            found.append(match.group(1))
    return found


def files_written(attempt: Attempt) -> str | None:
    """Each file the instruction or the expected output says the task writes exists, written by this attempt.

    A file from before the attempt began (a failed agent's, say) is not this answer's work.
    """
    if attempt.workspace is None:
        return None
    missing: list[str] = []
    stale: list[str] = []
    for name in promised_files(f"{attempt.instruction}\n{attempt.expected_output}"):
        path = find_in_workspace(attempt.workspace, name)
        if path is None:
            missing.append(name)
        elif attempt.started is not None and path.stat().st_mtime < attempt.started:
            stale.append(name)
    if missing:
        return f"the task writes {', '.join(missing)}, but the workspace has no such file: write it with a tool"
    if stale:
        return f"the task writes {', '.join(stale)}, but this answer did not write it (it is from before): write it"
    return None


_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![A-Za-z_])")


def numbers_in(text: str) -> list[float]:
    """The numbers written in `text` (thousands separators allowed), as floats."""
    return [float(match.group(0).replace(",", "")) for match in _NUMBER.finditer(text)]


def states_number(text: str, value: float) -> bool:
    """Whether `text` states `value`, exactly or rounded (to the cent, or to fewer places), or as a percentage."""
    for written in numbers_in(text):
        for candidate in (value, value * 100):
            if math.isclose(written, candidate, rel_tol=1e-9, abs_tol=1e-9):
                return True
            places = _places(written)
            if places is not None and round(candidate, places) == written:
                return True
    return False


def tool_numbers(attempt: Attempt) -> str | None:
    """When a tool computed a number, the answer states the last number the tools computed, not another one."""
    computed = [result for result in attempt.tool_results if _as_number(result.result) is not None]
    if not computed:
        return None
    last = computed[-1]
    value = _as_number(last.result)
    assert value is not None
    if states_number(attempt.output, value):
        return None
    said = ", ".join(match.group(0) for match in _NUMBER.finditer(attempt.output)) or "no number"
    return f"{last.name} computed {last.result.strip()}, but the answer states {said}: give the tool's result"


def figure_in(sources: Iterable[str], figure: float) -> bool:
    """Whether some source states `figure`, exactly, rounded, or as a percentage (either way round)."""
    for source in sources:
        if states_number(source, figure) or any(states_number(f"{figure:.10g}", value) for value in numbers_in(source)):
            return True
    return False


def figures_from_sources(attempt: Attempt) -> str | None:
    """A task that builds on earlier results takes its figures from them (or the goal, or its own tools).

    Small models asked to write up a computed figure often write a different one, and work sums out in
    their heads wrongly: a new figure must be a tool's result. Small whole numbers (below 10) and list
    numbers are not figures. Judged are tasks with earlier results, and tasks whose goal or instruction
    asks for a figure to be worked out from figures it gives; facts an agent recalls otherwise are its own.
    """
    sources = [attempt.goal, attempt.instruction, attempt.expected_output, *attempt.inputs]
    asked = " ".join(sources[:3])
    if not (attempt.inputs or (_COMPUTE_WORDS.search(asked) and _figures(asked))):
        return None
    sources += [result.result for result in attempt.tool_results]
    invented = [
        written for written in _figures(attempt.output) if not figure_in(sources, float(written.replace(",", "")))
    ]
    if invented:
        return (
            f"the answer states {', '.join(dict.fromkeys(invented))}, which no earlier result, the goal or a tool"
            " gave: use the figures you were given, exactly, and compute new ones with a tool"
            + ("" if attempt.computes else " (you have none: say what is missing)")
        )
    return None


_COMPUTE_WORDS = re.compile(
    r"\b(?:comput\w*|calculat\w*|how (?:much|many|long|far)|convert\w*|total|sum|percent\w*|average|"
    r"difference|multipl\w*|divid\w*|add up)\b|%",
    re.IGNORECASE,
)
"""Words of a goal that asks for a figure to be worked out."""


def _small(written: str) -> bool:
    return written.isdigit() and int(written) < 10


def _figures(text: str) -> list[str]:
    return [match.group(0) for match in _NUMBER.finditer(without_list_numbers(text)) if not _small(match.group(0))]


BUILT_IN: Sequence[tuple[str, Check]] = (
    ("not_empty", not_empty),
    ("no_tool_call_text", no_tool_call_text),
    ("not_refusal", not_refusal),
    ("not_echo", not_echo),
    ("not_a_formula", not_a_formula),
    ("files_written", files_written),
    ("tool_numbers", tool_numbers),
    ("figures_from_sources", figures_from_sources),
)
"""The checks every answer passes, in order."""


# ------------------------------------------------------------------------------------------- helpers


def _file_check(attempt: Attempt, name: str, contains: str | None, matches: str | None) -> str | None:
    if attempt.workspace is None:
        return f"there is no workspace to hold {name}"
    path = find_in_workspace(attempt.workspace, name)
    if path is None:
        return f"the workspace has no file {name}"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"cannot read {name}: {error.strerror}"
    if contains is not None and contains.casefold() not in text.casefold():
        return f"{name} does not contain {contains!r}"
    if matches is not None and (reason := _unmatched(matches, text, name)):
        return reason
    return None


def _unmatched(pattern: str, text: str, what: str) -> str | None:
    """Why `pattern` is not found in `text` (`what`), or None when it is; a search past `MATCH_SECONDS` fails."""
    try:
        found = regex.search(pattern, text, timeout=MATCH_SECONDS)
    except TimeoutError:
        return f"searching {what} for {pattern!r} takes longer than {MATCH_SECONDS:g} s (nested repeats such as (a+)+?)"
    return None if found else f"{what} does not match {pattern!r}"


def _function_check(spec: str, attempt: Attempt) -> str | None:
    module_name, _, attribute = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        return f"cannot load the check {spec}: {error}"
    try:
        verdict = function(attempt)
    except Exception as error:  # a user's check with a bug fails the attempt with that bug, never the run
        return f"the check {spec} failed: {type(error).__name__}: {error}"
    if verdict is None or verdict is True:
        return None
    return "the check says no" if verdict is False else str(verdict)


def find_in_workspace(workspace: Path, name: str) -> Path | None:
    """`name` in the workspace, or a file of that name anywhere under it (agents pick their own folders)."""
    root = workspace.resolve()
    direct = (root / name).resolve()
    if direct.is_file() and (root == direct or root in direct.parents):
        return direct
    if not root.is_dir():
        return None
    return next((path for path in root.rglob(Path(name).name) if path.is_file()), None)


def _as_number(text: str) -> float | None:
    try:
        value = float(text.strip().replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _places(written: float) -> int | None:
    """Decimal places to round a computed value to when comparing it with `written` (None: compare exactly)."""
    text = repr(written)
    if "e" in text:
        return None
    decimals = text.split(".")[1].rstrip("0") if "." in text else ""
    return len(decimals)


def _first_line(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 80 else line[:77] + "..."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.casefold())


def _shingles(words: list[str], size: int = _SHINGLE) -> set[tuple[str, ...]]:
    return {tuple(words[index : index + size]) for index in range(len(words) - size + 1)}
