"""The final answer: one model call over the goal and the tasks' results, citing the tasks it drew on."""

from __future__ import annotations

from orquestra.engine import RunResult
from orquestra.exceptions import BudgetExceeded
from orquestra.models import Message, Model
from orquestra.prompts import render
from orquestra.trimming import CHARS_PER_TOKEN, estimate_tokens, fit_texts, shorten

ANSWER_ROOM = 1024


async def synthesize(model: Model, goal: str, run: RunResult) -> str:
    """The answer to `goal` from the results of `run`; results that would not fit are shortened.

    With no budget left for the call, the answer is the results themselves, introduced by the reason.
    """
    outputs = {task_id: str(run.outputs[task_id]) for task_id in run.finished}
    if not outputs:
        return ""
    if len(outputs) == 1 and len(run.graph) == 1:
        # A one-task plan's result already is the answer: asking the model to restate it adds nothing.
        return next(iter(outputs.values()))
    missing = [task.id for task in run.graph.tasks if task.id not in outputs]
    room = model.context_window - ANSWER_ROOM - estimate_tokens(goal) - 200
    results, trimmed = fit_texts(outputs, int(room * CHARS_PER_TOKEN))
    prompt = render("synthesis.j2", goal=goal, results=results, missing=missing, trimmed=trimmed)
    messages = [
        Message("system", "You write the final answer of a team of AI agents from their results."),
        Message("user", prompt),
    ]
    try:
        response = await model.request(messages)
    except BudgetExceeded as error:
        parts = [f"[{task_id}] {shorten(output, 1500)}" for task_id, output in outputs.items()]
        return f"No answer was written ({error}). The results so far:\n\n" + "\n\n".join(parts)
    return response.text
