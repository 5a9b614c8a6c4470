"""Running model-written Python programs (HumanEval checks) in a sandbox.

    result = execute(program, tests, Limits(timeout_s=10))
    result.passed, result.reason

**Two processes, so that no model-written code runs where the verdict is made.** The *program*
process runs `program` (prompt + completion), then answers calls: "call f with these arguments"
→ the return value or the exception. The *judge* process runs `tests` (the problem's tests,
trusted) with every function the program defined replaced by a proxy making such a call, and
writes the verdict on a pipe only it holds. Values cross as JSON of plain data (None, bool, int,
float, complex, str, bytes, list, tuple, set, frozenset, dict; anything else is an error), so
what the judge compares has no methods the program wrote (an `__eq__` that is always True).

Why this holds where a nonce or an exit status would not: the program shares its process with
anything in it (it can read memory, replace `os._exit`, call `posix._exit(0)` before the tests
or write "passed" to every descriptor it has), and whatever the program does it can only change
the values its functions return, which is what the tests check. It can't reach the judge: that
runs in its own sandbox (another PID namespace: not visible, not signalled, not traced), and
names the program defines never shadow the judge's builtins. A failure the program reports is
only ever a failure.

**The sandbox** is bubblewrap (`bwrap`), one per process, with:

- namespaces: user (uid 65534 without capabilities, no nested user namespaces), mount, network
  (only its own loopback: no TCP to the host, no abstract Unix sockets), PID (it sees only
  itself; the kernel kills everything in it when its init dies), IPC, UTS; the set the machine
  allows is probed once (`sandbox()`): as root without user namespaces it runs as root with every
  capability dropped;
- files: read-only /usr (and the /bin, /lib, ... links), the Python install and
  /etc/ld.so.cache, a new read-only /proc, a minimal read-only /dev; the only writable place is
  a private tmpfs /work whose size is the disk limit. No /tmp, /run, /home or /root of the host:
  no host files and no Unix sockets are visible. /proc is read-only because where quanttui runs
  as root, the sandbox's uid 65534 is the host's uid 0 without capabilities, and the kernel
  lets uid 0 write the machine's sysctls (/proc/sys/kernel/core_pattern: a program to run as
  root at the next crash) by their mode alone; bwrap leaves /proc/sys writable;
- seccomp: clone, clone3, fork and vfork fail (no new processes or threads: RLIMIT_NPROC
  doesn't stop root), so do ptrace, fallocate and io_uring (whose operations no filter sees),
  and system calls of another ABI (i386 on x86_64) kill it;
- `--die-with-parent`, `--new-session` (no TIOCSTI into quanttui's terminal), and bwrap in a
  session of its own (a signal to the program's process group can't reach quanttui);
- rlimits set before the code runs (hard = soft): address space, CPU seconds, file size, open
  files, processes, no core dumps.

Nothing is created on the host's filesystem: the source comes in on an inherited descriptor of
an unlinked temporary file, and stdout and stderr go to unlinked temporary files (kept
truncated). Without bwrap, or where it can't make its namespaces, running is refused unless
`Limits(unsafe_host=True)` (`--unsafe-host-execution`): then both processes run directly on the
host with only the rlimits, their own session and a temporary working directory: the code runs
as you, can read and write your files, use the network and start processes.

A program passes when the tests run to their end. Otherwise the reason is "timeout", "memory",
"output too large", "exit" (it called exit), "syntax error: ...", the exception's type and
message ("AssertionError"), "cpu time" or "signal NAME" (killed by a signal), or "exited with
status N before the end of the program" (e.g. os._exit).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO

from quanttui.core.suites.tasks import Check, ProgramRunner

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf "
                "install bubblewrap)")
UNSAFE_NOTE = "code execution: on the host, not sandboxed (--unsafe-host-execution)"


class CodeExecutionUnavailable(RuntimeError):
    """This machine can't run programs the way the limits ask."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, from start to kill
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS), per process
    file_bytes: int = 16 << 20  # largest file it may write, stdout and stderr included
    disk_bytes: int = 64 << 20  # all it may write (the size of its tmpfs)
    open_files: int = 64
    output_chars: int = 2000  # kept of stdout (its start) and of stderr (its end)
    unsafe_host: bool = False  # run without the sandbox (--unsafe-host-execution)

    @property
    def cpu_s(self) -> int:
        """CPU seconds: a backstop one second past the wall timeout."""
        return int(self.timeout_s) + 1

    def __post_init__(self) -> None:
        if (self.timeout_s <= 0 or self.memory_bytes < 64 << 20 or self.file_bytes < 1 << 16
                or self.disk_bytes < self.file_bytes):
            raise ValueError("code execution limits: timeout > 0, memory ≥ 64 MiB, file size "
                             "≥ 64 KiB, disk ≥ file size")

    def describe(self) -> str:
        """The limits in words, for the warning before a run."""
        where = ("ON THIS MACHINE, NOT SANDBOXED (--unsafe-host-execution)" if self.unsafe_host
                 else f"in bubblewrap ({_isolation()}, only a private tmpfs writable)")
        return (f"{self.timeout_s:g} s wall, {self.cpu_s} s CPU, "
                f"{self.memory_bytes / (1 << 20):.0f} MiB address space, "
                f"{self.file_bytes / (1 << 20):g} MiB per file, "
                f"{self.disk_bytes / (1 << 20):g} MiB in all, {where}")


@dataclass(frozen=True, slots=True)
class Execution:
    passed: bool
    reason: str | None  # why it did not pass
    elapsed_s: float
    stdout: str  # the program's
    stderr: str  # the program's and the judge's (a failed test's traceback)
    isolation: str  # "bubblewrap (...)", or "none (--unsafe-host-execution)"

    def check(self) -> Check:
        """As a task check: a note when it ran unsandboxed."""
        notes = (UNSAFE_NOTE,) if self.isolation.startswith("none") else ()
        return Check(self.passed, self.reason, notes)


# ------------------------------------------------------------------ in the two processes

# Shared by both: limits, reasons, the plain-data codec and one-line JSON messages.
_COMMON = r"""
import errno, json, os, sys
MAX_MESSAGE = 16 << 20
TAGS = {list: "l", tuple: "t", set: "s", frozenset: "f"}
UNTAG = {v: k for k, v in TAGS.items()}

def set_limits(spec, parent):
    if parent and sys.platform.startswith("linux"):  # die with quanttui (PR_SET_PDEATHSIG)
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, 9)
        except (OSError, AttributeError):
            pass
        sys.modules.pop("ctypes", None)
        if os.getppid() != parent:  # it is gone already
            os._exit(1)
    import resource
    mem, cpu, fsize, nofile = (int(x) for x in spec.split(","))
    for name, value in (("RLIMIT_AS", mem), ("RLIMIT_CPU", cpu), ("RLIMIT_CORE", 0),
                        ("RLIMIT_FSIZE", fsize), ("RLIMIT_NOFILE", nofile),
                        ("RLIMIT_NPROC", 0)):
        if hasattr(resource, name):
            resource.setrlimit(getattr(resource, name),
                               (value, value + 1 if name == "RLIMIT_CPU" else value))

def said(e):
    try:
        message = " ".join(str(e).split())[:200]
    except BaseException:
        message = ""
    return type(e).__name__ + (": " + message if message else "")

def reason(e):
    if isinstance(e, MemoryError):
        return "memory"
    if isinstance(e, SystemExit):
        return "exit"
    if isinstance(e, SyntaxError):
        return "syntax error: " + str(e.msg) + " (line " + str(e.lineno) + ")"
    if isinstance(e, OSError) and e.errno == errno.EFBIG:
        return "output too large"
    return said(e)

def enc(x, depth=0):
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(x)
    if x is None or t in (bool, int, float, str):
        return x
    if t in TAGS:
        return {TAGS[t]: [enc(v, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
    if t is bytes:
        return {"b": x.hex()}
    if t is complex:
        return {"c": [x.real, x.imag]}
    raise TypeError("can't pass a " + t.__name__ + " between the program and its tests")

def dec(x, depth=0):
    if depth > 200:
        raise ValueError("value nested too deeply")
    if x is None or type(x) in (bool, int, float, str):
        return x
    if type(x) is not dict or len(x) != 1:
        raise ValueError("not a value")
    (tag, v), = x.items()
    if tag in UNTAG and type(v) is list:
        return UNTAG[tag](dec(i, depth + 1) for i in v)
    if tag == "d" and type(v) is list:
        return {dec(k, depth + 1): dec(w, depth + 1) for k, w in v}
    if tag == "b" and type(v) is str:
        return bytes.fromhex(v)
    if tag == "c" and type(v) is list and len(v) == 2:
        return complex(float(v[0]), float(v[1]))
    raise ValueError("not a value")

def send(f, message):
    f.write(json.dumps(message) + "\n")
    f.flush()

def receive(f):
    line = f.readline(MAX_MESSAGE)
    if not line:
        return None
    if not line.endswith("\n"):
        raise ValueError("message too large")
    return json.loads(line)
"""

# argv: limits, parent pid (0 in the sandbox), source fd, calls in, replies out.
_PROGRAM = _COMMON + r"""
spec, parent, src, calls, replies = sys.argv[1], *map(int, sys.argv[2:6])
set_limits(spec, parent)
with os.fdopen(src, encoding="utf-8") as f:
    source = f.read()
calls, replies = os.fdopen(calls, encoding="utf-8"), os.fdopen(replies, "w", encoding="utf-8")
import builtins, traceback, types
g = {"__name__": "program", "__builtins__": builtins}

def failed(e):
    try:
        traceback.print_exc()
        send(replies, {"error": reason(e)})
    except BaseException:
        pass

try:
    exec(compile(source, "program.py", "exec"), g)
    sys.stdout.flush()
    names = []
    for name, v in g.items():
        if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, type)):
            names.append([name, "call", None])
        elif isinstance(v, types.ModuleType):
            names.append([name, "module", v.__name__])
        else:
            try:
                names.append([name, "value", enc(v)])
            except (TypeError, ValueError):
                pass
    send(replies, {"names": names})
except BaseException as e:
    failed(e)
else:
    while (call := receive(calls)) is not None:
        try:
            value = enc(g[call["call"]](*dec(call["args"]), **dec(call["kwargs"])))
            sys.stdout.flush()
        except BaseException as e:
            failed(e)
        else:
            send(replies, {"value": value})
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except BaseException:
        pass
os._exit(0)
"""

# argv: limits, parent pid, source fd (the tests), calls out, replies in, verdict out. The
# verdict: "passed", "failed <why>", or "ended" (the program went away: its exit status says why).
_JUDGE = _COMMON + r"""
spec, parent, src, calls, replies, verdict = sys.argv[1], *map(int, sys.argv[2:7])
verdict = os.fdopen(verdict, "w", encoding="utf-8")
calls, replies = os.fdopen(calls, "w", encoding="utf-8"), os.fdopen(replies, encoding="utf-8")
with os.fdopen(src, encoding="utf-8") as f:
    source = f.read()
import builtins, importlib, traceback
set_limits(spec, parent)

class Ended(Exception):
    pass

class ProgramError(Exception):
    pass

def answer():
    message = receive(replies)
    if message is None:
        raise Ended()
    if type(message) is dict and "error" in message:
        raise ProgramError(" ".join(str(message["error"]).split())[:300] or "error")
    if type(message) is not dict:
        raise ValueError("not a message")
    return message

class Proxy:
    def __init__(self, name):
        self.name = name
    def __call__(self, *args, **kwargs):
        send(calls, {"call": self.name, "args": enc(args), "kwargs": enc(kwargs)})
        return dec(answer()["value"])

def stdlib(name):
    if name.partition(".")[0] not in sys.stdlib_module_names:
        raise ImportError(name)
    return importlib.import_module(name)

try:
    ns = {"__name__": "__main__", "__builtins__": builtins}
    for name, kind, value in answer()["names"]:
        if type(name) is not str or name.startswith("__") or hasattr(builtins, name):
            continue
        if kind == "call":
            ns[name] = Proxy(name)
        elif kind == "module":
            try:
                ns[name] = stdlib(str(value))
            except Exception:
                pass
        elif kind == "value":
            ns[name] = dec(value)
    exec(compile(source, "tests.py", "exec"), ns)
except Ended:
    outcome = "ended"
except ProgramError as e:
    outcome = "failed " + str(e)
except BaseException as e:
    try:
        traceback.print_exc()
    except BaseException:
        pass
    outcome = "failed " + reason(e)
else:
    outcome = "passed"
verdict.write(outcome + "\n")
verdict.close()
os._exit(0)
"""


# ------------------------------------------------------------------ the sandbox

# Per machine: the audit arch and the system calls refused: clone, fork, vfork, clone3, ptrace,
# fallocate (with KEEP_SIZE it grows a file past RLIMIT_FSIZE: stdout is a host file), and
# io_uring_setup, _enter and _register (an io_uring's operations are not system calls, so no
# filter sees them: its fallocate would do what the filter refuses).
_DENIED = {"x86_64": (0xC000003E, (56, 57, 58, 435, 101, 285, 425, 426, 427)),
           "aarch64": (0xC00000B7, (220, 435, 117, 47, 425, 426, 427))}
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


def _seccomp_filter() -> bytes | None:
    """A classic BPF program for bwrap's --seccomp: the denied calls fail with EPERM, another
    ABI's calls (and x32's) kill the process. None on a machine not listed."""
    machine = platform.machine().lower()
    if (found := _DENIED.get(_MACHINES.get(machine, machine))) is None:
        return None
    arch, nrs = found
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # RET_ALLOW, ERRNO|EPERM, KILL
    n = len(nrs)
    # 0 load arch, 1 wrong arch → kill, 2 load nr, 3 x32 → deny, 4.. denied → deny, then rets
    prog = [(ld, 0, 0, 4), (jeq, 0, n + 4, arch), (ld, 0, 0, 0), (jge, n + 1, 0, 0x40000000)]
    prog += [(jeq, n - i, 0, nr) for i, nr in enumerate(nrs)]
    prog += [(ret, 0, 0, allow), (ret, 0, 0, deny), (ret, 0, 0, kill)]
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


def _python() -> str:
    """The base interpreter (not a venv's link to it): it runs with -I, stdlib only."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _views() -> list[str]:
    """bwrap arguments for the read-only files the interpreter needs, and the rest."""
    args: list[str] = []
    bound: list[str] = []
    for path in ("/usr", sys.base_prefix, sys.base_exec_prefix, os.path.dirname(_python())):
        real = os.path.realpath(path)
        if real != "/" and os.path.isdir(real) and not any(
                real == b or real.startswith(b + "/") for b in bound):
            bound.append(real)
            args += ["--ro-bind", real, real]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top) and top not in bound:
            args += ["--ro-bind", top, top]
    return [*args, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--proc", "/proc", "--dev", "/dev"]


_NAMESPACES = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
               "--unshare-cgroup-try"]
# Tried in order: the first that starts Python is used.
_VARIANTS = (
    ("user, mount, network, PID, IPC and UTS namespaces",
     ["--unshare-user", "--disable-userns", "--uid", "65534", "--gid", "65534"]),
    ("user, mount, network, PID, IPC and UTS namespaces",
     ["--unshare-user", "--uid", "65534", "--gid", "65534"]),
    ("mount, network, PID, IPC and UTS namespaces; root without capabilities",
     ["--cap-drop", "ALL"]),
)


@dataclass(frozen=True, slots=True)
class Sandbox:
    bwrap: str
    options: tuple[str, ...]  # namespaces
    isolation: str  # in words

    def argv(self, seccomp_fd: int, disk_bytes: int) -> list[str]:
        return [self.bwrap, *self.options, *_NAMESPACES, "--die-with-parent", "--new-session",
                *_views(), "--size", str(disk_bytes), "--tmpfs", "/work", "--chdir", "/work",
                "--seccomp", str(seccomp_fd), "--remount-ro", "/dev", "--remount-ro", "/proc",
                "--remount-ro", "/",
                "--", _python(), "-I", "-c"]


def _data_fd(data: bytes) -> int:
    """A descriptor to read `data` from, on an unlinked file (nothing left behind)."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        fd = os.dup(f.fileno())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def sandbox() -> Sandbox | str:
    """The sandbox this machine allows, or why there is none (probed once: bwrap runs Python
    with each set of namespaces in `_VARIANTS` until one works)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    if (bwrap := shutil.which("bwrap")) is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    if (bpf := _seccomp_filter()) is None:
        return f"no seccomp filter for this machine ({platform.machine()})"
    errors = []
    for isolation, options in _VARIANTS:
        if "--cap-drop" in options and os.geteuid() != 0:
            continue
        box = Sandbox(bwrap, tuple(options), f"bubblewrap: {isolation}")
        fd = _data_fd(bpf)
        try:
            p = subprocess.run([*box.argv(fd, 1 << 20), "pass"], pass_fds=(fd,), timeout=30,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               start_new_session=True, env={"PATH": os.defpath})
        except (OSError, subprocess.TimeoutExpired) as e:
            errors.append(str(e))
            continue
        finally:
            os.close(fd)
        if p.returncode == 0:
            return box
        errors.append(" ".join(p.stderr.split())[:200] or f"exit status {p.returncode}")
    return f"bubblewrap could not make its sandbox here ({'; '.join(dict.fromkeys(errors))})"


def _isolation() -> str:
    box = sandbox()
    return box.isolation if isinstance(box, Sandbox) else "unavailable"


def unavailable(limits: Limits | None = None) -> str | None:
    """Why programs can't be run here with these limits, or None when they can."""
    limits = limits or Limits()
    if os.name != "posix" or not sys.executable:
        return "running programs needs a POSIX system (Linux or macOS) and a Python executable"
    if limits.unsafe_host:
        return None
    box = sandbox()
    if isinstance(box, str):
        return (f"model-written code runs only inside a sandbox, and {box}; or add "
                "--unsafe-host-execution to run it on this machine unsandboxed")
    return None


# ------------------------------------------------------------------ running one check

_SIGNAL_REASONS = {"SIGXCPU": "cpu time", "SIGXFSZ": "output too large"}


def _read_head(f: IO[bytes], n: int) -> str:
    f.seek(0)
    text = f.read(n * 4).decode("utf-8", errors="replace")
    return text[:n] + ("… (truncated)" if len(text) > n else "")


def _read_tail(f: IO[bytes], n: int) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - n * 4))
    data = f.read()
    text = data.decode("utf-8", errors="replace")
    return ("(truncated) …" if len(text) > n or size > len(data) else "") + text[-n:]


def _read_verdict(fd: int) -> str | None:
    """The judge's verdict, without waiting for anything still holding the pipe."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while (chunk := os.read(fd, 4096)) and len(data) < 4096:
            data += chunk
    line = data.decode("utf-8", errors="replace").partition("\n")[0]
    return line if line == "passed" or line == "ended" or line.startswith("failed ") else None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Its process group (bwrap, or the process on the host); in the sandbox the PID namespace
    goes with bwrap's init."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _exit_reason(rc: int, sandboxed: bool, cpu_s: int) -> str:
    """Why the program ended, from its exit status (bwrap gives 128 + N for signal N)."""
    sig = -rc if rc < 0 else rc - 128 if sandboxed and rc > 128 else None
    if sig is None:
        return f"exited with status {rc} before the end of the program"
    name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
    if name == "SIGKILL":
        return f"killed (SIGKILL; CPU limit {cpu_s} s, or out of memory)"
    return _SIGNAL_REASONS.get(name, f"signal {name}")


def execute(program: str, tests: str = "", limits: Limits | None = None) -> Execution:
    """Run `program`, then `tests` against it, as described in the module docstring, and wait
    (at most the wall timeout, then both are killed). Blocking: call it from a thread."""
    limits = limits or Limits()
    if (why := unavailable(limits)) is not None:
        raise CodeExecutionUnavailable(why)
    box = None if limits.unsafe_host else sandbox()
    assert not isinstance(box, str)  # unavailable() said so
    spec = ",".join(map(str, (limits.memory_bytes, limits.cpu_s, limits.file_bytes,
                              limits.open_files)))
    fds: list[int] = []  # every descriptor opened here: closed at the end
    procs: list[subprocess.Popen[bytes]] = []
    workdir = None if box is not None else tempfile.mkdtemp(prefix="quanttui-code-")
    try:
        src = [_data_fd(s.encode("utf-8")) for s in (program, tests)]
        fds += src
        calls_r, calls_w = os.pipe()
        replies_r, replies_w = os.pipe()
        verdict_r, verdict_w = os.pipe()
        fds += [calls_r, calls_w, replies_r, replies_w, verdict_r, verdict_w]
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir or "/work",
               "TMPDIR": workdir or "/work", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}
        parent = 0 if box is not None else os.getpid()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.monotonic()
            for script, argv in ((_PROGRAM, [src[0], calls_r, replies_w]),
                                 (_JUDGE, [src[1], calls_w, replies_r, verdict_w])):
                pass_fds = list(argv)
                if box is not None:
                    seccomp = _data_fd(_seccomp_filter() or b"")
                    fds.append(seccomp)
                    pass_fds.append(seccomp)
                    head = box.argv(seccomp, limits.disk_bytes)
                else:
                    head = [_python(), "-I", "-c"]
                procs.append(subprocess.Popen(
                    [*head, script, spec, str(parent), *map(str, argv)], cwd=workdir,
                    env=env, stdin=subprocess.DEVNULL,
                    stdout=out if script is _PROGRAM else subprocess.DEVNULL, stderr=err,
                    pass_fds=pass_fds, start_new_session=True))
            for fd in fds[:]:  # the children hold theirs now: EOF comes when they go
                if fd != verdict_r:
                    os.close(fd)
                    fds.remove(fd)
            prog, judge = procs
            timed_out = False
            try:
                judge.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            verdict = None if timed_out else _read_verdict(verdict_r)
            if verdict == "ended":  # the program went away: wait for its exit status
                with contextlib.suppress(subprocess.TimeoutExpired):
                    prog.wait(timeout=max(0.5, limits.timeout_s - (time.monotonic() - t0)))
            elapsed = time.monotonic() - t0
            for p in procs:
                _kill(p)
            if timed_out:
                reason: str | None = "timeout"
            elif verdict == "passed":
                reason = None
            elif verdict is not None and verdict.startswith("failed "):
                reason = verdict.removeprefix("failed ")
            elif verdict == "ended" and prog.returncode is not None:
                reason = _exit_reason(prog.returncode, box is not None, limits.cpu_s)
            else:
                reason = f"the tests did not finish (judge exit status {judge.returncode})"
            return Execution(reason is None, reason, elapsed,
                             _read_head(out, limits.output_chars),
                             _read_tail(err, limits.output_chars),
                             box.isolation if box is not None
                             else "none (--unsafe-host-execution)")
    finally:
        for p in procs:
            if p.returncode is None:
                _kill(p)
        for fd in fds:
            os.close(fd)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def runner(limits: Limits | None = None) -> ProgramRunner:
    """A `ProgramRunner` for task items of kind "program" (`core.suites.tasks.check`). A
    program that could not be started (no temporary file, no file descriptors, no sandbox) is
    not scored, and says why."""

    def run(program: str, tests: str) -> Check:
        try:
            return execute(program, tests, limits).check()
        except (OSError, CodeExecutionUnavailable) as e:
            return Check(None, f"not run: {e}", (f"code execution: a program could not be "
                                                 f"started: {e}",))

    return run
