"""The TUI's parts without a running comparison: wrapping, the live buffer, themes, options."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from quanttui.config import Config, load_config
from quanttui.core.llama.result import CompletionResult
from quanttui.core.llama.urls import url_problem
from quanttui.core.run.events import Notice, RequestFinished, RequestStarted, TokenBatch
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.tui.live import LiveRun, RateSeries, diff_records, record_pieces
from quanttui.tui.state import RunOptions, build_plan
from quanttui.tui.themes import BUILTIN_DIR, ThemeFileError, load_themes, theme_from_dict
from quanttui.tui.widgets.gauges import bar, spark_rows
from quanttui.tui.widgets.stream_view import DIFF, FIRST, NORMAL, StreamView, wrap_offsets

# ---------------------------------------------------------------------- wrapping


def lines(text: str, width: int) -> list[str]:
    return [text[s:e] for s, e in wrap_offsets(text, width)]


def test_wrap_breaks_at_spaces_and_cuts_long_words() -> None:
    assert lines(" the quick brown fox", 10) == [" the quick", "brown fox"]
    assert lines("abcdefghijkl", 5) == ["abcde", "fghij", "kl"]
    assert lines("a\n\nb", 5) == ["a", "", "b"]
    assert lines("ends with newline\n", 40) == ["ends with newline", ""]


def test_wrap_counts_wide_characters_as_two_cells() -> None:
    assert lines("日本語のテキスト", 6) == ["日本語", "のテキ", "スト"]


@given(st.text(alphabet=st.sampled_from("ab \n語"), max_size=80), st.integers(1, 12),
       st.integers(0, 80))
def test_wrapping_incrementally_equals_wrapping_at_once(text: str, width: int, cut: int) -> None:
    """What StreamView relies on: re-wrapping from the last line's start after an append gives
    the lines of wrapping everything again."""
    cut = min(cut, len(text))
    head = wrap_offsets(text[:cut], width)
    start = head[-1][0]
    tail = [(start + s, start + e) for s, e in wrap_offsets(text[start:], width)]
    assert head[:-1] + tail == wrap_offsets(text, width)


class ViewApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StreamView()


async def test_stream_view_appends_restyles_and_follows_the_end() -> None:
    app = ViewApp()
    async with app.run_test(size=(22, 3)) as pilot:
        view = app.query_one(StreamView)
        for word in [" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy",
                     " dog"] * 2:
            view.append(word)
        await pilot.pause()
        assert view.text.startswith(" the quick brown fox")
        # four lines in a three-line view: scrolled to show the last one at the bottom
        assert view.scroll_y == 1 and view.render_line(2).text.rstrip().endswith("lazy dog")
        view.restyle(3, 3, FIRST)
        view.restyle(4, 17, DIFF)
        assert [view.style_of(i) for i in (2, 3, 4, 17)] == [NORMAL, FIRST, DIFF, DIFF]
        view.set_pieces([("a\tb\x1b[31m", NORMAL)])  # a tab, and an escape that must not pass
        await pilot.pause()
        assert view.text == "a    b[31m"
        view.clear()
        assert view.text == "" and view.piece_count == 0


# ---------------------------------------------------------------------- gauges


def test_spark_rows_scale_from_zero_and_align_right() -> None:
    assert spark_rows([0, 4, 8], 5, 1) == ["   ▄█"]
    assert spark_rows([8, 16], 2, 2) == [" █", "██"]
    assert spark_rows([], 3, 1) == ["   "]


def test_rates_stay_short() -> None:
    """A prompt timed near zero (cached, or a fake server's) gives millions of tokens a
    second: the column shows it in a few characters, not eight digits."""
    from quanttui.tui import fmt

    assert [fmt.rate(v) for v in (None, 412.4, 9999.0, 18_003_316.0, 52_500.0)] == [
        "n/a", "412", "9999", "18.0M", "52k"]


def test_bar_fills_in_eighths() -> None:
    assert bar(0.5, 4) == ("██", "──")
    assert bar(1.5, 2) == ("██", "")
    assert bar(1 / 16, 2)[0] == "▏"


def test_memory_line_private_model_pages_rss() -> None:
    from quanttui.core.hardware import NA, ModelPages, ProcessSample
    from quanttui.tui.widgets.server_column import _memory_tip, _ram

    def line(p: ProcessSample) -> str:
        return "".join(t for t, _ in _ram(p))

    model = ModelPages(120_000_000, True, 120_000_000, 240_000_000, ("/m/a.gguf",),
                       (("fe:00", 1),))
    p = ProcessSample("A", 1, 300_000_000, 0, 0, 0.0, 1, (0,), NA("flags"), NA("off"),
                      84_000_000, model, ("B",))
    assert line(p) == "private 84 MB  model 120/240 MB ██── shared  RSS 300 MB"
    assert "shared: B maps the same model file" in _memory_tip(p)
    big = ModelPages(950_000_000, False, 0, 1_200_000_000, (), ())
    assert "model 950 MB/1.2 GB ███▏" in line(ProcessSample(
        "A", 1, 2_000_000_000, 0, 0, 0.0, 1, (0,), NA("flags"), NA("off"), 1, big))
    remote = NA("remote server (box)")
    gone = ProcessSample.unavailable("R", remote.reason)
    assert line(gone) == "RAM n/a (remote server (box))"  # one reason, said once
    theirs = ProcessSample("A", 1, 300_000_000, NA("x"), NA("x"), 0.0, 1, (0,), NA("flags"),
                           NA("off"), NA("another user"), NA("another user"))
    assert line(theirs) == "RSS 300 MB  private, model n/a (another user)"
    no_mmap = ProcessSample("A", 1, 300_000_000, 0, 0, 0.0, 1, (0,), NA("flags"), NA("off"),
                            280_000_000, NA("no model file mapped"))
    assert line(no_mmap) == "private 280 MB  model n/a (no model file mapped)  RSS 300 MB"
    assert "model: no model file mapped" in _memory_tip(no_mmap)


# ---------------------------------------------------------------------- live buffer


def results(*names: str) -> RunResults:
    return RunResults(servers=[ServerInfo(n, f"http://{n}") for n in names],
                      schedule="simultaneous", endpoint="completion", repetitions=1, warmup=0,
                      concurrency_levels=(1,))


def record(rid: int, server: str, prompt: str, ids: list[int], texts: list[str]
           ) -> RequestRecord:
    res = CompletionResult(server=server, endpoint="completion", t_sent_ns=0)
    res.event_texts, res.token_ids = list(texts), list(ids)
    res.event_times_ns = [i for i in range(len(ids))]
    res.event_ntokens = [1] * len(ids)
    res.t_done_ns = len(ids)
    from quanttui.core.run.metrics import request_metrics

    rec = RequestRecord(rid, server, prompt, "chat", 0, False, 1, 0, 0.0, result=res)
    rec.metrics = request_metrics(res)
    return rec


def test_focus_stays_until_every_server_finished_the_key() -> None:
    live = LiveRun(results("A", "B"))
    live.on_event(RequestStarted(0, "A", "p1", 0, False))
    live.on_event(RequestStarted(1, "B", "p1", 0, False))
    live.on_event(RequestFinished(record(0, "A", "p1", [1], ["x"])))
    live.on_event(RequestStarted(2, "A", "p2", 0, False))  # A is ahead: B still on p1
    assert live.focus == ("p1", 0, False)
    live.on_event(RequestFinished(record(1, "B", "p1", [1], ["x"])))
    live.on_event(RequestStarted(3, "B", "p2", 0, False))
    assert live.focus == ("p2", 0, False)


def test_live_divergence_and_rates() -> None:
    live = LiveRun(results("A", "B"))
    live.on_event(RequestStarted(0, "A", "p", 0, False))
    live.on_event(RequestStarted(1, "B", "p", 0, False))
    live.on_event(TokenBatch(0, "A", 0, 1_000_000_000, 1_000_000_000, " the cat", (1, 2), 2, 2,
                             False))
    live.on_event(TokenBatch(1, "B", 0, 1_200_000_000, 1_200_000_000, " the", (1,), 1, 1,
                             False))
    key = ("p", 0, False)
    assert live.live_divergence(key, "B") is None  # B agrees as far as it got
    live.on_event(TokenBatch(1, "B", 0, 2_500_000_000, 2_500_000_000, " dog", (3,), 1, 1,
                             False))
    assert live.live_divergence(key, "B") == 5 and live.live_divergence(key, "A") == 5
    assert live.by_server["A"].rate.window(live.now_bucket + 1, 3) == [2, 0]
    assert live.by_server["B"].rate.window(live.now_bucket + 1, 3) == [1, 1]
    assert live.stream_for("B").decode_tps() == pytest.approx(1 / 1.3)  # type: ignore[union-attr]


def test_notices_mark_servers_down() -> None:
    live = LiveRun(results("A", "B"))
    live.on_event(Notice("error", "server-down", "B: 3 requests failed", "B"))
    assert live.by_server["B"].down and live.notices


def test_exact_diff_once_both_finished() -> None:
    live = LiveRun(results("A", "B"))
    for rid, srv, ids, texts in [(0, "A", [1, 2, 3], ["a", "b", "c"]),
                                 (1, "B", [1, 9, 3], ["a", "X", "c"])]:
        live.on_event(RequestStarted(rid, srv, "p", 0, False))
        live.on_event(RequestFinished(record(rid, srv, "p", ids, texts)))
    pieces, d = live.final_view(("p", 0, False), "B")
    assert pieces == ["a", "X", "c"] and d is not None and d.first_divergence == 1
    assert live.identical_outputs("B") == (0, 1)


def test_records_without_one_id_per_piece_compare_words() -> None:
    a = record(0, "A", "p", [1, 2, 3, 4], ["the cat sat"])  # loaded from JSON: one piece
    b = record(1, "B", "p", [1, 2], ["the dog sat"])
    assert record_pieces(a)[1] == ["the", " cat", " sat"]
    d, _, pb = diff_records(a, b)
    assert d.first_divergence == 1 and pb[1] == " dog"


def test_rate_series_keeps_a_window() -> None:
    r = RateSeries(keep=3)
    for b in range(10):
        r.add(b, b)
    assert r.window(10, 3) == [7, 8, 9]
    r.add(0, 5)  # long gone: ignored
    assert r.window(12, 4) == [8, 9, 0, 0]


# ---------------------------------------------------------------------- themes, options


def test_builtin_themes_load_with_a_light_and_a_256_colour_one() -> None:
    loaded = load_themes([BUILTIN_DIR])
    assert loaded.errors == []
    assert {"quanttui-dark", "quanttui-light", "quanttui-256"} <= set(loaded.themes)
    assert not loaded.themes["quanttui-light"].dark
    t256 = loaded.themes["quanttui-256"]
    assert t256.text_alpha == 1.0


def xterm256() -> set[str]:
    levels = [0, 95, 135, 175, 215, 255]
    cube = {f"#{r:02X}{g:02X}{b:02X}" for r in levels for g in levels for b in levels}
    greys = {f"#{v:02X}{v:02X}{v:02X}" for v in range(8, 239, 10)}
    return cube | greys


def test_256_colour_theme_uses_only_palette_colours() -> None:
    t = load_themes([BUILTIN_DIR]).themes["quanttui-256"]
    colours = [getattr(t, k) for k in ("primary", "secondary", "accent", "foreground",
                                       "background", "surface", "panel", "warning", "error",
                                       "success")] + list(t.variables.values())
    palette = xterm256()
    assert [c for c in colours if c.upper() not in palette] == []


def test_bad_theme_files_are_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    (tmp_path / "typo.toml").write_text('name = "y"\nprimary = "#fff"\nbackgroud = "#000"\n')
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#123456"\ndark = false\n')
    loaded = load_themes([tmp_path])
    assert set(loaded.themes) == {"mine"}
    assert len(loaded.errors) == 2 and any("backgroud" in e for e in loaded.errors)
    with pytest.raises(ThemeFileError):
        theme_from_dict({"primary": "#fff"}, "inline")


def test_build_plan_uses_the_tui_choices() -> None:
    cfg = load_config(None, {"generation.n_predict": 16, "run.warmup": 0})
    opts = RunOptions.from_config(cfg)
    opts.schedule, opts.suite, opts.repetitions, opts.n_predict = "alternating", "tasks", 3, 8
    plan = build_plan(cfg, opts)
    assert plan.schedule == "alternating" and plan.repetitions == 3
    assert plan.params.n_predict == 8 and plan.warmup == 0
    assert all(p.suite == "tasks" for p in plan.prompts)
    typed = build_plan(cfg, opts, typed="Hello")
    assert [p.text for p in typed.prompts] == ["Hello"]
    opts.suite = "config"
    assert next(p.suite for p in build_plan(Config(), opts).prompts) == "quick"


def test_option_cycles_and_url_checks() -> None:
    opts = RunOptions.from_config(Config())
    assert opts.next_schedule() == "alternating" and opts.next_suite() == "quick"
    assert url_problem("http://127.0.0.1:8080") is None
    assert url_problem("ftp://x") and url_problem("http://x:port")


# ---------------------------------------------------------------------- short labels, fitted lines


def test_short_labels_are_the_quants_where_the_names_carry_them() -> None:
    from quanttui.tui.labels import short_labels, versus

    labels = short_labels(["gemma3-270m-Q4_K_M", "gemma3-270m-Q8_0"])
    assert labels == {"gemma3-270m-Q4_K_M": "Q4_K_M", "gemma3-270m-Q8_0": "Q8_0"}
    assert versus(labels, "gemma3-270m-Q8_0", "gemma3-270m-Q4_K_M") == "Q8_0 vs Q4_K_M"
    assert short_labels(["m-Q4_K_M", "m-IQ4_NL", "x-iq2_xxs"])["x-iq2_xxs"] == "iq2_xxs"
    # no quant in the names: the words they all share go
    assert short_labels(["llama-8b-base", "llama-8b-instruct"]) == {
        "llama-8b-base": "base", "llama-8b-instruct": "instruct"}
    # the same quant twice: a quant alone would not tell them apart
    same = short_labels(["a-Q4_K_M", "b-Q4_K_M"])
    assert same == {"a-Q4_K_M": "a", "b-Q4_K_M": "b"}
    # URLs as names, cut in the middle when long
    cut = short_labels(["very-long-host-name.example.org:8080"])
    assert len(cut["very-long-host-name.example.org:8080"]) == 18 and "…" in cut[
        "very-long-host-name.example.org:8080"]


def test_pack_never_cuts_a_figure() -> None:
    from quanttui.tui.widgets.line import pack

    parts = ["[b]Q4_K_M[/b] vs Q8_0", "decode +10.1 t/s [+8.0, +12.2] ×1.22 faster",
             "same output 1/3", "memory -43 MB (-12%)", "TTFT +5 ms", "n 6, wins 100% of prompts"]
    wide = pack(parts, 200, 1)
    assert wide == [" · ".join(parts)]
    narrow = pack(parts, 78, 2)
    assert len(narrow) == 2 and all(len(x.replace("[b]", "").replace("[/b]", "")) <= 78
                                    for x in narrow)
    assert narrow[0].startswith("[b]Q4_K_M[/b] vs Q8_0 · decode")
    shown = " · ".join(narrow)
    for p in parts:  # each figure is there whole, or not at all
        assert p in shown or all(w not in shown for w in p.split(", wins"))
    assert pack(["only"], 10, 2) == ["only", ""]


def test_sparklines_on_a_shared_scale_over_the_whole_run() -> None:
    from quanttui.tui.widgets.gauges import fit_series, rate_label

    assert spark_rows([4, 8], 4, 1, top=16, left=True) == ["▂▄  "]  # half the shared top
    assert spark_rows([40], 1, 1, top=16) == ["█"]  # above the scale: capped
    assert fit_series([1, 3, 5, 7, 9], 2) == [3.0, 8.0]  # means of equal runs
    assert fit_series([2, 4], 10) == [2.0, 4.0]
    assert rate_label(57.4) == "57 t/s" and rate_label(1234) == "1.2k t/s"


# ---------------------------------------------------------------------- the results model


def test_results_model_of_a_ladder_takes_its_rows_and_verdict() -> None:
    import msgspec

    from quanttui.core.ladder.section import LadderSection
    from quanttui.core.ladder.table import Diff, PairRow, QuantRow
    from quanttui.core.ladder.verdict import Constraints, Verdict
    from quanttui.tui.results_model import NOISE, results_model

    rows = [QuantRow(name="m-Q4_K_M", quant="Q4_K_M", path="/m/Q4_K_M.gguf", reference=True,
                     requantized_from=None, size_bytes=253_000_000, bits_per_weight=7.55,
                     decode_tps=40.0),
            QuantRow(name="m-Q2_K", quant="Q2_K", path="/m/Q2_K.gguf", reference=False,
                     requantized_from="Q4_K_M", size_bytes=180_000_000, bits_per_weight=5.4,
                     decode_tps=41.0, positions=64, same_top1=0.71, kld_mean=0.31,
                     decode_vs_ref=Diff(value=1.02, low=0.97, high=1.08, n=6, measurable=False),
                     accuracy={"arithmetic": 0.5}, accuracy_n={"arithmetic": 12},
                     accuracy_vs_ref={"arithmetic": Diff(value=-0.25, low=-0.5, high=-0.02,
                                                         n=12, measurable=True)})]
    verdict = Verdict(recommended="m-Q4_K_M", reason="Run m-Q4_K_M (the reference).",
                      within_noise=["m-Q2_K vs m-Q4_K_M decode speed: no measurable "
                                    "difference"], failing={"m-Q2_K": ["KLD 0.310 > 0.05"]},
                      constraints=Constraints(),
                      warnings=["m-Q4_K_M scored 0/12 in facts: no quant can score lower"])
    section = LadderSection(reference="m-Q4_K_M", k=100, together=False, rows=rows,
                            neighbours=[PairRow(a="m-Q4_K_M", b="m-Q2_K")], verdict=verdict,
                            answers=["How much does Q2_K lose?"], notes=["requantized"])
    res = RunResults(servers=[ServerInfo(r.name, "http://x") for r in rows],
                     schedule="alternating", endpoint="completion", repetitions=1, warmup=0,
                     concurrency_levels=(1,))
    res.extra["ladder"] = msgspec.to_builtins(section)
    m = results_model(res)
    assert m.verdict == "Run m-Q4_K_M (the reference)." and m.recommended == "m-Q4_K_M"
    assert m.noise == verdict.within_noise and m.answers == ["How much does Q2_K lose?"]
    titles = [t.title for t in m.tables]
    assert "Neighbours (each quant against the next one up)" in titles
    speed = m.tables[0]
    q2 = next(r for r in speed.rows if r[0][0].startswith("Q2_K"))
    assert q2[2] == (f"×1.02 [0.97, 1.08] {NOISE}", "muted")  # within noise: marked, muted
    acc = next(t for t in m.tables if t.title.startswith("Task accuracy"))
    assert acc.rows[0][3] == ("50% -25% [-50%, -2%]", "bad")  # measurably worse
    assert "requantized" in m.notes
    # what the figures can't show is said in the view, as in the reports
    assert "warning: m-Q4_K_M scored 0/12 in facts: no quant can score lower" in m.notes
    # the requantized quant marked, the mark explained; bits/w says why it exceeds the type's
    assert q2[0][0] == "Q2_K ‡" and speed.rows[0][0][0] == "Q4_K_M (ref) ★"
    assert "‡ requantized from Q4_K_M: made from an already quantized file, so no more " \
        "accurate than it" in m.notes
    memory = next(t for t in m.tables if t.title.startswith("Memory"))
    bits = next(c for c in memory.columns if c.title == "bits/w")
    assert "embeddings and output" in bits.tip
    # the Markdown's summary table says the same under it
    from quanttui.core.reports.ladder import summary_table

    md = "\n".join(summary_table(section))
    assert "| m-Q2_K ‡ |" in md and "‡ requantized from Q4_K_M" in md
    assert "bits/w: the file's size × 8 / parameters" in md


def test_results_model_of_a_comparison_marks_a_requantized_server() -> None:
    from quanttui.tui.results_model import results_model

    res = RunResults(servers=[ServerInfo("Q4_K_M", "http://a", model_ftype="Q4_K - Medium"),
                              ServerInfo("Q8_0", "http://b", model_ftype="Q8_0",
                                         requantized_from="Q4_K_M")],
                     schedule="alternating", endpoint="completion", repetitions=1, warmup=0,
                     concurrency_levels=(1,))
    m = results_model(res)
    assert [r[0][0] for r in m.tables[0].rows] == ["Q4_K_M (ref) ★", "Q8_0 ‡"]
    assert any(n.startswith("‡ requantized from Q4_K_M") for n in m.notes)


# ---------------------------------------------------------------------- --no-repack, remembered


def test_a_binary_that_needs_no_repack_is_remembered(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The TUI's (and every) start path: a binary that died of SIGILL in its repacked kernels
    on this CPU starts with --no-repack in later runs, without the crash and its notices."""
    import os

    from quanttui.core.models import repack, servers
    from quanttui.core.models.servers import LaunchSpec

    monkeypatch.setenv("QUANTTUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(servers, "_NO_REPACK", set())  # a new process
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    spec = LaunchSpec(model=tmp_path / "m.gguf")
    assert not repack.needs_no_repack(binary)
    assert "--no-repack" not in spec.args(binary, 8080)
    repack.remember_no_repack(binary, "SIGILL")
    assert repack.needs_no_repack(binary)
    assert (tmp_path / "cache" / "no-repack.json").exists()
    assert spec.args(binary, 8080).count("--no-repack") == 1
    # a rebuilt binary is tried again; another CPU would be too (its identity is in the key)
    os.utime(binary, ns=(1, 1))
    monkeypatch.setattr(servers, "_NO_REPACK", set())
    assert not repack.needs_no_repack(binary)
    assert "--no-repack" not in spec.args(binary, 8080)
    assert "|" in repack.cpu_identity()


# ---------------------------------------------------------------------- memory as a stacked bar


def _launched(repacked: int) -> dict[str, object]:
    """A started server's hardware entry: the log's parts beside the measured peaks."""
    import msgspec

    from quanttui.core.hardware.breakdown import breakdown
    from quanttui.core.models.buffers import MIB, ServerBuffers

    buf = ServerBuffers(model={"CPU_Mapped": 225 * MIB, "CPU_REPACK": repacked},
                        kv={"CPU": 6 * MIB}, compute={"CPU": 21 * MIB}, output={"CPU": MIB},
                        kv_caches=[(6 * MIB, 2048)], depth=2048)
    bd = breakdown(buf, 100_000_000 + repacked, 236_000_000)
    return {"private_peak": 100_000_000 + repacked, "model_pages_peak": 236_000_000,
            "memory_breakdown": msgspec.to_builtins(bd)}


def test_memory_stack_parts_on_one_scale() -> None:
    from quanttui.tui.widgets.memory_stack import bar_forms, stack_of

    small, big = stack_of(_launched(13 * 1 << 20)), stack_of(_launched(51 * 1 << 20))
    assert small is not None and big is not None and small.from_log
    assert [p.label for p in big.parts][:4] == ["mapped", "repacked", "KV", "other"]
    scale = max(small.total, big.total)

    def bar(stack: object) -> str:
        runs = bar_forms(stack, scale, 20)[-1]  # type: ignore[arg-type]
        return "".join(t for t, _ in runs[:-1])

    b_small, b_big = bar(small), bar(big)
    assert len(b_small) == len(b_big) == 20  # the same cells for the bar in every column
    assert b_big.rstrip() == b_big and b_small.rstrip() != b_small  # the larger fills it
    assert b_big.count("▓") > b_small.count("▓") > 0  # the repacked weights, to scale
    words = "".join(t for t, _ in bar_forms(big, scale, 20)[0])
    assert words.endswith(" 389 MB █mapped 236 ▓repacked 53 ▒KV 6 ░other 73 ─rest 20")


def test_memory_stack_of_an_attached_server_says_its_parts_are_unknown() -> None:
    from quanttui.core.hardware.breakdown import NO_LOG
    from quanttui.tui.widgets.memory_stack import bar_forms, stack_of

    entry = {"private_peak": 80_000_000, "model_pages_peak": 240_000_000,
             "memory_breakdown": {"why": NO_LOG, "measured": 320_000_000}}
    stack = stack_of(entry)
    assert stack is not None and not stack.from_log and stack.total == 320_000_000
    assert [p.glyph for p in stack.parts] == ["█", "░"] and NO_LOG in stack.tip
    forms = ["".join(t for t, _ in f) for f in bar_forms(stack, 640_000_000, 10)]
    assert forms[0].startswith("████░      320 MB")  # half the scale: 5 of 10 cells
    assert forms[1].endswith("320 MB · no log: parts unknown")
    assert stack_of({"private_peak": {"n/a": "remote"}}) is None  # nothing measured


def test_a_notice_that_names_its_kind_is_not_titled_twice() -> None:
    from quanttui.tui.state import NoticeEntry

    said = NoticeEntry(0.0, "warning", "CPU contention", "CPU contention: A and B need 4 threads")
    assert said.line().endswith(" CPU contention: A and B need 4 threads")
    assert said.line().count("CPU contention") == 1
    other = NoticeEntry(0.0, "error", "server down", "B exited (code -9)")
    assert other.line().endswith(" server down: B exited (code -9)")
