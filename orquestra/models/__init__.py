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
        return ScriptedModel(name=spec if name else "scripted")
    raise UserError(f"unknown model '{spec}': expected 'scripted'")


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
