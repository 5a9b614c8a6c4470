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
