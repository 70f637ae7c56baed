"""Report aggregates and files from hand-made case results."""

from __future__ import annotations

import dataclasses
import json

import pytest

from orquestra.evals.cases import CaseResult, Counts, StructureScores, TextScores, Validity
from orquestra.evals.report import build_report, markdown, summarise, write_reports
from orquestra.evals.suite import Anchors
from orquestra.exceptions import UserError


def result(case_id, planner="orquestra", *, tp=1, fp=0, fn=0, shape="chain", size=2, valid=True, error=None):
    return CaseResult(
        case_id=case_id,
        planner=planner,
        shape=shape,
        gold_size=size,
        validity=Validity(parsed=valid, tasks=tp + fp, unknown_capabilities=() if valid else ("Zed",)),
        structure=StructureScores(Counts(tp, fp, fn), Counts(tp, fp, fn), 0.0 if fn == 0 else 0.5, fp == fn == 0),
        error=error,
        cost_usd=0.01,
        input_tokens=100,
        output_tokens=10,
        latency_s=1.0,
        repairs=1,
    )


RESULTS = [
    result("a"),
    result("b", tp=1, fn=1, shape="dag", size=4),
    result("c", tp=0, fp=1, fn=2, valid=False, shape="single", size=1, error="PlanningError: <b>bad</b> | plan"),
]


def test_summary_pools_counts_and_breaks_down_by_shape_and_size():
    summary = summarise(RESULTS, free_text=False)
    assert summary["cases"] == 3 and summary["errors"] == 1
    assert summary["node_f1"]["pooled"]["estimate"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 3))
    assert summary["node_f1"]["per_case"]["estimate"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert summary["validity"]["estimate"] == pytest.approx(2 / 3)
    assert summary["hallucination_rate"] == pytest.approx(1 / 3)
    assert summary["per_case"]["repairs"] == 1 and summary["totals"]["input_tokens"] == 300
    assert set(summary["by_shape"]) == {"single", "chain", "dag"} and summary["by_size"]["4-6"]["cases"] == 1
    low, high = summary["node_f1"]["pooled"]["low"], summary["node_f1"]["pooled"]["high"]
    assert low <= summary["node_f1"]["pooled"]["estimate"] <= high


def test_multi_task_plans_count_only_cases_whose_gold_has_several_tasks():
    results = [
        result("one-for-one", tp=1, size=1),  # not counted: its gold has one task
        result("one-for-two", tp=1, fn=1, size=2),
        result("two-for-three", tp=2, fn=1, size=3),
        result("invalid-three", tp=2, fn=1, size=3, valid=False),
    ]
    assert summarise(results, free_text=False)["multi_task_plans"]["estimate"] == pytest.approx(1 / 3)
    assert "multi-task plans on multi-task gold" in markdown(
        build_report(results, suite="s", model="m", free_text=False)
    )


def test_an_empty_planner_summary_has_no_numbers_rather_than_nan():
    summary = summarise([], free_text=True)
    assert summary["cases"] == 0 and summary["f1_chain"]["estimate"] is None
    json.dumps(summary, allow_nan=False)


def test_report_files_hold_aggregates_definitions_anchors_and_errors(tmp_path):
    anchors = Anchors(source="a paper", rows=[{"model": "GPT-4", "scores": {"node_f1": 81.54, "edge_f1": 54.7}}])
    report = build_report(
        RESULTS + [result("a", "baseline")],
        suite="s",
        model="m",
        free_text=False,
        anchors=anchors,
        planners=["orquestra", "baseline"],
    )
    json_path, md_path = write_reports(report, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["planners"]["baseline"]["cases"] == 1 and len(data["cases"]) == 4
    assert data["errors"] == [{"planner": "orquestra", "case_id": "c", "error": "PlanningError: <b>bad</b> | plan"}]
    assert "validity" in data["metrics"] and data["anchors"]["rows"][0]["model"] == "GPT-4"
    text = md_path.read_text()
    assert "| metric | orquestra | baseline |" in text and "81.54" in text and "protocols differ" in text
    assert "\\| plan" in text  # table cells are escaped
    html = write_reports(report, tmp_path, format="html")[1].read_text()
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "<b>bad</b>" not in html
    with pytest.raises(UserError, match="--format"):
        write_reports(report, tmp_path, format="pdf")
    assert markdown(report).startswith("# Planning eval: s")


def test_free_text_reports_score_steps_by_matching_not_by_label_equality(tmp_path):
    texts = [
        dataclasses.replace(r, text=TextScores(f1_chain=chain, f1_graph=graph, matched=1))
        for r, chain, graph in zip(RESULTS, (1.0, 0.5, 0.0), (1.0, 0.25, 0.0), strict=True)
    ]
    summary = summarise(texts, free_text=True)
    assert summary["f1_chain"]["estimate"] == pytest.approx(0.5)
    assert summary["f1_graph"]["estimate"] == pytest.approx(1.25 / 3)
    # Exact string equality of free-text steps is meaningless, so those scores are not reported at all.
    assert not {"node_f1", "edge_f1", "normalized_edit_distance", "exact_match"} & set(summary)
    assert "node_f1" not in summary["by_shape"]["dag"] and summary["by_shape"]["dag"]["f1_chain"] == 0.5
    report = build_report(texts, suite="s", model="m", free_text=True, anchors=None, planners=["orquestra"])
    text = markdown(report)
    assert "f1_chain, per-case mean" in text and "node F1, pooled" not in text


def test_per_case_edge_f1_leaves_out_cases_without_gold_edges():
    one_task_failure = dataclasses.replace(
        result("x", tp=0, fp=0, fn=1, shape="single", size=1, valid=False),
        structure=StructureScores(Counts(0, 0, 1), Counts(0, 0, 0), 1.0, False),
    )
    with_edges = result("y")  # edges Counts(1, 0, 0): F1 1
    missed_edges = dataclasses.replace(
        result("z"), structure=StructureScores(Counts(1, 0, 0), Counts(0, 0, 2), 0.5, False)
    )
    summary = summarise([one_task_failure, with_edges, missed_edges], free_text=False)
    # (1 + 0) / 2: the failed one-task case has no edges to find and does not count as a perfect 1.
    assert summary["edge_f1"]["per_case"]["estimate"] == pytest.approx(0.5)


def test_reports_count_multi_task_plans_and_show_the_prompt_notes():
    note = "the catalogue has 260 capabilities, more than fit the planner's context; the planner saw the 40 most ..."
    many = dataclasses.replace(RESULTS[1], validity=Validity(parsed=True, tasks=2), notes=[note])
    summary = summarise([RESULTS[0], many, RESULTS[2]], free_text=False)
    assert summary["multi_task_plans"]["estimate"] == pytest.approx(0.5)
    assert summary["prompt_notes"] == {"cases": 1, "example": note}
    report = build_report([RESULTS[0], many], suite="s", model="m", free_text=False)
    text = markdown(report)
    assert "| multi-task plans on multi-task gold | 0.500 [0.000, 1.000] |" in text
    assert "| cases with a prompt fitted to the context | 1 |" in text
    assert f"orquestra: 1 case(s) had their prompt fitted to the context, e.g. {note}" in text
