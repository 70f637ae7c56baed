from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Keep every test away from the user's real ORQUESTRA_HOME and model settings."""
    monkeypatch.setenv("ORQUESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORQUESTRA_MODEL", raising=False)
    monkeypatch.delenv("ORQUESTRA_REGISTRY", raising=False)
