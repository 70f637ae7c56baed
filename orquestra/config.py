"""Settings: where Orquestra keeps its data and which models it uses, from flags, environment and a file.

Precedence, strongest first: explicit arguments (CLI flags, API parameters), environment variables
(`ORQUESTRA_MODEL`, `ORQUESTRA_PLANNER_MODEL`, `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`,
`ANTHROPIC_BASE_URL`, `ORQUESTRA_LOCAL_CONTEXT`, `ORQUESTRA_LOCAL_THREADS`), the config file
(`ORQUESTRA_CONFIG`, else `<home>/config.yaml`), then defaults: the embedded `local` model. API keys come
only from the environment or the config file and are never shown: `Settings.__repr__` masks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orquestra._home import config_path, home_dir
from orquestra.approval import ApprovalPolicy
from orquestra.budget import Budget
from orquestra.datafile import read_data
from orquestra.exceptions import UserError, describe_validation_error
from orquestra.tools.context import ToolLimits

DEFAULT_MODEL = "local"
MIN_LOCAL_CONTEXT = 512
"""The smallest context window accepted for an embedded model: below it not even a planner prompt fits."""


class _ProviderFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None
    base_url: str | None = None


class _LocalFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: int | None = Field(default=None, ge=MIN_LOCAL_CONTEXT, description="Context window in tokens.")
    threads: int | None = Field(default=None, ge=1, description="Threads for llama.cpp.")


class _BudgetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, gt=0)
    max_cost: float | None = Field(default=None, gt=0)
    max_seconds: float | None = Field(default=None, gt=0)


class _ToolsFile(BaseModel):
    """Limits of one tool call (`orquestra.tools.context.ToolLimits`); unset keeps the default."""

    model_config = ConfigDict(extra="forbid")

    max_argument_chars: int | None = Field(default=None, ge=1)
    max_write_chars: int | None = Field(default=None, ge=1)
    max_read_chars: int | None = Field(default=None, ge=1)
    max_result_chars: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)


class _ConfigFile(BaseModel):
    """The shape of config.yaml."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Default model for agents, planner and synthesis.")
    planner_model: str | None = Field(default=None, description="Model for planning, if not the default.")
    registry: list[Path] = Field(default_factory=list, description="Extra registry folders.")
    openai: _ProviderFile = Field(default_factory=_ProviderFile)
    anthropic: _ProviderFile = Field(default_factory=_ProviderFile)
    local: _LocalFile = Field(default_factory=_LocalFile, description="Options of the embedded models.")
    budget: _BudgetFile = Field(default_factory=_BudgetFile, description="Default limits per run.")
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy, description="Tasks that wait for a person.")
    retries: int | None = Field(default=None, ge=0, le=20, description="Retries of a transient model failure.")
    tools: _ToolsFile = Field(default_factory=_ToolsFile, description="Limits of one tool call.")


@dataclass(frozen=True)
class ProviderSettings:
    """Connection settings of one provider; the key is never printed."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None


@dataclass(frozen=True)
class LocalOptions:
    """Options of the embedded models (`local`, `local:small`, `local:PATH`); None keeps the model's default."""

    context: int | None = None
    """The context window in tokens (prompt and answer)."""
    threads: int | None = None
    """Threads for llama.cpp."""


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know about its environment."""

    home: Path
    model: str = DEFAULT_MODEL
    planner_model: str | None = None
    registry: tuple[Path, ...] = ()
    openai: ProviderSettings = ProviderSettings()
    anthropic: ProviderSettings = ProviderSettings()
    local: LocalOptions = LocalOptions()
    model_source: str = "default"
    """Where `model` came from: 'flag', 'environment', 'config file' or 'default'."""
    budget: Budget = Budget()
    """Default limits per run, from the config file; flags and API arguments replace it."""
    approval: ApprovalPolicy = ApprovalPolicy()
    """Which tasks wait for a person's approval, beyond those the plan and agent cards mark."""
    retries: int | None = None
    """How many times a model request that failed transiently (429, 5xx, a dropped connection) is retried;
    None keeps `RetryingModel`'s default."""
    tools: ToolLimits = ToolLimits()
    """The most one tool call may take in, give back, and run for."""

    @property
    def planning_model(self) -> str:
        """The model that plans: `planner_model` when set, else the default model."""
        return self.planner_model or self.model

    def with_model(self, model: str | None, planner_model: str | None = None) -> Settings:
        """A copy with explicit models (from a flag or an API call) taking precedence."""
        updated = self
        if model:
            updated = replace(updated, model=model, model_source="flag")
        if planner_model:
            updated = replace(updated, planner_model=planner_model)
        return updated


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the environment and the config file; a bad file is a `UserError` naming the file and field."""
    home = home_dir()
    path = config_file or (Path(os.environ["ORQUESTRA_CONFIG"]) if os.environ.get("ORQUESTRA_CONFIG") else None)
    path = path or config_path(home)
    file = _ConfigFile()
    if path.is_file():
        data = read_data(path) or {}
        try:
            file = _ConfigFile.model_validate(data)
        except ValidationError as error:
            raise UserError(f"{path}: {describe_validation_error(error)}") from None
    elif config_file is not None or os.environ.get("ORQUESTRA_CONFIG"):
        raise UserError(f"{path}: config file not found")
    env = os.environ
    model, source = DEFAULT_MODEL, "default"
    if env.get("ORQUESTRA_MODEL"):
        model, source = env["ORQUESTRA_MODEL"], "environment"
    elif file.model:
        model, source = file.model, "config file"
    return Settings(
        home=home,
        model=model,
        planner_model=env.get("ORQUESTRA_PLANNER_MODEL") or file.planner_model,
        registry=tuple(path.parent / folder for folder in file.registry),
        openai=ProviderSettings(
            api_key=env.get("OPENAI_API_KEY") or file.openai.api_key,
            base_url=env.get("OPENAI_BASE_URL") or file.openai.base_url,
        ),
        anthropic=ProviderSettings(
            api_key=env.get("ANTHROPIC_API_KEY") or file.anthropic.api_key,
            base_url=env.get("ANTHROPIC_BASE_URL") or file.anthropic.base_url,
        ),
        local=LocalOptions(
            context=_env_int("ORQUESTRA_LOCAL_CONTEXT", MIN_LOCAL_CONTEXT) or file.local.context,
            threads=_env_int("ORQUESTRA_LOCAL_THREADS", 1) or file.local.threads,
        ),
        model_source=source,
        budget=Budget(**file.budget.model_dump()),
        approval=file.approval,
        retries=file.retries,
        tools=ToolLimits(**file.tools.model_dump(exclude_none=True)),
    )


def _env_int(name: str, minimum: int) -> int | None:
    """The whole number in environment variable `name`, if set; a `UserError` naming it if it is not one."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UserError(f"environment variable {name}: expected a whole number of at least {minimum}, got '{text}'")
    return value
