"""A real ladder on the demo quants: one row per quant, neighbours, a verdict, JSON that
validates against the published structs, Markdown that starts with the answer."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from quanttui.core.ladder.lineup import collect_models, lineup
from quanttui.core.ladder.runner import LadderOptions, run_ladder
from quanttui.core.ladder.section import ladder_section, merged_results
from quanttui.core.ladder.verdict import Constraints
from quanttui.core.llama.client import Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.launcher import Launcher
from quanttui.core.quality.step import QualityOptions
from quanttui.core.reports import markdown
from quanttui.core.reports.run_file import encode_run, load_run, write_json
from quanttui.core.reports.schema import RunDoc
from quanttui.core.run.plan import RunPlan
from quanttui.core.suites.prompts import builtin_suite
from quanttui.core.suites.tasks import builtin_tasks

pytestmark = pytest.mark.real


def _options(together: bool | None) -> LadderOptions:
    items = builtin_tasks()
    # two items of each scored category: enough for a paired interval per category
    picked = tuple(i for c in ("arithmetic", "facts", "code")
                   for i in [x for x in items if x.category == c][:2])
    return LadderOptions(
        plan=RunPlan(prompts=tuple(builtin_suite("quick")[:3]),
                     params=GenerationParams(n_predict=12), warmup=0,
                     timeouts=Timeouts(connect=5, read=60, total=300)),
        quality=QualityOptions(k=100, position_budget=24, positions_per_prompt=8,
                               task_items=picked),
        text_positions=24, together=together)


async def test_demo_ladder(demo_models: dict[str, Path], tmp_path: Path) -> None:
    paths = [demo_models[q] for q in ("Q2_K", "Q4_K_M", "IQ4_NL")]
    lu = lineup(collect_models(paths))
    assert lu.reference == "Q4_K_M"  # the source the others were requantized from
    assert lu.names == ["Q4_K_M", "IQ4_NL", "Q2_K"]  # by bits per weight
    run = await run_ladder(lu, _options(None), Launcher())
    assert run.together and len(run.passes) == 2 and not run.interrupted
    sec = ladder_section(run, Constraints())
    assert [r.name for r in sec.rows] == lu.names
    assert [(p.a, p.b) for p in sec.neighbours] == [("Q4_K_M", "IQ4_NL"), ("IQ4_NL", "Q2_K")]
    for r in sec.rows:
        assert r.decode_tps and r.size_bytes > 0 and r.bits_per_weight
        assert r.memory_rss_peak and r.memory_rss_peak > 100e6  # a real server, resident
        if not r.reference:
            assert r.requantized_from == "Q4_K_M"
            assert r.decode_vs_ref is not None and r.decode_vs_ref.low is not None
            assert r.same_top1 is not None and 0 < r.same_top1 <= 1
            assert r.kld_mean is not None and r.kld_mean > 0 and r.ppl_ratio
            assert set(r.accuracy_vs_ref) == {"arithmetic", "facts", "code"}
            assert all(d.low is not None and d.high is not None and d.low <= d.value <= d.high
                       for d in r.accuracy_vs_ref.values())
    assert sec.verdict.reason and sec.verdict.constraints.memory_budget_bytes
    assert sec.verdict.recommended in (*lu.names, None)
    assert any("IQ4_NL against Q4_K_M" in a for a in sec.answers)
    # the worse quant diverges more
    q2, iq4 = (next(r for r in sec.rows if r.name == n) for n in ("Q2_K", "IQ4_NL"))
    assert q2.kld_mean is not None and iq4.kld_mean is not None and q2.kld_mean > iq4.kld_mean

    results = merged_results(run, sec)
    out = tmp_path / "ladder.json"
    write_json(out, results)
    doc = msgspec.json.decode(out.read_bytes(), type=RunDoc)  # the published schema
    assert doc.ladder is not msgspec.UNSET and doc.ladder.verdict.reason == sec.verdict.reason
    again = load_run(out)
    assert json.loads(encode_run(again)) == json.loads(out.read_bytes())
    md = markdown.render(again)
    assert md.startswith("# quanttui ladder") and md.index("## Verdict") < md.index("## Summary")
    assert "requantized from Q4_K_M" in md and "Details: every request" in md


async def test_ladder_one_server_at_a_time(demo_models: dict[str, Path]) -> None:
    lu = lineup(collect_models([demo_models["Q4_K_M"], demo_models["Q2_K"]]))
    run = await run_ladder(lu, _options(False), Launcher())
    assert not run.together and [p.servers for p in run.passes] == [["Q4_K_M"], ["Q2_K"]]
    (q2,) = [r for r in ladder_section(run, Constraints()).rows if not r.reference]
    # paired across the two passes, prompt by prompt
    assert q2.decode_vs_ref is not None and q2.decode_vs_ref.n == 3
    assert q2.kld_mean is not None and q2.kld_mean > 0
