"""Every error Orquestra defines lives in `orquestra.exceptions`, and the modules that raise one still name it."""

from __future__ import annotations

import importlib
import inspect

import pytest

import orquestra.exceptions

from .package_modules import IMPORTABLE
from .test_imports import IMPORT_GRAPH

ELSEWHERE = {
    "orquestra.repl.Interrupted": "the REPL's own signal that Ctrl-C stopped a command; it never leaves the REPL",
    "orquestra.templating.TemplateLimitError": (
        "a jinja2 TemplateRuntimeError: defined in exceptions.py, it would make every import of Orquestra load jinja2"
    ),
}
"""Exception classes defined outside `orquestra.exceptions`, and why."""

RAISED_IN = {
    "ApprovalRejected": "orquestra.approval",
    "CheckFailed": "orquestra.checks",
    "TaskTimeout": "orquestra.engine",
    "ManifestError": "orquestra.manifest",
    "MemoryUnavailable": "orquestra.memory",
    "PlanningError": "orquestra.planner",
    "ReplanError": "orquestra.replanner",
    "UnknownRun": "orquestra.store",
    "UnknownApproval": "orquestra.store",
    "ToolError": "orquestra.tools.context",
}
"""The module each of these errors is raised in, where code that catches it may import it from."""


def exception_classes() -> dict[str, type[BaseException]]:
    """Each public exception class of the package, by the dotted name of where it is defined."""
    found: dict[str, type[BaseException]] = {}
    for module_name in IMPORTABLE:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module_name:
                if not name.startswith("_"):
                    found[f"{module_name}.{name}"] = value
    return found


def test_every_public_exception_is_defined_in_exceptions() -> None:
    elsewhere = {name for name in exception_classes() if not name.startswith("orquestra.exceptions.")}
    assert elsewhere == set(ELSEWHERE)


@pytest.mark.parametrize(("name", "module"), sorted(RAISED_IN.items()))
def test_an_error_is_still_importable_from_the_module_that_raises_it(name: str, module: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(orquestra.exceptions, name)


def test_the_exceptions_module_imports_only_what_it_needs() -> None:
    """Every module imports the errors, so they import almost nothing of Orquestra: no import circle can form."""
    assert IMPORT_GRAPH["orquestra.exceptions"] <= {"orquestra.redaction", "orquestra.safe_text"}
