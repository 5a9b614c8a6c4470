"""A ladder's progress: the whole ladder's time left from what it has measured, and the lines a
headless ladder prints with it (issue 23: `demo --ladder` was silent for minutes, no ETA)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from gguf import LlamaFileType

from quanttui import headless_ladder
from quanttui.config import Config, GenerationConfig, PromptsConfig, RunConfig
from quanttui.core.ladder.lineup import collect_models, lineup
from quanttui.core.ladder.progress import (
    LadderProgress,
    ProgressTracker,
    ladder_steps,
    progress_text,
)
from quanttui.core.ladder.verdict import Constraints
from quanttui.core.quality.step import QualityOptions
from quanttui.headless_ladder import HeadlessLadder, LadderProgressLine
from test_ladder_views_agree import FakeLauncher
from test_models_discovery import write_gguf


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_steps_of_a_ladder_with_the_reference_beside_each_candidate() -> None:
    steps = ladder_steps([["R", "A"], ["R", "B"]], "R", ref_first=True, distribution=True,
                         task_items=5)
    assert [(s.kind, s.pass_no, s.who, s.total) for s in steps] == [
        ("server start", 1, "R", 1),
        ("server start", 1, "A", 1), ("requests", 1, "R and A", None),
        ("reference continuations", 1, "R", None),
        ("teacher forcing", 1, "R", None), ("task items", 1, "R", 5),
        ("teacher forcing", 1, "A", None), ("task items", 1, "A", 5),
        ("server start", 2, "B", 1), ("requests", 2, "R and B", None),
        ("teacher forcing", 2, "B", None), ("task items", 2, "B", 5)]


def test_time_left_is_every_step_left_at_its_measured_pace() -> None:
    clock = Clock()
    seen: list[LadderProgress] = []
    tr = ProgressTracker(seen.append, clock=clock)
    tr.plan(ladder_steps([["R"], ["A"], ["B"]], "R", ref_first=False, distribution=False,
                         task_items=4), 3)
    tr.begin("server start", 1, "R", 1)
    assert seen[-1].eta_s is None  # nothing measured: no guess
    clock.t = 2.0
    tr.advance(done=1)  # a start: 2 s
    tr.begin("requests", 1, "R")
    clock.t = 5.0
    tr.advance(done=3, total=10)  # requests: 1 s each; every pass has 10
    assert seen[-1].total == 10
    assert seen[-1].eta_s is None  # task items not measured yet
    clock.t = 12.0
    tr.advance(done=10)
    tr.begin("task items", 1, "R")
    clock.t = 18.0
    tr.advance(by=2)  # task items: 3 s each
    p = seen[-1]
    # left: 2 items of R, then two passes of a start, 10 requests and 4 items
    assert p.eta_s == pytest.approx(2 * 3 + 2 * (2 + 10 * 1 + 4 * 3))
    assert p.fraction == pytest.approx(18 / (18 + p.eta_s))
    assert progress_text(p) == "[pass 1/3] R: task items 2/4 · ladder 25% · under a minute left"

    # A candidate whose server won't start: its steps are skipped, not waited for.
    clock.t = 24.0
    tr.advance(by=2)
    tr.begin("server start", 2, "A", 1)
    clock.t = 25.0
    tr.begin("server start", 3, "B", 1)
    # starts: 3 s for the one that started
    assert seen[-1].eta_s == pytest.approx(3 + 10 + 12)


def test_plain_lines_at_most_every_ten_seconds_and_the_time_left_counts_down() -> None:
    clock = Clock()
    out = io.StringIO()
    line = LadderProgressLine(out, clock=clock)
    p = LadderProgress(1, 2, "Q8_0", "requests", 1, 20, 5.0, 300.0)
    for t in range(0, 25):  # an event a second
        clock.t = float(t)
        line(p)
    assert len(out.getvalue().splitlines()) == 3  # at 0, 10 and 20 s
    clock.t = 31.0  # no news for 7 s: the tick still prints, the estimate counted down
    line.tick()
    last = out.getvalue().splitlines()[-1]
    assert last.endswith("about 5 min left") and "ladder 4%" in last  # 293 s; 12/305
    line.say("pass 2/2: Q8_0 and Q2_K")
    assert out.getvalue().endswith("pass 2/2: Q8_0 and Q2_K\n")


def test_a_headless_ladder_prints_its_progress_with_the_time_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for q, ft, pad in (("Q8_0", LlamaFileType.MOSTLY_Q8_0, 3000),
                       ("Q4_K_M", LlamaFileType.MOSTLY_Q4_K_M, 2000),
                       ("Q2_K", LlamaFileType.MOSTLY_Q2_K, 1000)):
        with write_gguf(tmp_path / f"m-{q}.gguf", file_type=ft).open("ab") as f:
            f.write(b"\0" * pad)
    lu = lineup(collect_models([tmp_path]))
    # every line, so that a ladder of a few seconds shows them (the pace is tested above)
    monkeypatch.setattr(headless_ladder, "PLAIN_EVERY_S", 0.0)
    cfg = Config(run=RunConfig(warmup=0, export_dir=str(tmp_path)),
                 generation=GenerationConfig(n_predict=8), prompts=PromptsConfig())
    err = io.StringIO()
    run = HeadlessLadder(cfg, lu, Constraints(),
                         quality=QualityOptions(distribution=False, tasks=False),
                         output=tmp_path / "ladder.json", formats=("json",), history=False,
                         launcher=FakeLauncher(),  # type: ignore[arg-type]
                         stdout=io.StringIO(), stderr=err)
    assert run.execute() == 0
    lines = err.getvalue().splitlines()
    estimate = re.compile(r"^\[pass ([12])/2\] Q8_0 and (Q4_K_M|Q2_K): requests \d+/\d+ · "
                          r"ladder \d+% · (under a minute|about \d+ min) left$")
    passes = {m[1] for x in lines if (m := estimate.match(x))}
    assert passes == {"1", "2"}, lines
