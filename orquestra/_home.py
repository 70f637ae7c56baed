"""The Orquestra home folder and where each kind of data lives under it.

Private, and free of Orquestra imports: the settings, the run store, the memory and the weights helper all
need these paths, and none of them should import another (or the settings) only to learn a folder's name.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_FILE = "runs.sqlite3"
"""The run store's file name inside the home folder."""


def home_dir() -> Path:
    """`ORQUESTRA_HOME`, or ~/.orquestra."""
    return Path(os.environ.get("ORQUESTRA_HOME") or Path.home() / ".orquestra").expanduser()


def config_path(home: Path | None = None) -> Path:
    """The config file read when neither a flag nor `ORQUESTRA_CONFIG` names one: ``<home>/config.yaml``."""
    return (home or home_dir()) / "config.yaml"


def store_path(home: Path | None = None) -> Path:
    """Where the run store of `home` (the configured home folder by default) lives."""
    return (home or home_dir()) / STORE_FILE


def memory_path(home: Path | None = None) -> Path:
    """Where the memory lives: ``<ORQUESTRA_HOME>/memory``."""
    return (home or home_dir()) / "memory"


def weights_dir(home: Path | None = None) -> Path:
    """Where the embedded models' assembled files live: ``<ORQUESTRA_HOME>/models``."""
    return (home or home_dir()) / "models"
