"""Where quanttui keeps its own files: the user data dir (run history, results an export could
not write) and the user cache dir (demo models, server logs), from platformdirs.

`QUANTTUI_DATA_DIR` and `QUANTTUI_CACHE_DIR` replace them (tests, sandboxes).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ENV = "QUANTTUI_DATA_DIR"
CACHE_ENV = "QUANTTUI_CACHE_DIR"


def data_dir() -> Path:
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(platformdirs.user_data_dir("quanttui"))


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir("quanttui"))
