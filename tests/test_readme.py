"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import orquestra

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_examples_in_the_readme_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README should show the library in use"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})


def test_public_names_are_a_curated_list():
    assert sorted(orquestra.__all__) == orquestra.__all__
    for name in orquestra.__all__:
        assert hasattr(orquestra, name), name
    assert {"Engine", "TaskGraph", "Task", "GraphPatch", "Registry", "Dispatcher"} <= set(orquestra.__all__)
