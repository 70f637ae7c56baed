from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Keep every test away from the user's real ORQUESTRA_HOME and model settings."""
    monkeypatch.setenv("ORQUESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORQUESTRA_MODEL", raising=False)
    monkeypatch.delenv("ORQUESTRA_REGISTRY", raising=False)
    monkeypatch.delenv("ORQUESTRA_LOCAL_CONTEXT", raising=False)
    monkeypatch.delenv("ORQUESTRA_LOCAL_THREADS", raising=False)


@pytest.fixture(scope="session")
def weights_home(tmp_path_factory):
    """An ORQUESTRA_HOME holding the real embedded models, assembled once per test session.

    Fails (never skips) with the install command when the weights packages are missing: CI installs them.
    """
    from orquestra.weights import QWEN_05B, QWEN_15B, ensure_weights

    home = tmp_path_factory.mktemp("orquestra-home")
    ensure_weights(QWEN_05B, home=home)
    ensure_weights(QWEN_15B, home=home)
    return home
