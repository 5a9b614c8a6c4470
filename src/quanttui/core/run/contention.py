"""Do the compared servers compete for this machine's cores?

Reads each local server's thread count (`-t` on its command line; llama.cpp's default when
absent is the number of physical cores) and CPU affinity, from the process found by its port
or PID. When their threads together exceed the cores they may run on, simultaneous numbers are
not each server's solo speed, and the warning says so and points at `alternating`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from quanttui.core.hardware.process import find_listening_pid, parse_server_flags, url_host_port
from quanttui.core.hardware.reading import NA
from quanttui.core.run.records import ServerInfo

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


@dataclass(frozen=True)
class ServerCPU:
    name: str
    pid: int
    threads: int
    threads_from_default: bool
    cores: frozenset[int]


def _default_threads() -> int:
    # llama.cpp's common_cpu_get_num_math(): physical cores (minus efficiency cores on hybrids)
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def server_cpu(info: ServerInfo) -> ServerCPU | None:
    """The server's threads and allowed cores, or None when it isn't a process we can see."""
    pid = info.pid
    if pid is None:
        host, port = url_host_port(info.url)
        if host not in LOCAL_HOSTS:
            return None
        found = find_listening_pid(port)
        if isinstance(found, NA):
            return None
        pid = found
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
        cores = frozenset(proc.cpu_affinity() or range(psutil.cpu_count() or 1))
    except (psutil.Error, AttributeError):  # AttributeError: no cpu_affinity on macOS
        return None
    flags = parse_server_flags(cmdline)
    threads = flags.threads
    default = threads is None or threads <= 0
    return ServerCPU(info.name, pid, _default_threads() if default else int(threads or 0),
                     default, cores)


def _cores_text(cores: frozenset[int]) -> str:
    s = sorted(cores)
    if s and s == list(range(s[0], s[-1] + 1)):
        return f"cores {s[0]}-{s[-1]}" if len(s) > 1 else f"core {s[0]}"
    return "cores " + ",".join(map(str, s))


def assess_cpus(cpus: Sequence[ServerCPU]) -> list[str]:
    if len(cpus) < 2:
        return []
    warnings: list[str] = []
    pool = frozenset().union(*(c.cores for c in cpus))
    overlapping = [c for c in cpus if any(c.cores & o.cores for o in cpus if o is not c)]
    demand = sum(c.threads for c in overlapping)
    shared = frozenset().union(*(c.cores for c in overlapping)) if overlapping else frozenset()
    if overlapping and demand > len(shared):
        parts = ", ".join(
            f"{c.name} ({c.threads} thread{'s' if c.threads != 1 else ''}"
            f"{', the default' if c.threads_from_default else ''}, {_cores_text(c.cores)})"
            for c in overlapping)
        warnings.append(
            f"CPU contention: {parts} need {demand} threads on {len(shared)} cores of this "
            f"machine's {len(pool)}. Simultaneous numbers are then not each server's solo "
            "speed; schedule = \"alternating\" gives those (or pin each server to its own "
            "cores with fewer threads).")
    return warnings


def assess(servers: Sequence[ServerInfo]) -> list[str]:
    cpus: dict[int, ServerCPU] = {}
    for c in (server_cpu(s) for s in servers if s.reachable):
        if c is not None:
            cpus.setdefault(c.pid, c)  # one process serving two URLs competes with nobody
    return assess_cpus(list(cpus.values()))
