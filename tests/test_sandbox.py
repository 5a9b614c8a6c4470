"""Hostile programs against the sandbox that runs model-written code (core.quality.code_exec):
each tries to escape, and must fail to do what it tries while quanttui goes on. The program is
a HumanEval-style answer whose tests (`assert f(1) == 2`) it fails unless it forges the verdict;
what it tried is printed to its stdout and checked from outside as well."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quanttui.core.quality import code_exec
from quanttui.core.quality.code_exec import Limits, execute
from quanttui.core.suites.humaneval import load_problems
from sandbox_fixture import sandboxed  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("sandboxed")

TESTS = "assert f(1) == 2\n"
WRONG = "def f(x):\n    return x\n"  # fails TESTS
LIMITS = Limits(timeout_s=20.0, memory_bytes=512 << 20)  # generous: the machine is shared


def hostile(body: str, **kw: object) -> code_exec.Execution:
    """WRONG plus `body` (run first), against TESTS."""
    r = execute(WRONG + textwrap.dedent(body), TESTS, Limits(**{
        "timeout_s": LIMITS.timeout_s, "memory_bytes": LIMITS.memory_bytes, **kw}))
    assert not r.passed, r
    return r


def lines(r: code_exec.Execution) -> dict[str, str]:
    """What the program printed as `key: value` lines."""
    return dict(x.split(": ", 1) for x in r.stdout.splitlines() if ": " in x)


def test_a_correct_program_passes_and_a_wrong_one_fails() -> None:
    p = load_problems(limit=1)[0]
    ok = execute(*p.program(p.canonical_solution), LIMITS)
    assert ok.passed and ok.reason is None and ok.isolation.startswith("bubblewrap"), ok
    assert ok.check().notes == ()
    bad = execute(*p.program("    return False\n"), LIMITS)
    assert not bad.passed and bad.reason == "AssertionError"


@pytest.fixture
def unix_socket() -> Iterator[tuple[socket.socket, str]]:
    with tempfile.TemporaryDirectory(prefix="qs") as d:  # short: a socket path is ≤ 107 bytes
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(f"{d}/s")
        srv.listen()
        srv.setblocking(False)
        with srv:
            yield srv, f"{d}/s"


def test_a_unix_socket_on_the_host_cannot_be_reached(
        unix_socket: tuple[socket.socket, str]) -> None:
    srv, path = unix_socket
    abstract = f"\0quanttui-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as srv2:
        srv2.bind(abstract)
        srv2.listen()
        srv2.setblocking(False)
        r = hostile(f"""
            import socket
            for name, address in (("path", {path!r}), ("abstract", {abstract!r})):
                try:
                    socket.socket(socket.AF_UNIX).connect(address)
                    print(name + ": connected")
                except OSError as e:
                    print(name + ": " + type(e).__name__)
            """)
        for s in (srv, srv2):
            with pytest.raises(BlockingIOError):  # nobody connected
                s.accept()
    assert lines(r) == {"path": "FileNotFoundError", "abstract": "ConnectionRefusedError"}


def test_no_new_processes_and_nothing_left_behind() -> None:
    """posix.fork, posix.system, a raw clone, a thread, a fork+setsid daemon: all refused; the
    program then hangs until the wall timeout, and afterwards nothing in its PID namespace is
    left on the machine."""
    r = hostile("""
        import os, posix, sys, threading, time
        print("ns: " + os.readlink("/proc/self/ns/pid"), flush=True)
        def attempt(name, f):
            try:
                print(name + ": " + repr(f()), flush=True)
            except BaseException as e:
                print(name + ": " + type(e).__name__, flush=True)
        attempt("fork", lambda: [posix.fork() for _ in range(20)])
        attempt("system", lambda: posix.system("sleep 1000 &"))
        def daemon():
            if posix.fork() == 0:
                os.setsid()
                time.sleep(1000)
        attempt("daemon", daemon)
        attempt("thread", lambda: threading.Thread(target=time.sleep, args=(1000,)).start())
        import ctypes
        attempt("clone", lambda: ctypes.CDLL(None, use_errno=True).syscall(56, 17, 0, 0, 0, 0)
                if os.uname().machine == "x86_64" else -1)
        while True:
            pass
        """, timeout_s=3.0)
    seen = lines(r)
    assert r.reason == "timeout"
    assert seen["fork"] == seen["daemon"] == "PermissionError"
    assert seen["system"] in ("-1", str(127 << 8))  # could not fork, or "shell not started"
    assert seen["thread"] == "RuntimeError" and seen["clone"] == "-1"
    ns = seen["ns"]
    assert ns.startswith("pid:[")
    deadline = time.monotonic() + 30  # the kernel empties the namespace after its init dies
    while (left := in_namespace(ns)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left


def in_namespace(ns: str) -> list[str]:
    """Processes on this machine in PID namespace `ns` ("pid:[inode]")."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "ns/pid") == ns:
                found.append(proc.name)
        except OSError:  # gone, or not ours to look at
            pass
    return found


# Runs execute() in its own process, as quanttui: the program tries to kill it.
HOST = """
import json, os, sys
from quanttui.core.quality.code_exec import Limits, execute
body = sys.stdin.read().replace("QUANTTUI_PID", str(os.getpid()))
r = execute("def f(x):\\n    return x\\n" + body, "assert f(1) == 2\\n", Limits(timeout_s=20))
print(json.dumps({"passed": r.passed, "reason": r.reason, "stdout": r.stdout}))
"""


def test_the_program_cannot_kill_quanttui() -> None:
    body = textwrap.dedent("""
        import os, posix, signal
        for name, pid in (("ppid", os.getppid()), ("quanttui", QUANTTUI_PID), ("init", 1)):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    posix.kill(pid, sig)
                    print(name + ": sent", flush=True)
                except OSError as e:
                    print(name + ": " + type(e).__name__, flush=True)
        posix.killpg(0, signal.SIGKILL)  # its group is inside the namespace: itself
        """)
    p = subprocess.run([sys.executable, "-c", HOST], input=body, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert not out["passed"] and out["reason"] == "killed (SIGKILL; CPU limit 21 s, or out of " \
                                                  "memory)", out
    seen = lines(code_exec.Execution(False, None, 0, out["stdout"], "", ""))
    assert seen["quanttui"] == "ProcessLookupError"  # its pid means nothing in there


def test_the_verdict_cannot_be_forged() -> None:
    """Writing "passed" to every descriptor, replacing os._exit, exiting 0 before the tests,
    answering with an object equal to everything, shadowing the judge's builtins."""
    r = hostile("""
        import os, posix
        for fd in range(3, 1024):
            try:
                os.write(fd, b"passed\\n")
            except OSError:
                pass
        """)
    assert r.reason is not None  # the judge read "passed" where it expected a message
    r = hostile("""
        import os, posix
        os._exit = lambda code: None
        posix._exit(0)
        """)
    assert r.reason == "exited with status 0 before the end of the program"
    r = hostile("""
        class Yes:
            def __eq__(self, other):
                return True
        def f(x):
            return Yes()
        """)
    assert r.reason is not None and "can't pass a Yes" in r.reason
    r = hostile("""
        def AssertionError(*a):  # the judge's builtins are not the program's to replace
            return None
        """)
    assert r.reason == "AssertionError"


def test_nothing_outside_can_be_written_or_deleted(tmp_path: Path) -> None:
    keep = tmp_path / "keep.txt"
    keep.write_text("keep")
    install = Path(sys.base_prefix) / "lib" / "quanttui-sandbox-test.py"
    r = hostile(f"""
        import os, posix
        for name, path in (("tmp", {str(tmp_path / "new.txt")!r}),
                           ("install", {str(install)!r}), ("root", "/new.txt"),
                           ("dev", "/dev/shm/new.txt"), ("work", "/work/new.txt")):
            try:
                with open(path, "w") as f:
                    f.write("x")
                print(name + ": written")
            except OSError as e:
                print(name + ": " + type(e).__name__)
        try:
            posix.unlink({str(keep)!r})
            print("unlink: done")
        except OSError as e:
            print("unlink: " + type(e).__name__)
        """)
    assert lines(r) == {"tmp": "FileNotFoundError", "install": "OSError", "root": "OSError",
                        "dev": "OSError", "work": "written", "unlink": "FileNotFoundError"}
    assert keep.read_text() == "keep" and sorted(tmp_path.iterdir()) == [keep]
    assert not install.exists()


def test_the_disk_limit_caps_the_total() -> None:
    r = hostile("""
        import errno
        n = 0
        try:
            while True:  # files under the per-file limit, until the disk is full
                with open(f"/work/{n}", "wb") as f:
                    f.write(b"x" * (1 << 20))
                n += 1
        except OSError as e:
            print("errno: " + errno.errorcode[e.errno])
        print("MiB: " + str(n))
        """, file_bytes=2 << 20, disk_bytes=8 << 20)
    seen = lines(r)
    assert seen["errno"] == "ENOSPC" and 4 <= int(seen["MiB"]) <= 8


def test_no_io_uring() -> None:
    """An io_uring's operations are not system calls: the seccomp filter never sees them, so
    its fallocate (refused as a system call: with KEEP_SIZE it grows the program's stdout, a
    file on the host, past the file size limit) and whatever else it offers would get past
    the filter. Setting one up is refused."""
    r = hostile("""
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        params = ctypes.create_string_buffer(120)  # struct io_uring_params
        fd = libc.syscall(425, 4, params)  # io_uring_setup, on x86_64 and aarch64 alike
        print("setup: " + str(fd) + " " + errno.errorcode.get(ctypes.get_errno(), "0"))
        """)
    assert lines(r)["setup"] == "-1 EPERM"


def test_files_outside_cannot_be_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    r = hostile(f"""
        for name, path in (("tmp", {str(secret)!r}), ("shadow", "/etc/shadow"),
                           ("via init", "/proc/1/root" + {str(secret)!r})):
            try:
                print(name + ": " + open(path).read())
            except OSError as e:
                print(name + ": " + type(e).__name__)
        """)
    assert "s3cret" not in r.stdout
    assert set(lines(r).values()) <= {"FileNotFoundError", "PermissionError"}


def test_the_machines_settings_cannot_be_changed() -> None:
    """Run as root (CI, many VPS users), the sandbox's uid 65534 is the host's uid 0 without
    capabilities, and the kernel lets uid 0 write the machine's sysctls by their mode alone:
    /proc/sys/kernel/core_pattern set to `|/bin/sh -c ...` runs that as root on the host at
    the next crash anywhere. bwrap left /proc/sys writable (it took the EACCES of its directory
    for read-only). The program only opens the files for writing, never writes: a sandbox that
    let it would fail this test without changing the machine."""
    r = hostile("""
        import errno, os
        for name in ("kernel/core_pattern", "kernel/modprobe", "vm/drop_caches"):
            try:
                os.close(os.open("/proc/sys/" + name, os.O_WRONLY))
                print(name + ": opened for writing")
            except OSError as e:
                print(name + ": " + errno.errorcode.get(e.errno, str(e.errno)))
        writable = []
        for root, dirs, files in os.walk("/proc"):
            for f in files:
                path = os.path.join(root, f)
                if not os.path.islink(path) and os.access(path, os.W_OK):
                    writable.append(path)
        print("writable: " + str(len(writable)) + " " + " ".join(writable[:5]))
        """)
    seen = lines(r)
    for name in ("kernel/core_pattern", "kernel/modprobe", "vm/drop_caches"):
        assert seen[name] in ("EROFS", "EACCES", "ENOENT"), seen
    assert seen["writable"].split()[0] == "0", seen["writable"]


def test_without_bubblewrap_it_refuses_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_exec.shutil, "which", lambda name: None)
    code_exec.sandbox.cache_clear()
    try:
        why = code_exec.unavailable(LIMITS)
        assert why is not None and "apt-get install bubblewrap" in why
        assert "--unsafe-host-execution" in why
        with pytest.raises(code_exec.CodeExecutionUnavailable):
            execute(WRONG, TESTS, LIMITS)
        unsafe = Limits(unsafe_host=True)
        assert code_exec.unavailable(unsafe) is None and "NOT SANDBOXED" in unsafe.describe()
        r = execute("def f(x):\n    return x + 1\n", TESTS, unsafe)
        assert r.passed and r.check().notes == (code_exec.UNSAFE_NOTE,)
    finally:
        code_exec.sandbox.cache_clear()
