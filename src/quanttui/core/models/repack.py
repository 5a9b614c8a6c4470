"""llama-server binaries whose repacked CPU kernels die here, remembered across runs.

On some Xeons that advertise AMX, llama.cpp b11434's repacked kernels die with SIGILL at the first
decode; `core.models.servers` then restarts the server with `--no-repack`. That is remembered in
`<user cache dir>/no-repack.json`, per binary (its path, size and modification time: a rebuilt
binary is tried again) and per CPU (its model name and feature flags: the same cache dir on
another machine is not trusted), so that later starts pass `--no-repack` at once, without the
crash, the restart and their notices. A file that can't be read or written only costs the
crash once more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from pathlib import Path

from quanttui.core.dirs import cache_dir

FILE = "no-repack.json"


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and a hash of its feature flags (what decides whether a kernel
    runs), from /proc/cpuinfo; the platform's description elsewhere."""
    model = flags = ""
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = " ".join(sorted(value.split()))
    model = model or platform.processor() or platform.machine()
    return f"{model}|{hashlib.sha256(flags.encode()).hexdigest()[:16]}"


def _key(binary: Path) -> str | None:
    try:
        st = binary.stat()
    except OSError:
        return None
    return f"{binary.resolve()}|{st.st_size}|{st.st_mtime_ns}|{cpu_identity()}"


def _path() -> Path:
    return cache_dir() / FILE


def _load() -> dict[str, str]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def needs_no_repack(binary: Path) -> bool:
    """This binary died of SIGILL in its repacked kernels on this CPU before."""
    key = _key(binary)
    return key is not None and key in _load()


def remember_no_repack(binary: Path, why: str) -> None:
    """Note that this binary needs `--no-repack` on this CPU (best effort)."""
    key = _key(binary)
    if key is None:
        return
    data = _load()
    data[key] = why
    path = _path()
    tmp = path.with_name(f".{FILE}.{os.getpid()}")
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
