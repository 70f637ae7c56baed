"""The top level of `orquestra` is a short, curated list: `__all__` is exactly what the package exposes.

What `import orquestra` imports (no heavy library, no provider SDK) is checked in `test_startup.py`.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import orquestra

PUBLIC = sorted(name for name in orquestra.__all__ if not name.startswith("_"))
"""The names a user imports; `__version__` is the one dunder `__all__` also lists."""


def test_all_is_sorted_and_short() -> None:
    assert orquestra.__all__ == sorted(orquestra.__all__)
    assert len(set(orquestra.__all__)) == len(orquestra.__all__)
    assert len(PUBLIC) <= 20, "the top level should stay small enough to hold in one's head"
    assert "__version__" in orquestra.__all__


def test_all_equals_the_public_attributes_of_a_freshly_imported_package() -> None:
    """In a fresh interpreter nothing has imported a submodule yet, so `dir` holds only the lazy names."""
    code = "import json, orquestra\nprint(json.dumps([name for name in dir(orquestra) if not name.startswith('_')]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == PUBLIC


def test_all_equals_the_public_attributes_once_every_name_is_resolved() -> None:
    """Resolving names imports their modules, which Python binds on the package; those are submodules, not API."""
    for name in orquestra.__all__:
        getattr(orquestra, name)
    public = {
        name
        for name in dir(orquestra)
        if not name.startswith("_") and not isinstance(getattr(orquestra, name), types.ModuleType)
    }
    assert public == set(PUBLIC)
    assert {name for name in vars(orquestra) if not name.startswith("_")} >= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_resolves_to_a_documented_object_of_orquestra(name: str) -> None:
    value = getattr(orquestra, name)
    assert value.__module__.startswith("orquestra."), value.__module__
    doc = value.__doc__ or ""
    # A dataclass without a docstring gets its signature as one; that documents nothing.
    assert doc.strip() and not doc.startswith(f"{name}("), f"{name} has no docstring"


def test_the_top_level_names_are_the_ones_their_modules_define() -> None:
    import orquestra.graph
    import orquestra.team

    assert orquestra.Task is orquestra.graph.Task
    assert orquestra.AutoTeam is orquestra.team.AutoTeam


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'orquestra' has no attribute 'Dispatcher'"):
        orquestra.Dispatcher  # noqa: B018 - moved to orquestra.dispatch; the top level does not hold it
    with pytest.raises(ImportError):
        from orquestra import RetryPolicy  # noqa: F401 - lives in orquestra.engine


def test_the_readme_lists_the_top_level_and_where_the_rest_lives() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    paragraph = readme[readme.index("The top level of `orquestra` holds") :].split("\n\n")[0]
    top, _, rest = paragraph.partition("The rest is")
    assert set(re.findall(r"`(\w+)`", top)) - {"orquestra"} == set(PUBLIC)
    modules = [importlib.import_module(name) for name in re.findall(r"`(orquestra\.\w+)`", rest)]
    for name in re.findall(r"`([A-Z]\w+)`", rest):
        assert name not in PUBLIC and any(hasattr(module, name) for module in modules), name
