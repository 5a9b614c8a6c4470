"""OS thread names: quanttui's threads can be told apart from outside the process."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from quanttui.core.threads import name_os_thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/task: Linux")
def test_a_named_thread_shows_its_name_in_proc() -> None:
    seen: list[str] = []

    def body() -> None:
        name_os_thread("qt-stream a-long-server-name")  # cut to the OS's 15 bytes
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == ["qt-stream a-lon\n"]
