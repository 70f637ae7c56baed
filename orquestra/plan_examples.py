"""Worked examples for the planner, made from the catalogue at hand.

A small model plans much better after seeing one worked example of the answer's shape: several tasks, each
with one capability, linked by `depends_on`. Past runs recalled from memory are the best examples; without
them, `derived_example` writes one from the capabilities the prompt shows, so that the example only names
capabilities the model may use. Nothing here reads evaluation data: the example is built from the capability
names and descriptions alone.

Measured on the 0.5B embedded model, 10 cases of each TaskBench domain (30 in all, 17 with multi-tool gold):
with no example, 4 of the 17 multi-tool cases got a plan of several tasks (pooled node F1 0.27, edge F1
0.00). One three-task chain on the tools most relevant to the goal gave 17 of 17, but the model copied it
onto every one-tool goal too (0 of 13 stayed one task; node F1 0.53, edge F1 0.09). A one-task example
before the chain kept 16 of 17 multi-task and 8 of 13 single (node F1 0.59, edge F1 0.20); putting the
chain's tools in the order the goal's clauses name them gave node F1 0.60, edge F1 0.20. That last is the
default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orquestra.catalogue import first_sentence

EXAMPLE_TASKS = 3
"""Tasks in a derived example: enough to show a chain of links, few enough to cost little of the prompt."""
PHRASE_WORDS = 12
"""The longest description phrase an example quotes, in words."""

_NOUN_CUES = frozenset({"is", "are", "was", "models", "model", "refers", "(also", "allows", "divides"})
_ID_LENGTH = 24


@dataclass(frozen=True)
class PlanExample:
    """A worked example for the planner: a goal, the plan that served it, and lessons learned."""

    goal: str
    plan: str
    """The plan as JSON, in the shape the planner answers with."""
    lessons: str = ""


BUILTIN_EXAMPLE = PlanExample(
    goal="Compare the populations of France and Spain and write a short note about the difference.",
    plan=json.dumps(
        {
            "tasks": [
                {
                    "id": "france",
                    "instruction": "Find the population of France.",
                    "capability": "research",
                    "depends_on": [],
                },
                {
                    "id": "spain",
                    "instruction": "Find the population of Spain.",
                    "capability": "research",
                    "depends_on": [],
                },
                {
                    "id": "difference",
                    "instruction": "Compute the difference between the two populations.",
                    "capability": "math",
                    "depends_on": ["france", "spain"],
                },
                {
                    "id": "note",
                    "instruction": "Write a short note about the difference.",
                    "capability": "writing",
                    "depends_on": ["difference"],
                },
            ]
        }
    ),
)
"""The hand-written chain, for catalogues that have its capabilities (the built-in registry's)."""
BUILTIN_SINGLE = PlanExample(
    goal="What is the average of 12, 18 and 27?",
    plan=json.dumps(
        {
            "tasks": [
                {
                    "id": "average",
                    "instruction": "Compute the average of 12, 18 and 27.",
                    "capability": "math",
                    "depends_on": [],
                }
            ]
        }
    ),
)
"""The hand-written goal of one step, shown before the chain: its facts are in the goal, so one task serves."""
BUILTIN_CAPABILITIES = frozenset({"research", "math", "writing"})


def default_examples(catalogue: Mapping[str, str], ranked: Sequence[str] = ()) -> list[PlanExample]:
    """Worked examples for a prompt without recalled ones: the built-in pair, or a pair derived from `catalogue`.

    The built-in pair (a goal of one step, then a chain) serves where the catalogue has its capabilities.
    Otherwise a goal of one task (`single_example`) comes first and a chain of three (`derived_example`)
    second, both on the first capabilities of `ranked` (the most relevant to the goal, in the order the goal
    names them, say): the pair shows that a plan has as many tasks as the goal has steps. An empty catalogue
    gets none.
    """
    if BUILTIN_CAPABILITIES <= catalogue.keys():
        return [BUILTIN_SINGLE, BUILTIN_EXAMPLE]
    examples = (single_example(catalogue, ranked), derived_example(catalogue, ranked))
    return [example for example in examples if example is not None]


def derived_example(catalogue: Mapping[str, str], ranked: Sequence[str] = ()) -> PlanExample | None:
    """A worked example over `catalogue`: a chain of up to three tasks, each on its own capability.

    The capabilities are the first of `ranked` found in the catalogue (the most relevant to the goal, say),
    then the catalogue's own order. Returns None for an empty catalogue.
    """
    names = [name for name in dict.fromkeys([*ranked, *catalogue]) if name in catalogue][:EXAMPLE_TASKS]
    if not names:
        return None
    if len(names) == 1:
        names = names * 2  # one capability: two tasks on it still show a link
    ids = _ids(names)
    phrases = [action(name, catalogue[name]) for name in names]
    tasks = []
    for position, (task_id, name, phrase) in enumerate(zip(ids, names, phrases, strict=True)):
        instruction = _sentence(phrase if position == 0 else f"{phrase}, using the result of {ids[position - 1]}")
        depends_on = [ids[position - 1]] if position else []
        tasks.append({"id": task_id, "instruction": instruction, "capability": name, "depends_on": depends_on})
    return PlanExample(goal=_goal(phrases), plan=json.dumps({"tasks": tasks}))


def single_example(catalogue: Mapping[str, str], ranked: Sequence[str] = ()) -> PlanExample | None:
    """A worked example of a goal that needs one task: the first capability of `ranked` in the catalogue."""
    names = [name for name in dict.fromkeys([*ranked, *catalogue]) if name in catalogue][:1]
    if not names:
        return None
    [name] = names
    phrase = action(name, catalogue[name])
    task = {"id": _ids([name])[0], "instruction": _sentence(phrase), "capability": name, "depends_on": []}
    return PlanExample(goal=_sentence(phrase), plan=json.dumps({"tasks": [task]}))


def action(name: str, description: str) -> str:
    """What a capability does, as a short imperative phrase: 'download an image from a given URL'.

    A description that starts with a verb ('Downloads ...', 'Get ...') gives the phrase; one that names a
    thing ('Translation is the task of ...') gives 'apply Translation'.
    """
    sentence = re.split(r",|;| such as | e\.g\.| \(", first_sentence(description).rstrip(".!? "))[0]
    words = sentence.split()
    if len(words) < 2 or _names_a_thing(words) or sentence.lower().startswith(name.lower()):
        return f"apply {name}"
    verb = _base_form(words[0])
    return " ".join([verb[0].lower() + verb[1:], *words[1:PHRASE_WORDS]])


def _names_a_thing(words: Sequence[str]) -> bool:
    first = words[0]
    return (
        any(word.lower() in _NOUN_CUES for word in words[1:4])
        or first.lower().endswith("ing")
        or first.lower() in {"this", "the", "a", "an", "it", "these", "tool", "api"}
        or not first.isalpha()
    )


def _base_form(verb: str) -> str:
    """'Downloads' -> 'Download', 'Applies' -> 'Apply', 'Does' -> 'Do'; other words as they are."""
    lower = verb.lower()
    if lower.endswith("ies") and len(lower) > 4:
        return verb[:-3] + "y"
    if lower.endswith(("sses", "ches", "shes", "xes", "oes")):
        return verb[:-2]
    if lower.endswith("s") and not lower.endswith(("ss", "us", "is")):
        return verb[:-1]
    return verb


def _goal(phrases: Sequence[str]) -> str:
    if len(phrases) == 2:
        return _sentence(f"{phrases[0]}, then {phrases[1]} with the result")
    middle = ", then ".join(f"{phrase} with the result" for phrase in phrases[1:-1])
    return _sentence(f"{phrases[0]}, then {middle}, and finally {phrases[-1]}")


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _ids(names: Sequence[str]) -> list[str]:
    """Short snake_case ids from capability names, unique, as the planner's id pattern wants them."""
    ids: list[str] = []
    for name in names:
        base = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()).strip("_")
        base = (base if base[:1].isalpha() else f"step_{base}")[:_ID_LENGTH].rstrip("_") or "step"
        task_id, number = base, 2
        while task_id in ids:
            task_id, number = f"{base}_{number}", number + 1
        ids.append(task_id)
    return ids
