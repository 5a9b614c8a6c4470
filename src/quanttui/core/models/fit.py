"""Will these servers fit? Model weights plus KV cache against free RAM (and VRAM).

An estimate from the GGUF header, made before anything is started, so a user learns "needs
7.9 GB, 5.2 GB free" instead of watching the machine swap or the OOM killer pick a process.
KV cache: per layer, cells × KV heads × (key + value length) × bytes per value (2 for f16,
llama-server's default cache type; a quantized type's block size, e.g. 34 bytes per 32 values for
q8_0), where a sliding-window layer holds only the window plus one batch of cells
(llama.cpp's iSWA cache) and every other layer the whole context. Fixed allowances cover the
compute and output buffers and the process itself (core.hardware.breakdown shows each measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from quanttui.core.models.discovery import shard_files
from quanttui.core.models.gguf_header import GGUFError, GGUFHeader

# The server process beyond the buffers its log names: vocabulary tables, heap, thread stacks.
# 48 MiB: measured 50-51 MiB with b11434 and the demo model (262,144-token vocabulary), the
# rest of private memory once the log's buffers are taken out (benchmarks/memory_breakdown.py).
PROCESS_BYTES = 48 * 1024 * 1024
# Compute and output buffers and context checkpoints: 37 MiB for the demo model at -c 2048-16384
BUFFERS_BYTES = 64 * 1024 * 1024
RUNTIME_BYTES = PROCESS_BYTES + BUFFERS_BYTES
# Layers on a sliding window: every `pattern`-th layer attends to the whole context, the others
# to the window (llama.cpp's llama-model.cpp sets these per architecture when the GGUF doesn't
# say). An architecture not named here is counted as all full layers, which errs high.
SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
N_UBATCH = 512  # llama-server's default -ub: an SWA cache holds the window plus one batch
KV_PAD = 256  # llama.cpp pads cache sizes to this many cells
WARN_SHARE = 0.85  # of free memory
# bytes per value of each KV cache type (-ctk/-ctv): ggml's block bytes / block values
CACHE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32,
               "q4_1": 20 / 32, "iq4_nl": 18 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32}


@dataclass(frozen=True)
class FitEstimate:
    model: Path
    weights_bytes: int
    kv_bytes: int | None  # None: the header lacks the fields to estimate it
    ctx_size: int
    gpu_share: float  # fraction of layers offloaded (0: CPU only)
    cache_type: str = "f16"

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + (self.kv_bytes or 0) + RUNTIME_BYTES

    @property
    def ram_bytes(self) -> int:
        return int(self.total_bytes * (1 - self.gpu_share))

    @property
    def vram_bytes(self) -> int:
        return int(self.total_bytes * self.gpu_share)


def _shards_size(path: Path) -> int:
    return sum(p.stat().st_size for p in shard_files(path))


def swa_layers(header: GGUFHeader, arch: str, layers: int) -> tuple[int, int]:
    """(sliding-window size, how many of the layers use it); (0, 0) without a window."""
    window = header.get_int(f"{arch}.attention.sliding_window") or 0
    pattern = header.get_int(f"{arch}.attention.sliding_window_pattern") or SWA_PATTERN.get(arch)
    if window <= 0 or not pattern or pattern < 2:
        return 0, 0
    return window, sum(1 for il in range(layers) if il % pattern < pattern - 1)


def kv_cache_bytes(header: GGUFHeader, ctx_size: int, bytes_per_value: float = 2,
                   parallel: int = 1) -> int | None:
    arch = header.get_str("general.architecture")
    if not arch:
        return None
    layers = header.get_int(f"{arch}.block_count")
    heads = header.get_int(f"{arch}.attention.head_count")
    kv_heads = header.get_int(f"{arch}.attention.head_count_kv") or heads
    embd = header.get_int(f"{arch}.embedding_length")
    k_len = header.get_int(f"{arch}.attention.key_length")
    v_len = header.get_int(f"{arch}.attention.value_length")
    if k_len is None and embd and heads:
        k_len = embd // heads
    v_len = v_len or k_len
    if not (layers and kv_heads and k_len and v_len):
        return None
    window, n_swa = swa_layers(header, arch, layers)
    swa_cells = min(ctx_size, -(-(window * parallel + N_UBATCH) // KV_PAD) * KV_PAD)
    cells = (layers - n_swa) * ctx_size + n_swa * swa_cells
    return int(cells * kv_heads * (k_len + v_len) * bytes_per_value)


def estimate(model: Path, ctx_size: int, n_gpu_layers: int = 0,
             cache_type: str | None = None) -> FitEstimate:
    """Raises GGUFError for a file that isn't a readable GGUF."""
    from quanttui.core.models.gguf_reader import read_gguf_header  # numpy: only when read

    header = read_gguf_header(model, tensors=False)
    arch = header.get_str("general.architecture") or ""
    layers = header.get_int(f"{arch}.block_count") or 0
    if ctx_size <= 0:  # 0 means the model's training context
        ctx_size = header.get_int(f"{arch}.context_length") or 4096
    # -ngl auto/all (negative): assume everything goes to the GPU; +1 for the output layer
    share = 1.0 if n_gpu_layers < 0 else min(n_gpu_layers / (layers + 1), 1.0) if layers else 0.0
    cache = cache_type or "f16"
    return FitEstimate(model, _shards_size(model),
                       kv_cache_bytes(header, ctx_size, CACHE_BYTES.get(cache, 2.0)),
                       ctx_size, share, cache)


@dataclass(frozen=True)
class FitReport:
    estimates: tuple[FitEstimate, ...]
    ram_available: int
    vram_free: int | None  # None: unknown (no NVML)
    refuse: str | None  # why we won't start them
    warnings: tuple[str, ...]


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def check(models: Sequence[tuple[Path, int, int] | tuple[Path, int, int, str | None]],
          vram_free: int | None = None, ram_available: int | None = None) -> FitReport:
    """`models`: (path, ctx_size, n_gpu_layers[, KV cache type]) of the servers to start
    together."""
    ests: list[FitEstimate] = []
    for path, ctx, ngl, *cache in models:
        try:
            ests.append(estimate(path, ctx, ngl, cache[0] if cache else None))
        except GGUFError as err:
            return FitReport(tuple(ests), 0, vram_free,
                             f"{path}: not a usable GGUF ({err.reason})", ())
    avail = psutil.virtual_memory().available if ram_available is None else ram_available
    need_ram = sum(e.ram_bytes for e in ests)
    need_vram = sum(e.vram_bytes for e in ests)
    parts = " + ".join(f"{e.model.name} {_gb(e.total_bytes)} (weights {_gb(e.weights_bytes)}, "
                       f"KV {_gb(e.kv_bytes) if e.kv_bytes is not None else 'n/a'} at "
                       f"-c {e.ctx_size}"
                       + ("" if e.cache_type == "f16" else f", {e.cache_type} cache") + ")"
                       for e in ests)
    warnings: list[str] = []
    refuse = None
    if need_ram > avail:
        refuse = (f"not enough memory: {parts} need about {_gb(need_ram)} of RAM, "
                  f"{_gb(avail)} is available. Use a smaller context (-c), fewer servers, or "
                  "offload layers to a GPU.")
    elif need_ram > WARN_SHARE * avail:
        warnings.append(f"tight on memory: about {_gb(need_ram)} of RAM needed, {_gb(avail)} "
                        "available; the servers may swap, which ruins speed figures")
    if need_vram:
        if vram_free is None:
            warnings.append(f"about {_gb(need_vram)} of VRAM needed; free VRAM is unknown here "
                            "(no NVML), not checked")
        elif need_vram > vram_free:
            refuse = refuse or (f"not enough GPU memory: about {_gb(need_vram)} needed, "
                                f"{_gb(vram_free)} free")
    for e in ests:
        if e.kv_bytes is None:
            warnings.append(f"{e.model.name}: KV cache size unknown (header lacks the fields)")
    return FitReport(tuple(ests), avail, vram_free, refuse, tuple(warnings))
