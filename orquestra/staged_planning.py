"""Planning in stages, for small models: decompose, assign, link, each a short call a grammar constrains.

Asked for a whole graph in one answer, a small model must split the goal, name a capability, invent ids and
link them all at once; the 0.5B embedded model mostly writes a single task whose instruction is the whole
goal, with `depends_on` naming tasks it never writes. Split into stages (as HuggingGPT and TaskBench split
task decomposition, tool selection and dependencies), each answer is small and each schema leaves no room
for the usual mistakes:

1. decompose: the goal into at most `max_tasks` short steps, in order (a list of sentences);
2. assign: one capability per step, each answer an enum of the catalogue's names, keyed by the step's id;
3. link: for each step after the first, the earlier steps whose results it uses, each an enum of the ids
   before it, so a dangling, forward or cyclic edge cannot be written.

The ids come from the steps' words, not from the model. The result goes through the same graph checks as a
one-call plan, and a step cut off at the token limit is dropped, not an error.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pydantic_core
from pydantic import BaseModel, Field, create_model

from orquestra.catalogue import Embed, first_sentence
from orquestra.exceptions import GraphError, InvalidOutput
from orquestra.graph import Task, TaskGraph
from orquestra.models import Message, Model, Usage
from orquestra.prompts import render

SHORTLIST = 1
"""Capabilities a step may choose from when an embedder ranks them; with one, the nearest is taken unasked.

Measured on the TaskBench development samples (0.5B model, 8 cases per domain): the nearest capability by
local embeddings gave node F1 0.47 / 0.74 / 0.84 (Hugging Face, multimedia, daily life) where the model
choosing among the nearest three gave 0.53 / 0.67 / 0.80, with one call fewer per plan."""
MAX_STEP_CHARS = 200
"""A step is one sentence: a longer one is the model pasting the goal."""


@dataclass(frozen=True)
class Step:
    """One step of a staged plan as it is being built."""

    id: str
    instruction: str
    capability: str = ""
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecompositionExample:
    """A goal and its steps, shown to the model before it decomposes."""

    goal: str
    steps: tuple[str, ...]


GENERIC_EXAMPLE = DecompositionExample(
    goal="Look up the opening hours of the city library, work out how many hours a week it is open, and write "
    "a short note about it for the newsletter.",
    steps=(
        "Find the opening hours of the city library.",
        "Compute how many hours a week the library is open from its opening hours.",
        "Write a short newsletter note about the library's weekly opening hours.",
    ),
)
"""Shown when no recalled run gives a better one: three steps, each one action, feeding the next."""


class Steps(BaseModel):
    """The decomposition stage's answer."""

    what: ClassVar[str] = "list of steps"

    steps: list[str]


class StagedPlanner:
    """Plans a goal over `catalogue` (capability -> description) in three constrained calls.

    Args:
        model: the planning model.
        catalogue: the capabilities the plan may use, with what each does.
        max_tasks: the most steps a plan may have.

    """

    def __init__(
        self,
        model: Model,
        catalogue: Mapping[str, str],
        *,
        max_tasks: int,
        shortlist: int = SHORTLIST,
        embed: Embed | None = None,
    ) -> None:
        self.model = model
        self.catalogue = dict(catalogue)
        self.max_tasks = max_tasks
        self.shortlist = shortlist
        self.embed = embed
        # What a capability is, not how: each description's first sentence.
        short = {name: first_sentence(description) for name, description in self.catalogue.items()}
        self.system = render("planner/staged/system.j2", capabilities=short)
        self.usage = Usage()
        self.notes: list[str] = []
        """What was dropped or chosen without the model (a step cut off, an assignment defaulted)."""

    async def plan(
        self,
        goal: str,
        examples: Sequence[DecompositionExample] = (),
        drafted: Callable[[Step], None] | None = None,
    ) -> TaskGraph:
        """The checked graph of `goal`; `GraphError` if the stages produced nothing usable.

        `drafted` hears of each step once it is final, in order: the first as soon as it has its capability
        (it cannot depend on anything), the others once they are linked.
        """
        sentences = await self.decompose(goal, examples)
        steps = _with_ids(sentences)
        steps = await self.assign(goal, steps)
        if drafted is not None:
            drafted(steps[0])
        steps = await self.link(goal, steps)
        if drafted is not None:
            for step in steps[1:]:
                drafted(step)
        return TaskGraph(
            tasks=tuple(
                Task(id=step.id, instruction=step.instruction, capability=step.capability, depends_on=step.depends_on)
                for step in steps
            )
        )

    async def decompose(self, goal: str, examples: Sequence[DecompositionExample] = ()) -> list[str]:
        """The goal's steps, in order: at least one, at most `max_tasks`."""
        shown = list(examples) or [GENERIC_EXAMPLE]
        prompt = render(
            "planner/staged/decompose.j2",
            goal=goal,
            max_tasks=self.max_tasks,
            examples=[{"goal": example.goal, "steps": json.dumps({"steps": list(example.steps)})} for example in shown],
        )
        sentence = Annotated[str, Field(min_length=3, max_length=MAX_STEP_CHARS)]
        output_type = create_model(
            "Steps", __base__=Steps, steps=(list[sentence], Field(min_length=1, max_length=self.max_tasks))
        )
        data = await self._ask(prompt, output_type, stage="decompose")
        steps = [step.strip() for step in data.get("steps", []) if isinstance(step, str) and step.strip()]
        if not steps:
            raise GraphError("the planner wrote no steps")
        return steps[: self.max_tasks]

    async def assign(self, goal: str, steps: list[Step]) -> list[Step]:
        """Each step with one capability of the catalogue.

        With an embedder, each step may only choose among the `shortlist` capabilities whose descriptions
        are nearest to it (with a shortlist of one, the nearest is taken and the model is not asked).
        """
        names = sorted(self.catalogue)
        if len(names) == 1:  # nothing to choose
            return [replace(step, capability=names[0]) for step in steps]
        candidates = await self._candidates(steps, names)
        if all(len(options) == 1 for options in candidates.values()):
            return [replace(step, capability=candidates[step.id][0]) for step in steps]
        fields: dict[str, Any] = {
            step.id: (
                Literal[tuple(candidates[step.id])],
                Field(description=f"The capability for: {step.instruction}"),
            )
            for step in steps
        }
        output_type = create_model("Capabilities", __base__=_Answer, **fields)
        prompt = render("planner/staged/assign.j2", goal=goal, steps=steps)
        data = await self._ask(prompt, output_type, stage="assign")
        assigned: list[Step] = []
        for step in steps:
            capability = data.get(step.id)
            if capability not in candidates[step.id]:
                capability = candidates[step.id][0]
                self.notes.append(f"step '{step.id}': no capability chosen; gave it the nearest, '{capability}'")
            assigned.append(replace(step, capability=capability))
        return assigned

    async def _candidates(self, steps: Sequence[Step], names: Sequence[str]) -> dict[str, list[str]]:
        """The capabilities each step may choose from, nearest first: all of them without an embedder."""
        if self.embed is None or self.shortlist < 1 or self.shortlist >= len(names):
            return {step.id: list(names) for step in steps}
        embed = self.embed
        texts = [f"{name}: {self.catalogue[name]}" for name in names]
        vectors = await asyncio.to_thread(lambda: embed([*texts, *(step.instruction for step in steps)]))
        scores = np.asarray(vectors[len(names) :]) @ np.asarray(vectors[: len(names)]).T  # unit vectors: cosines
        return {
            step.id: [names[index] for index in np.argsort(-row, kind="stable")[: self.shortlist]]
            for step, row in zip(steps, scores, strict=True)
        }

    async def link(self, goal: str, steps: list[Step]) -> list[Step]:
        """Each step with the earlier steps whose results it uses."""
        if len(steps) < 2:
            return steps
        fields: dict[str, Any] = {}
        for index, step in enumerate(steps[1:], start=1):
            earlier: Any = Literal[tuple(other.id for other in steps[:index])]
            fields[step.id] = (
                list[earlier],
                Field(max_length=index, description=f"Earlier steps whose results '{step.id}' uses."),
            )
        output_type = create_model("Inputs", __base__=_Answer, **fields)
        prompt = render("planner/staged/link.j2", goal=goal, steps=steps)
        data = await self._ask(prompt, output_type, stage="link")
        linked = [steps[0]]
        for index, step in enumerate(steps[1:], start=1):
            allowed = {other.id for other in steps[:index]}
            chosen = data.get(step.id)
            inputs = [dep for dep in chosen if dep in allowed] if isinstance(chosen, list) else []
            linked.append(replace(step, depends_on=tuple(dict.fromkeys(inputs))))
        return linked

    async def _ask(self, prompt: str, output_type: type[BaseModel], *, stage: str) -> dict[str, Any]:
        """The stage's answer as data; an answer cut off at the token limit is read as far as it is whole.

        Every stage has the same system message (the catalogue), so a local model evaluates it once.
        """
        messages = [Message("system", self.system), Message("user", prompt)]
        try:
            answer, usage = await self.model.structured(messages, output_type, max_retries=0)
        except InvalidOutput as error:
            self.usage += error.usage if isinstance(error.usage, Usage) else Usage()
            data = _partial(error.raw)
            self.notes.append(
                f"the {stage} answer was cut off or out of bounds ({error.message}); kept what was usable"
            )
            return data
        self.usage += usage
        return answer.model_dump()


class _Answer(BaseModel):
    """Base of the assign and link answers, whose fields are the steps' ids."""

    what: ClassVar[str] = "answer"


def _partial(raw: str | None) -> dict[str, Any]:
    """What a cut-off JSON answer holds, without the item it was writing when cut."""
    if not raw:
        return {}
    try:
        data = pydantic_core.from_json(raw, allow_partial="trailing-strings")
    except (ValueError, TypeError):  # TypeError: a lone surrogate, which pydantic cannot read as UTF-8
        return {}
    if not isinstance(data, dict):
        return {}
    steps = data.get("steps")
    if isinstance(steps, list) and not raw.rstrip().endswith(('"', ",", "]", "}")):
        data["steps"] = steps[:-1]  # the last sentence was cut mid-way
    return data


_WORD = re.compile(r"[a-z][a-z0-9]*")
_FILLER = frozenset(
    "a an and the of to for in on at by with from into about as is are be it its this that these those "
    "then each all any some their them they your you our we his her".split()
)


def _with_ids(sentences: Sequence[str]) -> list[Step]:
    """Steps with short unique snake_case ids made of the first content words of each sentence."""
    steps: list[Step] = []
    used: set[str] = set()
    for number, sentence in enumerate(sentences, start=1):
        words = [word for word in _WORD.findall(sentence.casefold()) if word not in _FILLER]
        base = "_".join(words[:3])[:32].strip("_") or f"step_{number}"
        candidate, suffix = base, 2
        while candidate in used:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        used.add(candidate)
        steps.append(Step(candidate, sentence))
    return steps


def steps_of_plan(plan_json: str) -> tuple[str, ...]:
    """The instructions of a plan written as JSON (a recalled run's), as decomposition steps."""
    try:
        data = json.loads(plan_json)
    except ValueError:
        return ()
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list):
        return ()
    return tuple(str(task["instruction"]) for task in tasks if isinstance(task, dict) and task.get("instruction"))
