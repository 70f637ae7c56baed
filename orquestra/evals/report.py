"""Planning eval reports: aggregates with bootstrap intervals, a terminal table, JSON, and markdown or HTML.

`summarise` turns case results into one JSON-ready document; every renderer reads that document, so the
terminal, the JSON file and the markdown or HTML file always show the same numbers. Model and user text is
printed through rich `Text` (never read as markup) and escaped in HTML.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from orquestra.evals.cases import CaseResult, Counts
from orquestra.evals.metrics import METRIC_DEFINITIONS, size_bucket
from orquestra.evals.stats import Interval, bootstrap_mean, bootstrap_pooled_f1, bootstrap_rate
from orquestra.evals.suite import Anchors
from orquestra.exceptions import UserError

SHAPES = ("single", "chain", "dag")
BUCKETS = ("1", "2-3", "4-6", "7+")
Row = list[str]


# ---------------------------------------------------------------------------------------------- aggregates


def summarise(results: Sequence[CaseResult], *, free_text: bool) -> dict[str, Any]:
    """Aggregates of one planner's results: scores with 95% intervals, costs per case, breakdowns."""
    summary: dict[str, Any] = {"cases": len(results), "errors": sum(1 for r in results if r.error)}
    summary.update(_scores(results, free_text=free_text))
    count = max(len(results), 1)
    summary["per_case"] = {
        "cost_usd": sum(r.cost_usd for r in results) / count,
        "input_tokens": sum(r.input_tokens for r in results) / count,
        "output_tokens": sum(r.output_tokens for r in results) / count,
        "latency_s": sum(r.latency_s for r in results) / count,
        "repairs": sum(r.repairs for r in results) / count,
    }
    noted = [r for r in results if r.notes]
    summary["prompt_notes"] = {"cases": len(noted), "example": noted[0].notes[0] if noted else None}
    summary["totals"] = {
        "cost_usd": sum(r.cost_usd for r in results),
        "input_tokens": sum(r.input_tokens for r in results),
        "output_tokens": sum(r.output_tokens for r in results),
    }
    summary["by_shape"] = _breakdown(results, lambda r: r.shape, SHAPES, free_text=free_text)
    summary["by_size"] = _breakdown(results, lambda r: size_bucket(r.gold_size), BUCKETS, free_text=free_text)
    return summary


def _scores(results: Sequence[CaseResult], *, free_text: bool, rounds: int = 2000) -> dict[str, Any]:
    nodes = [r.structure.nodes for r in results]
    edges = [r.structure.edges for r in results]
    predicted_tasks = sum(r.validity.tasks for r in results)
    unknown = sum(len(r.validity.unknown_capabilities) for r in results)
    scores: dict[str, Any] = {
        "validity": _interval(bootstrap_rate([r.validity.valid for r in results], rounds=rounds)),
        "hallucination_rate": None if free_text else (unknown / predicted_tasks if predicted_tasks else 0.0),
        "multi_task_plans": _interval(
            bootstrap_rate(
                [r.validity.valid and r.validity.tasks >= 2 for r in results if r.gold_size >= 2], rounds=rounds
            )
        ),
    }
    if not free_text:  # exact label equality says nothing about free-text steps; f1_chain/f1_graph do instead
        scores |= {
            "node_f1": {
                "pooled": _interval(bootstrap_pooled_f1(nodes, rounds=rounds)),
                "per_case": _interval(bootstrap_mean([c.f1 for c in nodes], rounds=rounds)),
            },
            "edge_f1": {
                "pooled": _interval(bootstrap_pooled_f1(edges, rounds=rounds)),
                # Only cases with gold edges: on a one-task case, even an empty plan would "find" all none.
                "per_case": _interval(bootstrap_mean([c.f1 for c in edges if c.tp + c.fn], rounds=rounds)),
            },
            "normalized_edit_distance": _interval(
                bootstrap_mean([r.structure.normalized_edit_distance for r in results], rounds=rounds)
            ),
            "exact_match": _interval(bootstrap_rate([r.structure.exact_match for r in results], rounds=rounds)),
        }
    if free_text:
        chain = [r.text.f1_chain if r.text else 0.0 for r in results]
        graph = [r.text.f1_graph if r.text else 0.0 for r in results]
        scores["f1_chain"] = _interval(bootstrap_mean(chain, rounds=rounds))
        scores["f1_graph"] = _interval(bootstrap_mean(graph, rounds=rounds))
    return scores


def _breakdown(
    results: Sequence[CaseResult], key: Callable[[CaseResult], str], groups: Iterable[str], *, free_text: bool
) -> dict[str, Any]:
    """Estimates per group (intervals on a handful of cases say little, so the breakdown shows estimates)."""
    table: dict[str, Any] = {}
    for group in groups:
        members = [r for r in results if key(r) == group]
        if not members:
            continue
        row: dict[str, Any] = {
            "cases": len(members),
            "validity": sum(r.validity.valid for r in members) / len(members),
        }
        if not free_text:
            row |= {
                "node_f1": _pooled([r.structure.nodes for r in members]),
                "edge_f1": _pooled([r.structure.edges for r in members]),
                "normalized_edit_distance": sum(r.structure.normalized_edit_distance for r in members) / len(members),
                "exact_match": sum(r.structure.exact_match for r in members) / len(members),
            }
        else:
            row["f1_chain"] = sum(r.text.f1_chain if r.text else 0.0 for r in members) / len(members)
            row["f1_graph"] = sum(r.text.f1_graph if r.text else 0.0 for r in members) / len(members)
        table[group] = row
    return table


def _pooled(counts: Sequence[Counts]) -> float:
    total = Counts()
    for count in counts:
        total = total + count
    return total.f1


def _interval(interval: Interval) -> dict[str, float | None]:
    """An interval as JSON (NaN, for no data, becomes null)."""
    return {name: _number(getattr(interval, name)) for name in ("estimate", "low", "high")}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def build_report(
    results: Sequence[CaseResult],
    *,
    suite: str,
    model: str,
    free_text: bool,
    anchors: Anchors | None = None,
    planners: Sequence[str] = ("orquestra",),
) -> dict[str, Any]:
    """The whole report document: aggregates per planner, anchors, definitions, errors and per-case rows."""
    return {
        "suite": suite,
        "model": model,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "free_text": free_text,
        "planners": {
            name: summarise([r for r in results if r.planner == name], free_text=free_text) for name in planners
        },
        "anchors": anchors.model_dump() if anchors else None,
        "metrics": METRIC_DEFINITIONS,
        "errors": [{"planner": r.planner, "case_id": r.case_id, "error": r.error} for r in results if r.error],
        "cases": [asdict(r) for r in results],
    }


# ---------------------------------------------------------------------------------------------- rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        if value.get("estimate") is None:
            return "-"
        return f"{value['estimate']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _hundredths(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def score_rows(report: Mapping[str, Any]) -> tuple[Row, list[Row]]:
    """The main table: one row per metric, one column per planner."""
    planners: Mapping[str, Any] = report["planners"]
    names = list(planners)
    rows: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
        ("cases", lambda s: s["cases"]),
        ("errored cases", lambda s: s["errors"]),
        ("validity rate", lambda s: s["validity"]),
        ("multi-task plans on multi-task gold", lambda s: s.get("multi_task_plans")),
    ]
    if report["free_text"]:
        rows += [
            ("f1_chain, per-case mean", lambda s: s["f1_chain"]),
            ("f1_graph, per-case mean", lambda s: s["f1_graph"]),
        ]
    else:
        rows += [
            ("node F1, pooled", lambda s: s["node_f1"]["pooled"]),
            ("node F1, per-case mean", lambda s: s["node_f1"]["per_case"]),
            ("edge F1, pooled", lambda s: s["edge_f1"]["pooled"]),
            ("edge F1, per-case mean", lambda s: s["edge_f1"]["per_case"]),
            ("normalised edit distance (lower is better)", lambda s: s["normalized_edit_distance"]),
            ("exact match", lambda s: s["exact_match"]),
            ("hallucination rate", lambda s: s["hallucination_rate"]),
        ]
    rows += [
        ("cost per case (USD)", lambda s: f"{s['per_case']['cost_usd']:.5f}"),
        (
            "tokens per case (in / out)",
            lambda s: f"{s['per_case']['input_tokens']:.0f} / {s['per_case']['output_tokens']:.0f}",
        ),
        ("latency per case (s)", lambda s: f"{s['per_case']['latency_s']:.2f}"),
        ("repairs per case", lambda s: f"{s['per_case']['repairs']:.2f}"),
        ("cases with a prompt fitted to the context", lambda s: s.get("prompt_notes", {}).get("cases", 0)),
    ]
    return ["metric", *names], [[label, *(_fmt(get(planners[name])) for name in names)] for label, get in rows]


def breakdown_rows(report: Mapping[str, Any], by: str) -> tuple[Row, list[Row]]:
    """Rows of a breakdown ('by_shape' or 'by_size'): one per planner and group."""
    metrics = ["cases", "validity"]
    if report["free_text"]:
        metrics += ["f1_chain", "f1_graph"]
    else:
        metrics += ["node_f1", "edge_f1", "normalized_edit_distance", "exact_match"]
    rows = [
        [planner, group, *(_fmt(values[m]) for m in metrics)]
        for planner, summary in report["planners"].items()
        for group, values in summary[by].items()
    ]
    return ["planner", "shape" if by == "by_shape" else "gold size", *metrics], rows


def anchor_rows(report: Mapping[str, Any]) -> tuple[Row, list[Row]]:
    """Published scores (x100) with ours on the same scale beside them."""
    anchors = report["anchors"] or {"rows": []}
    metrics = list(dict.fromkeys(metric for row in anchors["rows"] for metric in row["scores"]))
    rows = [
        [row["model"], *(_hundredths(row["scores"].get(m)) for m in metrics), "published"] for row in anchors["rows"]
    ]
    for planner, summary in report["planners"].items():
        ours = []
        for metric in metrics:
            value = summary.get(metric)
            value = value.get("pooled", value) if isinstance(value, Mapping) else value
            estimate = value.get("estimate") if isinstance(value, Mapping) else None
            ours.append("-" if estimate is None else f"{100 * estimate:.2f}")
        rows.append([f"{report['model']} ({planner})", *ours, "this run"])
    return ["model", *metrics, "source"], rows


# ---------------------------------------------------------------------------------------------- terminal


def terminal_view(report: Mapping[str, Any]) -> RenderableType:
    """The rich tables the CLI prints: scores side by side, and the anchors with their note."""
    header, rows = score_rows(report)
    title = f"{report['suite']} with {report['model']}"
    parts: list[RenderableType] = [_table(header, rows, title)]
    if report["anchors"]:
        header, rows = anchor_rows(report)
        parts.append(_table(header, rows, f"published anchors ({report['anchors']['source']})"))
        parts.append(Text(report["anchors"]["note"], style="dim"))
    parts += [Text(line, style="dim") for line in _prompt_note_lines(report)]
    if report["errors"]:
        parts.append(Text(f"{len(report['errors'])} case(s) errored; they are listed in the report.", style="yellow"))
    return Group(*parts)


def _prompt_note_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per planner whose prompts had to be fitted to the model's context, with an example note."""
    lines = []
    for planner, summary in report["planners"].items():
        notes = summary.get("prompt_notes") or {}
        if notes.get("cases"):
            lines.append(
                f"{planner}: {notes['cases']} case(s) had their prompt fitted to the context, e.g. {notes['example']}"
            )
    return lines


def _table(header: Row, rows: list[Row], title: str) -> Table:
    table = Table(title=Text(title), title_justify="left", header_style="bold")
    for position, column in enumerate(header):
        table.add_column(Text(column), justify="left" if position == 0 else "right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


# ---------------------------------------------------------------------------------------------- files


def write_reports(report: Mapping[str, Any], folder: Path, *, format: str = "md") -> list[Path]:
    """Write report.json and report.md (or report.html) into `folder`; return their paths."""
    if format not in ("md", "html"):
        raise UserError(f"--format: unknown format '{format}' (choose md or html)")
    as_json = folder / "report.json"
    document = folder / f"report.{format}"
    render = markdown if format == "md" else html_page
    try:
        as_json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        document.write_text(render(report), encoding="utf-8")
    except OSError as error:
        raise UserError(f"{folder}: cannot write the report: {error.strerror}") from None
    return [as_json, document]


def _sections(report: Mapping[str, Any]) -> list[tuple[str, str | tuple[Row, list[Row]]]]:
    """The report's sections in order: a title and either a paragraph or a table."""
    sections: list[tuple[str, str | tuple[Row, list[Row]]]] = [
        ("Scores", score_rows(report)),
        ("By shape", breakdown_rows(report, "by_shape")),
        ("By gold size", breakdown_rows(report, "by_size")),
    ]
    if report["anchors"]:
        anchors = report["anchors"]
        sections += [
            ("Published anchors", anchor_rows(report)),
            ("", f"{anchors['note']} Source: {anchors['source']}."),
        ]
    notes = _prompt_note_lines(report)
    if notes:
        sections.append(("Prompt notes", " ".join(notes)))
    errors = [[e["planner"], e["case_id"], e["error"] or ""] for e in report["errors"]]
    sections.append(("Errored cases", (["planner", "case", "error"], errors) if errors else "None."))
    sections.append(("Metric definitions", (["metric", "definition"], [[k, v] for k, v in report["metrics"].items()])))
    return sections


def markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown."""
    lines = [f"# Planning eval: {report['suite']}", "", f"Model: `{report['model']}`. Created {report['created']}.", ""]
    for title, body in _sections(report):
        if title:
            lines += [f"## {title}", ""]
        if isinstance(body, str):
            lines += [body, ""]
            continue
        header, rows = body
        lines.append("| " + " | ".join(_md_cell(cell) for cell in header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def html_page(report: Mapping[str, Any]) -> str:
    """The report as a standalone HTML page (all text escaped)."""
    title = html.escape(f"Planning eval: {report['suite']}")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        "<style>body{font-family:sans-serif;max-width:72rem;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}</style></head><body>",
        f"<h1>{title}</h1><p>Model: <code>{html.escape(report['model'])}</code>. "
        f"Created {html.escape(report['created'])}.</p>",
    ]
    for heading, body in _sections(report):
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(body, str):
            parts.append(f"<p>{html.escape(body)}</p>")
            continue
        header, rows = body
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
