"""Context size and KV cache type as ladder dimensions: rungs, names, launch flags, the fit
check per cache type, the verdict at each context, the JSON and the command line."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from quanttui.cli import main
from quanttui.core.ladder.lineup import LadderError, Lineup, Rung, expand, rung_name
from quanttui.core.ladder.section import LadderSection
from quanttui.core.ladder.table import QuantRow
from quanttui.core.ladder.verdict import Constraints, decide_at_contexts
from quanttui.core.models.discovery import ModelInfo
from quanttui.core.models.fit import estimate
from quanttui.core.models.servers import LaunchSpec
from quanttui.core.reports.ladder import depth_table, verdict_lines
from quanttui.core.reports.schema import json_schema


def _model(quant: str, size: int) -> ModelInfo:
    p = Path(f"/m/x-{quant}.gguf")
    return ModelInfo(path=p, shards=(p,), size_bytes=size, architecture="llama", name="x",
                     quant=quant, file_type=None, size_label=None, n_params=1000,
                     context_length=32768, vocab_size=10)


def _lineup() -> Lineup:
    q8, q4 = _model("Q8_0", 800), _model("Q4_K_M", 480)
    return Lineup((Rung("Q8_0", q8), Rung("Q4_K_M", q4)), "Q8_0")


def test_rungs_per_quant_context_and_cache_type() -> None:
    lu = expand(_lineup(), (4096, 32768), ("q8_0",))
    assert lu.names == ["Q8_0@4k", "Q8_0@4k/kv q8_0", "Q8_0@32k", "Q8_0@32k/kv q8_0",
                        "Q4_K_M@4k", "Q4_K_M@4k/kv q8_0", "Q4_K_M@32k", "Q4_K_M@32k/kv q8_0"]
    assert lu.reference == "Q8_0@4k"  # the reference quant, first context, f16 cache
    r = lu.rung("Q4_K_M@32k/kv q8_0")
    assert (r.quant, r.ctx_size, r.cache_type, r.cache) == ("Q4_K_M", 32768, "q8_0", "q8_0")
    assert lu.rung("Q4_K_M@32k").cache_type is None  # f16: the server's default
    # quants beside each other at the first context; a quantized cache against the same quant's
    # f16 cache at its context; a larger context against the same quant at the first
    assert lu.neighbours() == [
        ("Q8_0@4k", "Q4_K_M@4k"),
        ("Q8_0@4k", "Q8_0@4k/kv q8_0"), ("Q8_0@4k", "Q8_0@32k"),
        ("Q8_0@32k", "Q8_0@32k/kv q8_0"), ("Q4_K_M@4k", "Q4_K_M@4k/kv q8_0"),
        ("Q4_K_M@4k", "Q4_K_M@32k"), ("Q4_K_M@32k", "Q4_K_M@32k/kv q8_0")]


def test_without_the_options_the_ladder_is_unchanged() -> None:
    lu = _lineup()
    assert expand(lu) is lu
    assert lu.neighbours() == [("Q8_0", "Q4_K_M")]
    # cache types alone: no context in the names; f16 is measured even when not named
    only = expand(lu, (), ("q4_0",))
    assert only.names == ["Q8_0", "Q8_0/kv q4_0", "Q4_K_M", "Q4_K_M/kv q4_0"]
    assert only.reference == "Q8_0"
    assert rung_name("Q4_K_M", 3000, "f16") == "Q4_K_M@3000"


def test_one_file_makes_a_ladder_of_its_contexts() -> None:
    one = Lineup((Rung("Q4_K_M", _model("Q4_K_M", 480)),), "Q4_K_M")
    assert expand(one, (2048, 8192)).names == ["Q4_K_M@2k", "Q4_K_M@8k"]
    with pytest.raises(LadderError, match="at least 2 rungs"):
        expand(one, (2048,))


def test_launch_args_carry_context_cache_type_and_flash_attention() -> None:
    binary = Path("/bin/llama-server")
    q8 = LaunchSpec(model=Path("/m/x.gguf"), ctx_size=32768, cache_type="q8_0").args(binary, 1)
    assert q8[q8.index("-c") + 1] == "32768"
    assert q8[q8.index("-ctk") + 1] == "q8_0" and q8[q8.index("-ctv") + 1] == "q8_0"
    assert q8[q8.index("-fa") + 1] == "on"  # a quantized V cache needs flash attention
    f16 = LaunchSpec(model=Path("/m/x.gguf"), cache_type="f16").args(binary, 1)
    assert f16[f16.index("-ctk") + 1] == "f16" and "-fa" not in f16
    plain = LaunchSpec(model=Path("/m/x.gguf")).args(binary, 1)
    assert "-ctk" not in plain and "-ctv" not in plain and "-fa" not in plain
    given = LaunchSpec(model=Path("/m/x.gguf"), cache_type="q4_0",
                       extra_args=("--flash-attn", "on")).args(binary, 1)
    assert "-fa" not in given and given.count("--flash-attn") == 1  # the user's, once


def test_fit_check_counts_the_cache_type(demo_models: dict[str, Path]) -> None:
    f16 = estimate(demo_models["Q4_K_M"], 8192)
    q8 = estimate(demo_models["Q4_K_M"], 8192, cache_type="q8_0")
    q4 = estimate(demo_models["Q4_K_M"], 8192, cache_type="q4_0")
    assert f16.kv_bytes and q8.kv_bytes and q4.kv_bytes
    assert q8.kv_bytes == f16.kv_bytes * 34 // 64  # 34 bytes per 32 values against 2 each
    assert q4.kv_bytes == f16.kv_bytes * 18 // 64
    assert q8.total_bytes - f16.total_bytes == q8.kv_bytes - f16.kv_bytes


def _row(name: str, quant: str, ctx: int, size: int, memory: int, *, cache: str = "f16",
         ref: bool = False, kld: float = 0.01) -> QuantRow:
    return QuantRow(name=name, quant=quant, path=f"/m/{quant}.gguf", reference=ref,
                    requantized_from=None, size_bytes=size, bits_per_weight=None,
                    memory_private_peak=memory - size, memory_model_pages_peak=size,
                    decode_tps=10.0, quant_name=quant, ctx_size=ctx, cache_type=cache,
                    kld_mean=None if ref else kld, kld_low=None if ref else kld,
                    kld_high=None if ref else kld, same_top1=None if ref else 0.97,
                    same_top1_low=None if ref else 0.97, same_top1_high=None if ref else 0.97)


MB = 1_000_000


def _context_rows() -> list[QuantRow]:
    return [
        _row("Q8_0@4k", "Q8_0", 4096, 300 * MB, 400 * MB, ref=True),
        _row("Q8_0@4k/kv q8_0", "Q8_0", 4096, 300 * MB, 380 * MB, cache="q8_0"),
        _row("Q8_0@32k", "Q8_0", 32768, 300 * MB, 700 * MB, kld=0.0),
        _row("Q8_0@32k/kv q8_0", "Q8_0", 32768, 300 * MB, 650 * MB, cache="q8_0"),
        _row("Q4_K_M@4k", "Q4_K_M", 4096, 200 * MB, 300 * MB),
        _row("Q4_K_M@4k/kv q8_0", "Q4_K_M", 4096, 200 * MB, 280 * MB, cache="q8_0"),
        _row("Q4_K_M@32k", "Q4_K_M", 32768, 200 * MB, 620 * MB),
        _row("Q4_K_M@32k/kv q8_0", "Q4_K_M", 32768, 200 * MB, 560 * MB, cache="q8_0")]


def test_verdict_at_each_context_names_the_cache_and_what_does_not_fit() -> None:
    v = decide_at_contexts(_context_rows(), [], Constraints(memory_budget_bytes=600 * MB))
    assert [(p.ctx_size, p.recommended) for p in v.by_context] == [
        (4096, "Q4_K_M@4k"), (32768, "Q4_K_M@32k/kv q8_0")]
    assert v.recommended == "Q4_K_M@32k/kv q8_0"  # the last context's
    at32 = v.by_context[1].reason
    assert at32.startswith("At 32k context within 600 MB: run Q4_K_M with a q8_0 KV cache: "
                            "the smallest quant that meets the constraints (")
    assert "Q8_0 needs 700 MB there" in at32 and "Q4_K_M needs 620 MB there" in at32
    assert "Q8_0 with a q8_0 KV cache needs 650 MB there" in at32
    # at 4k the f16 cache fits: the more precise cache of the smallest quant
    assert v.by_context[0].reason.startswith("At 4k context within 600 MB: run Q4_K_M: ")
    assert v.reason == " ".join(p.reason for p in v.by_context)
    line = next(x for x in verdict_lines(v) if x.startswith("Constraints:"))
    assert "at each of 4k (-c 4096) and 32k (-c 32768) context" in line
    assert "memory ≤ 600 MB" in line


def test_verdict_at_one_context_names_it_and_keeps_the_undecided_wording() -> None:
    rows = [r for r in _context_rows() if r.ctx_size == 32768]
    rows[0] = msgspec.structs.replace(rows[0], reference=True, kld_mean=None)
    wide = msgspec.structs.replace(rows[3], kld_low=0.0, kld_high=0.2)
    v = decide_at_contexts([*rows[:3], wide], [], Constraints(memory_budget_bytes=600 * MB))
    assert v.by_context == [] and v.constraints.ctx_size == 32768
    assert "at 32k context (-c 32768)" in v.constraints.describe()
    assert v.recommended is None  # the one that fits is not decided yet, nothing else fits
    assert "not yet decided: measure more" in " ".join(v.failing["Q4_K_M@32k/kv q8_0"])


def test_depth_figures_in_the_json_schema_and_the_table() -> None:
    schema = json_schema().decode()
    for key in ("depth_tokens", "depth_ttft_ms", "depth_decode_tps", "memory_predicted",
                "memory_predicted_error", "cache_type", "ctx_size", "by_context"):
        assert f'"{key}"' in schema
    rows = _context_rows()
    rows[7] = msgspec.structs.replace(rows[7], depth_tokens=24576, depth_ttft_ms=61_000.0,
                                      depth_decode_tps=21.5, memory_predicted=504 * MB,
                                      memory_predicted_error=-0.1)
    v = decide_at_contexts(rows, [], Constraints(memory_budget_bytes=600 * MB))
    sec = LadderSection(reference="Q8_0@4k", k=100, together=True, rows=rows, neighbours=[],
                        verdict=v, answers=[])
    back = msgspec.json.decode(msgspec.json.encode(sec), type=LadderSection)
    assert back == sec
    table = depth_table(sec)
    line = next(x for x in table if x.startswith("| Q4_K_M@32k/kv q8_0 |"))
    assert line == ("| Q4_K_M@32k/kv q8_0 | 32768 | q8_0 | 24576 tokens | 61.00 s | — | 21.5 "
                    "| 560 MB | 504 MB | -10% |")
    plain = msgspec.structs.replace(sec, rows=[msgspec.structs.replace(
        r, ctx_size=None, cache_type=None, quant_name=None) for r in _lineup_rows()])
    assert depth_table(plain) == []


def _lineup_rows() -> list[QuantRow]:
    return [_row("Q8_0", "Q8_0", 2048, 300 * MB, 400 * MB, ref=True)]


def test_command_line_checks_the_lists(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["ladder", str(tmp_path), "--ctx-size", "4096,x"])
    assert bad.exit_code == 2 and "expected whole numbers" in bad.output
    kv = runner.invoke(main, ["ladder", str(tmp_path), "--cache-type", "f16,q9_0"])
    assert kv.exit_code == 2 and "unknown KV cache type(s) q9_0" in kv.output
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    one = runner.invoke(main, ["run", "--headless", "--model", str(model),
                               "--ctx-size", "2048,4096"])
    assert one.exit_code == 2 and "a list of contexts is for quanttui ladder" in one.output
    zero = runner.invoke(main, ["ladder", str(tmp_path), "--ctx-size", "4096,0"])
    assert zero.exit_code == 2 and "each context must be ≥ 1" in zero.output


def test_progress_plans_each_cache_fill_once_in_tokens() -> None:
    from quanttui.core.ladder.progress import ProgressTracker, ladder_steps

    groups = [["A@2k", "A@8k"], ["A@2k", "A@8k/kv q8_0"]]
    steps = ladder_steps(groups, "A@2k", ref_first=True, distribution=False, task_items=0,
                         fill={"A@2k": 1536, "A@8k": 6144, "A@8k/kv q8_0": 6144})
    assert [(s.kind, s.pass_no, s.who, s.total) for s in steps] == [
        ("server start", 1, "A@2k", 1), ("server start", 1, "A@8k", 1),
        ("cache fill", 1, "A@2k", 1536), ("cache fill", 1, "A@8k", 6144),
        ("requests", 1, "A@2k and A@8k", None),
        ("server start", 2, "A@8k/kv q8_0", 1), ("cache fill", 2, "A@8k/kv q8_0", 6144),
        ("requests", 2, "A@2k and A@8k/kv q8_0", None)]
    now = [0.0]
    t = ProgressTracker(clock=lambda: now[0])
    t.plan([s for s in steps if s.kind == "cache fill"], 2)
    t.begin("cache fill", 1, "A@2k", 1536)
    now[0] = 3.0
    t.advance(done=1536)  # 2 ms a token: the other two fills' 12288 tokens take ~25 s
    assert t.eta(now[0]) == pytest.approx(12288 * 3.0 / 1536)


def test_in_words_and_on_stdout_a_rung_of_the_same_file_says_so() -> None:
    from types import SimpleNamespace

    from quanttui.core.ladder.section import answers
    from quanttui.headless_ladder import _verdict_text

    rows = _context_rows()
    said = answers(rows, [], 100)
    kv = next(a for a in said if a.startswith("How much does Q8_0@4k/kv q8_0 lose"))
    assert "with the same file (300 MB)" in kv and "smaller" not in kv
    q4 = next(a for a in said if a.startswith("How much does Q4_K_M@4k lose"))
    assert "for a file 33% smaller (200 MB vs 300 MB)" in q4
    v = decide_at_contexts(rows, [], Constraints(memory_budget_bytes=600 * MB))
    sec = LadderSection(reference="Q8_0@4k", k=100, together=True, rows=rows, neighbours=[],
                        verdict=v, answers=said)
    text = _verdict_text(SimpleNamespace(extra={"ladder": msgspec.to_builtins(sec)}))  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[0] == "verdict: " + v.reason
    assert lines[1].startswith("constraints: at each of 4k (-c 4096) and 32k (-c 32768) context")


def test_the_reference_file_with_a_quantized_cache_is_named_when_it_is_out() -> None:
    rows = [_row("Q8_0", "Q8_0", 2048, 300 * MB, 400 * MB, ref=True),
            _row("Q8_0/kv q4_0", "Q8_0", 2048, 300 * MB, 350 * MB, cache="q4_0", kld=0.2)]
    v = decide_at_contexts(rows, [], Constraints())
    assert v.recommended == "Q8_0"
    assert v.reason == ("Run Q8_0 (the reference): nothing smaller keeps the quality asked for "
                        "— Q8_0/kv q4_0 fails KLD 0.200 [0.200, 0.200] > 0.05.")
