"""Bad input and a failed export on the command line: a clear message naming what is wrong, no
traceback, and the exit code README.md documents (2 usage, 4 results not written where asked)."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quanttui.core.reports import snapshot
from quanttui.core.reports.history import Store
from quanttui.core.reports.run_file import load_run
from quanttui.core.reports.snapshot import save_run
from quanttui.testing.fake_server import FakeLlamaServer, Fault

RECORDED = Path(__file__).parent / "data" / "recorded-run.json"
EXIT_USAGE, EXIT_EXPORT = 2, 4


def run_cli(args: list[str], cwd: Path, umask: int = -1) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "quanttui", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60, umask=umask)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


@pytest.fixture
def fake() -> object:
    with FakeLlamaServer() as a:
        yield a


def unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere it has a mode bit for; not in /sys
        return Path("/sys")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    return d


def test_failed_export_keeps_the_run_and_says_where(fake: FakeLlamaServer, tmp_path: Path
                                                    ) -> None:
    (tmp_path / "afile").write_text("x")
    for out, why in ((tmp_path / "afile" / "sub" / "r.json", f"{tmp_path / 'afile'} is a "
                      "file, not a folder"),
                     (unwritable_dir(tmp_path) / "r.json", "ermission denied")):
        p = run_cli(["run", "--headless", "--server", f"A={fake.url}", "-n", "4",
                     "--prompt", "x", "--format", "json,md", "-o", str(out)], tmp_path)
        assert p.returncode == EXIT_EXPORT, p.stderr
        assert f"error: cannot write {out}: " in p.stderr and why in p.stderr
        assert "decode tok/s" in p.stdout  # the summary is still printed
        run_id = Store().list(1)[0].id
        assert f"stored in the run history as #{run_id}" in p.stdout
        assert f"run #{run_id} in the history" in p.stderr
        fallback = Path(p.stderr.rsplit(" and ", 1)[1].strip())
        assert fallback.name in ("r.json", "r-2.json") and fallback.parent.name == "unsaved"
        assert len(load_run(fallback).records) == 2  # warm-up and the prompt


def test_a_missing_output_folder_is_made(fake: FakeLlamaServer, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "r.json"
    p = run_cli(["run", "--headless", "--server", f"A={fake.url}", "-n", "4", "--prompt", "x",
                 "-o", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert out.is_file()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_exports_follow_the_umask(fake: FakeLlamaServer, tmp_path: Path, umask: int,
                                  mode: int) -> None:
    out = tmp_path / "r.json"
    p = run_cli(["run", "--headless", "--server", f"A={fake.url}", "-n", "4", "--prompt", "x",
                 "--format", "json,csv", "-o", str(out)], tmp_path, umask=umask)
    assert p.returncode == 0, p.stderr
    for f in (out, out.with_suffix(".csv")):
        assert stat.S_IMODE(f.stat().st_mode) == mode, f


def test_snapshot_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    p = run_cli(["snapshot", "--from", str(RECORDED), "--format", "json,md",
                 "-o", str(tmp_path / "afile")], tmp_path)
    assert p.returncode == EXIT_EXPORT
    assert f"cannot write {tmp_path / 'afile' / 'recorded-run.json'}" in p.stderr
    assert f"the run is still {RECORDED}" in p.stderr


def test_disk_full_keeps_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = load_run(RECORDED)
    out = tmp_path / "out"
    real = snapshot.write_atomic

    def full(path: Path, data: bytes) -> None:
        if path.parent == out and path.suffix == ".md":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(snapshot, "write_atomic", full)
    saved = save_run(results, out, "r", ["json", "md", "csv"])
    assert saved.export_error is not None and saved.export_error.path == out / "r.md"
    assert str(saved.export_error) == f"cannot write {out / 'r.md'}: No space left on device"
    assert saved.written == [out / "r.json"]  # written before the failure, and kept
    assert saved.fallback is None  # the JSON is where it was asked for
    assert saved.run_id is not None and Store().get(saved.run_id)["records"]
    assert str(out / "r.json") in saved.kept_in()
    # nothing written at all: the JSON goes to the user data dir
    saved = save_run(results, out, "r", ["md"], history=False)
    assert saved.run_id is None and saved.fallback is not None
    assert saved.fallback.parent.name == "unsaved"
    assert load_run(saved.fallback).records


@pytest.mark.parametrize("args, says", [
    (["--model", "{gguf}", "--threads", "0"], "--threads 0: out of range: must be ≥ 1, or -1"),
    (["--model", "{gguf}", "--ctx-size", "-1"], "--ctx-size -1: out of range: must be ≥ 0"),
    # llama-server aborts past 512 threads, with exit 1 and no word why
    (["--model", "{gguf}", "-t", "99999"], "--threads 99999: out of range: must be between -1 "
                                           "and 512, got 99999 (this machine has"),
    # a flag's value is named by the flag typed (it named the config key alone), the key after
    (["--server", "A={url}", "--min-decode-ratio", "nan"],
     "error: --min-decode-ratio: must be a finite number, got nan (gates.min_decode_ratio)"),
    (["--server", "A={url}", "--min-same-top1", "-3"],
     "error: --min-same-top1: out of range: must be between 0 and 1, got -3.0 "
     "(gates.min_same_top1)"),
    (["--server", "A={url}", "-r", "0"],
     "error: --repetitions: out of range: must be ≥ 1, got 0 (run.repetitions)"),
    (["--server", "A={url}", "--decide-within", "-1"],
     "error: --decide-within: out of range: must be > 0 and ≤ 0.5, got -1.0 "
     "(run.decide_half_width)"),
    (["--server", "A={url}", "--prompt", ""],
     "error: --prompt: must not be empty (prompts.inline[1])"),
    # --set names the key, as typed
    (["--server", "A={url}", "--set", "gates.min_decode_ratio=nan"],
     "error: command-line override: gates.min_decode_ratio: must be a finite number, got nan"),
    (["--server", "=http://127.0.0.1:9"], "--server =http://127.0.0.1:9: the name before '=' "
                                          "is empty"),
    (["--server", "A=ftp://127.0.0.1:9"], "--server A=ftp://127.0.0.1:9: invalid URL"),
    (["--model", "{dir}"], "a directory, not a GGUF file"),
    (["--model", "{dir}/nope.gguf"], "no such file"),
    (["--server", "A={url}", "--server", "B={url}", "--quality-reference", "a"],
     "--quality-reference 'a' is not one of the servers: A, B"),
    # checked against the memory they imply before anything starts (this grew to 23.7 GB)
    (["--server", "A={url}", "-r", "1000000000"],
     "the run is too large for this machine's memory: 1,000,000,000 requests"),
    (["--server", "A={url}", "--concurrency", "1,2,1000000"],
     "up to 1,000,000 at once per server, would hold about"),
])
def test_bad_input_exits_2_naming_it(fake: FakeLlamaServer, tmp_path: Path, args: list[str],
                                     says: str) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    args = [a.format(gguf=gguf, dir=tmp_path, url=fake.url) for a in args]
    p = run_cli(["run", "--headless", "-n", "4", "--prompt", "x", *args], tmp_path)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert says in p.stderr, p.stderr
    assert not [r for r in fake.requests if r["path"] == "/completion"]  # nothing was run


def test_a_server_loading_too_long_stores_no_run(tmp_path: Path) -> None:
    with FakeLlamaServer() as a:
        a.fault = Fault("loading")  # 503 on every route, for good
        out = tmp_path / "r.json"
        p = run_cli(["run", "--headless", "--server", f"A={a.url}", "-n", "4", "--prompt", "x",
                     "--set", "timeouts.connect=1", "-o", str(out)], tmp_path)
    assert p.returncode == 1
    assert "still loading its model; waiting up to 1 s" in p.stderr
    assert "not ready after 1 s" in p.stderr
    assert "not stored in the history: no request was made" in p.stderr
    assert Store().list() == []
    assert json.loads(out.read_text())["servers"][0]["reachable"] is False


def test_models_in_a_folder_that_is_not_there(tmp_path: Path) -> None:
    p = run_cli(["models", str(tmp_path / "nonexistent")], tmp_path)
    assert p.returncode == EXIT_USAGE
    assert f"{tmp_path / 'nonexistent'}: no such folder or file" in p.stderr


def ladder_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(folder of two quants, a stand-in llama-server that writes its arguments to a file and
    fails, that file)."""
    from gguf import LlamaFileType

    from test_models_discovery import write_gguf

    models = tmp_path / "models"
    models.mkdir()
    for q, ft, pad in (("Q8_0", LlamaFileType.MOSTLY_Q8_0, 3000),
                       ("Q2_K", LlamaFileType.MOSTLY_Q2_K, 1000)):
        with write_gguf(models / f"m-{q}.gguf", file_type=ft).open("ab") as f:
            f.write(b"\0" * pad)  # sizes in the quants' order
    started = tmp_path / "started.txt"
    server = tmp_path / "llama-server"
    server.write_text(f'#!/bin/sh\necho "$@" >> "{started}"\nexit 1\n')
    server.chmod(0o755)
    return models, server, started


@pytest.mark.parametrize("args, says", [
    (["--max-kld", "nan"], "Invalid value for --max-kld: must be a finite number ≥ 0, got nan"),
    (["--min-top1", "-3"], "Invalid value for --min-top1: must be a finite number ≥ 0 and ≤ 1, "
                           "got -3"),
    (["--min-speedup", "inf"], "Invalid value for --min-speedup: must be a finite number > 0, "
                               "got inf"),
    (["--memory-budget", "0"], "Invalid value for --memory-budget: must be a finite number > 0, "
                               "got 0"),
    (["--max-accuracy-drop", "nan"], "Invalid value for --max-accuracy-drop: must be a finite "
                                     "number ≥ 0 and ≤ 1, got nan"),
    (["--fill", "nan"], "Invalid value for --fill: must be a finite number ≥ 0 and ≤ 0.95, "
                        "got nan"),
    (["-t", "99999"], "--threads 99999: out of range: must be between -1 and 512, got 99999 "
                      "(this machine has"),
])
def test_bad_ladder_input_exits_2_naming_it(tmp_path: Path, args: list[str], says: str) -> None:
    """A ladder's verdict limits and -t, checked before anything starts. A NaN, an infinity or
    a share out of range was taken as given (a NaN KLD limit fails every quant, without a
    word), and -t was not read at all."""
    models, server, started = ladder_files(tmp_path)
    p = run_cli(["ladder", str(models), "--llama-server", str(server), "--no-history",
                 "-o", str(tmp_path / "ladder.json"), *args], tmp_path)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert says in p.stderr, p.stderr
    assert not started.exists()  # no server was started


def test_a_ladder_starts_its_servers_with_the_threads_asked(tmp_path: Path) -> None:
    """`quanttui ladder -t 3`: every server it starts gets -t 3 (every one got 1, the default of
    [models.launch] threads, whatever -t said)."""
    models, server, started = ladder_files(tmp_path)
    run_cli(["ladder", str(models), "--llama-server", str(server), "--no-history", "-t", "3",
             "-o", str(tmp_path / "ladder.json")], tmp_path)
    lines = started.read_text().splitlines()
    assert lines and all(" -t 3 " in f" {x} " for x in lines), lines


@pytest.mark.parametrize("command", [["ladder"], ["demo", "--ladder"]])
@pytest.mark.parametrize("args, says", [
    (["--server", "q8=http://u:pw@127.0.0.1:9"], "--server q8=http://u:***@127.0.0.1:9: "),
    (["--model", "x.gguf"], "--model x.gguf: "),
    (["--pin-cores"], "--pin-cores: "),
    (["--schedule", "simultaneous"], "--schedule simultaneous: "),
    (["--concurrency", "1,2"], "--concurrency 1,2: "),
    (["--min-decode-ratio", "1.2"], "--min-decode-ratio: a CI gate of quanttui run; "),
    (["--min-same-top1", "0.9"], "--min-same-top1: a CI gate of quanttui run; "),
    (["--quality-reference", "Q8_0"], "--quality-reference Q8_0: "),
    (["--no-quality"], "--no-quality: "),
])
def test_a_ladder_refuses_the_run_options_it_would_drop(
        tmp_path: Path, command: list[str], args: list[str], says: str) -> None:
    """`quanttui ladder` (and `demo --ladder`) took these run options and dropped them without
    a word (servers from --server/--model never ran, no pinning, no gate, the reference not the
    one named): refused before anything starts (no server, no demo models made), exit 2."""
    models, server, started = ladder_files(tmp_path)
    paths = [str(models)] if command == ["ladder"] else []
    p = run_cli([*command, *paths, "--llama-server", str(server), "--no-history",
                 "-o", str(tmp_path / "ladder.json"), *args], tmp_path)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert f"error: {says}" in p.stderr, p.stderr
    assert " ".join(command) in p.stderr.partition(says)[2], p.stderr
    assert not started.exists()  # no server was started
    assert "demo" not in command or "Q4_K_M:" not in p.stderr  # nor the demo models made


@pytest.mark.parametrize("args", [
    ["--reference", "Q8_0"], ["--memory-budget", "8"], ["--min-speedup", "1.2"],
    ["--max-kld", "0.1"], ["--min-top1", "0.9"], ["--max-accuracy-drop", "0.1"],
    ["--one-at-a-time"], ["--quality-k", "10"], ["--cache-type", "q8_0"], ["--fill", "0.5"],
])
def test_a_demo_without_ladder_refuses_the_ladders_options(tmp_path: Path,
                                                           args: list[str]) -> None:
    """`quanttui demo` of two quants took the ladder's options and dropped them without a word:
    refused before the demo models are made, naming the option and --ladder."""
    _, server, started = ladder_files(tmp_path)
    p = run_cli(["demo", "--headless", "--llama-server", str(server), "--no-history", *args],
                tmp_path)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert f"error: {args[0]}: for the demo ladder; add --ladder" in p.stderr, p.stderr
    assert "Q4_K_M:" not in p.stderr and not started.exists()
