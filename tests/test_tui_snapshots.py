"""SVG snapshots of the TUI at 80×24 and 160×48 (animations and cursor blink off).

Figures that depend on timing can't be snapshotted from a live run, so the compare screen shows
a run built here from fixed records, replayed through the same path a live run takes (events →
live buffer → widgets), with a fixed hardware sample. The results view and the prompt list show
that run with a fixed quality section (as `compare_quality` writes it) and fixed memory peaks,
through the real core (`rows_from_run`, `decide`). The servers screen probes fake servers on
fixed ports through the real client. Update with `pytest --snapshot-update` and look at the
report before committing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from quanttui.config import load_config
from quanttui.core.hardware import NA, HostSample, HwSample, ModelPages, ProcessSample
from quanttui.core.llama.protocol import Timings
from quanttui.core.llama.result import CompletionResult
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.plan import ServerSpec
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.testing.fake_server import FakeLlamaServer
from quanttui.tui.app import QuantTUI, build_app
from quanttui.tui.messages import HardwareSampled
from quanttui.tui.registry import ServerRegistry

SIZES = [(80, 24), (160, 48)]


async def settle(pilot: Pilot[Any]) -> None:
    """Let queued messages and the tables' column sizing (done when a table is next idle)
    finish: on a loaded machine a few pauses are not always enough, so wait for the tables."""
    for _ in range(4):
        await pilot.pause(0.05)
    for _ in range(100):
        if not any(t._require_update_dimensions or t._updated_cells
                   for t in pilot.app.screen.query(DataTable)):
            break
        await pilot.pause(0.05)
PORTS = (47811, 47812)

OUTPUTS = {
    "quick-1": ([" Tokyo", ".", " The", " capital", " of", " Italy", " is", " Rome", "."],
                [" Tokyo", ".", " The", " capital", " of", " Italy", " is", " Rome", "."]),
    "quick-2": ([" 42", ".", "\n", "Question", ":", " What", " is", " 9", " +", " 10", "?"],
                [" 42", ".", "\n", "Question", ":", " What", " is", " 12", " +", " 7", "?"]),
    "quick-4": ([" a", " young", " fisherman", " named", " Tom", ".", " Every", " morning", ",",
                 " he", " sailed", " out", " to", " sea", " and", " came", " back", " with",
                 " a", " full", " net", "."],
                [" a", " young", " fisher", "woman", " named", " Tom", ".", " Every", " day",
                 ",", " he", " sailed", " out", " to", " sea", " and", " came", " back",
                 " with", " a", " full", " basket", "."]),
}


def _ids(pieces: list[str]) -> list[int]:
    return [sum(map(ord, p)) for p in pieces]


def fixed_results() -> RunResults:
    servers = [
        ServerInfo("Q8_0", "http://127.0.0.1:8080", model_path="/models/gemma3-270m-Q8_0.gguf",
                   model_ftype="Q8_0", model_size=285_000_000, n_params=268_098_176,
                   n_ctx=2048, total_slots=1, build_info="b11434"),
        ServerInfo("Q4_K_M", "http://127.0.0.1:8081",
                   model_path="/models/gemma3-270m-Q4_K_M.gguf", model_ftype="Q4_K - Medium",
                   model_size=253_000_000, n_params=268_098_176, n_ctx=2048, total_slots=1,
                   build_info="b11434"),
    ]
    res = RunResults(servers=servers, schedule="simultaneous", endpoint="completion",
                     repetitions=1, warmup=0, concurrency_levels=(1,), started_at=1.7e9,
                     finished_at=1.7e9 + 9)
    t0 = 10**12
    rid = 0
    for k, (prompt, outs) in enumerate(OUTPUTS.items()):
        for s, (server, per_token_ms) in enumerate([("Q8_0", 22.0), ("Q4_K_M", 18.0)]):
            pieces = outs[s]
            start = t0 + k * 3_000_000_000
            r = CompletionResult(server=server, endpoint="completion", t_sent_ns=start)
            first = start + 60_000_000 + s * 5_000_000
            r.t_first_event_ns = first
            r.event_times_ns = [first + int(i * per_token_ms * 1e6) for i in range(len(pieces))]
            r.event_ntokens = [1] * len(pieces)
            r.event_texts = list(pieces)
            r.token_ids = _ids(pieces)
            r.t_done_ns = r.event_times_ns[-1] + 1_000_000
            n = len(pieces)
            r.timings = Timings(prompt_n=14, prompt_ms=50.0 + s * 5,
                                prompt_per_second=280.0 - s * 20, predicted_n=n,
                                predicted_ms=(n - 1) * per_token_ms,
                                predicted_per_second=1000 / per_token_ms)
            r.stop_type = "limit" if k < 2 else "eos"
            rec = RequestRecord(rid, server, prompt, "chat", 0, False, 1, k, 1.7e9 + k * 3 + s,
                                result=r)
            rec.metrics = request_metrics(r)
            res.records.append(rec)
            rid += 1
    return res


def fixed_quality() -> dict[str, Any]:
    """A quality section as `quality_dict` writes it: Q4_K_M against Q8_0, distributions over
    the three prompts, task accuracy in two categories (one measurably worse)."""
    import msgspec

    from quanttui.core.quality.accuracy import Accuracy
    from quanttui.core.quality.divergence import MeanCI, MeanUnc
    from quanttui.core.quality.section import (
        AccuracyDiffDoc,
        DistributionDoc,
        OutputsDoc,
        PromptDivergenceDoc,
        QualityOptionsDoc,
        QualityPairDoc,
        QualitySection,
        TaskOutputsDoc,
        TasksDoc,
    )

    dist = DistributionDoc(
        method="grammar", k=1000, n_positions=54, requests_ref=3, requests_other=3,
        grammar_fallbacks=0, elapsed_s=2.1, interrupted=False, kld_label="KLD@1000",
        same_top1=MeanCI(0.926, 0.037, 0.6326, 0.9891), kld=MeanCI(0.0213, 0.0082, 0.0, 0.8829),
        kld_percentiles={"median": 0.0071, "p90": 0.052, "p99": 0.181},
        delta_p=MeanCI(-0.0112, 0.003, -0.0241, 0.0017),
        per_prompt=[PromptDivergenceDoc("quick-1", 18, 1.0, 0.0049),
                    PromptDivergenceDoc("quick-2", 18, 0.889, 0.0302),
                    PromptDivergenceDoc("quick-4", 18, 0.889, 0.0288)])
    acc = [Accuracy("arithmetic", "Q8_0", 12, 11, MeanUnc(0.917, 0.08)),
           Accuracy("arithmetic", "Q4_K_M", 12, 5, MeanUnc(0.417, 0.14)),
           Accuracy("facts", "Q8_0", 12, 9, MeanUnc(0.75, 0.13)),
           Accuracy("facts", "Q4_K_M", 12, 9, MeanUnc(0.75, 0.13))]
    diffs = [AccuracyDiffDoc("arithmetic", 12, 0.917, 0.417, MeanUnc(-0.5, 0.15), 6, 0,
                             -0.7473, -0.1806),
             AccuracyDiffDoc("facts", 12, 0.75, 0.75, MeanUnc(0.0, 0.12), 1, 1, -0.2611,
                             0.2611)]
    section = QualitySection(
        reference="Q8_0",
        options=QualityOptionsDoc(True, True, 1000, "grammar", 256, 64, None),
        pairs=[QualityPairDoc("Q8_0", "Q4_K_M", OutputsDoc(None, []), dist,
                              TasksDoc(TaskOutputsDoc(None, []), diffs, []))],
        accuracy=acc, accuracy_by_length=[], task_outcomes=[], notices=[], interrupted=False,
        elapsed_s=41.0)
    data: dict[str, Any] = msgspec.to_builtins(section)
    return data


def fixed_hardware(res: RunResults) -> dict[str, Any]:
    """Memory peaks per server, as the run JSON's hardware section keeps them."""
    return {"servers": {
        "Q8_0": {"private_peak": 84_000_000, "model_pages_peak": 285_000_000,
                 "rss_peak": 402_000_000, "model_file": 291_543_744},
        "Q4_K_M": {"private_peak": 80_000_000, "model_pages_peak": 246_000_000,
                   "rss_peak": 371_000_000, "model_file": 253_104_000}}}


def results_with_quality() -> RunResults:
    res = fixed_results()
    res.extra["quality"] = fixed_quality()
    res.hardware = fixed_hardware(res)
    return res


def fixed_sample() -> HwSample:
    host = HostSample(61.0, (58.0, 64.0), (1.2, 0.9, 0.7), 24_000_000_000, 3_900_000_000,
                      19_600_000_000, 0, 0)
    procs = (
        ProcessSample("Q8_0", 4101, 402_000_000, 118_000_000, 260_000_000, 99.0, 3, (0, 1),
                      NA("flags"), NA("NVML: libnvidia-ml.so.1 not found"), 84_000_000,
                      ModelPages(285_000_000, False, 0, 291_543_744, (), ())),
        ProcessSample("Q4_K_M", 4102, 371_000_000, 96_000_000, 233_000_000, 98.0, 3, (0, 1),
                      NA("flags"), NA("NVML: libnvidia-ml.so.1 not found"), 80_000_000,
                      ModelPages(246_000_000, False, 0, 253_104_000, (), ())),
    )
    return HwSample(7, 0, 2_000_000, host, procs, NA("NVML: libnvidia-ml.so.1 not found"))


def compare_app(theme: str = "quanttui-dark") -> QuantTUI:
    cfg = load_config(None, {"run.theme": theme, "prompts.suites": ["quick"]})
    servers = ServerRegistry.from_config(cfg, [ServerSpec("Q8_0", "http://127.0.0.1:8080"),
                                               ServerSpec("Q4_K_M", "http://127.0.0.1:8081")])
    return build_app(cfg, servers, animations=False, probe_on_start=False)


async def show_fixed_run(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, QuantTUI)
    app.show_results(fixed_results())
    app.post_message(HardwareSampled(fixed_sample()))
    await pilot.pause()
    await pilot.pause()
    app.clear_notifications()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_after_a_run(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(compare_app(), terminal_size=size, run_before=show_fixed_run)


def test_compare_light_theme(snap_compare: Any) -> None:
    assert snap_compare(compare_app("quanttui-light"), terminal_size=(80, 24),
                        run_before=show_fixed_run)


def test_compare_256_colour_theme(snap_compare: Any) -> None:
    assert snap_compare(compare_app("quanttui-256"), terminal_size=(80, 24),
                        run_before=show_fixed_run)


THEMES = ["quanttui-dark", "quanttui-256"]


async def show_results_view(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, QuantTUI)
    app.show_results(results_with_quality())
    await pilot.pause()
    await pilot.press("v")
    await settle(pilot)
    app.clear_notifications()


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_view(snap_compare: Any, size: tuple[int, int], theme: str) -> None:
    """The table from core, the verdict, within-noise marks; stacked at 80 columns."""
    assert snap_compare(compare_app(theme), terminal_size=size, run_before=show_results_view)


async def show_prompt_list(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, QuantTUI)
    app.show_results(results_with_quality())
    await pilot.pause()
    await pilot.press("p")
    await settle(pilot)
    await pilot.press("up")  # from the prompt shown (the last) to quick-2: differs at token 7
    await settle(pilot)
    app.clear_notifications()


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_prompt_list(snap_compare: Any, size: tuple[int, int], theme: str) -> None:
    assert snap_compare(compare_app(theme), terminal_size=size, run_before=show_prompt_list)


def test_compare_before_any_run_with_prompt_focused(snap_compare: Any) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("slash")
        await pilot.press(*"Why is the sky blue?")

    assert snap_compare(compare_app(), terminal_size=(80, 24), run_before=before)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def fixed_fakes() -> Iterator[tuple[FakeLlamaServer, FakeLlamaServer]]:
    if not all(_free(p) for p in PORTS):
        pytest.skip(f"ports {PORTS} are taken; the servers screen shows URLs")
    with FakeLlamaServer(port=PORTS[0], model="gemma3-270m-Q8_0.gguf", ftype="Q8_0") as a, \
            FakeLlamaServer(port=PORTS[1], model="gemma3-270m-Q4_K_M.gguf") as b:
        yield a, b


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_servers_screen(snap_compare: Any, fixed_fakes: tuple[FakeLlamaServer, ...],
                        size: tuple[int, int]) -> None:
    a, b = fixed_fakes
    cfg = load_config(None, {})
    servers = ServerRegistry.from_config(cfg, [ServerSpec("Q8_0", a.url),
                                               ServerSpec("Q4_K_M", b.url),
                                               ServerSpec("old", "http://127.0.0.1:9")],
                                         selected=["Q8_0", "Q4_K_M"])
    app = build_app(cfg, servers, animations=False)

    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await settle(pilot)
        await pilot.press("down", "down")  # the unreachable one: its error in the details
        await settle(pilot)
        app.clear_notifications()

    assert snap_compare(app, terminal_size=size, run_before=before)


def fixed_discovery() -> Any:
    """Two models and a bad file, at fixed paths (discovery itself is tested on real files)."""
    from pathlib import Path

    from quanttui.core.models.discovery import DiscoveryResult, ModelInfo, ModelProblem

    def model(q: str, ftype: int, size: int) -> ModelInfo:
        p = Path(f"/models/gemma3-270m-{q}.gguf")
        return ModelInfo(path=p, shards=(p,), size_bytes=size, architecture="gemma3",
                         name="Gemma 3 270m", quant=q, file_type=ftype, size_label="270M",
                         n_params=268_098_176, context_length=32768, vocab_size=262144)

    return DiscoveryResult(
        models=(model("Q4_K_M", 15, 253_000_000), model("Q8_0", 7, 292_000_000)),
        problems=(ModelProblem(Path("/models/notes.gguf"),
                               "not a GGUF file (starts with b'not ')"),),
        searched=(Path("/models"),))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_screen(snap_compare: Any, size: tuple[int, int],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    import quanttui.tui.screens.models as pane

    monkeypatch.setattr(pane, "discover", lambda dirs, include_default_places: fixed_discovery())
    cfg = load_config(None, {})
    app = build_app(cfg, ServerRegistry.from_config(cfg, []), animations=False,
                    probe_on_start=False)

    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("l")  # no servers: the servers screen is open; l opens the pane
        await app.workers.wait_for_complete()
        await settle(pilot)
        await pilot.press("down", "space")  # Q8_0 marked, highlighted: its details below
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


async def show_history(pilot: Pilot[Any]) -> None:
    """Three stored runs (the newest stopped, the oldest with quality), the cursor on the
    middle one and the oldest marked for c."""
    from quanttui.core.reports.history import Store
    from quanttui.core.reports.run_file import results_dict

    stopped = fixed_results()
    stopped.interrupted = True
    for res in (results_with_quality(), fixed_results(), stopped):
        Store().add(results_dict(res))
    await pilot.press("h")
    await settle(pilot)
    await pilot.press("down", "down", "space", "up")
    await settle(pilot)
    pilot.app.clear_notifications()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_history_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """Every stored run with its kind, status, quality and verdict; one marked for compare."""
    assert snap_compare(compare_app(), terminal_size=size, run_before=show_history)


async def show_ladder_progress(pilot: Pilot[Any]) -> None:
    """A ladder from the model pane under way: its step, share done and time left on the status
    line, in core.ladder.progress's words (tui.ladder_run puts them there)."""
    from quanttui.core.ladder.progress import LadderProgress, step_text, time_left
    from quanttui.tui.state import LadderStatus

    app = pilot.app
    assert isinstance(app, QuantTUI)
    p = LadderProgress(pass_no=2, passes=4, who="Q8_0 and IQ4_NL", stage="requests", done=7,
                       total=12, elapsed_s=190.0, eta_s=260.0)
    app.run_state.ladder = LadderStatus(step_text(p), time_left(p.eta_s), p.fraction)
    app.compare.draw_status()
    await settle(pilot)
    app.clear_notifications()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_ladder_progress(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(compare_app(), terminal_size=size, run_before=show_ladder_progress)
