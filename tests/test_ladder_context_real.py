"""A real ladder over two contexts and two KV cache types on one demo quant: a row per
combination, the cache filled to its depth, memory rising with the context, every rung started
with flash attention (a quantized V cache needs it) and a quantized cache compared with the f16
cache at its context."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from quanttui.core.ladder.lineup import collect_models, expand, lineup
from quanttui.core.ladder.runner import LadderOptions, run_ladder
from quanttui.core.ladder.section import ladder_section, merged_results
from quanttui.core.ladder.verdict import Constraints, measured_memory
from quanttui.core.llama.client import Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.launcher import Launcher
from quanttui.core.quality.step import QualityOptions
from quanttui.core.reports import markdown
from quanttui.core.reports.run_file import write_json
from quanttui.core.reports.schema import RunDoc
from quanttui.core.run.plan import RunPlan
from quanttui.core.suites.prompts import builtin_suite

pytestmark = pytest.mark.real


async def test_context_and_cache_type_ladder(demo_models: dict[str, Path],
                                             tmp_path: Path) -> None:
    lu = expand(lineup(collect_models([demo_models["Q4_K_M"]]), single=True),
                (2048, 8192), ("q8_0",))
    assert lu.names == ["Q4_K_M@2k", "Q4_K_M@2k/kv q8_0", "Q4_K_M@8k", "Q4_K_M@8k/kv q8_0"]
    options = LadderOptions(
        plan=RunPlan(prompts=tuple(builtin_suite("quick")[:2]),
                     params=GenerationParams(n_predict=8), warmup=0,
                     timeouts=Timeouts(connect=5, read=60, total=300)),
        quality=QualityOptions(k=50, position_budget=12, positions_per_prompt=6,
                               task_items=()),
        text_positions=8, together=True, fill=0.125, fill_predict=16)
    run = await run_ladder(lu, options, Launcher(), poll_interval=0.25)
    assert not run.interrupted and not run.not_started
    for name, args in run.launch_args.items():
        rung = lu.rung(name)
        assert args[args.index("-c") + 1] == str(rung.ctx_size)
        if rung.cache_type == "q8_0":
            assert args[args.index("-ctk") + 1] == args[args.index("-ctv") + 1] == "q8_0"
        else:
            assert "-ctk" not in args
        # a quantized V cache needs flash attention; the f16 rungs run with it too
        assert args[args.index("-fa") + 1] == "on" and args.count("-fa") == 1
    assert any("flash attention on (-fa on) for every rung" in n for n in run.notes)

    sec = ladder_section(run, Constraints())
    rows = {r.name: r for r in sec.rows}
    assert list(rows) == lu.names
    for r in sec.rows:
        assert r.depth_tokens == r.ctx_size // 8  # filled exactly, BOS included
        assert r.depth_ttft_ms and r.depth_decode_tps and r.decode_tps
        assert r.memory_predicted and r.memory_predicted_error is not None
        assert measured_memory(r)
    # the deeper cache of the larger context takes more memory, for each cache type
    for cache in ("", "/kv q8_0"):
        small, large = (measured_memory(rows[f"Q4_K_M@{c}{cache}"]) for c in ("2k", "8k"))
        assert small is not None and large is not None and large > small
    # a q8_0 cache against the f16 cache of the same quant at the same context
    pairs = {(p.a, p.b): p for p in sec.neighbours}
    for c in ("2k", "8k"):
        p = pairs[(f"Q4_K_M@{c}", f"Q4_K_M@{c}/kv q8_0")]
        assert p.kld_mean is not None and p.same_top1 is not None
    assert [v.ctx_size for v in sec.verdict.by_context] == [2048, 8192]
    assert sec.verdict.reason.startswith("At 2k context within ")

    results = merged_results(run, sec)
    out = tmp_path / "ladder.json"
    write_json(out, results)
    doc = msgspec.json.decode(out.read_bytes(), type=RunDoc)  # the published schema
    assert doc.ladder is not msgspec.UNSET and doc.ladder.rows[3].cache_type == "q8_0"
    md = markdown.render(results)
    assert "At depth:" in md and "| Q4_K_M@8k/kv q8_0 | 8192 | q8_0 | 1024 tokens |" in md
