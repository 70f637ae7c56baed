"""The final answer: one model call over the goal and the tasks' results, citing the tasks it drew on."""

from __future__ import annotations

from orquestra.engine import RunResult
from orquestra.models import Message, Model, Usage
from orquestra.prompts import render
from orquestra.trimming import CHARS_PER_TOKEN, estimate_tokens, fit_texts

ANSWER_ROOM = 1024


async def synthesize(model: Model, goal: str, run: RunResult) -> tuple[str, Usage]:
    """The answer to `goal` from the results of `run`; results that would not fit are shortened."""
    outputs = {task_id: str(run.outputs[task_id]) for task_id in run.finished}
    if not outputs:
        return "", Usage()
    if len(outputs) == 1 and len(run.graph) == 1:
        # A one-task plan's result already is the answer: asking the model to restate it adds nothing.
        return next(iter(outputs.values())), Usage()
    missing = [task.id for task in run.graph.tasks if task.id not in outputs]
    room = model.context_window - ANSWER_ROOM - estimate_tokens(goal) - 200
    results, trimmed = fit_texts(outputs, int(room * CHARS_PER_TOKEN))
    prompt = render("synthesis.j2", goal=goal, results=results, missing=missing, trimmed=trimmed)
    messages = [
        Message("system", "You write the final answer of a team of AI agents from their results."),
        Message("user", prompt),
    ]
    response = await model.request(messages)
    return response.text, response.usage
