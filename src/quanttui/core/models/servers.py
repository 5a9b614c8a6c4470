"""llama-server processes that quanttui starts, waits for, and always stops.

Flags are pinned and stated so two servers are comparable: threads, context, slots, GPU layers
and `--fit off` (otherwise llama-server may pick a different context or offload per model).
Each server runs in its own process group with a parent-death signal, so it dies with quanttui
even when quanttui is killed; its log goes to a file whose tail explains a failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from quanttui.core.models.binaries import Tool, find_llama_server
from quanttui.core.models.ports import free_port


class ServerStartError(Exception):
    """llama-server exited or never became healthy; the message ends with its log tail."""


# Binaries whose repacked (AMX) CPU kernels died of SIGILL here: launched with --no-repack from
# then on, so every server of a comparison runs the same kernels. Seen with b11434 on Xeons
# that advertise AMX: `tilezero` runs before any tile configuration and traps.
_NO_REPACK: set[Path] = set()


@dataclass(frozen=True)
class LaunchSpec:
    model: Path
    threads: int = 1
    ctx_size: int = 2048
    parallel: int = 1
    n_gpu_layers: int = 0
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free loopback port
    metrics: bool = True
    cpu_affinity: tuple[int, ...] | None = None  # pin to these cores (Linux)
    alias: str | None = None
    extra_args: tuple[str, ...] = ()

    def args(self, binary: Path, port: int) -> list[str]:
        extra = list(self.extra_args)
        if binary in _NO_REPACK and not {"-nr", "--no-repack"} & set(extra):
            extra.append("--no-repack")
        a = [
            str(binary),
            "-m", str(self.model),
            "--host", self.host,
            "--port", str(port),
            "-t", str(self.threads),
            "-tb", str(self.threads),
            "-c", str(self.ctx_size),
            "-np", str(self.parallel),
            "-ngl", str(self.n_gpu_layers),
            "--fit", "off",
        ]
        if self.metrics:
            a.append("--metrics")
        if self.alias:
            a += ["-a", self.alias]
        return a + extra


def _pdeathsig_and_affinity(affinity: tuple[int, ...] | None) -> Callable[[], None]:
    # The parent-death signal fires when the *thread* that forked exits, so it is only set when
    # launching from the main thread; a worker thread's end would otherwise kill the server.
    deathsig = threading.current_thread() is threading.main_thread()

    def pre() -> None:
        if sys.platform.startswith("linux"):
            if deathsig:
                # PR_SET_PDEATHSIG=1: SIGKILL when quanttui dies, even by SIGKILL. Not SIGTERM:
                # b11434 can hang in its own clean-up after a second SIGTERM and live on.
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(1, signal.SIGKILL, 0, 0, 0)
            if affinity:
                os.sched_setaffinity(0, affinity)

    return pre


@dataclass
class ManagedServer:
    spec: LaunchSpec
    binary: Tool | None = None
    log_dir: Path | None = None
    name: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    spawned_args: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        assert self.binary is not None
        return self.spec.args(self.binary.path, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.spec.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def label(self) -> str:
        return self.name or self.spec.model.name

    def start(self) -> None:
        """Spawn the process (returns at once; see wait_ready)."""
        if not self.spec.model.is_file():
            raise ServerStartError(f"{self.label}: model file not found: {self.spec.model}")
        binary = self.binary or find_llama_server()
        self.binary = binary
        self.port = self.spec.port or free_port()
        log_dir = self.log_dir or Path(tempfile.mkdtemp(prefix="quanttui-logs-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        self._spawn()

    def _spawn(self) -> None:
        assert self.binary is not None and self.log_path is not None
        args = self.spawned_args = self.args
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(args) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: we stop it and its children
                preexec_fn=_pdeathsig_and_affinity(self.spec.cpu_affinity),
            )

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_bytes()[-16384:].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self) -> None:
        assert self.proc is not None and self.binary is not None
        code = self.proc.poll()
        if code == -signal.SIGILL and not {"--no-repack", "-nr"} & set(self.spawned_args):
            _NO_REPACK.add(self.binary.path)
            self.notes.append(
                "llama-server died of an illegal instruction in its repacked CPU kernels "
                "(AMX on this CPU); restarted with --no-repack")
            self._spawn()
            return
        if code is not None:
            raise ServerStartError(
                f"{self.label}: llama-server exited with code {code} while starting "
                f"({self.spec.model}). Last log lines ({self.log_path}):\n{self.log_tail()}"
            )

    def _timeout_error(self, timeout: float) -> ServerStartError:
        return ServerStartError(
            f"{self.label}: llama-server not healthy after {timeout:g} s at {self.url}. "
            f"Last log lines ({self.log_path}):\n{self.log_tail()}"
        )

    def wait_ready_sync(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url + "/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise self._timeout_error(timeout)
                time.sleep(0.1)

    async def wait_ready(
        self, timeout: float = 120.0, on_progress: Callable[[float], None] | None = None
    ) -> None:
        """Poll /health (503 while loading) until 200, failing fast if the process exits."""
        start = time.monotonic()
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.url + "/health")).status_code == 200:
                        return
                elapsed = time.monotonic() - start
                if on_progress is not None:
                    on_progress(elapsed)
                if elapsed > timeout:
                    raise self._timeout_error(timeout)
                await asyncio.sleep(0.1)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace` seconds. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)
        return proc.returncode

    def __enter__(self) -> ManagedServer:
        self.start()
        try:
            self.wait_ready_sync()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
