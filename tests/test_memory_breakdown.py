"""Memory breakdown: llama-server's buffer sizes (b11434 logs in tests/data/server_logs, captured
from the real server at -lv 4) beside the measured private memory and model pages."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from quanttui.core.hardware.breakdown import (
    NO_LOG,
    QUIET_LOG,
    TOLERANCE,
    MemoryBreakdown,
    breakdown,
    breakdown_table,
    why_larger,
)
from quanttui.core.hardware.process import ModelPages, ProcessSampler, ProcessTarget
from quanttui.core.hardware.reading import NA
from quanttui.core.ladder.section import answers, more_memory
from quanttui.core.ladder.table import QuantRow
from quanttui.core.models.buffers import MIB, parse_server_log, read_server_log
from quanttui.core.models.fit import PROCESS_BYTES
from quanttui.core.models.servers import LaunchSpec
from quanttui.tui.results_model import memory_table

LOGS = Path(__file__).parent / "data" / "server_logs"


def mib(x: float) -> int:
    return round(x * MIB)


def test_b11434_load_lines_with_a_prompt_filling_the_cache() -> None:
    b = read_server_log(LOGS / "b11434-IQ4_NL-c2048-filled.log")
    assert b is not None and b.found
    assert b.model == {"CPU_Mapped": mib(224.84), "CPU_REPACK": mib(50.80)}
    assert b.kv == {"CPU": mib(6.00) + mib(15.00)}  # the full layers' cache and the window's
    assert b.kv_caches == [(mib(6.00), 2048), (mib(15.00), 1024)]
    assert b.compute == {"CPU": mib(21.28)} and b.output == {"CPU": mib(1.00)}
    assert b.n_vocab == 262144
    # two checkpoints of the window's cache, both alive at the end
    assert b.checkpoints_peak == 2 * mib(7.506)
    assert b.depth == 1903  # "stop processing: n_tokens = 1903"
    # 1903 of 2048 cells of the full layers' cache written, all 1024 of the window's ring
    assert b.kv_written("CPU") == round(mib(6.00) * 1903 / 2048) + mib(15.00)


def test_checkpoints_erased_between_prompts_are_not_counted_twice() -> None:
    # prompts of 10 to 1900 tokens in turn: each prompt erases the last one's checkpoints
    b = read_server_log(LOGS / "b11434-Q8_0-c2048-depths.log")
    assert b is not None
    assert "CPU_REPACK" not in b.model  # Q8_0 is not repacked on this CPU
    assert b.checkpoints_peak == 2 * mib(7.506)
    assert b.depth == 1901


def test_default_verbosity_names_no_buffers() -> None:
    b = read_server_log(LOGS / "b11434-IQ4_NL-lv3.log")
    assert b is not None and not b.found
    bd = breakdown(b, 100 * MIB, 200 * MIB)
    assert bd.why == QUIET_LOG and bd.parts() == [] and bd.measured == 300 * MIB
    assert bd.difference is None and bd.within_tolerance is None


def test_a_log_with_only_the_warm_up_written_counts_almost_no_kv() -> None:
    b = read_server_log(LOGS / "b11434-IQ4_NL-lv4-exit.log")
    assert b is not None and b.depth == 0 and b.kv_written("CPU") == 0
    assert b.kv == {"CPU": mib(21.00)}  # allocated whole all the same


def test_gpu_buffers_are_devices_and_host_buffers_are_ram() -> None:
    # Not captured (this b11434 build has no GPU backend): the same printf formats with a CUDA
    # device's names, as a GPU build prints them.
    log = "\n".join([
        "load_tensors:        CUDA0 model buffer size =  4403.49 MiB",
        "load_tensors:   CPU_Mapped model buffer size =   281.81 MiB",
        "llama_context:  CUDA_Host  output buffer size =     0.49 MiB",
        "llama_kv_cache:      CUDA0 KV buffer size =   256.00 MiB",
        "llama_kv_cache: size =  256.00 MiB (  2048 cells,  32 layers,  1/1 seqs), K (f16): ...",
        "sched_reserve:      CUDA0 compute buffer size =   258.50 MiB",
        "sched_reserve:  CUDA_Host compute buffer size =    12.01 MiB",
        "slot      release: id  0 | task 3 | stop processing: n_tokens = 1024, truncated = 0",
    ])
    bd = breakdown(parse_server_log(log), 100 * MIB, mib(281.81), vram=mib(5500))
    assert set(bd.devices) == {"CUDA0"}
    gpu = bd.devices["CUDA0"]
    assert (gpu.model, gpu.kv_cache, gpu.compute) == (mib(4403.49), mib(256.00), mib(258.50))
    assert bd.vram_difference == mib(5500) - gpu.total
    assert bd.weights_mapped == mib(281.81) and bd.compute == mib(12.01)
    assert bd.output == mib(0.49) and bd.kv_cache == 0  # the KV cache is on the GPU


def test_unknown_lines_and_rewordings_are_skipped() -> None:
    log = ("garbage buffer size = lots\nCPU_Mapped model buffer size = 12.5 GiB\n"
           "load_tensors:   CPU_Mapped model buffer size =   10.00 MiB\n"
           "created context checkpoint 1 of 32 (size = oops)\n")
    b = parse_server_log(log)
    assert b.model == {"CPU_Mapped": mib(10.0)} and b.checkpoints_peak == 0


def test_parts_against_the_measurement() -> None:
    b = read_server_log(LOGS / "b11434-IQ4_NL-c2048-filled.log")
    # the peaks measured on that server (private 158.8 MiB, model pages 224.8 MiB)
    bd = breakdown(b, mib(158.8), mib(224.84))
    assert bd.runtime == PROCESS_BYTES  # the estimate, named as such
    assert [k for k, _ in bd.parts()] == [
        "weights mapped", "weights repacked", "KV cache", "compute", "output",
        "context checkpoints", "runtime (estimate)"]
    assert bd.parts_total == sum(v for _, v in bd.parts())
    assert bd.difference == bd.measured - bd.parts_total  # type: ignore[operator]
    assert bd.within_tolerance and abs(bd.difference) < 0.01 * mib(383.6)  # type: ignore[arg-type]
    assert "within ±5%" in bd.difference_text()
    far = breakdown(b, mib(400), mib(224.84))
    assert far.within_tolerance is False and far.difference_text().startswith("+")
    assert "outside ±5%" in far.difference_text()
    assert why_larger("IQ4_NL", bd) == "53 MB of IQ4_NL's weights are repacked for this CPU"
    assert why_larger("Q8_0", breakdown(read_server_log(LOGS / "b11434-Q8_0-c2048-depths.log"),
                                        mib(100), mib(271.81))) == ""


def test_attached_server_says_what_cannot_be_known() -> None:
    bd = breakdown(None, 100 * MIB, NA("no model file mapped"), attached=True)
    assert bd.why == NO_LOG and bd.measured is None and bd.parts() == []
    assert isinstance(bd, MemoryBreakdown) and bd.difference_text() == ""


def test_servers_start_at_the_verbosity_that_prints_buffers() -> None:
    binary = Path("/bin/llama-server")
    args = LaunchSpec(model=Path("m.gguf")).args(binary, 8080)
    assert args[args.index("-lv") + 1] == "4"
    quiet = LaunchSpec(model=Path("m.gguf"), extra_args=("--verbosity=2",)).args(binary, 8080)
    assert "-lv" not in quiet  # the user's own choice stands


@pytest.mark.real
@pytest.mark.parametrize("quant", ["Q8_0", "Q4_K_M", "IQ4_NL", "Q3_K_S", "Q2_K"])
def test_real_parts_add_up_to_the_measurement(make_server: object, quant: str) -> None:
    """Each demo quant, one server at a time: its log's parts add up to the measured private
    memory plus model pages within TOLERANCE, once a 600-token prompt (more than one 512-token
    batch) has written cells of the cache and the whole compute buffer."""
    server = make_server(quant, ctx_size=2048)  # type: ignore[operator]
    httpx.post(server.url + "/completion", timeout=120, json={
        "prompt": list(range(1000, 1600)), "n_predict": 2, "cache_prompt": False,
    }).raise_for_status()
    time.sleep(0.2)
    sample = ProcessSampler(ProcessTarget(quant, pid=server.pid)).sample()
    assert isinstance(sample.model, ModelPages) and isinstance(sample.private_bytes, int)
    bd = breakdown(read_server_log(server.log_path), sample.private_bytes,
                   sample.model.resident_bytes)
    # the file's tensor data: the file less its header (the vocabulary, 6.5 MB here)
    size = server.spec.model.stat().st_size
    assert 0.95 * size < (bd.weights_mapped or 0) <= size
    assert bd.kv_depth is not None and bd.kv_depth >= 600
    assert bd.difference is not None and bd.measured is not None
    assert abs(bd.difference) <= TOLERANCE * bd.measured, (quant, bd.parts(), bd.measured)
    # the quants this CPU repacks say so; Q8_0 is not repacked
    assert (bd.weights_repacked or 0) > 0 if quant != "Q8_0" else not bd.weights_repacked


def _row(name: str, size: int, private: int, pages: int, repacked: int | None,
         reference: bool = False, log: bool = True) -> QuantRow:
    bd = (breakdown(parse_server_log(
        f"load_tensors:   CPU_Mapped model buffer size = {pages / MIB:.2f} MiB\n"
        + (f"load_tensors:   CPU_REPACK model buffer size = {repacked / MIB:.2f} MiB\n"
           if repacked else "")), private, pages) if log
        else breakdown(None, private, pages, attached=True))
    return QuantRow(name=name, quant=name, path=f"/m/{name}.gguf", reference=reference,
                    requantized_from=None, size_bytes=size, bits_per_weight=None,
                    memory_private_peak=private, memory_model_pages_peak=pages,
                    memory_breakdown=bd)


def test_in_words_a_smaller_file_that_takes_more_memory_says_why() -> None:
    ref = _row("Q4_K_M", 253_000_000, 106_000_000, 246_000_000, 13_300_000, reference=True)
    iq4 = _row("IQ4_NL", 242_000_000, 144_000_000, 236_000_000, 53_300_000)
    text = answers([ref, iq4], [], 8)[0]
    assert ("It takes 28 MB more memory all the same (380 MB vs 352 MB): 53 MB of IQ4_NL's "
            "weights are repacked for this CPU (13 MB of Q4_K_M's).") in text
    # no repacking to blame, or no log: said as such; less memory: nothing to explain
    assert "don't say why" in more_memory(_row("X", 1, 200_000_000, 236_000_000, None), ref)
    assert "log was not read" in more_memory(
        _row("X", 1, 200_000_000, 236_000_000, None, log=False), ref)
    assert more_memory(_row("X", 1, 10_000_000, 236_000_000, 53_300_000), ref) == ""


def test_reports_and_results_view_show_the_breakdown() -> None:
    ref = _row("Q4_K_M", 253_000_000, 106_000_000, 246_000_000, 13_300_000, reference=True)
    attached = _row("remote", 242_000_000, 144_000_000, 236_000_000, None, log=False)
    rows, notes = breakdown_table([(r.name, r.memory_breakdown) for r in (ref, attached)])
    assert len(rows) == 1 and rows[0][0] == "Q4_K_M" and rows[0][2] == "13 MB"
    # this log names only the weights: the KV cache and compute buffers are left over
    assert rows[0][-1] == "+42 MB (+12.0%, outside ±5%)"
    assert notes == [f"remote: {NO_LOG} (measured 380 MB)"]
    table = memory_table([ref, attached], lambda r: (r.name, None))
    titles = [c.title for c in table.columns]
    assert {"repacked", "KV written", "measured − parts"} <= set(titles)
    cells = dict(zip(titles, table.rows[0], strict=True))
    assert cells["repacked"] == ("13 MB", None) and cells["measured − parts"][1] == "bad"
    assert dict(zip(titles, table.rows[1], strict=True))["repacked"][1] == "muted"
