"""A managed server's node_exporter_url is scraped, against a real node_exporter (Debian's
prometheus-node-exporter, which scripts/test.sh installs when it can), and what it reports
reaches the JSON and the Markdown report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quanttui.core.models.ports import free_port

pytestmark = pytest.mark.real
REQUIRE_REAL = os.environ.get("QUANTTUI_REQUIRE_REAL") == "1"


@pytest.fixture
def node_exporter() -> Iterator[str]:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        if REQUIRE_REAL:
            pytest.fail("prometheus-node-exporter not installed (apt-get install "
                        "prometheus-node-exporter; scripts/test.sh does when run as root)")
        pytest.skip("prometheus-node-exporter not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "no node_exporter"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_managed_server_exporter_reaches_json_and_markdown(
        demo_models: dict[str, Path], node_exporter: str, tmp_path: Path) -> None:
    (tmp_path / "quanttui.toml").write_text(f"""
[run]
warmup = 0
[generation]
n_predict = 24
[prompts]
suites = []
inline = ["Hello", "The capital of France is"]
[hardware]
poll_interval = 0.2

[[servers]]
name = "q2"
model = "{demo_models['Q2_K']}"
node_exporter_url = "{node_exporter}"
""")
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "quanttui", "run", "--headless", "--format",
                        "json,md", "-o", str(out)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    remote = json.loads(out.read_text())["hardware"]["remote"]["q2"]
    assert remote["scrapes"] >= 2
    used, total = remote["host_ram_used_peak"], remote["host_ram_total"]
    assert isinstance(used, int) and isinstance(total, int) and 0 < used < total
    assert isinstance(remote["host_cpu_busy_percent_peak"], float)
    # the managed server's own /metrics too
    assert isinstance(remote["requests_deferred_peak"], (int, float))
    md = out.with_suffix(".md").read_text()
    assert "## Exporters" in md
    section = md.split("## Exporters", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| q2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] != "n/a" and cells[2] != "n/a" and cells[5].endswith("%"), row  # RAM, CPU
