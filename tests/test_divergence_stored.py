"""The first divergence of two outputs is the same during a run and for the same run read back
from its file (which keeps each output's token ids and joined text, not the stream's pieces):
by token ids where both streams sent them all, by words where one left ids out."""

from __future__ import annotations

import json
from pathlib import Path

from quanttui.core.llama.protocol import Timings
from quanttui.core.llama.result import CompletionResult
from quanttui.core.quality.outputs import compare_run_outputs
from quanttui.core.reports.run_file import encode_run, results_from_dict
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.testing.fake_server import FakeLlamaServer
from quanttui.tui.live import replay
from quanttui.tui.results_model import prompt_rows
from test_tui_flows import SIZE, app_for, config, probed, run_prompt, until


def read_back(results: RunResults) -> RunResults:
    return results_from_dict(json.loads(encode_run(results)))


def divergences(results: RunResults) -> list[tuple[str, int | None, str]]:
    return [(c.prompt_id, c.first_divergence, c.unit)
            for c in compare_run_outputs(results, "A", "B")]


async def test_live_and_stored_runs_agree_on_the_first_divergence(tmp_path: Path) -> None:
    with FakeLlamaServer(token_delay=0.002) as a, \
            FakeLlamaServer(token_delay=0.002, diverge_at=4) as b:
        app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
        async with app.run_test(size=SIZE) as pilot:
            await probed(pilot, app)
            await run_prompt(pilot, app, "Hello")
            results = app.results
            assert results is not None
            live = app.run_state.live
            assert live is not None
            key = live.keys()[0]
            assert live.first_difference(key, "B") == (4, "tok")
            column = app.compare.columns["B"]
            await until(pilot, lambda: "≠ tok 4" in str(column.output.border_title))

            stored = read_back(results)
            assert divergences(results) == divergences(stored) == [("inline-1", 4, "tok")]
            assert [r.divergence for r in prompt_rows(results)] == [
                r.divergence for r in prompt_rows(stored)] == [{"B": 4}]
            again = replay(stored)
            assert again.first_difference(again.keys()[0], "B") == (4, "tok")
            # opened as from the history: the compare screen's column says the same
            app.show_results(stored)
            await until(pilot, lambda: app.run_state.live is not live
                        and "≠ tok 4" in str(column.output.border_title))


def _record(rid: int, server: str, pieces: list[str], ids: list[int], generated: int = 0
            ) -> RequestRecord:
    """A /completion stream of one piece per event; `generated` (the server's count) above
    the ids sent where a byte-fallback token's id never streamed."""
    r = CompletionResult(server=server, endpoint="completion", t_sent_ns=0)
    r.t_first_event_ns = 10
    r.event_times_ns = [10 + i for i in range(len(pieces))]
    r.event_ntokens = [1] * len(pieces)
    r.event_texts = list(pieces)
    r.token_ids = list(ids)
    r.t_done_ns = 100
    r.timings = Timings(prompt_n=3, prompt_ms=1.0, prompt_per_second=3000.0,
                        predicted_n=generated or len(pieces), predicted_ms=5.0,
                        predicted_per_second=200.0)
    r.stop_type = "limit"
    rec = RequestRecord(rid, server, "p1", "chat", 0, False, 1, 0, 1.7e9 + rid, result=r)
    rec.metrics = request_metrics(r)
    return rec


def test_ids_left_out_compare_by_words_in_memory_and_read_back() -> None:
    # B's third token ends inside "é" and is never sent by id: the pieces still pair with ids
    # one to one, but the ids no longer stand for the text, so both sides compare by words
    a = _record(0, "A", [" the", " cat", " sat", " on", " mats"], [1, 2, 3, 4, 5])
    b = _record(1, "B", [" the", " cat", " s", "é", " on", " mats"], [1, 2, 3, 9, 4, 5], 7)
    assert b.metrics.ids_missing == 1
    results = RunResults(servers=[ServerInfo("A", "http://a"), ServerInfo("B", "http://b")],
                         schedule="sequential", endpoint="completion", repetitions=1, warmup=0,
                         concurrency_levels=(1,), records=[a, b], started_at=1.7e9,
                         finished_at=1.7e9 + 2)
    assert divergences(results) == divergences(read_back(results)) == [("p1", 2, "word")]
    live = replay(results)
    assert live.first_difference(live.keys()[0], "B") == (2, "word")
    stored = replay(read_back(results))
    assert stored.first_difference(stored.keys()[0], "B") == (2, "word")
