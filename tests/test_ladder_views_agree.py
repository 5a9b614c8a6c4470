"""One ladder, every view: the same ratio and interval for each pair (issue 19).

The ladder runs on fake servers through the shipped runner; the reference is fast in its first
pass and slow in its second (the machine drifted between passes), which is what made the
summary (paired within a pass) and the details (the reference pooled over all passes) disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gguf import LlamaFileType

from quanttui.core.ladder.lineup import collect_models, lineup
from quanttui.core.ladder.runner import LadderOptions, run_ladder
from quanttui.core.ladder.section import ladder_section, merged_results
from quanttui.core.ladder.table import Diff, drift_floor, speed_pair
from quanttui.core.ladder.verdict import Constraints
from quanttui.core.llama.client import Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.launcher import LaunchDefaults
from quanttui.core.models.servers import LaunchSpec
from quanttui.core.quality.step import QualityOptions
from quanttui.core.reports import markdown
from quanttui.core.reports.run_file import load_run, write_json
from quanttui.core.run.outside_load import outside_load_notice
from quanttui.core.run.plan import RunPlan
from quanttui.core.suites.prompts import builtin_suite
from quanttui.testing.fake_server import FakeLlamaServer
from quanttui.tui.results_model import results_model
from test_models_discovery import write_gguf

# The reference runs at ~250 tok/s in pass 1 and ~110 in pass 2; Q2_K (~130 tok/s, pass 2) is
# faster than the reference beside it, slower than the reference pooled over both passes.
REF_DELAY_BY_PASS = (0.004, 0.009)
DELAY = {"Q4_K_M": 0.005, "Q2_K": 0.0075}


class FakeLauncher:
    """Starts a fake llama-server per quant; before each candidate's pass the reference's pace
    is set for that pass."""

    def __init__(self) -> None:
        self.defaults = LaunchDefaults()
        self.launches: dict[str, Any] = {}
        self.fakes: dict[str, FakeLlamaServer] = {}
        self.passes = 0

    def check_fit(self, todo: Sequence[tuple[str, LaunchSpec]]) -> Any:
        return SimpleNamespace(refuse=None)

    async def start_together(self, todo: Sequence[tuple[str, LaunchSpec]], *, force: bool,
                             say: Any) -> list[Any]:
        out = []
        for name, _ in todo:
            fake = FakeLlamaServer(token_delay=DELAY.get(name, REF_DELAY_BY_PASS[0])).start()
            self.fakes[name] = fake
            server = SimpleNamespace(label=name, url=fake.url, pid=None, spawned_args=[name],
                                     log_path=None, binary=None,
                                     spec=SimpleNamespace(client_key=None))
            la = SimpleNamespace(name=name, url=fake.url, server=server, notes=[],
                                 state="ready")
            self.launches[name] = la
            out.append(la)
        if name in DELAY:  # a candidate's pass begins: the machine's state for this pass
            self.fakes["Q8_0"].token_delay = REF_DELAY_BY_PASS[self.passes]
            self.passes += 1
        return out

    def stop(self, name: str) -> None:
        if name in self.fakes:
            self.fakes.pop(name).stop()
            self.launches.pop(name, None)

    def stop_all(self) -> None:
        for name in list(self.fakes):
            self.stop(name)


def _key(d: Any) -> tuple[str, str, str]:
    """A pair as every face prints it: ratio, interval (2 decimals) and basis."""
    if isinstance(d, Diff):
        return f"{d.value:.2f}", f"[{d.low:.2f}, {d.high:.2f}]", d.basis
    ci = d.ratio_ci
    return f"{d.ratio:.2f}", f"[{ci[0]:.2f}, {ci[1]:.2f}]", d.basis


async def _ladder(tmp_path: Path) -> Any:
    """The ladder of Q8_0 (the reference), Q4_K_M and Q2_K on fakes, the reference drifting."""
    for q, ft, pad in (("Q8_0", LlamaFileType.MOSTLY_Q8_0, 3000),
                       ("Q4_K_M", LlamaFileType.MOSTLY_Q4_K_M, 2000),
                       ("Q2_K", LlamaFileType.MOSTLY_Q2_K, 1000)):
        with write_gguf(tmp_path / f"m-{q}.gguf", file_type=ft).open("ab") as f:
            f.write(b"\0" * pad)  # sizes in the quants' order (bits per weight come from them)
    lu = lineup(collect_models([tmp_path]))
    assert lu.names == ["Q8_0", "Q4_K_M", "Q2_K"] and lu.reference == "Q8_0"
    opts = LadderOptions(
        plan=RunPlan(prompts=tuple(builtin_suite("quick")[:4]), repetitions=2, warmup=0,
                     params=GenerationParams(n_predict=24),
                     timeouts=Timeouts(connect=5, read=10, total=60)),
        quality=QualityOptions(distribution=False, tasks=False))
    launcher = FakeLauncher()
    run = await run_ladder(lu, opts, launcher, poll_interval=5.0)  # type: ignore[arg-type]
    assert run.together and len(run.passes) == 2 and launcher.passes == 2
    return run


async def test_every_view_gives_each_pair_the_same_ratio_and_interval(tmp_path: Path) -> None:
    run = await _ladder(tmp_path)
    sec = ladder_section(run, Constraints())
    merged = merged_results(run, sec)
    rows = {r.name: r for r in sec.rows}

    # the drift is real and said: the reference ran about half as fast in the second pass
    assert len(sec.reference_by_pass) == 2
    assert sec.reference_by_pass[1] < 0.7 * sec.reference_by_pass[0]
    assert any("by pass" in n for n in sec.notes)
    # ... and it raises the drift floor above the configured 3%, one floor in every view
    change = sec.reference_by_pass[0] / sec.reference_by_pass[1] - 1
    floor = drift_floor(run)
    assert floor == pytest.approx(change, rel=0.01) and floor > run.options.plan.drift_floor
    (said,) = [n for n in sec.notes if n.startswith("the reference itself moved")]
    assert f"moved {floor:.1%} between passes" in said and "raised to it" in said

    # the JSON, read back: the stored section and the figures recomputed from the records
    path = tmp_path / "ladder.json"
    write_json(path, merged)
    loaded = load_run(path)
    assert merged.drift_floor == loaded.drift_floor == floor
    stored = {r["name"]: r for r in loaded.extra["ladder"]["rows"]}
    md = markdown.render(loaded)
    tui = results_model(loaded)
    tui_cells = [c[0] for t in tui.tables for row in t.rows for c in row]

    for name in ("Q4_K_M", "Q2_K"):
        summary = rows[name].decode_vs_ref
        assert summary is not None and summary.basis == "interleaved"
        want = _key(summary)
        # the details of the same report and the JSON's paired section pair the same way
        assert _key(merged.paired("decode_tps_client", "Q8_0", name)) == want
        assert _key(loaded.paired("decode_tps_client", "Q8_0", name)) == want
        assert _key(Diff(**stored[name]["decode_vs_ref"])) == want
        # the t/s beside the ratio are the ratio's two terms (the pass they shared)
        row = rows[name]
        assert row.decode_tps is not None and row.decode_ref_tps is not None
        assert f"{row.decode_tps / row.decode_ref_tps:.2f}" == want[0]
        # Markdown: summary table and details table print the same figure
        text = f"×{want[0]} {want[1]}"
        summary_line = next(x for x in md.splitlines() if x.startswith(f"| {name}")
                            or x.startswith(f"| **{name}**"))
        assert text in summary_line, summary_line
        details = [x for x in md.splitlines() if x.startswith(f"| {name} − Q8_0")
                   and "decode_tps_client" in x]
        assert details and text in details[0], details
        # the TUI's results view
        assert any(c.startswith(text) for c in tui_cells), tui_cells

    # neighbours that never shared a pass are paired through the reference, the same in the
    # section, the merged run and the loaded JSON (and labelled so)
    (n1, n2) = sec.neighbours
    assert n1.decode is not None and _key(n1.decode) == _key(rows["Q4_K_M"].decode_vs_ref)
    assert n2.decode is not None and n2.decode.basis == "via Q8_0"
    for res in (merged, loaded):
        assert _key(res.paired("decode_tps_client", "Q4_K_M", "Q2_K")) == _key(n2.decode)
    # ... and every face prints that pair's figure: the Markdown's neighbours table and its
    # answer in words, the TUI's neighbours table (marked † there: not side by side)
    via = "×{} {}".format(*_key(n2.decode))
    md_row = next(x for x in md.splitlines() if x.startswith("| Q2_K vs Q4_K_M |"))
    assert via in md_row and "(via Q8_0)" in md_row, md_row
    said = next(x for x in md.splitlines() if x.startswith("- Q2_K against Q4_K_M directly"))
    assert f"decode {via}" in said and "(via Q8_0)" in said, said
    (tui_nb,) = [t for t in tui.tables if t.title.startswith("Neighbours")]
    (tui_row,) = [r for r in tui_nb.rows if r[0][0].startswith("Q2_K")]
    assert tui_row[1][0].startswith(f"{via} †"), tui_row
    # pooled over both passes, the reference would read ×~0.7 slower beside Q2_K's own speed:
    # no view says that any more
    assert not re.search(r"Q2_K lower than Q8_0", md)
    # the details' Speed table pools the reference's two passes, and says so on its row
    speed = md.split("## Speed")[1].split("```")[0]
    assert "| Q8_0 (pooled over 2 passes) |" in speed and "| Q4_K_M |" in speed, speed
    # one file, one size: the summary's is the file's, the Servers table's the tensors'
    assert "| quant | file size |" in md
    servers = md.split("## Servers")[1].split("## Speed")[0]
    assert "| weights |" in servers and markdown.WEIGHTS_NOTE in servers, servers


async def test_what_slowed_a_pass_is_said_beside_the_ladders_figures(tmp_path: Path) -> None:
    """A pass measured while other processes kept the host busy: its notice is one of the
    ladder's notes, so stdout, the Markdown's ladder section and the TUI's results view say
    it beside the figures it affects (it was kept only in the run's notices, at the foot of
    the Markdown, and never said by `quanttui ladder`); and the run's hardware section, which
    `compare` reads, counts every pass's load (it held the first pass's alone)."""
    from quanttui.headless_ladder import _verdict_text

    run = await _ladder(tmp_path)
    for p, other, own, samples in zip(run.passes, (0.2, 1.8), (1.0, 3.0), (10, 30),
                                      strict=True):
        p.hardware["host"]["other_cpu_cores_mean"] = other
        p.hardware["own_cpu_percent_mean"] = own
        p.hardware["samples"] = samples
    busy = outside_load_notice({"host": {"other_cpu_cores_mean": 1.4, "logical_cores": 2}},
                               "pass 2: ")
    assert busy is not None
    run.passes[1].results.notices.append(busy)
    # Q2_K made from Q8_0's file: one quant, said in the singular
    run.lineup = replace(run.lineup, rungs=tuple(
        replace(r, model=replace(r.model, requantized_from="m-Q8_0.gguf"))
        if r.name == "Q2_K" else r for r in run.lineup.rungs))
    sec = ladder_section(run, Constraints())
    assert busy["message"] in sec.notes
    (requant,) = [n for n in sec.notes if "requantized" in n]
    assert requant.startswith("Q2_K was requantized from m-Q8_0.gguf: it cannot be more "
                              "accurate than the file it was made from, so its quality"), requant
    write_json(tmp_path / "ladder.json", merged_results(run, sec))
    loaded = load_run(tmp_path / "ladder.json")
    said = busy["message"][:60]
    assert f"note: {said}" in _verdict_text(loaded)
    md = markdown.render(loaded)
    ladder_part = md.split("# Details")[0]
    assert said in ladder_part
    assert md.count(said) == 1  # among the ladder's notes, not again at the details' foot
    assert any(said in n for n in results_model(loaded).notes)
    # over the samples of both passes: (0.2 × 10 + 1.8 × 30) / 40
    assert loaded.hardware is not None and loaded.hardware["samples"] == 40
    assert loaded.hardware["host"]["other_cpu_cores_mean"] == pytest.approx(1.4)
    assert loaded.hardware["own_cpu_percent_mean"] == pytest.approx(2.5)
    assert set(loaded.hardware["servers"]) == {"Q8_0", "Q4_K_M", "Q2_K"}


def _block_records(speeds: dict[tuple[str, int], float], n_prompts: int = 6) -> list[Any]:
    """Requests of servers in blocks (passes) at the given decode speeds; each prompt moves
    every server alike (no request noise)."""
    from quanttui.core.run.records import RequestRecord

    out = []
    for (server, block), v in speeds.items():
        for k in range(n_prompts):
            out.append(RequestRecord(
                request_id=len(out), server=server, prompt_id=f"p{k}", category="c",
                repetition=0, warmup=False, concurrency=1, round=0, started_at=0.0, block=block,
                metrics=SimpleNamespace(decode_tps_client=v * (1 + 0.01 * k))))  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize(("prior", "want"), [(0.03, 0.08), (0.10, 0.10)])
def test_the_references_own_change_between_passes_is_the_floor(prior: float, want: float
                                                                ) -> None:
    """The reference ran in passes 1 and 2 and moved 8% between them; A ran beside it in pass
    1, B alone in pass 3 (nothing beside both): A–B is paired across passes, and the floor its
    interval is widened by is the reference's 8% (the configured 3% raised), never below the
    configured prior (10% stays 10%)."""
    records = _block_records({("R", 1): 20.0, ("A", 1): 15.0, ("R", 2): 20.0 / 1.08,
                              ("B", 3): 15.0})
    run = SimpleNamespace(passes=[SimpleNamespace(results=SimpleNamespace(records=records))],
                          lineup=SimpleNamespace(names=["R", "A", "B"], reference="R"),
                          options=SimpleNamespace(plan=SimpleNamespace(drift_floor=prior)))
    assert drift_floor(run) == pytest.approx(want)  # type: ignore[arg-type]
    d = speed_pair(run, "A", "B")  # type: ignore[arg-type]
    assert d is not None and d.basis == "across blocks" and d.floor == pytest.approx(want)
    # B is A's speed: the interval is ± the floor around ×1 (the prompts' spread is shared)
    assert d.ratio_ci is not None
    assert d.ratio_ci[0] == pytest.approx(1 - want) and d.ratio_ci[1] == pytest.approx(1 + want)
    assert not d.measurable
