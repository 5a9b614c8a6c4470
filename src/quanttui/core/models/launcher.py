"""llama-servers that quanttui starts: for the models a config names (headless run, TUI start-up)
and for the GGUF files a user picks in the TUI's model pane, all through `Launcher`.

One path for every start: the fit check first, pinned flags, loopback ports, readiness with
progress, the log tail when a start fails, and `stop_all()` as the one place that stops them.
Servers are spawned on the caller's thread, which must be the main thread (the event loop's) so
that they get the parent-death signal and die with quanttui even when it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from quanttui.config import Config, ModelsConfig
from quanttui.core.models import fit
from quanttui.core.models.binaries import Tool, find_llama_server
from quanttui.core.models.discovery import ModelInfo
from quanttui.core.models.servers import LaunchSpec, ManagedServer, ServerStartError
from quanttui.core.secrets import mask_args

State = Literal["starting", "ready", "failed", "exited", "stopped"]


@dataclass(frozen=True)
class LaunchDefaults:
    """How to start each server (the config's `[models.launch]`)."""

    threads: int = 1
    ctx_size: int = 2048
    parallel: int = 1
    n_gpu_layers: int = 0
    extra_args: tuple[str, ...] = ()
    cpus: tuple[int, ...] = ()  # pin every server to these cores (empty: no pinning)
    pin_cores: bool = False  # give the servers started together disjoint blocks of cores

    def spec(self, model: Path) -> LaunchSpec:
        return LaunchSpec(model=model, threads=self.threads, ctx_size=self.ctx_size,
                          parallel=self.parallel, n_gpu_layers=self.n_gpu_layers,
                          cpu_affinity=self.cpus or None, extra_args=self.extra_args)

    def describe(self) -> str:
        parts = [f"-t {self.threads}", f"-c {self.ctx_size}", f"-np {self.parallel}",
                 f"-ngl {self.n_gpu_layers}", "--fit off"]
        parts += mask_args(self.extra_args)
        if self.pin_cores:
            parts.append("· cores split between the servers started together")
        elif self.cpus:
            parts.append(f"· cores {','.join(map(str, self.cpus))}")
        return " ".join(parts)


def defaults_from(cfg: ModelsConfig) -> LaunchDefaults:
    lc = cfg.launch
    return LaunchDefaults(threads=lc.threads, ctx_size=lc.ctx_size, parallel=lc.parallel,
                          n_gpu_layers=lc.n_gpu_layers, extra_args=tuple(lc.extra_args),
                          cpus=tuple(lc.cpus), pin_cores=cfg.pin_cores)


def specs_from_config(cfg: Config, pin_cores: bool = False) -> list[tuple[str, LaunchSpec]]:
    """Names and launch specs of the config's `[[servers]]` that name a `model` (with the
    server's `api_key`, which the server is started with)."""
    out = []
    for s in cfg.servers:
        if s.model is None:
            continue
        lc = s.launch
        spec = LaunchSpec(model=Path(s.model), api_key=s.api_key) if lc is None else LaunchSpec(
            model=Path(s.model), threads=lc.threads, ctx_size=lc.ctx_size,
            parallel=lc.parallel, n_gpu_layers=lc.n_gpu_layers,
            cpu_affinity=tuple(lc.cpus) or None, extra_args=tuple(lc.extra_args),
            api_key=s.api_key)
        out.append((s.name, spec))
    if pin_cores and out:
        blocks = split_cores(len(out), sorted(os.sched_getaffinity(0)))
        out = [(name, replace(spec, cpu_affinity=block)) for (name, spec), block
               in zip(out, blocks, strict=True)]
    return out


def free_vram() -> int | None:
    """Free GPU memory over all NVIDIA GPUs, or None when unknown (no NVML)."""
    from quanttui.core.hardware import NvmlReader
    from quanttui.core.hardware.reading import NA

    reader = NvmlReader()
    try:
        gpus = reader.sample([]).gpus
    finally:
        reader.close()
    if isinstance(gpus, NA):
        return None
    free = 0
    for g in gpus:
        if isinstance(g.memory_total_bytes, NA) or isinstance(g.memory_used_bytes, NA):
            return None
        free += g.memory_total_bytes - g.memory_used_bytes
    return free


@dataclass(eq=False)
class Launch:
    """One server started here: its state while it loads and after."""

    name: str
    model: Path
    server: ManagedServer
    state: State = "starting"
    elapsed: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


def check_fit(todo: Sequence[tuple[str, LaunchSpec]],
              vram_free: Callable[[], int | None] | None = free_vram) -> fit.FitReport:
    """Will these servers, started together, fit in what is free now (servers already running
    count as used)? Free VRAM is only asked for when layers are offloaded."""
    offload = any(s.n_gpu_layers for _, s in todo)
    vram = vram_free() if offload and vram_free is not None else None
    return fit.check([(s.model, s.ctx_size, s.n_gpu_layers, s.cache_type) for _, s in todo],
                     vram_free=vram)


def split_cores(n: int, cores: Sequence[int]) -> list[tuple[int, ...]]:
    """Disjoint, contiguous blocks of `cores` for `n` servers (the last ones get fewer when
    the cores don't divide evenly). Fewer cores than servers: each gets one, shared in turn."""
    cores = sorted(cores)
    if len(cores) < n:
        return [(cores[i % len(cores)],) for i in range(n)]
    size, extra = divmod(len(cores), n)
    out, start = [], 0
    for i in range(n):
        k = size + (1 if i < extra else 0)
        out.append(tuple(cores[start:start + k]))
        start += k
    return out


def server_name(model: ModelInfo | Path, taken: Collection[str]) -> str:
    """A short, unique column name: the quant ("Q4_K_M") when free, else the file name."""
    if isinstance(model, ModelInfo):
        stem = model.path.name.removesuffix(".gguf")
        candidates = [c for c in (model.quant, stem) if c]
    else:
        stem = model.name.removesuffix(".gguf")
        candidates = [stem]
    for c in candidates:
        if c not in taken:
            return c
    i = 2
    while f"{stem}-{i}" in taken:
        i += 1
    return f"{stem}-{i}"


class Launcher:
    """Starts and stops the servers for models chosen at run time."""

    def __init__(self, defaults: LaunchDefaults | None = None, *,
                 llama_server: str | Path | None = None,
                 vram_free: Callable[[], int | None] | None = None) -> None:
        self.defaults = defaults or LaunchDefaults()
        self._llama_server = llama_server
        self._binary: Tool | None = None
        self._vram_free = vram_free
        self.launches: dict[str, Launch] = {}

    def binary(self) -> Tool:
        """The llama-server to run (raises ToolNotFound, which says how to get one)."""
        if self._binary is None:
            self._binary = find_llama_server(self._llama_server)
        return self._binary

    def running(self) -> list[Launch]:
        """Launches starting or serving; one whose process has since ended turns "exited"."""
        for la in self.launches.values():
            proc = la.server.proc
            if la.state == "ready" and proc is not None and proc.poll() is not None:
                la.state = "exited"
                la.error = (f"{la.name}: llama-server exited with code {proc.returncode} after "
                            f"it had started. Last log lines ({la.server.log_path}):\n"
                            f"{la.server.log_tail()}")
        return [la for la in self.launches.values() if la.state in ("starting", "ready")]

    def by_model(self, model: Path) -> Launch | None:
        """The live launch of this file, if any (a file is started once at a time)."""
        real = model.resolve()
        return next((la for la in self.running() if la.model.resolve() == real), None)

    def plan(self, models: Sequence[ModelInfo], taken: Collection[str]
             ) -> list[tuple[str, LaunchSpec]]:
        """Names and launch specs for starting these models together."""
        names = set(taken) | {la.name for la in self.running()}
        out: list[tuple[str, LaunchSpec]] = []
        for m in models:
            name = server_name(m, names)
            names.add(name)
            out.append((name, self.defaults.spec(m.path)))
        if self.defaults.pin_cores and out:
            cores = self.defaults.cpus or tuple(sorted(os.sched_getaffinity(0)))
            blocks = split_cores(len(out), cores)
            out = [(n, replace(s, cpu_affinity=b)) for (n, s), b in zip(out, blocks, strict=True)]
        return out

    def check_fit(self, todo: Sequence[tuple[str, LaunchSpec]]) -> fit.FitReport:
        return check_fit(todo, self._vram_free)

    def start(self, name: str, spec: LaunchSpec) -> Launch:
        """Spawn one server (returns at once; then `wait_ready`). A failure to spawn comes back
        as a failed launch, not an exception."""
        server = ManagedServer(spec, name=name)
        launch = Launch(name, spec.model, server)
        self.launches[name] = launch
        try:
            server.binary = self.binary()
            server.start()
        except (ServerStartError, OSError) as e:
            launch.state, launch.error = "failed", str(e)
        except Exception as e:  # ToolNotFound and the like: say it on the row
            launch.state, launch.error = "failed", f"{name}: {e}"
        return launch

    async def wait_ready(self, launch: Launch, timeout: float = 300.0,
                         on_progress: Callable[[Launch], None] | None = None) -> bool:
        """Until healthy (True) or failed (False: `launch.error` says why, with the log tail)."""
        if launch.state != "starting":
            return launch.state == "ready"

        def tick(elapsed: float) -> None:
            launch.elapsed = elapsed
            if on_progress is not None:
                on_progress(launch)

        try:
            await launch.server.wait_ready(timeout, on_progress=tick)
        except ServerStartError as e:
            launch.server.stop()
            if launch.state == "starting":  # not stopped by the user while it loaded
                launch.state, launch.error = "failed", str(e)
        else:
            if launch.state == "starting":  # not stopped meanwhile
                launch.state = "ready"
        launch.notes = list(launch.server.notes)
        return launch.state == "ready"

    async def start_together(self, todo: Sequence[tuple[str, LaunchSpec]], *, force: bool = False,
                             say: Callable[[str], object] = lambda _: None) -> list[Launch]:
        """Start these servers and wait until all serve (the config's servers, before a run).
        Raises ServerStartError, naming each server that failed and why, after stopping them
        all; `say` gets progress and fit warnings."""
        report = self.check_fit(todo)
        for w in report.warnings:
            say(f"warning: {w}")
        if report.refuse:
            if not force:
                raise ServerStartError(f"{report.refuse} (--force starts them anyway)")
            say(f"warning: {report.refuse} (starting anyway: --force)")
        launches = []
        try:
            for name, spec in todo:
                la = self.start(name, spec)
                launches.append(la)
                if la.state == "failed":
                    break
                cores = (f", cores {','.join(map(str, spec.cpu_affinity))}"
                         if spec.cpu_affinity else "")
                say(f"starting {name}: {spec.model.name} on port {la.server.port}, "
                    f"{spec.threads} thread(s){cores}")
            if all(la.state != "failed" for la in launches):
                await asyncio.gather(*(self.wait_ready(la) for la in launches))
        except BaseException:
            for la in launches:
                self.stop(la.name)
            raise
        failed = [la for la in launches if la.state != "ready"]
        if failed:
            for la in launches:
                self.stop(la.name)
            raise ServerStartError("\n".join(la.error or f"{la.name}: did not start"
                                             for la in failed))
        return launches

    def stop(self, name: str) -> None:
        launch = self.launches.get(name)
        if launch is not None and launch.state in ("starting", "ready"):
            launch.state = "stopped"
            launch.server.stop()

    def kill_all(self) -> None:
        """SIGKILL every server started here, at once (quanttui is leaving and can't wait)."""
        for launch in self.launches.values():
            proc = launch.server.proc
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self.launches):
            self.stop(name)
