"""Remote memory through node_exporter, dcgm-exporter and llama-server's /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from quanttui.core.hardware.remote_watch import RemoteTarget, RemoteWatcher
from quanttui.testing.fake_server import FakeLlamaServer

NODE = """# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 1.6e+10
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes {avail}
"""
DCGM = """# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{{gpu="0",UUID="GPU-1",modelName="NVIDIA H100"}} {used}
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{{gpu="0",UUID="GPU-1",modelName="NVIDIA H100"}} {free}
"""
LLAMA = """# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred {deferred}
"""


def transport(seq: list[dict[str, float]]) -> httpx.MockTransport:
    calls = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        v = seq[min(calls["n"] // 3, len(seq) - 1)]
        calls["n"] += 1
        if req.url.path == "/node":
            return httpx.Response(200, text=NODE.format(avail=v["avail"]))
        if req.url.path == "/dcgm":
            return httpx.Response(200, text=DCGM.format(used=v["used"], free=v["free"]))
        return httpx.Response(200, text=LLAMA.format(deferred=v["deferred"]))

    return httpx.MockTransport(handler)


async def test_peaks_over_scrapes() -> None:
    seq = [{"avail": 12e9, "used": 1000, "free": 79000, "deferred": 0},
           {"avail": 9e9, "used": 5000, "free": 75000, "deferred": 3},
           {"avail": 11e9, "used": 2000, "free": 78000, "deferred": 1}]
    t = RemoteTarget("gpu-box", "http://box:8080", "http://box:9100/node", "http://box:9400/dcgm")
    w = RemoteWatcher([t], transport=transport(seq))
    async with httpx.AsyncClient(transport=w._transport) as http:
        for _ in seq:
            await w.scrape_once(http)
    j = w.to_json()["gpu-box"]
    assert j["host_ram_used_peak"] == 7_000_000_000 and j["host_ram_total"] == 16_000_000_000
    assert j["gpu_memory_used_peak"] == 5000 * 1024 * 1024  # DCGM reports MiB
    assert j["gpu_memory_total"] == 80000 * 1024 * 1024
    assert j["requests_deferred_peak"] == 3 and j["scrapes"] == 3


async def test_unreachable_exporter_is_na_with_reason() -> None:
    t = RemoteTarget("x", "http://127.0.0.1:1", "http://127.0.0.1:1/metrics",
                     scrape_server_metrics=False)
    w = RemoteWatcher([t])
    async with httpx.AsyncClient() as http:
        await w.scrape_once(http)
    j = w.to_json()["x"]
    assert "cannot fetch http://127.0.0.1:1/metrics" in j["host_ram_used_peak"]["n/a"]
    # not "no scrape yet" beside a scrape count: no dcgm-exporter is scraped at all
    assert j["scrapes"] == 1
    assert j["gpu_memory_used_peak"] == {"n/a": "no dcgm_exporter_url for this server"}
    assert j["requests_deferred_peak"] == {"n/a": "the server's /metrics is not scraped"}
    assert RemoteWatcher([t]).to_json()["x"]["host_ram_used_peak"] == {"n/a": "no scrape yet"}


async def test_server_without_metrics_flag(fake: FakeLlamaServer) -> None:
    w = RemoteWatcher([RemoteTarget("f", fake.url)])
    async with httpx.AsyncClient() as http:
        await w.scrape_once(http)
    assert "without --metrics" in w.to_json()["f"]["requests_deferred_peak"]["n/a"]


@pytest.fixture
def exporter() -> Iterator[str]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = NODE.format(avail=4e9).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/metrics"
    srv.shutdown()


def test_headless_run_reports_remote_memory(fake: FakeLlamaServer, exporter: str,
                                            tmp_path: Path) -> None:
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text(f'[[servers]]\nname = "remote"\nurl = "{fake.url}"\n'
                   f'node_exporter_url = "{exporter}"\n\n[prompts]\nsuites = []\n'
                   'inline = ["hello"]\n\n[generation]\nn_predict = 4\n')
    p = subprocess.run([sys.executable, "-m", "quanttui", "run", "--headless", "-o",
                        str(tmp_path / "r.json")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    hw = json.loads((tmp_path / "r.json").read_text())["hardware"]
    assert hw["remote"]["remote"]["host_ram_used_peak"] == 12_000_000_000


async def test_a_server_scraped_for_metrics_only_says_why_the_rest_is_na(
        fake: FakeLlamaServer) -> None:
    """A server quanttui started, with no exporter: its /metrics scraped many times, and the
    Exporters table says why host RAM is n/a, not "no scrape yet" beside the scrape count."""
    from quanttui.core.reports.markdown import _remote_lines

    w = RemoteWatcher([RemoteTarget("f", fake.url)])
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            await w.scrape_once(http)
    text = "\n".join(_remote_lines(w.to_json()))
    assert "| f | n/a | n/a | n/a | n/a | n/a | n/a | 3 |" in text
    assert "no scrape yet" not in text
    assert "no node_exporter_url for this server" in text
