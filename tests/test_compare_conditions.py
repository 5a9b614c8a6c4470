"""`compare` of two stored runs under changed conditions (issue 19, item 7): a run on a busy host
with another schedule, decode 28% lower, was shown as "no measurable difference" with neither
change named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quanttui.core.reports.compare import compare_text
from quanttui.core.reports.run_file import results_from_dict

RECORDED = Path(__file__).parent / "data" / "recorded-run.json"


def _run(other_cores: float, *, schedule: str = "simultaneous", decode: float = 1.0
         ) -> Any:
    data = json.loads(RECORDED.read_text())
    data["schedule"] = schedule
    data["hardware"]["host"]["other_cpu_cores_mean"] = other_cores
    for r in data["records"]:
        if r["metrics"]:
            r["metrics"]["decode_tps_client"] *= decode
    return results_from_dict(data)


def test_compare_names_the_load_and_schedule_and_calls_a_28_percent_drop() -> None:
    before = _run(0.1)
    after = _run(1.9, schedule="sequential", decode=0.72)
    text = compare_text(before, after, "#1", "#2")
    conditions = text.split("matched by")[0]
    assert "Not the same conditions" in conditions, text
    assert "schedule: simultaneous → sequential" in conditions, text
    assert "other processes' load: 0.1 → 1.9 cores busy on average" in conditions, text
    for name in ("gemma3-270m-Q8_0", "gemma3-270m-Q2_K"):
        block = text.split(f"{name} → {name}")[1]
        line = next(x for x in block.splitlines() if "decode tok/s (client)" in x)
        assert "×0.72" in line and "now lower than before" in line, line
        assert "±3% drift floor" in line, line


def test_compare_says_when_only_one_run_measured_the_load() -> None:
    data = json.loads(RECORDED.read_text())  # written before the outside load was kept
    assert "other_cpu_cores_mean" not in data["hardware"]["host"]
    text = compare_text(results_from_dict(data), _run(0.2), "#1", "#2")
    assert "other processes' load: measured in only one of the runs" in text, text
    # the same conditions: nothing is said
    assert "Not the same conditions" not in compare_text(_run(0.2), _run(0.4), "#1", "#2")
