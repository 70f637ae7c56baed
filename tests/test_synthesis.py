"""The final answer keeps the tasks' figures: a changed or invented number is rewritten, then quoted verbatim."""

from __future__ import annotations

from collections.abc import Sequence

from orquestra import Task, TaskGraph
from orquestra.engine import RunResult, RunStatus, TaskStatus
from orquestra.models import Message, ScriptedModel
from orquestra.synthesis import citations_for_values, synthesize, unfaithful_figures

OUTPUTS = {"price": "One widget costs $7.", "total": "12 widgets cost $84.00."}
GOAL = "A shop sells widgets at 7 dollars each. Compute the cost of 12 widgets."


def run_result() -> RunResult:
    graph = TaskGraph(
        tasks=[
            Task(id="price", instruction="Find the price.", capability="research"),
            Task(id="total", instruction="Compute the total.", capability="math", depends_on=["price"]),
        ]
    )
    statuses = {task_id: TaskStatus.SUCCEEDED for task_id in OUTPUTS}
    return RunResult("r", RunStatus.SUCCEEDED, graph, statuses, dict(OUTPUTS), {}, 1.0)


def test_figures_of_the_cited_results_and_of_the_goal_pass():
    assert unfaithful_figures("12 widgets cost $84 [total], at $7 each [price].", OUTPUTS, GOAL) == []


def test_a_figure_the_cited_result_does_not_state_is_wrong():
    assert unfaithful_figures("12 widgets cost $96 [total].", OUTPUTS, GOAL) == ["96 (cited from total)"]


def test_an_uncited_figure_must_be_in_some_result():
    assert unfaithful_figures("The total is 84 dollars.", OUTPUTS, GOAL) == []
    assert unfaithful_figures("The total is 91 dollars.", OUTPUTS, GOAL) == ["91 (in no result)"]


def test_citations_and_list_numbers_are_not_figures():
    answer = "1. The total is $84 [total].\n2. Each costs $7 [price]."
    assert unfaithful_figures(answer, {**OUTPUTS, "step_3": "x"}, GOAL) == []


def test_rounding_a_result_is_faithful():
    assert unfaithful_figures("About 33.33 each [share].", {"share": "33.333333"}, "") == []
    assert unfaithful_figures("A rise of 15% [rate].", {"rate": "0.15"}, "") == []


async def test_an_answer_that_changes_a_figure_is_written_again():
    answers = iter(["12 widgets cost $96 [total].", "12 widgets cost $84 [total]."])
    model = ScriptedModel(lambda messages: next(answers))
    assert await synthesize(model, GOAL, run_result()) == "12 widgets cost $84 [total]."
    retold = model.calls[1][-1].content
    assert retold.startswith(
        "Your answer has these problems: these figures are not what the results say: 96 (cited from total)."
    )


async def test_an_answer_still_wrong_after_the_retry_quotes_the_final_results():
    def answer(messages: Sequence[Message]) -> str:
        return "12 widgets cost $96 [total]."

    model = ScriptedModel(answer)
    text = await synthesize(model, GOAL, run_result())
    assert text == (
        "The results, as the tasks gave them (a written answer changed their figures):\n\n"
        "[total] 12 widgets cost $84.00."
    )
    assert len(model.calls) == 2


async def test_an_answer_names_the_tasks_that_did_not_finish():
    result = run_result()
    graph = TaskGraph(
        tasks=[*result.graph.tasks, Task(id="save", instruction="Save it.", capability="writing", depends_on=["total"])]
    )
    result = RunResult(
        "r", RunStatus.FAILED, graph, {**result.statuses, "save": TaskStatus.FAILED}, dict(OUTPUTS), {}, 1
    )
    model = ScriptedModel(lambda messages: "12 widgets cost $84 [total], and it is saved.")
    text = await synthesize(model, GOAL, result)
    assert text.endswith("\n\nNot done: save (failed).")


async def test_an_answer_that_leaves_a_formula_is_written_again():
    answers = iter(["It holds [0.645 * 3.785] gallons [total].", "12 widgets cost $84 [total]."])
    model = ScriptedModel(lambda messages: next(answers))
    assert await synthesize(model, GOAL, run_result()) == "12 widgets cost $84 [total]."
    assert "the answer gives a formula instead of its value" in model.calls[1][-1].content


def test_a_citation_written_where_its_value_belongs_is_found():
    outputs = {"duration": "12000", "note": "A film note."}
    assert citations_for_values("That is equivalent to [duration] seconds.", outputs) == ["duration"]
    assert citations_for_values("The temperature is [duration, note].", outputs) == ["duration", "note"]
    assert citations_for_values("It is about [duration] s, says [note].", outputs) == ["duration"]
    assert citations_for_values("The film lasts 12000 seconds [duration].", outputs) == []
    assert citations_for_values("The answer is [unknown].", outputs) == []


async def test_an_answer_with_a_citation_for_a_value_is_written_again_then_quoted():
    model = ScriptedModel(lambda messages: "12 widgets cost [total] in all.")
    assert await synthesize(model, GOAL, run_result()) == "12 widgets cost [total] in all."  # "cost" is no copula
    model = ScriptedModel(lambda messages: "The cost of 12 widgets is [total].")
    text = await synthesize(model, GOAL, run_result())
    assert "a citation stands where its value belongs ([total])" in model.calls[1][-1].content
    assert text.endswith("[total] 12 widgets cost $84.00.")
