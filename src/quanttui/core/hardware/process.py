"""One llama-server process: find it (by the port it listens on, or a PID) and sample it (psutil,
and /proc/PID/smaps on Linux).

Everything here blocks (it reads /proc), so it runs on the poller's thread. Nothing raises: a
figure that can't be read is `NA` with the reason the user should see.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar
from urllib.parse import urlsplit

import psutil

from quanttui.core.hardware.reading import NA, Reading, describe_error

T = TypeVar("T")

REMOTE = "remote server"
OTHER_USER = "process belongs to another user"
EXITED = "process exited"
FIRST_TICK = "needs two samples (first tick)"

GpuLayers: TypeAlias = int | Literal["auto", "all"]

# A port lookup scans every process's sockets; while no server is found, retry at most this often.
LOOKUP_RETRY_S = 2.0
# Private memory (RssAnon in /proc/PID/status, a counter the kernel keeps) is read every tick.
# USS, PSS and the model file's pages need the walk of every mapping in /proc/PID/smaps, redone
# this often, the last figures kept in between: they change slowly (model pages are mapped at
# load and paged in by the warm-up; USS and PSS move when another process maps the same file).
# The TUI samples every 10 s during a run: a walk at each of those cost it 0.25% of a core.
MAPPINGS_EVERY_S = 30.0
# The walk costs kernel time in proportion to the resident pages (measured 10-40 ms per GB), on
# our thread, so it is put off until it has cost at most this share of one core: a 370 MB demo
# server's walk (~15 ms) every 30 s, a 70 GB model's every ten minutes or so.
MEMORY_READ_SHARE = 0.002
NOT_REPORTED = "not reported on this platform"


# ---------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True, slots=True)
class ServerFlags:
    """llama-server launch flags read from its command line.

    `None` means the flag is not on the command line, so the server's default (or an
    `LLAMA_ARG_*` environment variable) applies: it does not mean 0. `problems` lists values
    that could not be parsed.
    """

    model: str | None = None
    threads: int | None = None
    threads_batch: int | None = None
    ctx_size: int | None = None
    n_gpu_layers: GpuLayers | None = None
    parallel: int | None = None
    problems: tuple[str, ...] = ()


_FLAG_FIELDS: dict[str, str] = {
    "-m": "model",
    "--model": "model",
    "-t": "threads",
    "--threads": "threads",
    "-tb": "threads_batch",
    "--threads-batch": "threads_batch",
    "-c": "ctx_size",
    "--ctx-size": "ctx_size",
    "-ngl": "n_gpu_layers",
    "--n-gpu-layers": "n_gpu_layers",
    "--gpu-layers": "n_gpu_layers",
    "-np": "parallel",
    "--parallel": "parallel",
}


def _gpu_layers(text: str) -> GpuLayers:
    word = text.strip().lower()
    if word in ("auto", "all"):
        return "auto" if word == "auto" else "all"
    n = int(word)
    # llama.cpp's own encoding (common/common.h): -1 means auto, -2 and below mean all.
    if n == -1:
        return "auto"
    return "all" if n <= -2 else n


def parse_server_flags(argv: Sequence[str]) -> ServerFlags:
    """Read `-m -t -tb -c -ngl -np` (and their long forms, also as `--flag=value`) from argv.

    A repeated flag keeps its last value, as llama.cpp's parser does.
    """
    values: dict[str, str | int | None] = {}
    problems: list[str] = []
    i = 1 if argv else 0  # argv[0] is the program
    while i < len(argv):
        token = argv[i]
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        target = _FLAG_FIELDS.get(name)
        if target is None:
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        elif i + 1 < len(argv):
            raw = argv[i + 1]
            i += 2
        else:
            problems.append(f"{name} has no value")
            i += 1
            continue
        try:
            if target == "model":
                values[target] = raw
            elif target == "n_gpu_layers":
                values[target] = _gpu_layers(raw)
            else:
                values[target] = int(raw)
        except ValueError:
            problems.append(f"{name} {raw!r} is not a number")
    return ServerFlags(
        model=_opt(values.get("model"), str),
        threads=_opt(values.get("threads"), int),
        threads_batch=_opt(values.get("threads_batch"), int),
        ctx_size=_opt(values.get("ctx_size"), int),
        n_gpu_layers=_layers(values.get("n_gpu_layers")),
        parallel=_opt(values.get("parallel"), int),
        problems=tuple(problems),
    )


def _opt(value: object, kind: type[T]) -> T | None:
    return value if isinstance(value, kind) else None


def _layers(value: object) -> GpuLayers | None:
    if isinstance(value, int):
        return value
    if value == "auto":
        return "auto"
    return "all" if value == "all" else None


# ---------------------------------------------------------------------------------------------
# Where the server is


def url_host_port(url: str) -> tuple[str, int]:
    """Host and port of a server URL; without a port, the scheme's default (80 / 443)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port


def _own_addresses() -> set[str]:
    addrs: set[str] = set()
    try:
        for entries in psutil.net_if_addrs().values():
            for entry in entries:
                if entry.family in (socket.AF_INET, socket.AF_INET6):
                    addrs.add(_norm_ip(entry.address))
    except Exception:  # no interface list: fall back on loopback/hostname checks alone
        pass
    return addrs


def _norm_ip(text: str) -> str:
    text = text.split("%", 1)[0]  # drop an IPv6 zone ("fe80::1%eth0")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def local_addresses(host: str) -> Reading[frozenset[str]]:
    """The IPs `host` stands for on this machine, or `NA("remote server")` when it is elsewhere.

    Local means loopback, `localhost`, the unspecified address, this machine's own name, or one
    of its interface addresses. May block on DNS: call it from the poller thread, once per target.
    """
    name = host.strip("[]").lower()
    if name in ("", "localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return frozenset({"127.0.0.1", "::1"})
    try:
        ips = {_norm_ip(name)} if _is_ip(name) else _resolve(name)
    except OSError as exc:
        return NA(f"{REMOTE} (cannot resolve {host}: {exc})")
    own = _own_addresses()
    for ip in ips:
        addr = ipaddress.ip_address(ip)
        if not (addr.is_loopback or addr.is_unspecified or ip in own):
            return NA(f"{REMOTE} ({host})")
    return frozenset(ips)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _resolve(name: str) -> set[str]:
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return {_norm_ip(str(info[4][0])) for info in infos}


def _listener_matches(ip: str, wanted: frozenset[str] | None) -> bool:
    if not wanted or not wanted.isdisjoint({"0.0.0.0", "::"}):
        return True  # no address given, or the URL names "any address", which means this host
    ip = _norm_ip(ip)
    if ip in ("0.0.0.0", "::"):  # listening on every address, so on the one the URL names
        return True
    return ip in wanted


def find_listening_pid(port: int, addresses: frozenset[str] | None = None) -> Reading[int]:
    """PID of the process listening on TCP `port` (on one of `addresses`, if given)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        # macOS and some hardened kernels: only per-process lookups are allowed.
        return _scan_processes(port, addresses)
    except Exception as exc:
        return NA(f"cannot list sockets: {describe_error(exc)}")
    pids: set[int | None] = {
        c.pid
        for c in conns
        if c.status == psutil.CONN_LISTEN
        and c.laddr
        and c.laddr.port == port
        and _listener_matches(c.laddr.ip, addresses)
    }
    return _pick(port, pids, hidden=0)


def _scan_processes(port: int, addresses: frozenset[str] | None) -> Reading[int]:
    pids: set[int | None] = set()
    hidden = 0
    for proc in psutil.process_iter():
        try:
            conns = _proc_connections(proc)
        except psutil.AccessDenied:
            hidden += 1
            continue
        except psutil.NoSuchProcess:
            continue
        except Exception:
            continue
        for c in conns:
            if (
                c.status == psutil.CONN_LISTEN
                and c.laddr
                and c.laddr.port == port
                and _listener_matches(c.laddr.ip, addresses)
            ):
                pids.add(proc.pid)
    return _pick(port, pids, hidden)


def _proc_connections(proc: psutil.Process) -> list[Any]:
    # psutil 6 renamed connections() to net_connections(); pyproject allows 5.9.
    fn = getattr(proc, "net_connections", None) or proc.connections
    return list(fn(kind="tcp"))


def _pick(port: int, pids: set[int | None], hidden: int) -> Reading[int]:
    known = {p for p in pids if p is not None}
    if len(known) == 1:
        return next(iter(known))
    if len(known) > 1:
        listed = ", ".join(str(p) for p in sorted(known))
        return NA(f"several processes listen on port {port} (PIDs {listed})")
    if None in pids:
        # The socket is visible but its owner isn't: another user, or another PID namespace.
        return NA(f"{OTHER_USER} (port {port}; or it runs outside this PID namespace)")
    if hidden:
        return NA(f"nothing visible listens on port {port}; {OTHER_USER}? ({hidden} not readable)")
    return NA(f"nothing listens on port {port}")


# ---------------------------------------------------------------------------------------------
# Sampling


@dataclass(frozen=True, slots=True)
class ProcessTarget:
    """A server to watch: its URL (the PID is found from the port) or a PID given directly.

    A PID, when given, wins over the URL.
    """

    name: str
    url: str | None = None
    pid: int | None = None


_NOT_SAMPLED = NA("GPU not sampled")
_NOT_READ = NA("not sampled")


@dataclass(frozen=True, slots=True)
class ModelPages:
    """The model's GGUF file(s) as one server maps them (its `.gguf` entries in /proc/PID/smaps).

    `resident_bytes` are the file's pages resident in RAM and mapped by this process: the page
    cache holds them once however many processes map the file, and `shared_bytes` of them are
    also mapped by another process. `file_bytes` is the size on disk of the mapped files.
    """

    resident_bytes: int
    shared: bool  # shared_bytes > 0
    shared_bytes: Reading[int]
    file_bytes: Reading[int]
    paths: tuple[str, ...]
    files: tuple[tuple[str, int], ...]  # (device, inode) as smaps shows them: one file, one key


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One tick of one server process.

    `cpu_percent` is over the time since the previous tick, 100 = one full core (it can exceed
    100). Memory (definitions in docs/metrics.md): `private_bytes` is the process's anonymous
    memory (KV cache, compute buffers, repacked or --no-mmap weights); `model` the model file's
    resident mapped pages; RSS counts both (and libraries). USS leaves out every page another
    process maps too, so it drops when another server maps the same model file; PSS splits
    those pages between the processes. `model_shared_with` names the other watched servers that
    map the same model file (set by the poller).
    """

    name: str
    pid: Reading[int]
    rss_bytes: Reading[int]
    uss_bytes: Reading[int]
    pss_bytes: Reading[int]
    cpu_percent: Reading[float]
    num_threads: Reading[int]
    cpu_affinity: Reading[tuple[int, ...]]
    flags: Reading[ServerFlags]
    vram_bytes: Reading[int] = _NOT_SAMPLED
    private_bytes: Reading[int] = _NOT_READ
    model: Reading[ModelPages] = _NOT_READ
    model_shared_with: tuple[str, ...] = ()

    @classmethod
    def unavailable(cls, name: str, reason: str, pid: Reading[int] | None = None) -> ProcessSample:
        na = NA(reason)
        return cls(name, na if pid is None else pid, na, na, na, na, na, na, na, na, na, na)


# ---------------------------------------------------------------------------------------------
# /proc/PID/smaps and smaps_rollup (Linux)

_SMAPS_KEYS = frozenset({"Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                         "Private_Dirty", "Private_Hugetlb", "Anonymous"})


@dataclass(frozen=True, slots=True)
class SmapsTotals:
    """Sums of smaps fields, in bytes (smaps_rollup, or all the mappings of smaps)."""

    rss: int = 0
    pss: int = 0
    shared: int = 0  # Shared_Clean + Shared_Dirty: pages another process maps too
    uss: int = 0  # Private_Clean + Private_Dirty + Private_Hugetlb, as psutil's USS
    anonymous: int = 0


def _add(t: dict[str, int], key: str, kb: int) -> None:
    t[key] = t.get(key, 0) + kb * 1024


def _totals(t: dict[str, int]) -> SmapsTotals:
    return SmapsTotals(
        rss=t.get("Rss", 0), pss=t.get("Pss", 0),
        shared=t.get("Shared_Clean", 0) + t.get("Shared_Dirty", 0),
        uss=t.get("Private_Clean", 0) + t.get("Private_Dirty", 0) + t.get("Private_Hugetlb", 0),
        anonymous=t.get("Anonymous", 0))


def parse_smaps(text: str, model_name: str | None = None
                ) -> tuple[SmapsTotals, dict[tuple[str, int], tuple[str, SmapsTotals]]]:
    """Totals of /proc/PID/smaps (or smaps_rollup), and per model file: (device, inode) ->
    (path, sums of its mappings).

    A model file is a mapped file whose name ends in `.gguf`, or is `model_name` (the basename
    of the server's `-m`).
    """
    total: dict[str, int] = {}
    files: dict[tuple[str, int], tuple[str, dict[str, int]]] = {}
    current: dict[str, int] | None = None  # the sums of the model file being read, if any
    for line in text.splitlines():
        key, colon, rest = line.partition(":")
        if colon and " " not in key:  # "Rss:   1234 kB"
            if key in _SMAPS_KEYS:
                kb = int(rest.split()[0])
                _add(total, key, kb)
                if current is not None:
                    _add(current, key, kb)
            continue
        # A mapping's header: "start-end perms offset dev inode [path]"
        fields = line.split(maxsplit=5)
        current = None
        if len(fields) < 6:
            continue
        path = fields[5].removesuffix(" (deleted)")
        name = path.rsplit("/", 1)[-1]
        if name.lower().endswith(".gguf") or (model_name is not None and name == model_name):
            current = files.setdefault((fields[3], int(fields[4])), (path, {}))[1]
    return _totals(total), {i: (p, _totals(t)) for i, (p, t) in files.items()}


def _status_figures(pid: int) -> tuple[int | None, int | None, int | None]:
    """(VmRSS, RssAnon in bytes, thread count) from /proc/PID/status: counters, so one cheap
    read, readable for any user's process; None for what it does not say (no /proc; no RssAnon
    before Linux 4.5; no memory lines once the process has let go of its memory)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None, None, None
    rss = anon = threads = None
    for line in text.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith(b"RssAnon:"):
            anon = int(line.split()[1]) * 1024
        elif line.startswith(b"Threads:"):
            threads = int(line.split()[1])
    return rss, anon, threads


def _proc_text(pid: int, name: str) -> Reading[str]:
    """/proc/PID/<name>; NoSuchProcess when the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", encoding="ascii", errors="replace") as f:
            text = f.read()
    except PermissionError:
        return NA(OTHER_USER)
    except (FileNotFoundError, ProcessLookupError):
        if os.path.exists(f"/proc/{pid}"):
            return NA(NOT_REPORTED)  # a /proc without this file (an old or odd kernel)
        if os.path.isdir("/proc/self"):
            raise psutil.NoSuchProcess(pid) from None
        return NA(NOT_REPORTED)  # no /proc: not Linux
    except OSError as exc:
        return NA(describe_error(exc))
    if "Rss:" not in text:
        return NA(EXITED)  # an exiting process has no address space left
    return text


_Figures: TypeAlias = tuple[Reading[int], Reading[int], Reading[int]]  # private, USS, PSS


def _figures(totals: Reading[SmapsTotals]) -> _Figures:
    if isinstance(totals, NA):
        return totals, totals, totals
    return totals.anonymous, totals.uss, totals.pss


def _model_pages(files: dict[tuple[str, int], tuple[str, SmapsTotals]]) -> Reading[ModelPages]:
    if not files:
        return NA("no model file mapped (--no-mmap? the weights are then in private memory)")
    total = 0
    size: Reading[int] | None = None
    for (_, inode), (path, _) in files.items():
        try:
            st = os.stat(path)
        except OSError:
            size = NA("model file not readable from here")
            break
        if st.st_ino != inode:  # (st_dev can differ from smaps' device, on btrfs)
            size = NA("model file replaced on disk since the server mapped it")
            break
        total += st.st_size
    shared = sum(t.shared for _, t in files.values())
    return ModelPages(
        resident_bytes=sum(t.rss for _, t in files.values()),
        shared=shared > 0,
        shared_bytes=shared,
        file_bytes=total if size is None else size,
        paths=tuple(p for p, _ in files.values()),
        files=tuple(files),
    )


def _read(fn: Callable[[], T]) -> Reading[T]:
    """One figure; NoSuchProcess propagates so the caller can drop the whole process."""
    try:
        return fn()
    except psutil.NoSuchProcess:
        raise
    except psutil.AccessDenied:
        return NA(OTHER_USER)
    except (AttributeError, NotImplementedError):
        return NA("not supported on this platform")
    except Exception as exc:
        return NA(describe_error(exc))


class ProcessSampler:
    """Samples one target, keeping its `psutil.Process` between ticks.

    The cached object keeps `cpu_percent`'s previous reading, so each tick's CPU % covers exactly
    the interval since the last tick, and it avoids re-scanning sockets every tick. `cpu_clock`
    measures what reading the memory figures costs.
    """

    def __init__(self, target: ProcessTarget, clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.target = target
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._proc: psutil.Process | None = None
        self._flags: Reading[ServerFlags] | None = None
        self._primed = False
        self._ever_attached = False
        self._addresses: Reading[frozenset[str]] | None = None
        self._port: int | None = None
        self._next_lookup = 0.0
        self._last_lookup: NA = NA("not looked up yet")
        # The last memory figures read: (pid, (private, USS, PSS), model pages).
        self._memory_read: tuple[int, _Figures, Reading[ModelPages]] | None = None
        self._next_walk = 0.0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def sample(self) -> ProcessSample:
        try:
            proc = self._attach()
            if isinstance(proc, NA):
                return ProcessSample.unavailable(self.target.name, proc.reason)
            return self._sample(proc)
        except psutil.NoSuchProcess:
            self._detach()
            return ProcessSample.unavailable(self.target.name, EXITED)
        except Exception as exc:  # never raise into the poller
            return ProcessSample.unavailable(self.target.name, describe_error(exc))

    def _detach(self) -> None:
        self._proc = None
        self._flags = None
        self._primed = False

    def _attach(self) -> Reading[psutil.Process]:
        if self._proc is not None:
            if self._proc.is_running():  # also catches a reused PID (create time differs)
                return self._proc
            self._detach()
            if self.target.pid is not None:
                return NA(EXITED)
        if self.target.pid is not None:
            if self._ever_attached:
                return NA(EXITED)  # never re-attach: the PID may now belong to something else
            try:
                self._proc = psutil.Process(self.target.pid)
            except psutil.NoSuchProcess:
                return NA(f"no process with PID {self.target.pid}")
            except psutil.AccessDenied:
                return NA(OTHER_USER)
            self._ever_attached = True
            return self._proc
        if self.target.url is None:
            return NA("no URL or PID given")
        return self._attach_by_port(self.target.url)

    def _attach_by_port(self, url: str) -> Reading[psutil.Process]:
        if self._addresses is None:
            host, self._port = url_host_port(url)
            self._addresses = local_addresses(host)
        if isinstance(self._addresses, NA):
            return self._addresses
        assert self._port is not None
        now = self._clock()
        if now < self._next_lookup:
            return self._last_lookup
        pid = find_listening_pid(self._port, self._addresses)
        if isinstance(pid, NA):
            self._next_lookup = now + LOOKUP_RETRY_S
            gone = self._ever_attached and pid.reason.startswith("nothing listens")
            self._last_lookup = NA(f"{EXITED} ({pid.reason})") if gone else pid
            return self._last_lookup
        try:
            self._proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return NA(EXITED)
        except psutil.AccessDenied:
            return NA(OTHER_USER)
        self._ever_attached = True
        return self._proc

    def _sample(self, proc: psutil.Process) -> ProcessSample:
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                # Dead but not yet reaped by its parent (e.g. our own launcher): its figures
                # read as zeros, which must not show up as a real 0 B RSS.
                raise psutil.NoSuchProcess(proc.pid)
            status_rss, anon, n_threads = _status_figures(proc.pid)
            # VmRSS is the figure psutil reads from /proc/PID/statm: one read fewer per tick.
            rss = status_rss if status_rss is not None else _read(
                lambda: int(proc.memory_info().rss))
            if self._flags is None:
                # The command line doesn't change: read it once per process.
                self._flags = _read(lambda: parse_server_flags(proc.cmdline()))
            private, uss, pss, model = self._memory(proc)
            if anon is not None:
                private = anon  # the same figure as the walk's Anonymous, fresh at every tick
            cpu = _read(lambda: float(proc.cpu_percent(interval=None)))
            if not isinstance(cpu, NA) and not self._primed:
                # psutil's first call has no previous reading to compare with and returns 0.0.
                self._primed = True
                cpu = NA(FIRST_TICK)
            threads = n_threads if n_threads is not None else _read(proc.num_threads)
            affinity = _read(lambda: tuple(sorted(proc.cpu_affinity() or ())))
        return ProcessSample(
            name=self.target.name,
            pid=proc.pid,
            rss_bytes=rss,
            uss_bytes=uss,
            pss_bytes=pss,
            cpu_percent=cpu,
            num_threads=threads,
            cpu_affinity=affinity,
            flags=self._flags,
            private_bytes=private,
            model=model,
        )

    def _memory(self, proc: psutil.Process
                ) -> tuple[Reading[int], Reading[int], Reading[int], Reading[ModelPages]]:
        """Private (anonymous), USS, PSS and the model pages from the walk of every mapping: at
        once for a new process, then every MAPPINGS_EVERY_S or as seldom as MEMORY_READ_SHARE
        needs; the last walk's figures in between (the caller freshens private each tick)."""
        now = self._clock()
        last = self._memory_read
        if last is None or last[0] != proc.pid or now >= self._next_walk:
            t0 = self._cpu_clock()
            figures, model = self._mappings(proc)
            wait = (self._cpu_clock() - t0) / MEMORY_READ_SHARE
            last = self._memory_read = (proc.pid, figures, model)
            self._next_walk = now + max(MAPPINGS_EVERY_S, wait)
        _, figures, model = last
        return (*figures, model)

    def _mappings(self, proc: psutil.Process) -> tuple[_Figures, Reading[ModelPages]]:
        text = _proc_text(proc.pid, "smaps")
        if text == NA(NOT_REPORTED):
            # No /proc (macOS, BSD): psutil's USS (and PSS where it has one), no private figure.
            full = _read(proc.memory_full_info)
            if isinstance(full, NA):
                return (full, full, full), full
            uss, pss = getattr(full, "uss", None), getattr(full, "pss", None)
            na = NA(NOT_REPORTED)
            return (na, na if uss is None else int(uss), na if pss is None else int(pss)), na
        if isinstance(text, NA):
            return (text, text, text), text
        flags = self._flags
        model = None if flags is None or isinstance(flags, NA) else flags.model
        totals, files = parse_smaps(text, None if model is None else model.rsplit("/", 1)[-1])
        return _figures(totals), _model_pages(files)
