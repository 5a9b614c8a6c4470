"""What the compare screen shows besides the servers (those are `quanttui.tui.registry`'s): the
options of the next run, the run shown, the host's samples. No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from quanttui.config import Config, PromptsConfig
from quanttui.core.hardware import HwSample
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


@dataclass(eq=False)
class RunState:
    """The run side of the compare screen: written by the app, read by the screen when it draws.

    `live` is the run shown (running, finished, or replayed from a stored one); `running` says
    whether a run is on; `hw` is the latest host sample, `hw_off_reason` why there is none;
    `contention` holds the CPU-contention warnings of the run.
    """

    config: Config
    options: RunOptions
    live: LiveRun | None = None
    running: bool = False
    hw: HwSample | None = None
    hw_off_reason: str | None = None
    contention: list[str] = field(default_factory=list)
    _suite_labels: dict[str, str] = field(default_factory=dict, repr=False)

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
