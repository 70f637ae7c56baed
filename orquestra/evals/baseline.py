"""The plain single-prompt planner that `--baseline` runs beside Orquestra's, on the same model and data.

One prompt (the goal and the tools by name and description), a loose output schema (a tool is any string,
no graph checks), no re-asking and no repair: what a model does on its own. The difference between its scores
and Orquestra's is what the planner's catalogue grounding, validation and repair add.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from orquestra.evals.cases import EvalCase, PlannedTaskData
from orquestra.evals.planning import PlanFn, PlanOutcome
from orquestra.exceptions import InvalidOutput
from orquestra.models import Message, Model, Usage

SYSTEM = (
    "You plan tasks. Break the user's request into tasks and answer with JSON only, in this shape: "
    '{"tasks": [{"id": "...", "tool": "...", "instruction": "...", "depends_on": ["..."]}]}. '
    "Each task has a unique id, the tool it uses, a one-sentence instruction, and the ids of the tasks whose "
    "results it needs."
)


class LooseTask(BaseModel):
    """A task as the baseline asks for it: any strings, nothing checked beyond the JSON shape."""

    id: str | int
    tool: str = ""
    instruction: str = ""
    depends_on: list[str | int] = Field(default_factory=list)


class LoosePlan(BaseModel):
    """The baseline's answer."""

    tasks: list[LooseTask]


def baseline_messages(case: EvalCase) -> list[Message]:
    """The baseline's one prompt: the tools (for catalogue suites), then the request."""
    if case.catalogue:
        tools = "\n".join(f"- {name}: {description}" for name, description in case.catalogue.items())
        user = f"Tools:\n{tools}\n\nRequest: {case.goal}"
    else:
        # Free-text suites carry the allowed actions inside the goal; a step's tool is free to name.
        user = f"Request: {case.goal}\n\nWrite each step as a task; 'tool' may name the action it uses."
    return [Message("system", SYSTEM), Message("user", user)]


def baseline_planner(model: Model) -> PlanFn:
    """The plain planner on `model`: one attempt, and an answer that does not parse scores as unparsed."""

    async def plan(case: EvalCase) -> PlanOutcome:
        try:
            answer, usage = await model.structured(baseline_messages(case), LoosePlan, max_retries=0)
        except InvalidOutput as error:
            usage = error.usage if isinstance(error.usage, Usage) else Usage()
            # No answer at all means the call failed (an error); an answer that is not a plan scores as unparsed.
            return PlanOutcome(None, usage, error=None if error.raw else error.message)
        return PlanOutcome(tasks_of(answer), usage)

    return plan


def tasks_of(plan: LoosePlan) -> list[PlannedTaskData]:
    """The baseline's tasks as plain data; ids written as numbers are read as strings."""
    return [
        PlannedTaskData(str(task.id), task.tool, task.instruction, tuple(str(dep) for dep in task.depends_on))
        for task in plan.tasks
    ]
