from __future__ import annotations

from collections.abc import Iterator

import pytest

from quanttui.testing.fake_server import FakeLlamaServer


@pytest.fixture
def fake() -> Iterator[FakeLlamaServer]:
    with FakeLlamaServer() as server:
        yield server
