"""An independent check of a run's figure: the number the goal asks for, worked out from the goal alone.

Each task's result is checked on its own, but a team can still end with a wrong figure that every task
check passes: a plan that splits one computation in two, the second recomputing on top of the first's
correct result; a task that computes the wrong quantity, faithfully. So before a run that states a figure
of its own is reported as succeeded, the model is asked once, with the goal and nothing else, for one
calculator expression of what the goal asks, and the calculator evaluates it. An answer that does not
state that value has not shown that it meets its goal: the run ends failed, with both figures in its
reason and under its answer.

Not judged (the run's status stands): goals that give fewer than two figures, and checks that yield no value
(no expression, one the calculator refuses, or a figure the goal already gives). An answer that states no
figure of its own is judged (`passed` False when it lacks the value) but `claims` nothing, so its caller
may use the value to find the figure a task worked out without failing a run that may not owe one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from orquestra.checks import numbers_in, states_number
from orquestra.exceptions import OrquestraError
from orquestra.models import Message, Model
from orquestra.prompts import render
from orquestra.tools.calculator import calculate
from orquestra.tools.context import ToolContext, ToolError

MIN_GOAL_FIGURES = 2
"""A goal must give this many figures before a figure can be worked out from it."""


class GoalExpression(BaseModel):
    """What the checking model answers: the goal's figure as one calculator expression."""

    expression: str = Field(
        default="",
        max_length=500,
        description="One calculator expression computing the figure the goal asks for; empty if it asks for none.",
    )


@dataclass(frozen=True)
class AnswerCheck:
    """The verdict on a run's figure: `passed` is None when the answer was not judged (`why` says why).

    `claims` is whether the answer states a figure the goal does not give: one that claims none and lacks
    the value may answer a goal that asks for no figure at all.
    """

    passed: bool | None
    why: str
    expression: str = ""
    value: str = ""
    claims: bool = True


def claimed_figures(answer: str, goal: str) -> list[float]:
    """The figures `answer` states that `goal` does not give: what the run claims to have worked out."""
    given = numbers_in(goal)
    claimed = [figure for figure in numbers_in(answer) if not any(states_number(f"{figure:.12g}", g) for g in given)]
    return list(dict.fromkeys(claimed))  # each figure once, in the order the answer gives them


async def check_answer(model: Model, goal: str, answer: str) -> AnswerCheck:
    """Whether `answer` states the figure `goal` asks for, as `model` and the calculator work it out alone."""
    if len(numbers_in(goal)) < MIN_GOAL_FIGURES:
        return AnswerCheck(None, "the goal gives too few figures to work one out")
    claimed = claimed_figures(answer, goal)
    messages = [
        Message("system", render("answer_check/system.j2")),
        Message("user", render("answer_check/goal.j2", goal=goal)),
    ]
    try:
        reply, _usage = await model.structured(messages, GoalExpression, max_retries=1)
    except OrquestraError as error:  # no valid answer, a provider down, the budget spent: the run's claim stands
        return AnswerCheck(None, f"the check could not be made: {error}")
    expression = reply.expression.strip()
    if not expression:
        return AnswerCheck(None, "the checking model found no figure to work out")
    value = _evaluate(expression)
    if value is None:
        return AnswerCheck(None, f"the calculator could not evaluate {expression!r}", expression)
    if states_number(goal, float(value)):
        return AnswerCheck(None, f"{expression} = {value} is a figure the goal gives", expression, value)
    if states_number(answer, float(value)):
        return AnswerCheck(True, f"the answer states {value}, as {expression} gives", expression, value)
    said = ", ".join(f"{figure:.12g}" for figure in claimed) or "no figure of its own"
    why = f"the answer states {said}, but worked out from the goal alone, {expression} = {value}"
    return AnswerCheck(False, why, expression, value, claims=bool(claimed))


def _evaluate(expression: str) -> str | None:
    """The calculator's value of `expression`, or None when it is refused or not a number."""
    try:
        text = calculate(ToolContext(Path()), expression)  # the calculator touches no file
    except ToolError:
        return None
    number = text.split(" ", 1)[0]  # `12000 second`: a quantity's unit follows its number
    try:
        float(number)
    except ValueError:
        return None
    return number
