"""Planning suites: a YAML file naming the data, its adapter and the catalogue, plus published anchor scores.

`data:` is a path relative to the suite file's folder. Shipped suites keep benchmark downloads under a
`data/` folder beside them; `--data DIR` stands in for that folder, so `data: data/taskbench/huggingface`
reads `DIR/taskbench/huggingface`. Paths outside `data/` (an own-format case file committed with the suite)
always resolve against the suite's folder. Errors name the suite file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orquestra.datafile import read_data
from orquestra.evals.adapters import (
    OwnCase,
    OwnCases,
    load_own,
    load_taskbench,
    load_tool_catalogue,
    load_worfbench,
    merge_catalogues,
    own_cases,
)
from orquestra.evals.cases import EvalCase
from orquestra.exceptions import UserError, describe_validation_error
from orquestra.registry import Registry

DATA_FOLDER = "data"
"""The folder name that `--data DIR` stands in for."""

DEFAULT_ANCHOR_NOTE = (
    "Published scores come from other harnesses (prompts, parsing, data versions); protocols differ, so "
    "compare with care and trust the baseline run through this same harness first."
)


class AnchorRow(BaseModel):
    """One published result: a model and its scores (metric name -> value, on a 0-100 scale)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    scores: dict[str, float]


class Anchors(BaseModel):
    """Published scores to print beside ours, with where they come from."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, description="Where the numbers were published.")
    note: str = DEFAULT_ANCHOR_NOTE
    rows: list[AnchorRow] = Field(min_length=1)


class SuiteSpec(BaseModel):
    """A planning suite file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str = ""
    adapter: Literal["taskbench", "worfbench", "orquestra"]
    data: str | None = Field(default=None, description="A file or folder, relative to the suite file.")
    files: list[str] = Field(
        default_factory=list,
        description="worfbench: the subset files inside `data`; taskbench: domain folders inside `data` (optional).",
    )
    extra_catalogues: list[str] = Field(
        default_factory=list,
        description="taskbench: tool catalogues (TaskBench domain folders, WorfBench function-calling subset "
        "files) whose tools are added to every case's catalogue, resolved as `data` is.",
    )
    catalogue_size: int | None = Field(
        default=None, ge=1, description="With extra_catalogues: add their tools until a catalogue has this many."
    )
    capabilities: dict[str, str] = Field(default_factory=dict, description="orquestra, inline: the catalogue.")
    cases: list[OwnCase] | None = Field(default=None, description="orquestra, inline: the cases.")
    max_tasks: int = Field(default=12, ge=1, le=50, description="The largest plan the planner may write.")
    anchors: Anchors | None = None

    @model_validator(mode="after")
    def _data_fits_the_adapter(self) -> SuiteSpec:
        if self.adapter == "orquestra":
            if (self.data is None) == (self.cases is None):
                raise ValueError("an 'orquestra' suite gives either 'data' (a case file) or inline 'cases'")
        elif self.data is None:
            raise ValueError(f"a '{self.adapter}' suite needs 'data'")
        if self.adapter == "worfbench" and not self.files:
            raise ValueError("a 'worfbench' suite lists its subset 'files' (e.g. toolbench.jsonl)")
        if self.adapter != "taskbench" and (self.extra_catalogues or self.catalogue_size is not None):
            raise ValueError("'extra_catalogues' and 'catalogue_size' belong to 'taskbench' suites")
        if self.catalogue_size is not None and not self.extra_catalogues:
            raise ValueError("'catalogue_size' says how many tools to take from 'extra_catalogues', which is empty")
        return self


@dataclass(frozen=True)
class Suite:
    """A suite file as loaded: its spec, where it lives, and the data root standing in for `data/`."""

    spec: SuiteSpec
    path: Path
    data_root: Path | None = None

    @property
    def name(self) -> str:
        """The suite's name."""
        return self.spec.name

    def data_path(self) -> Path | None:
        """Where the suite's data is, by the rule in the module docstring."""
        return None if self.spec.data is None else self.resolve(self.spec.data)

    def resolve(self, path: str) -> Path:
        """A path of the suite file (its `data`, an extra catalogue) by the rule in the module docstring."""
        relative = PurePosixPath(path)
        if relative.is_absolute():
            return Path(relative)
        if self.data_root is not None and relative.parts and relative.parts[0] == DATA_FOLDER:
            return self.data_root.joinpath(*relative.parts[1:])
        return self.path.parent / Path(*relative.parts)

    def cases(self) -> list[EvalCase]:
        """Every case of the suite, read through its adapter."""
        spec, where = self.spec, self.data_path()
        if where is not None and not where.exists():
            hint = " (pass --data DIR, or see evals/README.md for the downloads)" if spec.adapter != "orquestra" else ""
            raise UserError(f"{self.path}: field 'data': {where} not found{hint}")
        if spec.adapter == "taskbench":
            assert where is not None  # checked by the spec
            cases = self._taskbench_cases(where)
        elif spec.adapter == "worfbench":
            assert where is not None
            cases = load_worfbench([where / name for name in spec.files])
        elif where is not None:
            cases = load_own(where, _builtin_catalogue())
        else:
            inline = OwnCases(capabilities=spec.capabilities, cases=spec.cases or [])
            cases = own_cases(inline, _builtin_catalogue())
        if len({case.free_text for case in cases}) > 1:
            raise UserError(
                f"{self.path}: the suite mixes free-text steps and capabilities, which are scored differently; "
                "put them in two suites"
            )
        ids = [case.id for case in cases]
        if len(set(ids)) != len(ids):
            duplicate = next(case_id for case_id in ids if ids.count(case_id) > 1)
            raise UserError(f"{self.path}: case id '{duplicate}' appears twice in the suite's data")
        return cases

    def _taskbench_cases(self, where: Path) -> list[EvalCase]:
        """The cases of one domain folder, or of each of `files` (ids prefixed by the folder), with extra tools."""
        spec = self.spec
        if not spec.files:
            cases = load_taskbench(where)
        else:
            cases = [
                replace(case, id=f"{folder}/{case.id}")
                for folder in spec.files
                for case in load_taskbench(where / folder)
            ]
        if not spec.extra_catalogues:
            return cases
        extra = []
        for source in spec.extra_catalogues:
            path = self.resolve(source)
            if not path.exists():
                raise UserError(f"{self.path}: field 'extra_catalogues': {path} not found (pass --data DIR)")
            extra.append(load_tool_catalogue(path))
        return merge_catalogues(cases, extra, spec.catalogue_size)


def load_suite(path: Path, data_root: Path | None = None) -> Suite:
    """Read and check a suite file; `data_root` stands in for its `data/` folder (see the module docstring)."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder; name a suite file (e.g. evals/planning/example-own.yaml)")
    data = read_data(path)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{path}: {describe_validation_error(error)}") from None
    if data_root is not None and not data_root.is_dir():
        raise UserError(f"--data: {data_root} is not a folder")
    return Suite(spec, path, data_root)


def _builtin_catalogue() -> dict[str, str]:
    """The built-in registry's capabilities, each described by the agents that offer it."""
    registry = Registry.load()
    return {
        capability: "; ".join(card.description for card in registry.agents_for(capability))
        for capability in sorted(registry.capabilities())
    }
