"""The shipped run suites, expected-text matching, fixtures copied into workspaces, and false successes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orquestra import cli_eval
from orquestra.evals.runs import (
    RunCase,
    RunCaseResult,
    RunLog,
    TextMatch,
    expected_in,
    failed_checks,
    load_run_suite,
    main,
    numbers_in,
    pool_reports,
    run_suite,
    run_suite_files,
    summarise_runs,
)
from orquestra.exceptions import UserError
from orquestra.models import Message, ModelResponse, ScriptedModel, ToolCall
from orquestra.team import AutoTeam

from .test_cli_eval import app

ROOT = Path(__file__).parent.parent
RUNS = ROOT / "evals" / "runs"
SHIPPED = run_suite_files([RUNS])
runner = CliRunner()

# A correct answer (and the files a correct run leaves) for every shipped case: the checks must accept them.
REFERENCE: dict[str, tuple[str, dict[str, str]]] = {
    "widgets": ("12 widgets cost 84 dollars.", {}),
    "train": ("It covers 510 kilometres.", {}),
    "boxes": ("That is 56 boxes.", {}),
    "savings": ("Ana has 1740 dollars left.", {}),
    "note-file": ("Wrote result.txt.", {"result.txt": "437\n"}),
    "tip": ("The tip is $9.72.", {}),
    "sale-price": ("The sale price is $67.60.", {}),
    "sales-tax": ("You pay 13.77 dollars in total.", {}),
    "interest": ("After 2 years the balance is $2,121.80.", {}),
    "flour-grams": ("2.5 pounds is 1134 grams of flour.", {}),
    "fahrenheit": ("77 °F is 25 °C.", {}),
    "seconds": ("The film is 12,000 seconds long.", {}),
    "gallons": ("The tank holds about 11.9 US gallons.", {}),
    "spanish-cat": ("El gato está durmiendo en la cama.", {}),
    "french-coffee": ("Je voudrais une tasse de café, s'il vous plaît.", {}),
    "german-train": ("Der Zug fährt um acht Uhr ab.", {}),
    "italian-station": ("Dov'è la stazione ferroviaria?", {}),
    "shopping-list": ("Saved shopping.txt.", {"shopping.txt": "- Apples\n- Bread\n- Milk\n"}),
    "scores-csv": ("Saved scores.csv.", {"scores.csv": "name,score\nAna,91\nBen,78\n"}),
    "area-file": ("Saved area.txt.", {"area.txt": "The area is 100 square metres.\n"}),
    "lighthouse-leaflet": (
        "Built in 1887, the Harwick Point lighthouse stands 41 metres tall; 212 steps lead to the top.",
        {},
    ),
    "orchard-update": (
        "This season we harvested 3,400 kg of apples and 1,150 kg of pears. Tomas Brenner manages the orchard.",
        {},
    ),
    "kettle-description": (
        "The Kestrel K2 kettle holds 1.7 litres, draws 2200 watts and costs 49.90 euros.",
        {},
    ),
}

# Near misses a check must refuse: a wrong figure, a number inside a longer one, a missing word.
NEAR_MISSES = {
    "tip": "The tip is $9.70.",
    "sale-price": "The sale price is $67.59.",
    "interest": "After 2 years the balance is $2,120.00.",
    "seconds": "The film is 120000 seconds long.",
    "gallons": "The tank holds about 11.89 US gallons.",
    "fahrenheit": "It is 25.5 °C.",
    "spanish-cat": "El perro duerme en la cama.",
    "lighthouse-leaflet": "Built in 1887, the lighthouse is 41 metres tall.",
}


def all_cases() -> list[tuple[str, RunCase]]:
    return [(path.stem, case) for path in SHIPPED for case in load_run_suite(path).cases]


def copy_fixtures(case: RunCase, workspace: Path) -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    for fixture in case.files:
        fixture.copy_into(workspace)
    return workspace


def test_every_shipped_suite_loads_and_each_case_has_a_check():
    names = {path.stem for path in SHIPPED}
    assert {"arithmetic", "money", "units", "translation", "files", "research"} <= names
    cases = all_cases()
    assert len(cases) >= 20
    ids = [case.id for _, case in cases]
    assert len(set(ids)) == len(ids), "case ids are unique across suites, so their reports can be pooled"
    for suite, case in cases:
        assert case.answer_contains or case.file or case.check, f"{suite}: {case.id}"
        assert case.check is None, f"{suite}: {case.id}: shipped checks are built in, deterministic"
    research = [case for suite, case in cases if suite == "research"]
    assert research and all(case.files for case in research)
    assert len(load_run_suite(RUNS / "arithmetic.yaml").cases) == 5


@pytest.mark.parametrize(("suite", "case"), all_cases(), ids=lambda value: getattr(value, "id", value))
def test_a_correct_answer_passes_and_the_goal_alone_does_not(tmp_path, suite, case):
    answer, files = REFERENCE[case.id]
    workspace = copy_fixtures(case, tmp_path / "right")
    for name, content in files.items():
        (workspace / name).write_text(content, encoding="utf-8")
    assert failed_checks(case, answer, workspace) == []
    # An answer that only repeats the goal, in a workspace holding only the fixtures, fails every check.
    bare = copy_fixtures(case, tmp_path / "bare")
    assert not any(expected_in(text, case.goal) for text in case.answer_contains), case.id
    assert failed_checks(case, case.goal, bare)
    if case.id in NEAR_MISSES:
        assert failed_checks(case, NEAR_MISSES[case.id], workspace)


def test_every_reference_answer_names_a_shipped_case():
    assert set(REFERENCE) == {case.id for _, case in all_cases()}


def test_plain_strings_match_exactly_as_before():
    case = RunCase(id="c", goal="g", answer_contains=["84", 437])
    assert case.answer_contains == ["84", "437"]
    assert failed_checks(case, "84 and 437", Path()) == []
    assert failed_checks(case, "It is 85.", Path()) == ["answer lacks '84'", "answer lacks '437'"]
    assert failed_checks(RunCase(id="c", goal="g", answer_contains="Gato"), "el gato", Path()) == [
        "answer lacks 'Gato'"
    ]


def test_any_of_regex_number_and_ignore_case():
    any_of = TextMatch(any_of=["café", "cafe"], ignore_case=True)
    assert any_of.found_in("Une tasse de CAFÉ") and any_of.found_in("cafe au lait") and not any_of.found_in("thé")
    # An accent typed as a combining mark is the same text.
    assert TextMatch(text="café").found_in("cafe\u0301")
    assert not TextMatch(text="Zug").found_in("der zug") and TextMatch(text="Zug", ignore_case=True).found_in("ZUG")
    regex = TextMatch(regex=r"^ana\s*,\s*91$", ignore_case=True)
    assert regex.found_in("name,score\nAna, 91\n") and not regex.found_in("Ana,910")
    number = TextMatch(number=67.6)
    assert number.number == "67.6"
    assert number.found_in("It costs $67.60.") and number.found_in("67.6 dollars")
    assert not number.found_in("167.60") and not number.found_in("67.61") and not number.found_in("6.76")
    assert TextMatch(number="1,740").found_in("1740 left") and TextMatch(number=1740).found_in("$1,740.00")
    assert not TextMatch(number=84).found_in("184 or 8.4 or 84.5 or x84")
    case = RunCase(
        id="c", goal="g", answer_contains=[{"any_of": ["hola", "buenas"]}, {"regex": "d[ií]as"}, {"number": 9.72}]
    )
    assert failed_checks(case, "hola, buenos días: 9.72", Path()) == []
    assert failed_checks(case, "adiós", Path()) == [
        "answer lacks any of 'hola', 'buenas'",
        "answer lacks a match for /d[ií]as/",
        "answer lacks the number 9.72",
    ]
    assert TextMatch(text="x", ignore_case=True).describe() == "'x' (any case)"


def test_numbers_are_read_as_written():
    assert numbers_in("1,740 and 12.50, -3; 2.5kg, (7) 1.2.3") == {1740, 12.5, -3, 2.5, 7, Decimal("1.2")}


def test_file_checks_take_several_expected_texts(tmp_path):
    (tmp_path / "scores.csv").write_text("name,score\nAna,91\n")
    case = RunCase(id="c", goal="g", file={"path": "scores.csv", "contains": ["name,score", {"regex": "^Ben,78$"}, 91]})
    assert failed_checks(case, "", tmp_path) == ["'scores.csv' lacks a match for /^Ben,78$/"]
    assert RunCase(id="c", goal="g", file={"path": "scores.csv", "contains": "Ana"}).file.contains == ["Ana"]


@pytest.mark.parametrize(
    ("expected", "fragment"),
    [
        ({"text": "a", "regex": "a"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"regex": "(unclosed"}, "invalid regular expression"),
        ({"regex": "a*"}, "matches an empty answer"),
        ({"number": "twelve"}, "'twelve' is not a number"),
        ({"any_of": ["a", ""]}, "empty alternative"),
        ("", "empty text"),
    ],
)
def test_expected_texts_that_cannot_check_anything_are_refused(tmp_path, expected, fragment):
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({"name": "s", "cases": [{"id": "a", "goal": "g", "answer_contains": [expected]}]}))
    with pytest.raises(UserError) as error:
        load_run_suite(path)
    assert str(path) in error.value.message and fragment in error.value.message


def research_brain(messages: Sequence[Message]):
    """Planner, researcher and synthesiser: the researcher reads notes.md with the real read_file tool."""
    system, last = messages[0].content, messages[-1]
    if "planner of a team" in system:
        return {"tasks": [{"id": "read", "instruction": "Read notes.md", "capability": "research", "depends_on": []}]}
    if last.role == "tool":
        return f"The notes say: {last.content}"
    if "Your task (read)" in last.content:
        return ModelResponse(text="", model="brain", tool_calls=(ToolCall("1", "read_file", {"path": "notes.md"}),))
    return "\n".join(message.content for message in messages if "The notes say" in message.content) or "nothing"


def test_fixtures_are_copied_into_the_workspace_before_the_run(tmp_path):
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "notes.md").write_text("The bridge opened in 1932.\n")
    (tmp_path / "fixtures" / "more").mkdir()
    (tmp_path / "fixtures" / "more" / "a.txt").write_text("a")
    suite = tmp_path / "suites" / "suite.yaml"
    suite.parent.mkdir()
    suite.write_text(
        "name: s\ncases:\n"
        "  - id: bridge\n    goal: Read notes.md and say when the bridge opened.\n"
        "    files: [../fixtures/notes.md, {source: ../fixtures/more, path: data/more}]\n"
        "    answer_contains: {number: 1932}\n"
    )
    spec = load_run_suite(suite)
    assert [fixture.target for fixture in spec.cases[0].files] == ["notes.md", "data/more"]
    team = AutoTeam(model=ScriptedModel(research_brain), memory=False, store=False, max_replans=0)
    out = tmp_path / "out"
    stale = out / "workspaces" / "bridge" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an earlier attempt")
    log = RunLog(out, {"suite": "s", "model": "brain"})
    [result] = asyncio.run(run_suite(team, spec.cases, log, out / "workspaces"))
    assert result.passed, result
    workspace = out / "workspaces" / "bridge"
    assert (workspace / "notes.md").read_text() == "The bridge opened in 1932.\n"
    assert (workspace / "data" / "more" / "a.txt").read_text() == "a"
    assert not stale.exists()
    # The case's record says what each task did and what the workspace held, to read why a case failed.
    [task] = result.task_records
    assert task["id"] == "read" and task["status"] == "succeeded" and "1932" in task["output"]
    assert result.workspace_files == ["data/more/a.txt", "notes.md"]
    assert log.load()["bridge"] == result


def test_a_missing_fixture_is_an_error_naming_the_case(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: s\ncases:\n  - {id: ok, goal: g, answer_contains: x}\n"
        "  - {id: bridge, goal: g, answer_contains: x, files: [fixtures/gone.md]}\n"
    )
    with pytest.raises(UserError) as error:
        load_run_suite(suite)
    message = error.value.message
    assert str(suite) in message and "case 'bridge'" in message and "fixture 'fixtures/gone.md' not found" in message
    assert str(tmp_path / "fixtures" / "gone.md") in message


def test_two_fixtures_in_one_place_and_paths_outside_the_workspace_are_refused(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncases:\n  - {id: a, goal: g, answer_contains: x, files: [x/n.md, y/n.md]}\n")
    with pytest.raises(UserError, match="two fixtures go to the same place"):
        load_run_suite(suite)
    suite.write_text("name: s\ncases:\n  - {id: a, goal: g, answer_contains: x, files: [{source: n.md, path: ../n}]}\n")
    with pytest.raises(UserError, match="inside the run's workspace"):
        load_run_suite(suite)


def wrong_answer_brain(messages: Sequence[Message]):
    """A team that succeeds with a wrong figure for 'wrong' and the right one for 'right'."""
    if "planner of a team" in messages[0].content:
        return {"tasks": [{"id": "sum", "instruction": "Add it up", "capability": "writing", "depends_on": []}]}
    goal = next((m.content for m in messages if "wrong" in m.content or "right" in m.content), "")
    return "The total is 85." if "wrong" in goal else "The total is 84."


def test_a_run_that_reports_success_with_a_failed_check_is_a_false_success(monkeypatch, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: mini\ncases:\n"
        "  - {id: right, goal: 'Add up the right figures.', answer_contains: {number: 84}}\n"
        "  - {id: wrong, goal: 'Add up the wrong figures.', answer_contains: {number: 84}}\n"
    )
    monkeypatch.setattr(cli_eval, "build_model", lambda spec, settings: ScriptedModel(wrong_answer_brain))
    out = tmp_path / "out"
    result = runner.invoke(app(), ["eval", "runs", str(suite), "--out", str(out), "--model", "b"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["statuses"] == {"succeeded": 2}
    assert report["passed"] == 1 and report["completion_rate"]["estimate"] == 0.5
    assert report["false_successes"] == 1 and report["false_success_cases"] == ["wrong"]
    assert report["unclaimed_passes"] == 0
    right, wrong = report["results"]
    assert right["passed"] and not right["false_success"]
    assert not wrong["passed"] and wrong["false_success"] and wrong["failures"] == ["answer lacks the number 84"]


def test_only_a_reported_success_can_be_a_false_one_and_only_a_reported_success_passes():
    failed = RunCaseResult("a", checks_passed=False, status="failed")
    errored = RunCaseResult("b", checks_passed=False, status="error", error="boom")
    lucky = RunCaseResult("c", checks_passed=True, status="stopped")
    summary = summarise_runs([failed, errored, lucky], suite="s", model="m")
    assert summary["false_successes"] == 0 and summary["unclaimed_passes"] == 1 and summary["passed"] == 0
    assert [r["passed"] for r in summary["results"]] == [False, False, False]
    # Stored verdicts are derived, never trusted: a report whose flags lie is read from its fields.
    forged = {**summary["results"][2], "passed": True, "false_success": False}
    assert pool_reports([{"suite": "s", "results": [forged]}])["passed"] == 0


def test_a_log_written_before_checks_passed_existed_still_loads(tmp_path):
    log = RunLog(tmp_path, {"suite": "s", "model": "m"})
    log.add_record({"kind": "case", "case_id": "old", "passed": True, "status": "succeeded"})
    log.add_record({"kind": "case", "case_id": "older", "passed": True, "status": "failed"})
    loaded = log.load()
    assert loaded["old"].passed and loaded["old"].checks_passed
    assert not loaded["older"].passed and loaded["older"].unclaimed_pass


def test_reports_of_several_suites_pool(tmp_path, capsys):
    one = summarise_runs(
        [RunCaseResult("a", True, "succeeded"), RunCaseResult("b", False, "succeeded")], suite="one", model="m"
    )
    two = summarise_runs([RunCaseResult("c", True, "succeeded")], suite="two", model="m")
    pooled = pool_reports([one, two])
    assert pooled["cases"] == 3 and pooled["passed"] == 2 and pooled["false_successes"] == 1
    assert [suite["false_success_cases"] for suite in pooled["suites"]] == [["b"], []]
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "report.json").write_text(json.dumps(one))
    (tmp_path / "two.json").write_text(json.dumps(two))
    assert main([str(tmp_path / "one"), str(tmp_path / "two.json")]) == 0
    printed = capsys.readouterr().out
    assert "one: 1/2 passed, 1 false successes (b), 0 unclaimed passes" in printed
    assert "all: 2/3 passed, completion rate 0.667" in printed and "1 false successes" in printed
    assert main([str(tmp_path / "missing")]) == 2
    assert main([]) == 2


def test_a_folder_names_its_suite_files(tmp_path):
    (tmp_path / "b.yaml").write_text("")
    (tmp_path / "a.yml").write_text("")
    (tmp_path / "notes.md").write_text("")
    assert run_suite_files([tmp_path, tmp_path / "x.yaml"]) == [
        tmp_path / "a.yml",
        tmp_path / "b.yaml",
        tmp_path / "x.yaml",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no suite files"):
        run_suite_files([tmp_path / "empty"])
