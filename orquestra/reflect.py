"""Reflection: after a task settles, decide whether the run goes on, the plan changes, or the goal is met.

Deterministic checks come first and cost nothing: a task that failed for good, an output that says
information is missing. The model is asked only in the modes that want its judgement, and only while there
is pending work its verdict could change, so reflection never doubles a run's model calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from orquestra.engine import TaskStatus
from orquestra.graph import TaskGraph
from orquestra.models import Message, Model, Usage
from orquestra.prompts import render
from orquestra.trimming import shorten


class ReflectionMode(StrEnum):
    """When the model is asked for a verdict (deterministic checks always run)."""

    FAILURE = "failure"
    """Never: only the deterministic checks (failures, missing information) trigger a replan."""
    WAVE = "wave"
    """After each wave: when the last running task of a batch settles and work is still pending."""
    EVERY_TASK = "every-task"
    """After every task that settles while work is still pending."""


@dataclass(frozen=True)
class Continue:
    """Go on with the plan as it is."""

    reason: str = ""


@dataclass(frozen=True)
class Replan:
    """Change the pending part of the plan: why, and what should change."""

    reason: str
    change: str = ""
    task_id: str | None = None
    """The task whose result prompted the change."""


@dataclass(frozen=True)
class Finish:
    """The goal is met: cancel what is pending and answer."""

    reason: str


Verdict = Continue | Replan | Finish

MISSING_INFORMATION = re.compile(
    r"\b(missing|not (?:enough|sufficient) (?:information|data)|(?:information|data) (?:is|was) not available|"
    r"could not (?:find|access|retrieve)|couldn't (?:find|access)|unable to (?:find|access|retrieve|determine)|"
    r"no (?:data|information) (?:is )?available|i do not have access|i don't have access)\b",
    re.IGNORECASE,
)


def missing_information(output: Any) -> str | None:
    """The sentence of `output` that reports missing information, or None."""
    text = str(output)
    match = MISSING_INFORMATION.search(text)
    if match is None:
        return None
    start = max(text.rfind(".", 0, match.start()) + 1, 0)
    end = text.find(".", match.end())
    return text[start : end + 1 if end != -1 else len(text)].strip()[:300]


class Judgement(BaseModel):
    """The model's verdict on the run so far."""

    what: ClassVar[str] = "judgement of the run"
    """What this answer is, in words for error messages."""

    decision: Literal["continue", "replan", "done"] = Field(
        description="continue: the plan still fits; replan: the pending tasks must change; done: the goal is met."
    )
    reason: str = Field(description="Why, in one sentence.")
    change: str = Field(default="", description="For replan: what should change in the pending tasks.")


class Reflector:
    """Judges each settled task against the goal.

    Args:
        model: asked for a verdict in the `WAVE` and `EVERY_TASK` modes.
        mode: when to ask the model.

    """

    def __init__(self, model: Model, mode: ReflectionMode = ReflectionMode.FAILURE) -> None:
        self.model = model
        self.mode = ReflectionMode(mode)
        self.usage = Usage()

    def check(self, task_id: str, status: TaskStatus, output: Any, error: str) -> Verdict | None:
        """The deterministic verdict on one settled task, or None when the checks see nothing."""
        if status is TaskStatus.FAILED:
            return Replan(f"task '{task_id}' failed: {error}", "replace it with an alternative way", task_id)
        if status is TaskStatus.SUCCEEDED:
            sentence = missing_information(output)
            if sentence:
                return Replan(
                    f"task '{task_id}' reports missing information: {sentence}",
                    "add a task that finds or works around what is missing",
                    task_id,
                )
        return None

    def wants_model(self, *, running: int, pending: int) -> bool:
        """Whether the model should judge now: only while pending work could still change."""
        if pending == 0 or self.mode is ReflectionMode.FAILURE:
            return False
        return self.mode is ReflectionMode.EVERY_TASK or running == 0

    async def judge(
        self, goal: str, graph: TaskGraph, statuses: Mapping[str, TaskStatus], outputs: Mapping[str, Any]
    ) -> Verdict:
        """Ask the model for a verdict on the run so far."""
        results = {task_id: shorten(str(output), 800) for task_id, output in outputs.items()}
        prompt = render("loop/reflect.j2", goal=goal, graph=graph, statuses=statuses, results=results)
        messages = [
            Message("system", "You judge the progress of a team of AI agents towards a goal."),
            Message("user", prompt),
        ]
        judgement, usage = await self.model.structured(messages, Judgement, max_retries=1)
        self.usage = self.usage + usage
        if judgement.decision == "done":
            return Finish(f"the goal is met: {judgement.reason}")
        if judgement.decision == "replan":
            return Replan(judgement.reason, judgement.change)
        return Continue(judgement.reason)
