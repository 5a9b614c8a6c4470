"""The `sandboxed` fixture: tests that run model-written code need bubblewrap. Without it they
are skipped, unless QUANTTUI_REQUIRE_REAL=1 (CI, where scripts/test.sh installs it)."""

from __future__ import annotations

import pytest

from conftest import REQUIRE_REAL
from quanttui.core.quality import code_exec


@pytest.fixture
def sandboxed() -> code_exec.Sandbox:
    box = code_exec.sandbox()
    if isinstance(box, str):
        (pytest.fail if REQUIRE_REAL else pytest.skip)(f"no sandbox here: {box}")
    assert isinstance(box, code_exec.Sandbox)
    return box
