"""`quanttui run --headless` end to end against fake servers, as a user runs it."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from gguf import LlamaFileType

from quanttui.core.reports.history import Store
from quanttui.core.reports.run_file import results_from_dict
from quanttui.core.reports.schema import SCHEMA, SCHEMA_VERSION
from quanttui.testing.fake_server import FakeLlamaServer, Fault

PY = sys.executable


def run_cli(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "quanttui", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def servers(a: FakeLlamaServer, b: FakeLlamaServer) -> list[str]:
    return ["--server", f"A={a.url}", "--server", f"B={b.url}"]


@pytest.fixture
def pair() -> object:
    with FakeLlamaServer(token_delay=0.001) as a, FakeLlamaServer(token_delay=0.002) as b:
        yield a, b


def test_headless_run_writes_json_and_summary(pair: tuple[FakeLlamaServer, ...], tmp_path: Path
                                              ) -> None:
    a, b = pair
    out = tmp_path / "r.json"
    p = run_cli(["run", "--headless", *servers(a, b), "-n", "16", "-r", "2", "--suite", "quick",
                 "-o", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_text())
    assert (data["schema"], data["schema_version"]) == (SCHEMA, SCHEMA_VERSION)
    assert data["config"]["generation"]["n_predict"] == 16
    assert len([r for r in data["records"] if not r["warmup"]]) == 2 * 6 * 2
    assert data["stats"]["A"]["1"]["decode_tps_client"]["n"] == 12
    assert data["paired"]["B vs A"]["1"]["decode_tps_client"]["n"] == 6
    assert "decode tok/s" in p.stdout and "B − A" in p.stdout and str(out) in p.stdout
    assert "24/24 requests" in p.stderr  # progress on stderr


def test_failed_requests_exit_1_and_are_recorded(pair: tuple[FakeLlamaServer, ...],
                                                 tmp_path: Path) -> None:
    a, b = pair
    b.fault = Fault("error_event", after=2, message="Context size has been exceeded.", times=1)
    out = tmp_path / "r.json"
    p = run_cli(["run", "--headless", *servers(a, b), "-n", "8", "--prompt", "hi",
                 "--warmup", "0", "-o", str(out)], tmp_path)
    assert p.returncode == 1
    data = json.loads(out.read_text())
    bad = [r for r in data["records"] if not r["ok"]]
    assert len(bad) == 1 and "Context size has been exceeded" in bad[0]["error"]
    assert bad[0]["server"] == "B" and bad[0]["n_events"] == 2  # partial output kept
    assert "request failed: B" in p.stderr


def test_unreachable_server_exit_1(tmp_path: Path) -> None:
    from quanttui.core.models.ports import free_port

    with FakeLlamaServer() as a:
        dead = f"http://127.0.0.1:{free_port()}"
        p = run_cli(["run", "--headless", "--server", f"A={a.url}", "--server", f"gone={dead}",
                     "-n", "4", "--prompt", "x", "-o", str(tmp_path / "r.json")], tmp_path)
    assert p.returncode == 1
    assert "gone" in p.stderr and dead in p.stderr and "connect" in p.stderr


def test_config_errors_exit_2_with_location(tmp_path: Path) -> None:
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text('[run]\nschedule = "simultaneous"\n\n[generation]\nn_predcit = 10\n')
    p = run_cli(["run", "--headless"], tmp_path)
    assert p.returncode == 2
    assert "quanttui.toml" in p.stderr and "n_predcit" in p.stderr and "5" in p.stderr
    assert "n_predict" in p.stderr  # the suggestion
    p = run_cli(["run", "--headless", "--schedule", "random"], tmp_path)
    assert p.returncode == 2 and "random" in p.stderr


def test_no_servers_is_a_usage_error(tmp_path: Path) -> None:
    p = run_cli(["run", "--headless", "--prompt", "x"], tmp_path)
    assert p.returncode == 2 and "no servers" in p.stderr


def test_headless_path_never_imports_textual(pair: tuple[FakeLlamaServer, ...], tmp_path: Path
                                             ) -> None:
    a, b = pair
    code = (
        "import sys\n"
        "from quanttui.cli import main\n"
        "try:\n"
        f"    main(['run', '--headless', '--server', 'A={a.url}', '--server', 'B={b.url}',"
        f" '-n', '4', '--prompt', 'x', '-o', r'{tmp_path / 'r.json'}'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('textual' in sys.modules, flush=True)\n"
    )
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().splitlines()[-1] == "False", p.stdout + p.stderr


def test_sigint_stops_cleanly_and_keeps_finished(tmp_path: Path) -> None:
    with FakeLlamaServer(token_delay=0.02) as a:
        out = tmp_path / "r.json"
        proc = subprocess.Popen(
            [PY, "-m", "quanttui", "run", "--headless", "--server", f"A={a.url}", "-n", "10",
             "-r", "50", "--prompt", "x", "--warmup", "0", "-o", str(out)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(
                [r for r in a.requests if r["path"] == "/completion"]) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    data = json.loads(out.read_text())
    assert data["interrupted"] is True
    ok = [r for r in data["records"] if r["ok"]]
    assert 2 <= len(ok) < 50
    assert "stopped by the user" in err


def test_version_and_module_entry(tmp_path: Path) -> None:
    from quanttui import __version__

    p = run_cli(["--version"], tmp_path)
    assert p.returncode == 0 and __version__ in p.stdout
    env = dict(os.environ)
    q = subprocess.run([str(Path(PY).parent / "quanttui"), "--help"], capture_output=True,
                       text=True, env=env, timeout=30)
    assert q.returncode == 0 and "run" in q.stdout


@pytest.mark.parametrize("how", ["terminal lost", "terminal lost, no hang-up", "pipe closed"])
def test_a_run_whose_terminal_goes_away_is_kept(tmp_path: Path, how: str) -> None:
    """Mid-run, the terminal the progress goes to goes away (an SSH connection dropped; with no
    hang-up: a job left running with `disown`), or the pipe it goes into is closed (`| head`,
    `| less` quit). Every write then fails (EIO, EPIPE), which ended the run with exit 1,
    nothing written and nothing stored. Now the printing stops, not the run: a hang-up stops it
    as any signal does (130, what finished kept); otherwise it runs to its end."""
    out = tmp_path / "r.json"
    with FakeLlamaServer(token_delay=0.02) as a:
        args = [PY, "-m", "quanttui", "run", "--headless", "--server", f"A={a.url}", "-n",
                "10", "-r", "15", "--prompt", "x", "--warmup", "0", "-o", str(out)]
        if how == "pipe closed":
            reader, writer = os.pipe()
            proc = subprocess.Popen(args, cwd=tmp_path, stdout=writer, stderr=writer)
        else:
            reader, writer = pty.openpty()
            proc = subprocess.Popen(args, cwd=tmp_path, stdin=writer, stdout=writer,
                                    stderr=writer, start_new_session=how != "terminal lost",
                                    preexec_fn=_take_ctty if how == "terminal lost" else None)
        os.close(writer)
        try:
            deadline = time.monotonic() + 60
            while len([r for r in a.requests if r["path"] == "/completion"]) < 3:
                assert proc.poll() is None and time.monotonic() < deadline
                if select.select([reader], [], [], 0.05)[0]:
                    os.read(reader, 65536)  # read as a terminal or `head` would, until...
            os.close(reader)  # ...it goes away
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    data = json.loads(out.read_text())
    ok = [r for r in data["records"] if r["ok"]]
    if how == "terminal lost":
        assert code == 130 and data["interrupted"] is True and 2 <= len(ok) < 15
    else:
        assert code == 0 and not data["interrupted"] and len(ok) == len(data["records"]) == 15
    rows = Store().list()
    assert len(rows) == 1  # stored
    assert len(results_from_dict(Store().get(rows[0].id)).records) == len(data["records"])


def _take_ctty() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, as in an SSH
    session (when the terminal goes away, the kernel hangs it up: SIGHUP)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class DeadTerminal(io.StringIO):
    """Output to a terminal that goes away after `after` writes: every write then fails."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.left = after

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.left -= 1
        return super().write(text)


def test_a_ladder_whose_terminal_goes_away_is_kept(tmp_path: Path) -> None:
    """As above for `quanttui ladder`: its terminal goes away after the first lines; the ladder
    is measured to its end, written and stored (the failed write raised out of the ladder
    mid-measurement: exit 1, nothing written)."""
    from quanttui.config import Config, GenerationConfig, PromptsConfig, RunConfig
    from quanttui.core.ladder.lineup import collect_models, lineup
    from quanttui.core.ladder.verdict import Constraints
    from quanttui.core.quality.step import QualityOptions
    from quanttui.headless_ladder import HeadlessLadder
    from test_ladder_views_agree import FakeLauncher
    from test_models_discovery import write_gguf

    for q, ft, pad in (("Q8_0", LlamaFileType.MOSTLY_Q8_0, 3000),
                       ("Q2_K", LlamaFileType.MOSTLY_Q2_K, 1000)):
        with write_gguf(tmp_path / f"m-{q}.gguf", file_type=ft).open("ab") as f:
            f.write(b"\0" * pad)  # sizes in the quants' order: Q8_0 is the reference
    cfg = Config(run=RunConfig(warmup=0, export_dir=str(tmp_path)),
                 generation=GenerationConfig(n_predict=8), prompts=PromptsConfig())
    err, out = DeadTerminal(after=2), DeadTerminal(after=0)
    run = HeadlessLadder(cfg, lineup(collect_models([tmp_path])), Constraints(),
                         quality=QualityOptions(distribution=False, tasks=False),
                         output=tmp_path / "ladder.json", formats=("json",), history=True,
                         launcher=FakeLauncher(),  # type: ignore[arg-type]
                         stdout=out, stderr=err)
    assert run.execute() == 0
    assert err.left == 0 and err.getvalue()  # it did print, until the terminal went away
    data = json.loads((tmp_path / "ladder.json").read_text())
    assert {r["server"] for r in data["records"] if r["ok"]} >= {"Q8_0", "Q2_K"}
    assert len(Store().list()) == 1
