"""The package and the command line start light: `import orquestra`, `import orquestra.cli` and `orquestra --help`
import no provider SDK, no vector store, no embedded model and none of the commands of other modules, which load
when they run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from orquestra.cli import _LAZY_COMMANDS, load_command

from .helpers import orquestra

HEAVY = ("chromadb", "llama_cpp", "onnxruntime", "tokenizers", "anthropic", "numpy", "networkx", "prompt_toolkit")
"""Libraries that only some commands need."""
PROVIDER_SDKS = ("instructor", "openai")
LAZY_MODULES = tuple(target.partition(":")[0] for target, _ in _LAZY_COMMANDS.values())
"""The modules of the commands the main app mounts lazily (apply, repl, approve, runs, eval, memory)."""


def modules_after(code: str, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a fresh interpreter holds after running `code` (with `args` as its command line)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(json.loads(result.stderr.strip().splitlines()[-1])), result


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.mark.parametrize("code", ["import orquestra", "import orquestra.cli"])
def test_importing_the_package_or_the_cli_imports_no_heavy_library_and_no_other_command(code: str) -> None:
    modules, _ = modules_after(code)
    assert not top_level(modules) & set(HEAVY)
    assert not modules & {*LAZY_MODULES, "orquestra.team", "orquestra.memory", "orquestra.embeddings"}


@pytest.mark.parametrize("code", ["import orquestra", "import orquestra.cli"])
def test_importing_the_package_or_the_cli_imports_no_provider_sdk(code: str) -> None:
    modules, _ = modules_after(code)
    assert not top_level(modules) & set(PROVIDER_SDKS)


def test_help_lists_every_command_without_importing_the_lazy_ones() -> None:
    code = "import sys\nfrom orquestra.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
    modules, result = modules_after(code, "--help")
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert {"run", "plan", "graph", "registry", *_LAZY_COMMANDS} <= listed
    for name, (_, help_line) in _LAZY_COMMANDS.items():
        assert re.search(rf"│ {name} +{re.escape(help_line)}", result.stdout), name
    assert not modules & set(LAZY_MODULES)
    assert not top_level(modules) & set(HEAVY)


@pytest.mark.parametrize("name", sorted(_LAZY_COMMANDS))
def test_each_lazy_commands_help_line_is_its_own(name: str) -> None:
    """The line `--help` shows without importing a command is the one the command itself declares."""
    command = load_command(name)
    assert command.name == name
    assert (command.help or "").strip().splitlines()[0] == _LAZY_COMMANDS[name][1]


def test_a_lazy_command_runs_and_shows_its_own_help() -> None:
    listed = orquestra("runs", "list")
    assert listed.returncode == 0 and "no runs recorded yet" in listed.stdout, listed.stderr
    helped = orquestra("runs", "--help")
    assert helped.returncode == 0 and "Usage: python -m orquestra runs" in helped.stdout
    assert all(name in helped.stdout for name in ("list", "show", "export"))
    bad = orquestra("runs", "show")
    assert bad.returncode == 2 and "Missing argument" in bad.stderr


def test_public_names_are_imported_on_first_use() -> None:
    code = (
        "import sys\nimport orquestra\nimport orquestra.models\n"
        "assert 'orquestra.team' not in sys.modules and 'orquestra.models.scripted' not in sys.modules\n"
        "from orquestra import AutoTeam\nfrom orquestra.models import ScriptedModel\n"
        "assert AutoTeam.__module__ == 'orquestra.team' and ScriptedModel.__module__ == 'orquestra.models.scripted'\n"
        "assert 'AutoTeam' in dir(orquestra)\n"
        "for module, name in ((orquestra, 'Nope'), (orquestra.models, 'Nope')):\n"
        "    try:\n        getattr(module, name)\n    except AttributeError:\n        pass\n"
        "    else:\n        raise AssertionError(name)\n"
    )
    modules_after(code)
