"""llama-server processes that quanttui starts, waits for, and always stops.

Flags are pinned and stated so two servers are comparable: threads, context, slots, GPU layers
and `--fit off` (otherwise llama-server may pick a different context or offload per model).
Each server runs in its own process group with a parent-death signal, so it dies with quanttui
even when quanttui is killed. Its log goes to a file in the user cache dir whose tail explains a
failed start; the file is removed when quanttui stops a server that ran well, and kept (and named)
when the server failed or ended on its own, for LOG_KEEP_DAYS. An API key (or a Hugging Face
token) reaches the server in its environment (`LLAMA_API_KEY`, `HF_TOKEN`), never on its command
line, also when given as `--api-key K` among the extra arguments (`core.secrets.split_secrets`);
the command line is logged masked, and a kept log has those values masked too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from quanttui.core.dirs import cache_dir
from quanttui.core.models.binaries import Tool, find_llama_server
from quanttui.core.models.ports import free_port
from quanttui.core.models.repack import needs_no_repack, remember_no_repack
from quanttui.core.secrets import MASK, mask_args, split_secrets
from quanttui.core.tls import tls_verify


class ServerStartError(Exception):
    """llama-server exited or never became healthy; the message ends with its log tail."""


# Binaries whose repacked (AMX) CPU kernels died of SIGILL here: launched with --no-repack from
# then on, so every server of a comparison runs the same kernels. Seen with b11434 on Xeons
# that advertise AMX: `tilezero` runs before any tile configuration and traps. Also remembered
# in the user cache dir, per binary and CPU (core.models.repack), for later runs.
_NO_REPACK: set[Path] = set()


LOG_VERBOSITY = 4
_VERBOSITY = {"-lv", "--verbosity", "--log-verbosity", "-v", "--verbose", "--log-verbose",
              "--log-disable"}

_FLASH = {"-fa", "--flash-attn"}
# KV cache types llama-server b11434 takes for -ctk/-ctv (common/arg.cpp kv_cache_types)
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def quantized_cache(cache_type: str | None) -> bool:
    """A quantized KV cache type (q8_0, q4_0, ...): its V cache needs flash attention."""
    return cache_type is not None and cache_type not in ("f32", "f16", "bf16")


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
    api_key: str | None = field(default=None, repr=False)  # given to the server, for clients
    # KV cache type for keys and values (-ctk/-ctv); None: the server's default, f16
    cache_type: str | None = None

    @property
    def client_key(self) -> str | None:
        """The key a client must send: `api_key`, else the first of `--api-key K1,K2` or of
        the `--api-key-file` among the extra arguments."""
        if self.api_key:
            return self.api_key
        args = list(self.extra_args)
        for i, arg in enumerate(args):
            flag, eq, value = arg.partition("=")
            if not eq and i + 1 < len(args):
                value = args[i + 1]
            if flag == "--api-key" and value:
                return value.split(",")[0]
            if flag == "--api-key-file" and value:
                with contextlib.suppress(OSError):
                    keys = Path(value).read_text().split()
                    if keys:
                        return keys[0]
        return None

    def args(self, binary: Path, port: int) -> list[str]:
        extra = list(self.extra_args)
        if not {"-nr", "--no-repack"} & set(extra) and (
                binary in _NO_REPACK or needs_no_repack(binary)):
            _NO_REPACK.add(binary)
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
        if not _VERBOSITY & {x.partition("=")[0] for x in extra}:
            # -lv 4: b11434 prints its buffer sizes (model, repack, KV, compute, output) only
            # from this level (core.models.buffers); also ~20 lines per request.
            a += ["-lv", str(LOG_VERBOSITY)]
        if self.alias:
            a += ["-a", self.alias]
        if self.cache_type is not None:
            a += ["-ctk", self.cache_type, "-ctv", self.cache_type]
            if quantized_cache(self.cache_type) and not _FLASH & {
                    x.partition("=")[0] for x in extra}:
                a += ["-fa", "on"]  # a quantized V cache needs flash attention
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


LOG_KEEP_DAYS = 7


def logs_dir() -> Path:
    """Where server logs go by default: `<user cache dir>/logs`."""
    return cache_dir() / "logs"


def _prune_logs(folder: Path) -> None:
    """Remove kept logs older than LOG_KEEP_DAYS (those of a quanttui killed outright too)."""
    cutoff = time.time() - LOG_KEEP_DAYS * 86400
    with contextlib.suppress(OSError):
        for old in folder.glob("llama-server-*.log"):
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < cutoff:
                    old.unlink()


@dataclass
class ManagedServer:
    spec: LaunchSpec
    binary: Tool | None = None
    log_dir: Path | None = None  # None: logs_dir()
    name: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    spawned_args: list[str] = field(default_factory=list)  # as run, secrets masked
    keep_log: bool = False  # set on a failure: stop() then leaves the log for the user
    _stopped: bool = field(default=False, init=False, repr=False)
    _secrets: tuple[str, ...] = field(default=(), init=False, repr=False)  # masked in its log

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
        if self.spec.model.is_dir():
            raise ServerStartError(f"{self.label}: {self.spec.model} is a directory, not a "
                                   "GGUF file")
        if not self.spec.model.is_file():
            raise ServerStartError(f"{self.label}: model file not found: {self.spec.model}")
        binary = self.binary or find_llama_server()
        self.binary = binary
        self.port = self.spec.port or free_port()
        log_dir = self.log_dir or logs_dir()
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ServerStartError(f"{self.label}: cannot create the log folder {log_dir}: "
                                   f"{e.strerror or e}") from e
        if self.log_dir is None:
            _prune_logs(log_dir)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = re.sub(r"[^\w.-]", "_", self.label)
        self.log_path = log_dir / f"llama-server-{self.port}-{stamp}-{safe}.log"
        self._stopped = False
        self._spawn()

    def _spawn(self) -> None:
        assert self.binary is not None and self.log_path is not None
        args, secret_env = split_secrets(self.args)
        self.spawned_args = mask_args(args)
        env = dict(os.environ)
        # the key the client sends; an inherited LLAMA_API_KEY would be one it doesn't know
        env.pop("LLAMA_API_KEY", None)
        keys = [k for k in (self.spec.api_key, secret_env.pop("LLAMA_API_KEY", None)) if k]
        if keys:
            env["LLAMA_API_KEY"] = ",".join(keys)
        env.update(secret_env)
        self._secrets = tuple({v for k in keys for v in k.split(",") if v}
                              | set(secret_env.values()))
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(self.spawned_args) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: we stop it and its children
                preexec_fn=_pdeathsig_and_affinity(self.spec.cpu_affinity),
            )

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_bytes()[-16384:].decode("utf-8", "replace")
        return self._masked("\n".join(text.splitlines()[-lines:]))

    def _masked(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _mask_log(self) -> None:
        """Rewrite a kept log with the server's secrets masked (should it have printed one),
        line by line: logs of long runs are large."""
        if not self._secrets or self.log_path is None:
            return
        masked = self.log_path.with_name(self.log_path.name + ".masking")
        with contextlib.suppress(OSError):
            with self.log_path.open("rb") as src, masked.open("wb") as dst:
                for line in src:
                    dst.write(self._masked(line.decode("utf-8", "surrogateescape")).encode(
                        "utf-8", "surrogateescape"))
            masked.replace(self.log_path)
        with contextlib.suppress(OSError):
            masked.unlink()

    def _check_alive(self) -> None:
        assert self.proc is not None and self.binary is not None
        code = self.proc.poll()
        if code == -signal.SIGILL and not {"--no-repack", "-nr"} & set(self.spawned_args):
            _NO_REPACK.add(self.binary.path)
            remember_no_repack(self.binary.path, "SIGILL in the repacked CPU kernels")
            self.notes.append(
                "llama-server died of an illegal instruction in its repacked CPU kernels "
                "(AMX on this CPU); restarted with --no-repack")
            self._spawn()
            return
        if code is not None:
            self.keep_log = True
            raise ServerStartError(
                f"{self.label}: llama-server exited with code {code} while starting "
                f"({self.spec.model}). Last log lines ({self.log_path}):\n{self.log_tail()}"
            )

    def _timeout_error(self, timeout: float) -> ServerStartError:
        self.keep_log = True
        return ServerStartError(
            f"{self.label}: llama-server not healthy after {timeout:g} s at {self.url}. "
            f"Last log lines ({self.log_path}):\n{self.log_tail()}"
        )

    def wait_ready_sync(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, verify=tls_verify(self.url)) as http:
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
        async with httpx.AsyncClient(timeout=2.0, verify=tls_verify(self.url)) as http:
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
                    # bounded whole: httpx's timeout bounds each read, not the reply
                    health = await asyncio.wait_for(http.get(self.url + "/health"), 2.0)
                    if health.status_code == 200:
                        return
                elapsed = time.monotonic() - start
                if on_progress is not None:
                    on_progress(elapsed)
                if elapsed > timeout:
                    raise self._timeout_error(timeout)
                await asyncio.sleep(0.1)

    @property
    def exited(self) -> bool:
        """Whether the process ended without quanttui stopping it."""
        return self.proc is not None and not self._stopped and self.proc.poll() is not None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace` seconds. Idempotent. Removes the log
        of a server that was still running, unless `keep_log`; one that had ended on its own
        keeps it."""
        proc = self.proc
        if proc is None or self._stopped:
            return proc.returncode if proc is not None else None
        self._stopped = True
        if proc.poll() is not None:
            self.keep_log = True
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)
        if not self.keep_log and self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()
        elif self.keep_log:
            self._mask_log()
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
