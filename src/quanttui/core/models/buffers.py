"""What llama-server says it allocated: the buffer sizes in its log (b11434, `-lv 4` or more).

The lines read, as b11434 prints them (tests/data/server_logs holds real logs):

    load_tensors:   CPU_Mapped model buffer size =   224.84 MiB      weights, the file mapped
    load_tensors:   CPU_REPACK model buffer size =    50.80 MiB      weights repacked for this CPU
    llama_context:        CPU  output buffer size =     1.00 MiB
    llama_kv_cache:        CPU KV buffer size =     6.00 MiB
    llama_kv_cache: size =    6.00 MiB (  2048 cells,   3 layers,  1/1 seqs), K (f16): ...
    sched_reserve:        CPU compute buffer size =    21.28 MiB
    slot create_check: ... created context checkpoint 1 of 32 (..., size = 7.506 MiB)
    slot   operator(): ... erased invalidated context checkpoint (..., size = 0.704 MiB)
    slot      release: id  0 | task 0 | stop processing: n_tokens = 1903, truncated = 0

A GPU build names its devices the same way ("CUDA0 model buffer", "CUDA0 KV buffer",
"CUDA_Host compute buffer"). At the default verbosity (3) none of these lines are printed, which
is why quanttui starts its servers at `-lv 4`. Parsing is line by line and forgiving: a line that
doesn't match is skipped, so a later build that rewords one loses that part, not the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
MAPPED = "CPU_Mapped"  # the model file mapped: its pages are the page cache's, not private

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_BUFFER = re.compile(rf"\b([A-Za-z][\w.-]*)\s+(model|KV|compute|output) buffer size =\s*{_NUM} MiB")
_CACHE = re.compile(rf"llama_kv_cache: size =\s*{_NUM} MiB \(\s*([0-9]+) cells")
_CHECKPOINT = re.compile(rf"(created|erased|erasing|removed?)\b[^(]*context checkpoint.*"
                         rf"size = {_NUM} MiB")
_SLOT_TOKENS = re.compile(r"\bid\s+([0-9]+) \| task -?[0-9]+ \| .*?\bn_tokens =\s*([0-9]+)")
_VOCAB = re.compile(r"print_info: n_vocab\s*=\s*([0-9]+)")


def is_host(name: str) -> bool:
    """A buffer in host RAM (the CPU's, or a GPU backend's pinned `*_Host` buffers)."""
    return name.startswith("CPU") or name.endswith("_Host")


@dataclass
class ServerBuffers:
    """Buffer sizes in bytes, by buffer or device name, as the log states them."""

    model: dict[str, int] = field(default_factory=dict)  # "CPU_Mapped", "CPU_REPACK", "CUDA0"
    kv: dict[str, int] = field(default_factory=dict)  # by device
    compute: dict[str, int] = field(default_factory=dict)
    output: dict[str, int] = field(default_factory=dict)
    # each KV cache (an iSWA model has two): (bytes, cells)
    kv_caches: list[tuple[int, int]] = field(default_factory=list)
    checkpoints_peak: int = 0  # context checkpoints alive at once, at most (SWA state copies)
    depth: int = 0  # the most tokens a slot held: sum over slots of each one's most
    n_vocab: int | None = None

    @property
    def found(self) -> bool:
        return bool(self.model)

    def kv_written(self, device: str) -> int:
        """The KV cache pages written so far on `device`: a cache is allocated whole at load,
        but its pages take memory only once cells are written, and cells fill from the start
        (an SWA cache's ring is full after its own size). Scaled per cache by depth / cells."""
        total = self.kv.get(device, 0)
        allocated = sum(b for b, _ in self.kv_caches)
        if not allocated:
            return total
        written = sum(b * min(1.0, self.depth / cells) for b, cells in self.kv_caches if cells)
        return round(total * written / allocated)


def parse_server_log(text: str) -> ServerBuffers:
    out = ServerBuffers()
    live = 0
    slot_depth: dict[str, int] = {}
    for line in text.splitlines():
        if "buffer size" in line:
            m = _BUFFER.search(line)
            if m:
                name, kind, mib = m.group(1), m.group(2), float(m.group(3))
                table = {"model": out.model, "KV": out.kv, "compute": out.compute,
                         "output": out.output}[kind]
                table[name] = table.get(name, 0) + round(mib * MIB)
        elif "llama_kv_cache: size" in line:
            m = _CACHE.search(line)
            if m:
                out.kv_caches.append((round(float(m.group(1)) * MIB), int(m.group(2))))
        elif "context checkpoint" in line:
            m = _CHECKPOINT.search(line)
            if m:
                size = round(float(m.group(2)) * MIB)
                live = live + size if m.group(1) == "created" else max(0, live - size)
                out.checkpoints_peak = max(out.checkpoints_peak, live)
        elif "n_tokens = " in line and "| task" in line:
            m = _SLOT_TOKENS.search(line)
            if m:
                slot_depth[m.group(1)] = max(slot_depth.get(m.group(1), 0), int(m.group(2)))
        elif "n_vocab" in line:
            m = _VOCAB.search(line)
            if m:
                out.n_vocab = int(m.group(1))
    out.depth = sum(slot_depth.values())
    return out


def read_server_log(path: Path | None) -> ServerBuffers | None:
    """The buffers of a server log file; None when there is no file to read."""
    if path is None:
        return None
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    return parse_server_log(text)
