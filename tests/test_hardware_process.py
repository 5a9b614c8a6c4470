"""Per-process sampling against real child processes listening on loopback ports."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from quanttui.core.hardware import (
    NA,
    HardwarePoller,
    ModelPages,
    ProcessSampler,
    ProcessTarget,
    ServerFlags,
    find_listening_pid,
    local_addresses,
    parse_server_flags,
)
from quanttui.core.hardware import process as process_mod
from quanttui.core.hardware.process import (
    EXITED,
    NOT_REPORTED,
    OTHER_USER,
    SmapsTotals,
    parse_smaps,
    url_host_port,
)
from quanttui.core.hardware.summary import hardware_json

MiB = 1024 * 1024

# Allocates argv[1] bytes (written, so resident), listens on a loopback port, prints the port,
# and lives until its stdin closes.
CHILD = """
import socket, sys
blob = b"\\x01" * int(sys.argv[1])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


class Child:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(nbytes: int = 0, *extra: str) -> Child:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(nbytes), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        child = Child(proc, 0)
        children.append(child)
        assert proc.stdout is not None
        # The child prints its port once it listens; bounded so a broken child can't hang us.
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        assert ready, "child did not start listening within 10 s"
        child.port = int(proc.stdout.readline())
        return child

    yield start
    for child in children:
        child.stop()


def test_port_to_pid(spawn: Callable[..., Child]) -> None:
    child = spawn()
    assert find_listening_pid(child.port) == child.pid
    assert find_listening_pid(child.port, frozenset({"127.0.0.1"})) == child.pid
    assert find_listening_pid(child.port, frozenset({"0.0.0.0"})) == child.pid
    # Listening on 127.0.0.1 only: a URL naming another address is not this process.
    assert isinstance(find_listening_pid(child.port, frozenset({"10.254.254.254"})), NA)


def test_port_to_pid_fallback_without_privileges(
    spawn: Callable[..., Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    child = spawn()

    def denied(kind: str = "inet") -> list[object]:
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", denied)
    assert find_listening_pid(child.port) == child.pid


def test_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # closed again: nobody listens there now
    pid = find_listening_pid(port)
    assert pid == NA(f"nothing listens on port {port}")


def test_listener_of_another_user(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = SimpleNamespace(
        status=psutil.CONN_LISTEN, laddr=SimpleNamespace(ip="0.0.0.0", port=5555), pid=None
    )
    monkeypatch.setattr(psutil, "net_connections", lambda kind="inet": [conn])
    pid = find_listening_pid(5555)
    assert isinstance(pid, NA)
    assert pid.reason.startswith(OTHER_USER)


def test_sample_by_url(spawn: Callable[..., Child]) -> None:
    child = spawn(0, "-m", "/models/gemma-Q4_K_M.gguf", "-t", "3", "--ctx-size=2048")
    sampler = ProcessSampler(ProcessTarget("A", url=child.url))
    first = sampler.sample()
    assert first.name == "A"
    assert first.pid == child.pid
    assert isinstance(first.rss_bytes, int) and first.rss_bytes > 1 * MiB
    assert isinstance(first.uss_bytes, int) and 0 < first.uss_bytes <= first.rss_bytes
    assert isinstance(first.pss_bytes, int | NA)
    assert isinstance(first.num_threads, int) and first.num_threads >= 1
    assert isinstance(first.cpu_affinity, tuple | NA)
    if not isinstance(first.cpu_affinity, NA):
        assert set(first.cpu_affinity) <= set(range(os.cpu_count() or 1))
    assert first.cpu_percent == NA("needs two samples (first tick)")  # never a fake 0.0
    flags = first.flags
    assert isinstance(flags, ServerFlags)
    assert flags.model == "/models/gemma-Q4_K_M.gguf"
    assert flags.threads == 3
    assert flags.ctx_size == 2048
    second = sampler.sample()
    assert isinstance(second.cpu_percent, float) and second.cpu_percent >= 0.0
    assert sampler.pid == child.pid


def test_sample_by_pid_then_exit(spawn: Callable[..., Child]) -> None:
    child = spawn()
    sampler = ProcessSampler(ProcessTarget("B", pid=child.pid))
    assert sampler.sample().pid == child.pid
    child.stop()
    gone = sampler.sample()
    assert gone.rss_bytes == NA(EXITED)
    assert gone.pid == NA(EXITED)
    assert sampler.sample().rss_bytes == NA(EXITED)  # and stays so: the PID may be reused


def test_unreaped_child_reads_as_exited(spawn: Callable[..., Child]) -> None:
    child = spawn()
    sampler = ProcessSampler(ProcessTarget("Z", pid=child.pid))
    assert isinstance(sampler.sample().rss_bytes, int)
    child.proc.kill()  # not waited for: a zombie until the fixture reaps it
    deadline = time.monotonic() + 5
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "child did not die"
        time.sleep(0.01)
    assert sampler.sample().rss_bytes == NA(EXITED)


def test_url_target_exit(spawn: Callable[..., Child]) -> None:
    child = spawn()
    sampler = ProcessSampler(ProcessTarget("C", url=child.url))
    assert sampler.sample().pid == child.pid
    child.stop()
    gone = sampler.sample()
    assert isinstance(gone.rss_bytes, NA)
    assert gone.rss_bytes.reason.startswith(EXITED)


def test_no_such_pid() -> None:
    pid = 2**22 + 12345  # above Linux's pid_max default
    s = ProcessSampler(ProcessTarget("D", pid=pid)).sample()
    assert s.rss_bytes == NA(f"no process with PID {pid}")


def test_remote_server_is_na() -> None:
    s = ProcessSampler(ProcessTarget("R", url="http://192.0.2.10:8080")).sample()
    for figure in (s.pid, s.rss_bytes, s.cpu_percent, s.vram_bytes, s.flags):
        assert isinstance(figure, NA)
        assert figure.reason.startswith("remote server")


def test_local_addresses() -> None:
    assert local_addresses("localhost") == frozenset({"127.0.0.1", "::1"})
    assert local_addresses("127.0.0.1") == frozenset({"127.0.0.1"})
    assert local_addresses("[::1]") == frozenset({"::1"})
    assert local_addresses("0.0.0.0") == frozenset({"0.0.0.0"})
    remote = local_addresses("203.0.113.7")
    assert isinstance(remote, NA) and remote.reason.startswith("remote server")


def test_own_interface_address_is_local() -> None:
    own = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family.name == "AF_INET" and not a.address.startswith("127.")
    ]
    if not own:
        pytest.skip("no non-loopback IPv4 address here")
    assert local_addresses(own[0]) == frozenset({own[0]})


def test_access_denied_per_figure(
    spawn: Callable[..., Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    child = spawn()
    real_open = open

    def smaps_denied(path: object, *args: Any, **kwargs: Any) -> Any:
        # As for another user's process: /proc/PID/smaps* are readable by their owner only.
        if str(path).startswith(f"/proc/{child.pid}/smaps"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", smaps_denied)
    sampler = ProcessSampler(ProcessTarget("E", pid=child.pid))
    for s in (sampler.sample(), sampler.sample()):  # the walk, then its figures kept
        # RSS and private memory (/proc/PID/status) are readable for anyone's process
        assert isinstance(s.rss_bytes, int) and isinstance(s.private_bytes, int)
        for figure in (s.uss_bytes, s.pss_bytes, s.model):
            assert figure == NA(OTHER_USER)


def test_access_denied_whole_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(pid: int) -> psutil.Process:
        raise psutil.AccessDenied(pid)

    monkeypatch.setattr(psutil, "Process", denied)
    s = ProcessSampler(ProcessTarget("F", pid=1)).sample()
    assert s.rss_bytes == NA(OTHER_USER)


def test_bigger_process_reads_more_rss(spawn: Callable[..., Child]) -> None:
    small = spawn(0)
    big = spawn(200 * MiB)
    rss_small = ProcessSampler(ProcessTarget("s", url=small.url)).sample().rss_bytes
    rss_big = ProcessSampler(ProcessTarget("b", url=big.url)).sample().rss_bytes
    assert isinstance(rss_small, int) and isinstance(rss_big, int)
    assert rss_big - rss_small > 150 * MiB


def test_port_lookup_is_throttled_while_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    calls = [0]

    def lookup(port: int, addresses: frozenset[str] | None = None) -> NA:
        calls[0] += 1
        return NA(f"nothing listens on port {port}")

    monkeypatch.setattr(process_mod, "find_listening_pid", lookup)
    sampler = ProcessSampler(ProcessTarget("T", url="http://127.0.0.1:1"), clock=lambda: now[0])
    for _ in range(5):
        assert isinstance(sampler.sample().pid, NA)
    assert calls[0] == 1
    now[0] += process_mod.LOOKUP_RETRY_S
    sampler.sample()
    assert calls[0] == 2


# --- command line ---------------------------------------------------------------------------


def test_flags_short_forms() -> None:
    argv = ["llama-server", "-m", "a.gguf", "-t", "8", "-tb", "16", "-c", "4096"]
    argv += ["-ngl", "99", "-np", "2", "--port", "8081"]
    assert parse_server_flags(argv) == ServerFlags(
        model="a.gguf", threads=8, threads_batch=16, ctx_size=4096, n_gpu_layers=99, parallel=2
    )


def test_flags_long_forms_and_equals() -> None:
    argv = ["/opt/llama-server", "--model=b.gguf", "--threads", "4", "--threads-batch=6"]
    argv += ["--ctx-size", "8192", "--gpu-layers", "all", "--parallel=1"]
    assert parse_server_flags(argv) == ServerFlags(
        model="b.gguf", threads=4, threads_batch=6, ctx_size=8192, n_gpu_layers="all", parallel=1
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), ("ALL", "all"), ("-1", "auto"), ("-2", "all"), ("0", 0), ("33", 33)],
)
def test_flags_gpu_layers(value: str, expected: object) -> None:
    assert parse_server_flags(["llama-server", "--n-gpu-layers", value]).n_gpu_layers == expected


def test_flags_absent_are_none_not_zero() -> None:
    flags = parse_server_flags(["llama-server", "--port", "8080"])
    assert flags == ServerFlags()
    assert flags.threads is None and flags.ctx_size is None


def test_flags_last_wins_and_problems() -> None:
    flags = parse_server_flags(["llama", "serve", "-t", "2", "-t", "6", "-c", "big", "-np"])
    assert flags.threads == 6
    assert flags.ctx_size is None
    assert flags.problems == ("-c 'big' is not a number", "-np has no value")


def test_flags_value_that_looks_like_a_flag_is_consumed() -> None:
    flags = parse_server_flags(["llama-server", "-m", "-c", "-t", "3"])
    assert flags.model == "-c"
    assert flags.threads == 3
    assert parse_server_flags([]) == ServerFlags()


def test_url_host_port() -> None:
    assert url_host_port("http://127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert url_host_port("http://[::1]:9000/v1") == ("::1", 9000)
    assert url_host_port("localhost:8081") == ("localhost", 8081)
    assert url_host_port("https://example.org") == ("example.org", 443)


def test_child_cpu_time_accounting_is_bounded(spawn: Callable[..., Child]) -> None:
    # Two samples 0.1 s apart of an idle child: CPU % is a small non-negative number.
    child = spawn()
    sampler = ProcessSampler(ProcessTarget("idle", pid=child.pid))
    sampler.sample()
    time.sleep(0.1)
    cpu = sampler.sample().cpu_percent
    assert isinstance(cpu, float) and 0.0 <= cpu < 100.0


# --- memory: private, model pages, sharing ----------------------------------------------------

# Maps the file after -m read-only and shared, as llama.cpp maps a model, touches every page,
# says so, and lives until its stdin closes.
MAPPER = """
import mmap, sys
with open(sys.argv[2], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
touched = sum(m[i] for i in range(0, len(m), mmap.PAGESIZE))
print("mapped", touched, flush=True)
sys.stdin.read()
"""


def _cpu_ns(pid: int) -> int:
    """Time the process has run on a CPU, from the scheduler (not the tick-based stat psutil
    reads)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def test_two_servers_mapping_one_model_file(tmp_path: Path) -> None:
    model = tmp_path / "shared-model.gguf"
    with model.open("wb") as f:
        for _ in range(25):
            f.write(b"\xa5" * (8 * MiB))  # 200 MiB of real (not sparse) data
    size = model.stat().st_size
    script = tmp_path / "server.py"
    script.write_text(MAPPER)
    procs = [subprocess.Popen([sys.executable, str(script), "-m", str(model)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], text=True))
    try:
        for proc in procs[:2]:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 20.0)
            assert ready and proc.stdout.readline().startswith("mapped")
        targets = [ProcessTarget(n, pid=p.pid) for n, p in zip("ABS", procs, strict=True)]
        poller = HardwarePoller(targets, gpu=False)
        spun = _cpu_ns(procs[2].pid)
        poller.sample_once()  # the mapping walk
        time.sleep(1.0)
        last = poller.sample_once()  # the walk's figures kept; private read afresh
        spun = _cpu_ns(procs[2].pid) - spun
        for name, other in (("A", "B"), ("B", "A")):
            p = last.process(name)
            assert p is not None
            assert isinstance(p.rss_bytes, int) and p.rss_bytes >= size
            # The file's pages are mapped by two processes: each carries half in its PSS.
            assert isinstance(p.pss_bytes, int) and size / 2 <= p.pss_bytes <= size / 2 + 40 * MiB
            assert isinstance(p.private_bytes, int) and p.private_bytes < 40 * MiB
            assert isinstance(p.uss_bytes, int) and p.uss_bytes < 40 * MiB  # shared pages leave it
            assert isinstance(p.model, ModelPages)
            assert 0.98 * size <= p.model.resident_bytes <= size
            assert p.model.file_bytes == size and p.model.paths == (str(model),)
            assert p.model.shared and p.model_shared_with == (other,)
        # A spinning process runs a whole core, as much as the scheduler gives it: on a busy
        # machine less, so the figure is checked against the kernel's own count of its run time.
        spin = last.process("S")
        assert spin is not None and isinstance(spin.cpu_percent, float)
        truth = 100.0 * spun / (last.t_ns - poller.history()[0].t_ns)
        assert abs(spin.cpu_percent - truth) <= 10.0 and spin.cpu_percent <= 110.0
        if os.getloadavg()[0] < (os.cpu_count() or 1) - 1:  # a core to spare: it had one
            assert spin.cpu_percent >= 80.0
        assert isinstance(spin.model, NA) and spin.model.reason.startswith("no model file mapped")
        hw = hardware_json(poller.history(), poller.host_info(),
                           [("A", str(model)), ("B", None), ("S", None)])
        poller.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=5)
    a, b = hw["servers"]["A"], hw["servers"]["B"]
    assert a["model_file"] == b["model_file"] == size  # B's from the file it maps
    assert 0.98 * size <= a["model_pages_peak"] <= size
    assert a["private_peak"] < 40 * MiB and a["rss_peak"] >= size
    assert a["shared_model_file"] is True and a["model_shared_with"] == ["B"]
    assert b["model_shared_with"] == ["A"]
    assert hw["servers"]["S"]["shared_model_file"] == {"n/a": spin.model.reason}


SMAPS = """\
5600-5700 r-xp 00000000 fe:00 11 /usr/bin/llama-server
Rss:                 256 kB
Pss:                 128 kB
Shared_Clean:        256 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
7000-8000 rw-p 00000000 00:00 0
Rss:                1024 kB
Pss:                1024 kB
Shared_Clean:          0 kB
Private_Dirty:      1024 kB
Anonymous:          1024 kB
7f00-7f80 r--s 00639000 fe:00 42 /models/My Model-Q4_0.GGUF
Rss:                2048 kB
Pss:                2048 kB
Shared_Clean:          0 kB
Private_Clean:      2048 kB
Anonymous:             0 kB
7f80-7fa0 r--s 00800000 fe:00 42 /models/My Model-Q4_0.GGUF
Rss:                 512 kB
Pss:                 256 kB
Shared_Clean:        512 kB
Anonymous:             0 kB
7fa0-7fb0 r--s 00000000 fe:01 43 /models/weights.bin (deleted)
Rss:                 100 kB
Anonymous:             0 kB
"""


def test_parse_smaps_groups_model_mappings_by_file() -> None:
    totals, files = parse_smaps(SMAPS)
    assert totals == SmapsTotals(rss=3940 * 1024, pss=3456 * 1024, shared=768 * 1024,
                                 uss=3072 * 1024, anonymous=1024 * 1024)
    # one file split in two mappings (llama.cpp unmaps the parts it doesn't need), name with a
    # space and an upper-case suffix
    assert list(files) == [("fe:00", 42)]
    path, model = files[("fe:00", 42)]
    assert path == "/models/My Model-Q4_0.GGUF"
    assert (model.rss, model.shared, model.uss) == (2560 * 1024, 512 * 1024, 2048 * 1024)
    # a model file without the .gguf suffix is known by the basename of -m
    _, files = parse_smaps(SMAPS, model_name="weights.bin")
    assert files[("fe:01", 43)] == ("/models/weights.bin", SmapsTotals(rss=100 * 1024))


def test_mapping_walk_is_throttled(spawn: Callable[..., Child],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    child = spawn()
    now = [0.0]
    reads: list[str] = []
    real = process_mod._proc_text

    def counted(pid: int, name: str) -> Any:
        reads.append(name)
        return real(pid, name)

    monkeypatch.setattr(process_mod, "_proc_text", counted)
    cost = [0.0]  # CPU seconds each read takes
    cpu = [0.0]

    def cpu_clock() -> float:  # called before and after each read
        cpu[0] += cost[0]
        return cpu[0]

    sampler = ProcessSampler(ProcessTarget("W", pid=child.pid), clock=lambda: now[0],
                             cpu_clock=cpu_clock)
    for _ in range(3):
        s = sampler.sample()
        assert isinstance(s.private_bytes, int) and isinstance(s.uss_bytes, int)
        now[0] += 1.0
    assert reads == ["smaps"]  # the figures kept in between; private from /proc/PID/status
    now[0] = process_mod.MAPPINGS_EVERY_S
    sampler.sample()
    assert reads == ["smaps", "smaps"]
    # A big process: a walk costs 0.1 s of CPU, so the next waits 0.1 / MEMORY_READ_SHARE.
    reads.clear()
    cost[0] = 0.1
    now[0] = 100.0
    for _ in range(101):
        s = sampler.sample()
        assert isinstance(s.private_bytes, int) and isinstance(s.uss_bytes, int)  # kept
        now[0] += 1.0
    assert process_mod.MEMORY_READ_SHARE == 0.002  # 50 s apart, not every 30 s
    assert reads == ["smaps"] * 3  # at 100, 150, 200 s


def test_memory_without_rss_anon_or_proc(spawn: Callable[..., Child],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    child = spawn()
    # Linux before 4.5: /proc/PID/status has no RssAnon, so the walk's Anonymous stands in.
    monkeypatch.setattr(process_mod, "_status_figures", lambda pid: (None, None, None))
    sampler = ProcessSampler(ProcessTarget("old kernel", pid=child.pid))
    for s in (sampler.sample(), sampler.sample()):
        assert isinstance(s.private_bytes, int) and isinstance(s.uss_bytes, int)
        assert isinstance(s.rss_bytes, int) and isinstance(s.num_threads, int)  # psutil's
    monkeypatch.setattr(process_mod, "_proc_text", lambda pid, name: NA(NOT_REPORTED))
    s = ProcessSampler(ProcessTarget("no /proc", pid=child.pid)).sample()
    assert isinstance(s.uss_bytes, int)  # psutil's
    assert s.private_bytes == NA(NOT_REPORTED) and s.model == NA(NOT_REPORTED)
