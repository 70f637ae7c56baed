"""Models behind one interface, chosen by a `provider:model` string.

- ``openai:<model>``: the official openai SDK; a base URL reaches any OpenAI-compatible server.
- ``anthropic:<model>``: the official anthropic SDK.
- ``local``: the embedded Qwen2.5-Coder-1.5B-Instruct through llama-cpp-python (the default); ``local:small``
  the faster Qwen2.5-Coder-0.5B-Instruct; ``local:PATH`` any GGUF file.
- ``scripted`` (or ``scripted:SECONDS``): a deterministic echo model for demos and tests.

Provider SDKs are imported only when a model of theirs is asked for, and the public names of this package
on first use (PEP 562), so that importing one submodule does not import the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from orquestra._lazy_names import lazy_getattr
from orquestra.exceptions import ModelConfigError

if TYPE_CHECKING:
    from orquestra.config import Settings
    from orquestra.models.base import Message, Model, ModelResponse, Price, ToolCall, ToolChoice, ToolSpec, Usage
    from orquestra.models.resilience import RetryingModel
    from orquestra.models.scripted import ScriptedModel

PROVIDERS = ("openai", "anthropic", "local", "scripted")


def infer_model(
    spec: str | Model,
    *,
    settings: Settings | None = None,
    prices: Mapping[str, Price] | None = None,
) -> Model:
    """Turn a model string into a `Model`; a `Model` is returned unchanged.

    `settings` supplies keys and base URLs (read from the environment and config file when not given);
    `prices` (the registry's table) sets the cost per token.
    """
    from orquestra.models.base import FREE, Model

    if isinstance(spec, Model):
        return spec
    provider, _, name = spec.strip().partition(":")
    price = (prices or {}).get(spec, FREE)
    if provider == "scripted":
        return _scripted_echo(spec, name)
    if provider == "local":
        return _local(spec, name, settings)
    if provider in ("openai", "anthropic") and not name:
        raise ModelConfigError(f"model '{spec}': name the model, e.g. '{provider}:{_EXAMPLES[provider]}'")
    if settings is None:
        from orquestra.config import load_settings  # here, not at the top: `import orquestra.models` stays light

        settings = load_settings()
    if provider == "openai":
        from orquestra.models.openai import OpenAIModel

        return OpenAIModel(name, api_key=settings.openai.api_key, base_url=settings.openai.base_url, price=price)
    if provider == "anthropic":
        from orquestra.models.anthropic import AnthropicModel

        return AnthropicModel(
            name, api_key=settings.anthropic.api_key, base_url=settings.anthropic.base_url, price=price
        )
    raise ModelConfigError(
        f"unknown model '{spec}': use openai:<model>, anthropic:<model>, local, local:small, local:PATH.gguf, "
        "or scripted[:SECONDS]"
    )


_EXAMPLES = {"openai": "gpt-5-mini", "anthropic": "claude-sonnet-4-5"}
_GGUF_MAGIC = b"GGUF"


def _local(spec: str, name: str, settings: Settings | None) -> Model:
    """An embedded model by name (``local``, ``local:small``) or a GGUF file (``local:PATH``), with its options."""
    from orquestra.models.local import DEFAULT_CONTEXT, EMBEDDED, LocalModel

    if settings is None:
        from orquestra.config import load_settings

        settings = load_settings()
    context, threads = settings.local.context or DEFAULT_CONTEXT, settings.local.threads
    embedded = EMBEDDED.get(f"local:{name}" if name else "local")
    if embedded is not None:
        return LocalModel(weights=embedded, n_ctx=context, n_threads=threads)
    path = Path(name).expanduser()
    names = ", ".join(EMBEDDED)
    if not path.is_file():
        raise ModelConfigError(f"model '{spec}': no such model file {path} (embedded models: {names})")
    with path.open("rb") as file:
        if file.read(4) != _GGUF_MAGIC:
            raise ModelConfigError(f"model '{spec}': {path} is not a GGUF file (llama.cpp's format)")
    return LocalModel(path, n_ctx=context, n_threads=threads)


def _scripted_echo(spec: str, latency: str) -> ScriptedModel:
    """The demo model: echoes each task, optionally after `latency` seconds (``scripted:0.5``)."""
    try:
        seconds = float(latency) if latency else 0.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ModelConfigError(f"model '{spec}': the scripted model takes a delay in seconds, e.g. 'scripted:0.5'")
    from orquestra.models.scripted import ScriptedModel

    return ScriptedModel(name=spec, latency=seconds)


_BASE = ("Message", "Model", "ModelResponse", "Price", "ToolCall", "ToolChoice", "ToolSpec", "Usage")
_HOME = {
    **dict.fromkeys(_BASE, "base"),
    "RetryingModel": "resilience",
    "ScriptedModel": "scripted",
}
"""The submodule that defines each public name."""


__getattr__ = lazy_getattr("orquestra.models", _HOME, globals())


__all__ = [
    "PROVIDERS",
    "Message",
    "Model",
    "ModelResponse",
    "Price",
    "RetryingModel",
    "ScriptedModel",
    "ToolCall",
    "ToolChoice",
    "ToolSpec",
    "Usage",
    "infer_model",
]
