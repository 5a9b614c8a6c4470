"""HumanEval through the quality step on the real demo pair (Gemma 3 270M: pass@1 is about 0;
this checks the pipeline, not the model)."""

from __future__ import annotations

import pytest

from quanttui.core.models.servers import ManagedServer
from quanttui.core.quality.code_exec import Limits
from quanttui.core.quality.step import QualityOptions, compare_quality, quality_dict
from quanttui.core.run.plan import ServerSpec
from quanttui.core.run.records import RunResults, ServerInfo
from quanttui.core.suites.humaneval import CATEGORY, STOP, load_humaneval

pytestmark = pytest.mark.real


async def test_five_humaneval_problems_on_the_real_pair(
        real_pair: tuple[ManagedServer, ...]) -> None:
    specs = [ServerSpec(s.label, s.url) for s in reversed(real_pair)]  # Q8_0: the reference
    results = RunResults(servers=[ServerInfo(s.name, s.url) for s in specs],
                         schedule="sequential", endpoint="completion", repetitions=1, warmup=0,
                         concurrency_levels=(1,), records=[])
    items = tuple(load_humaneval(limit=5, n_predict=80))
    rep = await compare_quality(results, specs, (), options=QualityOptions(
        distribution=False, task_items=items, code_execution=Limits(timeout_s=10)))
    assert rep.reference == "Q8_0" and not rep.interrupted
    data = quality_dict(rep)
    outcomes = data["task_outcomes"]
    assert len(outcomes) == 10 and {o["server"] for o in outcomes} == {"Q8_0", "Q4_K_M"}
    for o in outcomes:
        assert o["error"] is None and o["category"] == CATEGORY
        assert isinstance(o["correct"], bool)  # every program ran and was judged
        assert o["correct"] or o["detail"]  # a failure says why
        assert not any(s in o["output"] for s in STOP)  # generation stopped where HumanEval does
    assert {(a["group"], a["server"], a["n"]) for a in data["accuracy"]} == {
        (CATEGORY, "Q8_0", 5), (CATEGORY, "Q4_K_M", 5)}
    (diff,) = data["pairs"][0]["tasks"]["accuracy_diff"]
    assert diff["group"] == CATEGORY and diff["n"] == 5
    assert diff["ci_low"] is not None and diff["ci_high"] is not None
    assert diff["ci_low"] <= diff["diff"]["value"] <= diff["ci_high"]
    # Only notes about the sandbox (e.g. "network not isolated") may appear.
    assert all(n.startswith("code execution:") for n in rep.notices), rep.notices
