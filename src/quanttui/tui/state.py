"""What the compare screen shows besides the servers (those are `quanttui.tui.registry`'s): the
options of the next run, the run shown, the host's samples. No Textual here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from quanttui.config import Config, PromptsConfig
from quanttui.core.hardware import HwSample
from quanttui.core.quality.progress_words import progress_words
from quanttui.core.run.plan import RunPlan, plan_from_config
from quanttui.core.run.schedule import SCHEDULES, Schedule
from quanttui.core.suites.prompts import SUITE_NAMES
from quanttui.tui.live import LiveRun

# "config" runs what [prompts] names (suites, files, inline); the others are one built-in suite.
SUITES = ("config", *SUITE_NAMES)


@dataclass
class RunOptions:
    schedule: Schedule
    suite: str
    repetitions: int
    n_predict: int

    @classmethod
    def from_config(cls, cfg: Config) -> RunOptions:
        return cls(cfg.run.schedule, "config", cfg.run.repetitions, cfg.generation.n_predict)

    def next_schedule(self) -> Schedule:
        return SCHEDULES[(SCHEDULES.index(self.schedule) + 1) % len(SCHEDULES)]

    def next_suite(self) -> str:
        return SUITES[(SUITES.index(self.suite) + 1) % len(SUITES)]


def build_plan(cfg: Config, opts: RunOptions, typed: str | None = None) -> RunPlan:
    """The headless path's plan, with the TUI's choices on top: a typed prompt or a suite, the
    schedule, repetitions and tokens. Raises ValueError / PromptFileError for bad prompts."""
    if typed is not None:
        prompts = PromptsConfig(suites=(), inline=(typed,))
    elif opts.suite == "config":
        prompts = cfg.prompts
    else:
        prompts = PromptsConfig(suites=(opts.suite,))
    run = msgspec.structs.replace(cfg.run, schedule=opts.schedule, repetitions=opts.repetitions)
    gen = msgspec.structs.replace(cfg.generation, n_predict=opts.n_predict)
    return plan_from_config(msgspec.structs.replace(cfg, prompts=prompts, run=run,
                                                    generation=gen))


Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class NoticeEntry:
    """One line of the notices log: what the run, a server or an action said."""

    at: float  # time.time()
    level: Level
    title: str
    text: str

    def line(self) -> str:
        """The time, the title and the text; the title left out where the text starts with it
        (a notice from the core often names its own kind: "CPU contention: ...")."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        if not self.title or self.text.lower().startswith(self.title.lower() + ":"):
            return f"{stamp} {self.text}"
        return f"{stamp} {self.title}: {self.text}"


@dataclass
class QualityProgress:
    """The quality step as it goes: the stage, how far, and whether a stop was asked."""

    stage: str = "starting"
    done: int = 0
    total: int = 0
    servers: int = 1  # the total counts this many servers' work
    stopping: bool = False

    def words(self) -> str:
        """As the headless run says it (`core.quality.step.progress_words`)."""
        if self.stage == "starting":
            return "starting"
        return progress_words(self.stage, self.done, self.total, self.servers)


@dataclass
class LadderStatus:
    """A ladder started from the model pane, as it goes (core.ladder.progress's words)."""

    step: str = "starting the reference's server …"
    left: str = ""  # the whole ladder's time left, once measured
    fraction: float | None = None  # the share done, once measured
    stopping: bool = False


@dataclass(eq=False)
class RunState:
    """The run side of the screens: written by the app, read by the screens when they draw.

    `live` is the run shown (running, finished, or replayed from a stored one); `suite_run` the
    run the results view and the quality step are about: the last suite run, or one opened from
    the history (a typed prompt is a run of its own that streams in `live` and leaves it be);
    `running` says
    whether a run is on (or starting: `live` is None until the servers have answered);
    `hw` is the latest host sample, `hw_off_reason` why there is none; `contention` holds the
    CPU-contention warnings of the run; `notices` everything the app said (newest last);
    `quality` the quality step while it runs; `prompt_texts` the text of each prompt the
    session ran (a stored run keeps only their ids).
    """

    config: Config
    options: RunOptions
    live: LiveRun | None = None
    suite_run: LiveRun | None = None
    running: bool = False
    hw: HwSample | None = None
    hw_off_reason: str | None = None
    contention: list[str] = field(default_factory=list)
    notices: list[NoticeEntry] = field(default_factory=list)
    quality: QualityProgress | None = None
    ladder: LadderStatus | None = None
    prompt_texts: dict[str, str] = field(default_factory=dict)
    _suite_labels: dict[str, str] = field(default_factory=dict, repr=False)

    def say(self, level: Level, title: str, text: str) -> NoticeEntry:
        entry = NoticeEntry(time.time(), level, title, text)
        self.notices.append(entry)
        del self.notices[:-500]
        return entry

    def results_run(self) -> LiveRun | None:
        """The run the results view shows: the suite run, else (only typed prompts so far)
        the run shown."""
        return self.suite_run if self.suite_run is not None else self.live

    def suite_label(self) -> str:
        """The chosen suite and its number of prompts, "quick (6)"."""
        suite = self.options.suite
        if suite not in self._suite_labels:
            try:
                n = len(build_plan(self.config, self.options).prompts)
                self._suite_labels[suite] = f"{suite} ({n})"
            except Exception:  # a bad prompt file is reported when a run starts
                self._suite_labels[suite] = suite
        return self._suite_labels[suite]
