"""The package's import structure: every module imports on its own, and no two modules import each other.

A module that only imports after another one has been imported, or a circle of modules that works only in
one import order, breaks the first time someone imports the modules in the other order.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .package_modules import IMPORTABLE, MODULES, PACKAGE


@pytest.mark.parametrize("module", IMPORTABLE)
def test_each_module_imports_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=120,
    )
    assert result.returncode == 0, f"import {module} failed on its own:\n{result.stderr}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported: not in functions, not for type checkers."""
    for statement in body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            yield statement
        elif isinstance(statement, ast.If):
            if not _is_type_checking(statement.test):
                yield from _import_time_statements(statement.body)
            yield from _import_time_statements(statement.orelse)
        elif isinstance(statement, ast.Try):
            for block in (statement.body, *(handler.body for handler in statement.handlers)):
                yield from _import_time_statements(block)
            yield from _import_time_statements(statement.orelse)
            yield from _import_time_statements(statement.finalbody)
        elif isinstance(statement, ast.With | ast.ClassDef):
            yield from _import_time_statements(statement.body)


def _imported_names(module: str, statement: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names a statement imports: a module, or a name that may be a submodule."""
    if isinstance(statement, ast.Import):
        yield from (alias.name for alias in statement.names)
        return
    base = statement.module or ""
    if statement.level:
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - statement.level + 1]
        base = ".".join([*package, *([statement.module] if statement.module else [])])
    yield base
    yield from (f"{base}.{alias.name}" for alias in statement.names)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package, and the modules of the package that importing it runs.

    Importing ``a.b.c`` runs ``a`` and ``a.b`` first, so those count too, except the packages above the
    importer itself: they are already being imported when it runs.
    """
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets: set[str] = set()
        for statement in _import_time_statements(ast.parse(path.read_text(encoding="utf-8")).body):
            for name in _imported_names(module, statement):
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):
                    target = ".".join(parts[:depth])
                    if target in MODULES and target != module and not module.startswith(f"{target}."):
                        targets.add(target)
        graph[module] = targets
    return graph


IMPORT_GRAPH = import_graph()
"""Read while the tests are collected, before any test leaves a thread running: on Python 3.11, `ast.parse`
in two threads at once may fail with a SystemError (python/cpython#106905), and tools parse in threads."""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle of imports through each set of modules that import one another, as a chain."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, chain: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in chain:
                found.append([*chain[chain.index(target) :], target])
            elif target not in done:
                visit(target, [*chain, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def test_the_package_has_no_import_circle() -> None:
    assert IMPORT_GRAPH["orquestra.store"] >= {"orquestra.approval", "orquestra.graph"}  # read, not empty
    assert cycles(IMPORT_GRAPH) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_settings_import_no_model() -> None:
    """The model layer reads the settings (`infer_model`), so the settings must not import the model layer."""
    code = "import sys, orquestra.config\nprint(sorted(name for name in sys.modules if name.startswith('orquestra.')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert "orquestra.models" not in result.stdout, result.stdout
