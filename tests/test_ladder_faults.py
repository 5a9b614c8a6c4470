"""A ladder a user stops half-way (Ctrl+C), or whose files cannot be written: `quanttui ladder`
as a user runs it, on real llama-servers. What was measured is written (or kept where the
error says), every server it started is gone, and no traceback reaches the user."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from quanttui.core.reports.history import Store

pytestmark = pytest.mark.real

EXIT_EXPORT, EXIT_INTERRUPTED = 4, 130
SMALL = ["-n", "6", "--prompt", "The capital of France is", "--prompt", "2 + 2 =",
         "--tasks", "builtin", "--tasks-limit", "1", "--quality-positions", "6"]


def ladder(tmp_path: Path, models: list[Path], *args: str) -> subprocess.Popen[str]:
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text("[run]\nwarmup = 0\n[prompts]\nsuites = []\n")
    cmd = [sys.executable, "-m", "quanttui", "--config", str(cfg), "ladder",
           *map(str, models), *SMALL, *args]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """stderr lines up to and with the first that holds `marker`."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in stderr: {''.join(lines)}")


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[str, str]:
    """(stdout, stderr) once it exits; killed if it does not in time."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


def servers_of(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    return [c for c in psutil.Process(proc.pid).children(recursive=True)
            if "llama-server" in c.name()]


def gone(procs: list[psutil.Process], timeout: float = 10) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


def test_ctrl_c_mid_ladder_writes_what_was_measured(demo_models: dict[str, Path],
                                                    tmp_path: Path) -> None:
    models = [demo_models[q] for q in ("Q4_K_M", "Q2_K", "Q8_0")]
    out = tmp_path / "out" / "ladder.json"
    proc = ladder(tmp_path, models, "-o", str(out), "--one-at-a-time")
    try:
        before = read_until(proc, "pass 2/3", 240)  # the reference's pass is done
        # the second quant's requests are done and its quality step begins
        before += read_until(proc, ": teacher forcing", 240)
        started = servers_of(proc)
        assert started, "the second pass's server"
        proc.send_signal(signal.SIGINT)
    except BaseException:
        proc.kill()
        raise
    stdout, stderr = finish(proc, 120)
    stderr = "".join(before) + stderr
    assert "Traceback" not in stderr + stdout, stderr
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert gone(started)  # nothing left running
    assert stdout.startswith("verdict: ") and f"results: {out}" in stdout
    # a ladder is a report: its Markdown is written beside the JSON without asking
    md = out.with_suffix(".md")
    assert str(md) in stdout and md.read_text().startswith("# quanttui ladder")
    data = json.loads(out.read_text())
    ladder_ = data["ladder"]
    rows = {r["name"]: r for r in ladder_["rows"]}
    ref = ladder_["reference"]
    assert ref == "Q4_K_M" and rows[ref]["decode_tps"]  # the finished pass is all there
    second = next(line.split()[-1] for line in before if line.startswith("pass 2/3"))
    third = next(n for n in rows if n not in (ref, second))
    assert rows[second]["decode_tps"]  # its requests ran before the stop, and are kept
    assert rows[third]["decode_tps"] is None  # never started
    assert data["interrupted"]
    assert f"{third}: not measured (the ladder was stopped first)" in ladder_["notes"]
    assert "not measured" in ladder_["verdict"]["failing"][third]
    assert "stopped: what was measured is written" in stderr
    # the history has it too, as any run
    runs = Store().list()
    assert len(runs) == 1 and Store().get(runs[0].id)["ladder"]["reference"] == ref


def test_ladder_whose_files_cannot_be_written_says_where_they_are(
        demo_models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")  # a file where the output folder should be
    out = tmp_path / "afile" / "ladder.json"
    proc = ladder(tmp_path, [demo_models[q] for q in ("Q4_K_M", "Q2_K")], "-o", str(out),
                  "--no-history")
    stdout, stderr = finish(proc)
    assert "Traceback" not in stderr + stdout, stderr
    assert proc.returncode == EXIT_EXPORT, stderr
    assert f"cannot write {out}" in stderr
    kept = stderr.split("the results are kept in ", 1)[1].split()[0].rstrip(".")
    data = json.loads(Path(kept).read_text())  # the whole ladder, nothing lost
    assert {r["name"] for r in data["ladder"]["rows"]} == {"Q4_K_M", "Q2_K"}
    assert "verdict: " in stdout


def unloadable_copy(model: Path, dest: Path) -> Path:
    """`model` with a tokenizer llama-server does not know: its header reads as the same model
    (so the ladder takes it), and the server refuses to load it."""
    data = bytearray(model.read_bytes())
    key = data.find(b"tokenizer.ggml.model")
    value = data.find(b"llama", key, key + 64)
    assert key > 0 and value > 0
    data[value:value + 5] = b"xxxxx"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(data))
    return dest


def test_a_quant_that_will_not_start_is_named_and_the_rest_is_kept(
        demo_models: dict[str, Path], tmp_path: Path) -> None:
    bad = unloadable_copy(demo_models["Q2_K"], tmp_path / "bad" / "gemma3-270m-Q2_K.gguf")
    out = tmp_path / "ladder.json"
    proc = ladder(tmp_path, [demo_models["Q4_K_M"], bad, demo_models["Q8_0"]], "-o", str(out),
                  "--no-history")
    stdout, stderr = finish(proc)
    assert "Traceback" not in stderr + stdout, stderr
    assert proc.returncode == 1, stderr  # a server would not start
    assert "unknown tokenizer: 'xxxxx'" in stderr and str(bad) in stderr
    ladder_ = json.loads(out.read_text())["ladder"]
    rows = {r["name"]: r for r in ladder_["rows"]}
    assert rows["Q8_0"]["decode_tps"] and rows["Q8_0"]["kld_mean"] is not None  # kept
    assert rows["Q2_K"]["decode_tps"] is None
    assert any(n.startswith("Q2_K: not measured: llama-server exited") and str(bad) in n
               for n in ladder_["notes"])
    assert ladder_["verdict"]["failing"]["Q2_K"] == ["not measured"]
    assert "Q2_K not measured" in ladder_["verdict"]["reason"]
