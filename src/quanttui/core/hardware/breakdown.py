"""Where a server's memory goes: the parts llama-server's log names, beside what was measured.

Host RAM. Measured: private memory plus the model file's resident pages, peaks over the run
(core.hardware.process). Parts (docs/metrics.md defines each):

- weights mapped: the weights mapped from the model file (`CPU_Mapped`: the file less its
  header and vocabulary, so a few MB under the file's size); measured as the model pages;
- weights repacked: weights copied into this CPU's kernel layout (`CPU_REPACK`), private;
- weights loaded: other host model buffers (`-lm none`, a GPU build's `CUDA_Host`), private;
- KV cache: the cells written so far (the log's KV buffers, scaled by the deepest slot: pages
  of a cache allocated at load take memory only once written);
- compute and output buffers;
- context checkpoints: copies of a sliding-window cache llama-server keeps per prompt, the most
  alive at once;
- runtime: the process beyond its buffers (vocabulary, heap, threads), which no log line
  states: the fit check's allowance (core.models.fit.PROCESS_BYTES), an estimate.

GPU (per device, when a GPU build names one): model, KV, compute and output buffers against the
process's VRAM, which also holds the CUDA context the log doesn't state.

The difference (measured − parts) is always shown; within TOLERANCE of the measurement the parts
account for it.
"""

from __future__ import annotations

import msgspec

from quanttui.core.hardware.reading import NA, Reading, format_bytes
from quanttui.core.models.buffers import MAPPED, ServerBuffers, is_host
from quanttui.core.models.fit import PROCESS_BYTES

TOLERANCE = 0.05  # |parts − measured| within 5% of measured
NO_LOG = ("attached server: quanttui did not start it, so llama-server's log (its buffer sizes) "
          "is not read here; only the measured figures are known")
QUIET_LOG = ("llama-server's log names no buffers (started below -lv 4, or its log is "
             "elsewhere): only the measured figures are known")
_NOT_SAMPLED = NA("not sampled")


class DeviceParts(msgspec.Struct, kw_only=True):
    """One GPU's buffers, in bytes."""

    model: int = 0
    kv_cache: int = 0
    compute: int = 0
    output: int = 0

    @property
    def total(self) -> int:
        return self.model + self.kv_cache + self.compute + self.output


class MemoryBreakdown(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One server's memory in parts (bytes) beside the measurement; parts are null when the
    log wasn't read (`why` says so)."""

    why: str | None = None  # why there are no parts
    weights_mapped: int | None = None
    weights_repacked: int | None = None
    weights_loaded: int | None = None
    kv_cache: int | None = None  # written so far
    kv_allocated: int | None = None  # the whole cache, as the log states it
    kv_depth: int | None = None  # tokens held by the deepest slot(s)
    compute: int | None = None
    output: int | None = None
    checkpoints: int | None = None
    runtime: int | None = None  # an estimate: not in the log
    measured: int | None = None  # private + model pages, peaks
    difference: int | None = None  # measured − sum of the parts
    within_tolerance: bool | None = None
    tolerance: float = TOLERANCE
    devices: dict[str, DeviceParts] = {}  # GPU name ("CUDA0") -> its buffers
    vram_measured: int | None = None
    vram_difference: int | None = None  # VRAM − the devices' buffers (CUDA context, ...)

    def parts(self) -> list[tuple[str, int]]:
        """The host parts that are known, labelled, in a fixed order."""
        named = [("weights mapped", self.weights_mapped),
                 ("weights repacked", self.weights_repacked),
                 ("weights loaded", self.weights_loaded), ("KV cache", self.kv_cache),
                 ("compute", self.compute), ("output", self.output),
                 ("context checkpoints", self.checkpoints), ("runtime (estimate)", self.runtime)]
        return [(k, v) for k, v in named if v]

    @property
    def parts_total(self) -> int | None:
        return None if self.weights_mapped is None and not self.parts() else sum(
            v for _, v in self.parts())

    def difference_text(self) -> str:
        """"−3 MB (−0.8%, within ±5%)"; "" without parts or measurement."""
        if self.difference is None or not self.measured:
            return ""
        d = self.difference
        sign = "−" if d < 0 else "+"
        share = abs(d) / self.measured
        verdict = "within" if self.within_tolerance else "outside"
        return (f"{sign}{format_bytes(abs(d))} ({sign}{share:.1%}, {verdict} "
                f"±{self.tolerance:.0%})")


def breakdown(buffers: ServerBuffers | None, private: Reading[int], model_pages: Reading[int],
              vram: Reading[int] = _NOT_SAMPLED, *, attached: bool = False
              ) -> MemoryBreakdown:
    """The parts from the log (None: no log to read) beside the measured peaks."""
    measured = (None if isinstance(private, NA) or isinstance(model_pages, NA)
                else private + model_pages)
    vram_measured = None if isinstance(vram, NA) else vram
    if buffers is None or not buffers.found:
        return MemoryBreakdown(why=NO_LOG if attached or buffers is None else QUIET_LOG,
                               measured=measured, vram_measured=vram_measured)
    host = [n for n in {*buffers.model, *buffers.kv, *buffers.compute, *buffers.output}
            if is_host(n)]
    devices = {n: DeviceParts(model=buffers.model.get(n, 0), kv_cache=buffers.kv.get(n, 0),
                              compute=buffers.compute.get(n, 0), output=buffers.output.get(n, 0))
               for n in sorted({*buffers.model, *buffers.kv, *buffers.compute, *buffers.output})
               if not is_host(n)}
    repacked = sum(v for n, v in buffers.model.items() if n.startswith("CPU_REPACK"))
    loaded = sum(v for n, v in buffers.model.items()
                 if is_host(n) and n != MAPPED and not n.startswith("CPU_REPACK"))
    out = MemoryBreakdown(
        weights_mapped=buffers.model.get(MAPPED, 0), weights_repacked=repacked,
        weights_loaded=loaded,
        kv_cache=sum(buffers.kv_written(n) for n in host),
        kv_allocated=sum(buffers.kv.get(n, 0) for n in host), kv_depth=buffers.depth,
        compute=sum(buffers.compute.get(n, 0) for n in host),
        output=sum(buffers.output.get(n, 0) for n in host),
        checkpoints=buffers.checkpoints_peak, runtime=PROCESS_BYTES, measured=measured,
        devices=devices, vram_measured=vram_measured)
    total = out.parts_total or 0
    if measured:
        out.difference = measured - total
        out.within_tolerance = abs(out.difference) <= TOLERANCE * measured
    if devices and vram_measured is not None:
        out.vram_difference = vram_measured - sum(d.total for d in devices.values())
    return out


def why_larger(name: str, bd: MemoryBreakdown | None) -> str:
    """"51 MB of IQ4_NL's weights are repacked for this CPU" when that is so; else ""."""
    if bd is None or not bd.weights_repacked:
        return ""
    return f"{format_bytes(bd.weights_repacked)} of {name}'s weights are repacked for this CPU"


BREAKDOWN_HEAD = ["server", "weights mapped", "weights repacked", "KV cache written",
                  "compute + output", "checkpoints", "runtime (estimate)", "sum of parts",
                  "measured", "difference"]
BREAKDOWN_NOTE = (
    "Parts from llama-server's log (-lv 4): weights mapped = the weights mapped from the model "
    "file (its tensors: the file less its header and vocabulary); repacked = "
    "weights copied for this CPU's kernels; KV cache written = the cache's cells written, of "
    "what it allocated (pages are taken as cells are written); checkpoints = copies of the "
    "sliding-window cache alive at once; runtime = the process beyond its buffers "
    "(vocabulary, heap, threads), not in the log: an allowance. Measured = peak private memory "
    "+ peak model pages. Definitions: docs/metrics.md.")


def _size(n: int | None) -> str:
    return "—" if n is None else format_bytes(n)


def breakdown_table(named: list[tuple[str, MemoryBreakdown | None]]
                    ) -> tuple[list[list[str]], list[str]]:
    """Rows under BREAKDOWN_HEAD for the servers with parts, and a line for each without
    (why) and each GPU (its buffers against the process's VRAM)."""
    rows, lines = [], []
    for name, bd in named:
        if bd is None:
            continue
        if bd.why is not None:
            lines.append(f"{name}: {bd.why}"
                         + (f" (measured {format_bytes(bd.measured)})" if bd.measured else ""))
            continue
        kv = _size(bd.kv_cache)
        if bd.kv_allocated:
            kv += f" of {format_bytes(bd.kv_allocated)} ({bd.kv_depth or 0} tokens)"
        rows.append([name, _size(bd.weights_mapped),
                     _size((bd.weights_repacked or 0) + (bd.weights_loaded or 0)), kv,
                     _size((bd.compute or 0) + (bd.output or 0)), _size(bd.checkpoints),
                     _size(bd.runtime), _size(bd.parts_total), _size(bd.measured),
                     bd.difference_text() or "—"])
        for dev, d in bd.devices.items():
            vram = (f"; process VRAM {format_bytes(bd.vram_measured)}, difference "
                    f"{format_bytes(bd.vram_difference)} (CUDA context and the like, not in the "
                    "log)" if bd.vram_measured is not None and bd.vram_difference is not None
                    else "")
            lines.append(f"{name} on {dev}: model {format_bytes(d.model)}, KV cache "
                         f"{format_bytes(d.kv_cache)}, compute {format_bytes(d.compute)}, "
                         f"output {format_bytes(d.output)}{vram}")
    return rows, lines
