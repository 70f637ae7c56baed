"""The planning eval runner: planners on scripted models, scoring, the results log and resume."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from orquestra.evals.adapters import load_own, load_taskbench, load_worfbench
from orquestra.evals.baseline import baseline_planner
from orquestra.evals.cases import EvalCase, LabelledGraph, PlannedTaskData
from orquestra.evals.planning import (
    PlanOutcome,
    ResultLog,
    agent_name,
    case_registry,
    orquestra_planner,
    result_from_json,
    result_to_json,
    run_planning,
    score,
)
from orquestra.exceptions import UserError
from orquestra.models import Message, ScriptedModel

FIXTURES = Path(__file__).parent / "fixtures" / "evals"


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """Bag-of-words vectors: the same words give cosine 1, no shared words give 0."""
    vectors = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            vectors[row, zlib.crc32(word.encode()) % 256] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def gold_tasks(case: EvalCase, key: str = "capability") -> list[dict]:
    tasks = []
    for position, label in enumerate(case.gold.labels):
        deps = [f"t{source}" for source, target in case.gold.edges if target == position]
        instruction = label if case.free_text else f"use {label}"
        tasks.append(
            {
                "id": f"t{position}",
                key: "act" if case.free_text and key == "capability" else label,
                "instruction": instruction,
                "depends_on": deps,
            }
        )
    return tasks


def planner_brain(cases: Sequence[EvalCase], *, broken: Sequence[str] = (), garbled: Sequence[str] = ()):
    """One scripted model answering both planners with each case's gold plan, by the goal in the prompt."""

    def respond(messages: Sequence[Message]):
        said = "\n".join(m.content for m in messages if m.role == "user")
        case = next(case for case in cases if case.goal in said)
        if case.id in broken:
            raise RuntimeError(f"connection reset while planning {case.id}")
        baseline = "You plan tasks" in messages[0].content
        if case.id in garbled:
            return "I think you should first detect the objects."
        return {"tasks": gold_tasks(case, "tool" if baseline else "capability")}

    return respond


def test_agent_names_are_valid_and_unique():
    assert agent_name("Object Detection") == "object-detection"
    assert agent_name("Object Detection", ["object-detection"]) == "object-detection-2"
    assert agent_name("3D Model") == "t-3d-model"
    assert agent_name("!!!") == "tool"


def test_a_case_registry_offers_exactly_the_catalogue():
    [case, *_] = load_taskbench(FIXTURES / "data" / "taskbench" / "huggingface")
    assert case_registry(case).capabilities() == set(case.catalogue)
    free = load_worfbench([FIXTURES / "worfbench" / "mini.jsonl"])[0]
    assert case_registry(free).capabilities() == {"act"}


async def test_orquestra_and_baseline_planners_score_gold_plans_perfectly(tmp_path):
    cases = load_taskbench(FIXTURES / "data" / "taskbench" / "huggingface")
    model = ScriptedModel(planner_brain(cases), name="brain")
    planners = {"orquestra": orquestra_planner(model), "baseline": baseline_planner(model)}
    log = ResultLog(tmp_path, {"suite": "s", "model": "brain"})
    results = await run_planning(cases, planners, log, concurrency=3)
    assert len(results) == 2 * len(cases)
    assert [r.planner for r in results[: len(cases)]] == ["orquestra"] * len(cases)
    for result in results:
        assert result.validity.valid and result.structure.exact_match, result
        assert result.error is None and result.input_tokens > 0
    assert results[0].predicted[0].capability == "Object Detection"


async def test_free_text_cases_are_scored_by_step_text(tmp_path):
    cases = load_worfbench([FIXTURES / "worfbench" / "mini.jsonl"])
    model = ScriptedModel(planner_brain(cases), name="brain")
    log = ResultLog(tmp_path, {"suite": "s", "model": "brain"})
    results = await run_planning(cases, {"orquestra": orquestra_planner(model)}, log, embed=fake_embed)
    for result in results:
        assert result.text is not None and result.text.f1_chain == pytest.approx(1.0), result.case_id
        assert result.text.f1_graph == pytest.approx(1.0)


async def test_a_failing_or_garbled_plan_is_recorded_and_scored_as_empty(tmp_path):
    cases = load_own(FIXTURES / "own-cases.yaml")[:3]
    model = ScriptedModel(planner_brain(cases, broken=["one"], garbled=["chain"]), name="brain")
    planners = {"orquestra": orquestra_planner(model), "baseline": baseline_planner(model)}
    results = {
        (r.planner, r.case_id): r
        for r in await run_planning(cases, planners, ResultLog(tmp_path, {"suite": "s", "model": "m"}))
    }
    assert len(results) == 6
    broken = results[("orquestra", "one")]
    assert broken.error and "connection reset" in broken.error
    assert not broken.validity.parsed and broken.structure.nodes.fn == 1 and broken.predicted == []
    assert results[("baseline", "one")].error  # a failing model is an error for either planner
    garbled = results[("baseline", "chain")]
    assert garbled.error is None and not garbled.validity.parsed and garbled.structure.nodes.tp == 0
    assert results[("orquestra", "chain")].error  # the planner could not repair prose into a plan
    assert results[("orquestra", "dag")].structure.exact_match


async def test_the_baseline_keeps_unknown_tools_and_invalid_graphs():
    case = EvalCase("c", "goal", LabelledGraph(("A", "B"), ((0, 1),)), {"A": "a", "B": "b"}, shape="chain")
    plan = {"tasks": [{"id": 1, "tool": "A"}, {"id": 2, "tool": "Zed", "depends_on": [1, 3]}]}
    outcome = await baseline_planner(ScriptedModel(responses=[plan]))(case)
    assert outcome.tasks == [PlannedTaskData("1", "A", ""), PlannedTaskData("2", "Zed", "", ("1", "3"))]
    result = score(case, "baseline", outcome)
    assert result.validity.unknown_capabilities == ("Zed",) and result.validity.dangling_edges == (("2", "3"),)
    assert not result.validity.valid and result.structure.nodes.tp == 0  # invalid: scored as an empty graph


def test_a_free_text_case_needs_an_embedder():
    case = EvalCase("c", "goal", LabelledGraph(("step",)), {}, free_text=True, shape="single")
    with pytest.raises(UserError, match="embedder"):
        score(case, "orquestra", PlanOutcome([PlannedTaskData("a", "act", "step")]))


async def test_results_round_trip_and_an_interrupted_eval_resumes(tmp_path):
    cases = load_own(FIXTURES / "own-cases.yaml")[:3]
    model = ScriptedModel(planner_brain(cases), name="brain")
    planners = {"orquestra": orquestra_planner(model)}
    log = ResultLog(tmp_path, {"suite": "s", "model": "brain"})
    first = await run_planning(cases[:2], planners, log, concurrency=1)
    assert len(model.calls) == 2
    with (tmp_path / "results.jsonl").open("a") as file:
        file.write('{"kind": "case", "case_id": "torn')  # a write cut short by Ctrl-C
    again = ResultLog(tmp_path, {"suite": "s", "model": "brain"})
    results = await run_planning(cases, planners, again)
    assert len(model.calls) == 3  # only the unfinished case ran
    assert [r.case_id for r in results] == ["one", "chain", "dag"]
    assert results[:2] == first
    # The result written after the torn line got a line of its own, so a third run finds all three.
    assert len(ResultLog(tmp_path, {"suite": "s", "model": "brain"}).load()) == 3
    for result in results:
        assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


async def test_retry_errors_runs_only_the_errored_cases_again(tmp_path):
    cases = load_own(FIXTURES / "own-cases.yaml")[:2]
    failing = ScriptedModel(planner_brain(cases, broken=["one"]), name="brain")
    log = ResultLog(tmp_path, {"suite": "s", "model": "brain"})
    await run_planning(cases, {"orquestra": orquestra_planner(failing)}, log)
    healthy = ScriptedModel(planner_brain(cases), name="brain")
    log = ResultLog(tmp_path, {"suite": "s", "model": "brain"})
    results = await run_planning(cases, {"orquestra": orquestra_planner(healthy)}, log, retry_errors=True)
    assert len(healthy.calls) == 1 and all(r.error is None for r in results)
    assert len(ResultLog(tmp_path, {"suite": "s", "model": "brain"}).load()) == 2


def test_a_log_of_another_suite_or_model_is_refused_unless_fresh(tmp_path):
    log = ResultLog(tmp_path, {"suite": "s", "model": "a"})
    case = load_own(FIXTURES / "own-cases.yaml")[0]
    log.append(score(case, "orquestra", PlanOutcome(None, error="x")))
    with pytest.raises(UserError, match="holds results of suite 's' with model 'a'"):
        ResultLog(tmp_path, {"suite": "s", "model": "b"}).load()
    assert ResultLog(tmp_path, {"suite": "s", "model": "b"}, fresh=True).load() == {}


def test_a_log_whose_lines_are_not_this_evals_is_one_clear_error(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"kind": "case"\n')
    with pytest.raises(UserError, match="line 1 is not this eval's header; pass --fresh"):
        ResultLog(tmp_path, {"suite": "s", "model": "m"}).load()
    (tmp_path / "results.jsonl").write_text('{"kind": "header", "suite": "s", "model": "m"}\n{"kind": "case"}\n')
    with pytest.raises(UserError, match="line 2 is not a result of this eval"):
        ResultLog(tmp_path, {"suite": "s", "model": "m"}).load()
