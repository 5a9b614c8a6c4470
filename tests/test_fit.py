from __future__ import annotations

from pathlib import Path

from quanttui.core.models.fit import RUNTIME_BYTES, check, estimate


def test_estimate_from_real_header(demo_models: dict[str, Path]) -> None:
    e = estimate(demo_models["Q8_0"], 2048)
    # Gemma 3 270M: 18 layers, 1 KV head, key and value length 256, f16 cache; 15 of the 18
    # layers on a 512-token window (cache: 512 + one 512-token batch): b11434's log says
    # "KV buffer size = 6.00 MiB" (2048 cells, 3 layers) and "15.00 MiB" (1024 cells, 15 layers)
    cell = 1 * (256 + 256) * 2
    assert e.kv_bytes == (3 * 2048 + 15 * 1024) * cell == 21 * 2**20
    assert e.weights_bytes == demo_models["Q8_0"].stat().st_size
    assert e.total_bytes == e.weights_bytes + e.kv_bytes + RUNTIME_BYTES
    assert e.ram_bytes == e.total_bytes and e.vram_bytes == 0
    # only the full layers grow with the context; the window's cache stays 1024 cells
    assert estimate(demo_models["Q8_0"], 4096).kv_bytes == e.kv_bytes + 3 * 2048 * cell
    # a context smaller than the window's cache: every layer holds the whole context
    assert estimate(demo_models["Q8_0"], 512).kv_bytes == 18 * 512 * cell


def test_refuses_with_numbers_when_ram_is_short(demo_models: dict[str, Path]) -> None:
    pair = [(demo_models["Q4_K_M"], 2048, 0), (demo_models["Q8_0"], 2048, 0)]
    r = check(pair, ram_available=500_000_000)
    assert r.refuse is not None
    assert "not enough memory" in r.refuse and "0.50 GB is available" in r.refuse
    assert "gemma3-270m-Q8_0.gguf" in r.refuse and "-c 2048" in r.refuse
    ok = check(pair, ram_available=20_000_000_000)
    assert ok.refuse is None and ok.warnings == ()
    need = sum(e.ram_bytes for e in ok.estimates)
    tight = check(pair, ram_available=int(need * 1.05))
    assert tight.refuse is None and "tight on memory" in tight.warnings[0]


def test_gpu_offload_checks_vram(demo_models: dict[str, Path]) -> None:
    pair = [(demo_models["Q8_0"], 2048, 99)]
    assert "VRAM" in check(pair, vram_free=None).warnings[0]
    r = check(pair, vram_free=10_000_000)
    assert r.refuse is not None and "not enough GPU memory" in r.refuse


def test_not_a_gguf_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    r = check([(bad, 2048, 0)])
    assert r.refuse is not None and "notes.gguf" in r.refuse and "not a usable GGUF" in r.refuse
