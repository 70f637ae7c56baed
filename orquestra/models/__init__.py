"""Models behind one interface, chosen by a `provider:model` string."""

from __future__ import annotations

from orquestra.exceptions import UserError
from orquestra.models.base import Message, Model, ModelResponse, ToolCall, ToolSpec, Usage
from orquestra.models.scripted import ScriptedModel


def infer_model(spec: str | Model) -> Model:
    """Turn a model string such as ``"scripted"`` into a `Model`; a `Model` is returned unchanged."""
    if isinstance(spec, Model):
        return spec
    provider, _, name = spec.partition(":")
    if provider == "scripted":
        return _scripted_echo(spec, name)
    raise UserError(f"unknown model '{spec}': expected 'scripted' or 'scripted:SECONDS'")


def _scripted_echo(spec: str, latency: str) -> ScriptedModel:
    """The demo model: echoes each task, optionally after `latency` seconds (``scripted:0.5``)."""
    try:
        seconds = float(latency) if latency else 0.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise UserError(f"model '{spec}': the scripted model takes a delay in seconds, e.g. 'scripted:0.5'")
    return ScriptedModel(name=spec, latency=seconds)


__all__ = [
    "Message",
    "Model",
    "ModelResponse",
    "ScriptedModel",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "infer_model",
]
