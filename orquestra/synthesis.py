"""The final answer: one model call over the goal and the tasks' results, citing the tasks it drew on.

The answer must keep the tasks' figures exactly: every number it states must be a number of the results
it cites (or, uncited, of some result or of the goal), and it gives values, not formulas nor a citation in
a value's place ("the total is [total]"). An answer that
changes or invents a figure, or leaves a sum unworked, is written once more, told what is wrong; if it is
still wrong, the answer is the final tasks' results quoted verbatim, saying so. An answer to a run that did
not finish every task ends by naming those tasks, so that it never reads as if they were done.
"""

from __future__ import annotations

import re

from orquestra.checks import Attempt, figure_in, not_a_formula, numbers_in, sentences, without_list_numbers
from orquestra.engine import RunResult, RunStatus
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
        problems = answer_problems(response.text, outputs, goal)
        if not problems:
            return response.text + _not_done(run, missing)
        retold = render("synthesis_retry.j2", problems=problems)
        messages += [Message("assistant", response.text), Message("user", retold)]
        response = await model.request(messages)
    except BudgetExceeded as error:
        return unanswered(str(error), run)
    if not answer_problems(response.text, outputs, goal):
        return response.text + _not_done(run, missing)
    sinks = {task.id: outputs[task.id] for task in run.graph.sinks() if task.id in outputs} or outputs
    quoted = "The results, as the tasks gave them (a written answer changed their figures):\n\n" + _quoted(sinks)
    return quoted + _not_done(run, missing)


def unanswered(reason: str, run: RunResult) -> str:
    """What stands for the answer when none could be written: the reason, then the results of `run` as they are."""
    outputs = {task_id: str(run.outputs[task_id]) for task_id in run.finished}
    if not outputs:
        return f"No answer was written ({reason}), and no task finished."
    return f"No answer was written ({reason}). The results so far:\n\n" + _quoted(outputs)


def _not_done(run: RunResult, missing: list[str]) -> str:
    """A closing line naming the tasks that did not finish: an answer must not read as if they had."""
    if not missing or run.status is RunStatus.SUCCEEDED:  # the goal was met: what was left was not needed
        return ""
    listed = ", ".join(f"{task_id} ({run.statuses[task_id].value})" for task_id in missing)
    return f"\n\nNot done: {listed}."


_CITATION = re.compile(r"\[([A-Za-z0-9_.\-]+(?:\s*,\s*[A-Za-z0-9_.\-]+)*)\]")


# A citation where a value belongs: "the distance is [distance] km", "equivalent to [total] seconds".
_IN_PLACE_OF_A_VALUE = re.compile(
    r"\b(?:is|are|was|were|be|equals?|(?:equivalent|amounts?|comes?|came|adds? up) to)"
    r"(?:\s+(?:about|approximately|roughly|around|exactly))?\s*" + _CITATION.pattern,
    re.IGNORECASE,
)


def answer_problems(answer: str, outputs: dict[str, str], goal: str) -> list[str]:
    """What is wrong with an answer, for the model to fix: unsourced figures, a formula, a citation for a value."""
    wrong = unfaithful_figures(answer, outputs, goal)
    problems = [f"these figures are not what the results say: {', '.join(wrong)}"] if wrong else []
    stand_ins = citations_for_values(answer, outputs)
    if stand_ins:
        problems.append(
            "a citation stands where its value belongs ("
            + ", ".join(f"[{task_id}]" for task_id in stand_ins)
            + "): write what that result says, then cite it"
        )
    formula = not_a_formula(Attempt(output=answer, instruction=""))
    return [*problems, formula] if formula else problems


def citations_for_values(answer: str, outputs: dict[str, str]) -> list[str]:
    """The tasks whose citation `answer` writes in place of their result: "the total is [total]"."""
    found = [
        task_id.strip()
        for match in _IN_PLACE_OF_A_VALUE.finditer(answer)
        for task_id in match.group(1).split(",")
        if task_id.strip() in outputs
    ]
    return list(dict.fromkeys(found))


def unfaithful_figures(answer: str, outputs: dict[str, str], goal: str) -> list[str]:
    """Each figure of `answer` that its sources do not state, as ``"96 (cited from total)"``.

    A sentence's figures must appear in the results it cites or in the goal; a sentence that cites none may
    use figures of any result. Citations (``[step_2]``) and list numbers (``2. ...``) are not figures.
    """
    wrong: list[str] = []
    for sentence in sentences(without_list_numbers(answer)):
        cited = [
            task_id.strip()
            for group in _CITATION.findall(sentence)
            for task_id in group.split(",")
            if task_id.strip() in outputs
        ]
        text = _CITATION.sub(" ", sentence)
        sources = [*([outputs[task_id] for task_id in cited] or outputs.values()), goal]
        for figure in numbers_in(text):
            if not figure_in(sources, figure):
                where = f"cited from {', '.join(cited)}" if cited else "in no result"
                wrong.append(f"{figure:g} ({where})")
    return wrong


def _quoted(chosen: dict[str, str]) -> str:
    return "\n\n".join(f"[{task_id}] {shorten(output, 1500)}" for task_id, output in chosen.items())
