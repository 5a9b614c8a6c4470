"""compare_quality end to end against toy servers, its JSON section, and the headless wiring."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from quality_toy import VOCAB, ToyLM, tokenize
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.result import CompletionResult
from quanttui.core.quality.step import (
    QualityOptions,
    QualityProgress,
    compare_quality,
    format_quality,
    quality_dict,
)
from quanttui.core.reports.gates import evaluate
from quanttui.core.reports.run_file import encode_run, results_dict, results_from_dict
from quanttui.core.reports.schema import RunDoc
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.core.suites.prompts import Prompt
from quanttui.core.suites.tasks import TaskItem
from quanttui.testing.fake_server import FakeLlamaServer

PROMPTS = [Prompt("p1", "ab c"), Prompt("p2", "caab d"), Prompt("p3", "d d")]
TASKS = (TaskItem("m1", "arithmetic", "number", "Q1", "12"),
         TaskItem("m2", "arithmetic", "number", "Q2", "3"),
         TaskItem("o1", "chat", "open", "Q3", None))


def greedy(lm: ToyLM, text: str, n: int) -> list[int]:
    ctx = tokenize(text)
    out: list[int] = []
    for _ in range(n):
        lp = lm.logprobs(ctx + out)
        out.append(max(range(len(VOCAB)), key=lambda t: lp[t]))
    return out


def results_for(models: dict[str, ToyLM], n: int = 8) -> RunResults:
    recs = []
    for name, lm in models.items():
        for p in PROMPTS:
            ids = greedy(lm, p.text, n)
            res = CompletionResult(server=name, endpoint="completion", t_sent_ns=0, t_done_ns=1,
                                   event_times_ns=list(range(n)), event_ntokens=[1] * n,
                                   event_texts=[VOCAB[t] for t in ids], token_ids=ids)
            rec = RequestRecord(len(recs), name, p.id, "chat", 0, False, 1, 0, 0.0, result=res)
            rec.metrics = request_metrics(res)
            recs.append(rec)
    return RunResults(servers=[ServerInfo(n, f"http://{n}.test") for n in models],
                      schedule="sequential", endpoint="completion", repetitions=1, warmup=0,
                      concurrency_levels=(1,), records=recs)


@pytest.fixture
def toys() -> dict[str, ToyLM]:
    a, b = ToyLM(seed=1), ToyLM(seed=2, base_seed=1)
    for lm, answers in ((a, (" 12\n", " 3\n", " a b")), (b, (" 12\n", " 4\n", " a c"))):
        lm.fixed = dict(zip(("Q1", "Q2", "Q3"), answers, strict=True))
    return {"A": a, "B": b}


async def test_compare_quality_end_to_end(toys: dict[str, ToyLM]) -> None:
    results = results_for(toys)
    seen: list[QualityProgress] = []
    opts = QualityOptions(k=5, position_budget=20, positions_per_prompt=8, task_items=TASKS,
                          run_params=GenerationParams(n_predict=8))
    async with toys["A"].client("A") as a, toys["B"].client("B") as b:
        rep = await compare_quality(results, [], PROMPTS, options=opts, on_progress=seen.append,
                                    clients={"A": a, "B": b})
    assert rep.reference == "A" and not rep.notices and not rep.interrupted
    (pair,) = rep.pairs
    assert [c.prompt_id for c in pair.outputs] == ["p1", "p2", "p3"]
    d = pair.distribution
    assert d is not None and d.stats is not None and d.n_positions == 20
    assert [len(ps) for _, ps in d.sequences] == [8, 8, 4]  # budget spent in prompt order
    assert 0 < d.stats.same_top1.value < 1 and d.stats.kld.value > 0
    # The run was greedy: its outputs are the targets, nothing regenerated.
    gen = [r for r in toys["A"].requests if "grammar" not in r and r.get("n_predict", 1) > 1
           and not isinstance(r["prompt"], str)]
    assert gen == []
    # Tasks: per category and server, with the paired difference.
    acc = {(x.group, x.server): x.accuracy.value for x in rep.accuracy}
    assert acc == {("arithmetic", "A"): 1.0, ("arithmetic", "B"): 0.5}
    (diff,) = pair.accuracy_diff
    assert diff.diff.value == -0.5 and diff.only_ref_correct == 1
    assert len(pair.task_outputs) == 3 and not pair.task_outputs[2].exact_match
    assert {p.stage for p in seen} == {"outputs", "reference", "distribution", "tasks"}
    last = [p for p in seen if p.stage == "distribution"][-1]
    assert last.done == last.total == 40

    data = quality_dict(rep)
    msgspec.json.encode(data)  # plain JSON types only
    dist = data["pairs"][0]["distribution"]
    assert dist["same_top1"]["value"] == pytest.approx(d.stats.same_top1.value, abs=1e-6)
    assert dist["kld_label"] == "KLD@5" and dist["n_positions"] == 20
    assert {"max", "p99", "median", "min"} <= set(dist["kld_percentiles"])
    assert data["accuracy"][0]["accuracy"]["unc"] >= 0
    assert "same top-1" in format_quality(rep) and "arithmetic" in format_quality(rep)

    results.extra["quality"] = data
    assert results_dict(results)["quality"]["reference"] == "A"
    # the section is typed in the run JSON, and reads back as the same data
    doc = msgspec.json.decode(encode_run(results), type=RunDoc)
    assert not isinstance(doc.quality, msgspec.UnsetType)
    assert doc.quality.pairs[0].distribution is not None
    assert doc.quality.pairs[0].distribution.kld_label == "KLD@5"
    assert results_from_dict(results_dict(results)).extra["quality"] == data
    (gate,) = evaluate(results, min_same_top1=0.0)
    assert gate.actual == pytest.approx(d.stats.same_top1.value, abs=1e-6) and gate.passed


async def test_grammar_and_per_position_give_the_same_report(toys: dict[str, ToyLM]) -> None:
    results = results_for(toys)
    figs = []
    for method in ("grammar", "per-position"):
        opts = QualityOptions(k=5, method=method, tasks=False, task_items=TASKS,
                              run_params=GenerationParams(n_predict=8))
        async with toys["A"].client("A") as a, toys["B"].client("B") as b:
            rep = await compare_quality(results, [], PROMPTS, options=opts,
                                        clients={"A": a, "B": b})
        d = rep.pairs[0].distribution
        assert d is not None
        figs.append((d.stats, d.sequences))
    assert figs[0] == figs[1]


async def test_self_comparison_and_reference_choice(toys: dict[str, ToyLM]) -> None:
    same = {"A": toys["A"], "A2": ToyLM(seed=1)}
    results = results_for(same)
    opts = QualityOptions(k=5, tasks=False, run_params=GenerationParams(n_predict=8))
    async with same["A"].client("A") as a, same["A2"].client("A2") as b:
        rep = await compare_quality(results, [], PROMPTS, reference="A2", options=opts,
                                    clients={"A": a, "A2": b})
        with pytest.raises(ValueError, match="reference server 'C'"):
            await compare_quality(results, [], PROMPTS, reference="C", options=opts,
                                  clients={"A": a, "A2": b})
    assert rep.reference == "A2" and rep.pairs[0].other == "A"
    st = rep.pairs[0].distribution.stats  # type: ignore[union-attr]
    assert st is not None and st.same_top1.value == 1.0 and st.kld.value == 0.0
    assert all(c.exact_match for c in rep.pairs[0].outputs)


async def test_not_greedy_run_regenerates_references(toys: dict[str, ToyLM]) -> None:
    results = results_for(toys)
    opts = QualityOptions(k=3, tasks=False, positions_per_prompt=4,
                          run_params=GenerationParams(temperature=0.8))
    async with toys["A"].client("A") as a, toys["B"].client("B") as b:
        rep = await compare_quality(results, [], PROMPTS, options=opts, clients={"A": a, "B": b})
    gen = [r for r in toys["A"].requests if r.get("n_predict") == 4 and "grammar" not in r]
    assert len(gen) == 3 and rep.pairs[0].distribution is not None


async def test_failures_and_stop_become_notes(toys: dict[str, ToyLM]) -> None:
    results = results_for(toys)
    broken = ToyLM(seed=2, base_seed=1, honour_bias=False)
    opts = QualityOptions(k=3, method="per-position", tasks=False,
                          run_params=GenerationParams(n_predict=8))
    async with toys["A"].client("A") as a, broken.client("B") as b:
        rep = await compare_quality(results, [], PROMPTS, options=opts, clients={"A": a, "B": b})
        assert rep.notices and "distribution comparison failed" in rep.notices[0]
        assert rep.pairs[0].outputs  # the run's outputs are compared all the same
        stop = asyncio.Event()
        stop.set()
        rep = await compare_quality(results, [], PROMPTS, options=opts, stop=stop,
                                    clients={"A": a, "B": b})
    assert rep.interrupted


def test_outputs_only_needs_no_server(toys: dict[str, ToyLM]) -> None:
    rep = asyncio.run(compare_quality(results_for(toys), [], PROMPTS,
                                      options=QualityOptions(distribution=False, tasks=False)))
    assert rep.pairs[0].output_summary is not None and rep.pairs[0].distribution is None


def test_headless_run_has_a_quality_section(tmp_path: Path) -> None:
    mmlu = tmp_path / "astronomy_test.csv"
    mmlu.write_text("Which planet is red?,Venus,Mars,Earth,Moon,B\n")
    out = tmp_path / "r.json"
    with FakeLlamaServer() as a, FakeLlamaServer() as b:
        p = subprocess.run(
            [sys.executable, "-m", "quanttui", "run", "--headless", "--server", f"A={a.url}",
             "--server", f"B={b.url}", "-n", "8", "--suite", "quick", "--warmup", "0",
             "--quality", "--mmlu", str(mmlu), "--no-history", "-o", str(out)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    q = json.loads(out.read_text())["quality"]
    assert q["reference"] == "A" and q["pairs"][0]["other"] == "B"
    assert q["pairs"][0]["outputs"]["summary"]["n"] == 6
    assert {(x["group"], x["server"]) for x in q["accuracy"]} == {("mmlu/astronomy", "A"),
                                                                   ("mmlu/astronomy", "B")}
    assert "quality: tasks 2/2 answers (1 item × 2 servers)" in p.stderr
    assert "quality (reference A)" in p.stdout


def test_progress_words_say_what_each_number_counts() -> None:
    from quanttui.core.quality.progress_words import progress_words

    assert progress_words("tasks", 12, 78, 2) == "tasks 12/78 answers (39 items × 2 servers)"
    assert progress_words("distribution", 100, 512, 2) == (
        "distribution 100/512 positions (256 per server × 2 servers)")
    assert progress_words("reference", 3, 16) == "reference 3/16 prompts continued"
    assert progress_words("tasks", 1, 3, 1) == "tasks 1/3 answers"
