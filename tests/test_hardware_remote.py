"""Prometheus text parsers (llama-server, node_exporter, dcgm-exporter) and the fetcher."""

from __future__ import annotations

import time

import httpx
import pytest

from quanttui.core.hardware import NA
from quanttui.core.hardware.remote import (
    MAX_METRICS_BYTES,
    NOT_EXPOSED,
    LlamaMetrics,
    NodeSample,
    fetch_llama_metrics,
    fetch_metrics_text,
    node_cpu_busy_percent,
    parse_dcgm,
    parse_llama_metrics,
    parse_node_exporter,
)
from quanttui.testing.fake_server import FakeLlamaServer, Fault

MiB = 1024 * 1024

# As llama-server b11434 writes it (server_task_result_metrics::to_metrics); `n_tokens_max` is a
# counter without the `_total` suffix.
LLAMA = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 6886
# HELP llamacpp:prompt_tokens_cached_total Number of prompt tokens served from the cache.
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total 120
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 2.90363
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 3469
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 35.4427
# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 3500
# HELP llamacpp:n_tokens_max Largest observed n_tokens.
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 512
# HELP llamacpp:spec_decode_num_draft_tokens_total Number of draft tokens generated.
# TYPE llamacpp:spec_decode_num_draft_tokens_total counter
llamacpp:spec_decode_num_draft_tokens_total 40
# HELP llamacpp:spec_decode_num_accepted_tokens_total Number of draft tokens accepted.
# TYPE llamacpp:spec_decode_num_accepted_tokens_total counter
llamacpp:spec_decode_num_accepted_tokens_total 30
# HELP llamacpp:spec_decode_num_drafts_total Number of drafts.
# TYPE llamacpp:spec_decode_num_drafts_total counter
llamacpp:spec_decode_num_drafts_total 10
# HELP llamacpp:spec_decode_num_accepted_tokens_per_pos_total Accepted draft tokens per position.
# TYPE llamacpp:spec_decode_num_accepted_tokens_per_pos_total counter
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 10
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 8
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 2371.51
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 97.87
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 1
"""


def test_parse_llama_metrics() -> None:
    m = parse_llama_metrics(LLAMA)
    assert isinstance(m, LlamaMetrics)
    assert m.prompt_tokens_total == 6886
    assert m.prompt_tokens_cached_total == 120
    assert m.prompt_seconds_total == pytest.approx(2.90363)
    assert m.tokens_predicted_total == 3469
    assert m.tokens_predicted_seconds_total == pytest.approx(35.4427)
    assert m.n_decode_total == 3500
    assert m.n_tokens_max == 512
    assert m.spec_decode_num_draft_tokens_total == 40
    assert m.spec_decode_num_accepted_tokens_total == 30
    assert m.spec_decode_num_drafts_total == 10
    assert m.accepted_tokens_per_pos == {0: 10, 1: 8}
    assert m.prompt_tokens_seconds == pytest.approx(2371.51)
    assert m.predicted_tokens_seconds == pytest.approx(97.87)
    assert m.requests_processing == 1
    assert m.requests_deferred == 0  # a real 0, read from the server
    assert m.n_busy_slots_per_decode == 1
    assert m.other == {}


def test_llama_metrics_missing_and_unknown() -> None:
    text = (
        "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
        "# TYPE llamacpp:new_thing gauge\nllamacpp:new_thing 7\n"
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3\n"
    )
    m = parse_llama_metrics(text)
    assert isinstance(m, LlamaMetrics)
    assert m.requests_processing == 2
    assert m.prompt_tokens_total == NA(NOT_EXPOSED)  # absent is n/a, not 0
    assert m.other == {"new_thing": 7}


@pytest.mark.parametrize("text", ["", "not prometheus { at all", "# TYPE x gauge\nx 1\n"])
def test_llama_metrics_unusable(text: str) -> None:
    assert isinstance(parse_llama_metrics(text), NA)


NODE = """\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 100
node_cpu_seconds_total{cpu="0",mode="iowait"} 10
node_cpu_seconds_total{cpu="0",mode="user"} 30
node_cpu_seconds_total{cpu="1",mode="idle"} 120
node_cpu_seconds_total{cpu="1",mode="system"} 20
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 1.2e+10
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 3.2e+10
"""


def test_parse_node_exporter_and_cpu_percent() -> None:
    a = parse_node_exporter(NODE)
    assert isinstance(a, NodeSample)
    assert a.mem_total_bytes == 32_000_000_000
    assert a.mem_available_bytes == 12_000_000_000
    assert a.cpu_count == 2
    assert a.cpu_seconds_by_mode == {"idle": 220, "iowait": 10, "user": 30, "system": 20}
    later = NODE.replace('mode="user"} 30', 'mode="user"} 60').replace(
        'cpu="1",mode="idle"} 120', 'cpu="1",mode="idle"} 150'
    )
    b = parse_node_exporter(later)
    assert isinstance(b, NodeSample)
    assert node_cpu_busy_percent(a, b) == 50.0  # 30 s busy of 60 s
    assert isinstance(node_cpu_busy_percent(a, a), NA)


def test_node_exporter_missing_metrics() -> None:
    s = parse_node_exporter("# TYPE up gauge\nup 1\n")
    assert isinstance(s, NodeSample)
    assert isinstance(s.mem_total_bytes, NA)
    assert isinstance(s.cpu_seconds_by_mode, NA)
    assert isinstance(node_cpu_busy_percent(s, s), NA)
    assert isinstance(parse_node_exporter("garbage {"), NA)


DCGM = """\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-bbb",device="nvidia1",modelName="L4",Hostname="h"} 3
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-aaa",device="nvidia0",modelName="L4",Hostname="h"} 87
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-aaa",device="nvidia0",modelName="L4",Hostname="h"} 18000
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-bbb",device="nvidia1",modelName="L4",Hostname="h"} 22000
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-aaa",device="nvidia0",modelName="L4",Hostname="h"} 4500
"""


def test_parse_dcgm() -> None:
    gpus = parse_dcgm(DCGM)
    assert not isinstance(gpus, NA)
    g0, g1 = gpus
    assert (g0.gpu, g0.uuid, g0.model_name, g0.hostname) == ("0", "GPU-aaa", "L4", "h")
    assert g0.util_percent == 87
    assert g0.fb_used_bytes == 4500 * MiB  # DCGM reports MiB
    assert g0.fb_free_bytes == 18000 * MiB
    assert g0.fb_total_bytes == 22500 * MiB
    assert g1.gpu == "1"
    assert isinstance(g1.fb_used_bytes, NA)
    assert isinstance(g1.fb_total_bytes, NA)


def test_dcgm_nothing() -> None:
    assert isinstance(parse_dcgm(""), NA)
    assert isinstance(parse_dcgm("bad { text"), NA)


def _client(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=handler)


async def test_fetch_llama_metrics() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, text=LLAMA, headers={"Content-Type": "text/plain"})

    async with _client(httpx.MockTransport(handle)) as client:
        m = await fetch_llama_metrics(client, "http://127.0.0.1:8080/")
    assert seen == ["/metrics"]
    assert isinstance(m, LlamaMetrics) and m.tokens_predicted_total == 3469


async def test_fetch_without_metrics_flag() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(501, json={"error": {"type": "not_supported_error"}})

    async with _client(httpx.MockTransport(handle)) as client:
        m = await fetch_llama_metrics(client, "http://127.0.0.1:8080")
    assert isinstance(m, NA) and "--metrics" in m.reason


async def test_fetch_errors_become_na() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with _client(httpx.MockTransport(refuse)) as client:
        text = await fetch_metrics_text(client, "http://127.0.0.1:9100/metrics")
    assert isinstance(text, NA) and "connection refused" in text.reason

    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="Loading model")

    async with _client(httpx.MockTransport(fail)) as client:
        text = await fetch_metrics_text(client, "http://127.0.0.1:8080/metrics")
    assert text == NA("HTTP 503 from http://127.0.0.1:8080/metrics")


async def test_a_trickled_or_oversized_scrape_is_bounded() -> None:
    """A byte a second never lets a read time out: the scrape is bounded whole. A page past
    MAX_METRICS_BYTES is not read on. A password in the URL is not quoted."""
    with FakeLlamaServer() as fake:
        fake.fault = Fault("trickle", delay=0.2, paths=("/health",))
        url = fake.url.replace("http://", "http://me:PASSWORD@") + "/health"
        async with httpx.AsyncClient() as client:
            t0 = time.monotonic()
            text = await fetch_metrics_text(client, url, timeout_s=0.5)
    assert time.monotonic() - t0 < 3
    assert isinstance(text, NA) and "no complete answer within 0.5 s" in text.reason
    assert "PASSWORD" not in text.reason and "me:***@" in text.reason

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"# x\n" * (MAX_METRICS_BYTES // 4 + 1))

    async with _client(httpx.MockTransport(huge)) as client:
        text = await fetch_metrics_text(client, "http://127.0.0.1:9100/metrics")
    assert isinstance(text, NA) and "sent more than 4 MiB" in text.reason
