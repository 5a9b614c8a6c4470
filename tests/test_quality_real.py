"""The quality step against real llama-servers serving the demo quants.

Sizes are kept small (tens of positions, a dozen task items): the figures themselves are
checked against llama-perplexity in benchmarks/quality_vs_perplexity.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from quanttui.core.llama.client import LlamaClient
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.servers import ManagedServer
from quanttui.core.quality.divergence import distribution_stats
from quanttui.core.quality.step import QualityOptions, compare_quality, quality_dict
from quanttui.core.quality.teacher_forcing import (
    ForcedSequence,
    force_sequences,
    pair_runs,
)
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import builtin_suite
from quanttui.core.suites.tasks import builtin_tasks

pytestmark = pytest.mark.real

PROMPTS = tuple(builtin_suite("quick")[:2])
P24 = GenerationParams(n_predict=24)


async def test_a_model_against_itself_is_the_noise_floor(
        make_server: Callable[..., ManagedServer]) -> None:
    a, b = make_server("Q8_0"), make_server("Q8_0")
    specs = [ServerSpec("Q8_0-a", a.url), ServerSpec("Q8_0-b", b.url)]
    res = await Session(specs, RunPlan(prompts=PROMPTS, params=P24, warmup=0)).run()
    rep = await compare_quality(res, specs, PROMPTS, options=QualityOptions(
        k=100, tasks=False, positions_per_prompt=24, run_params=P24))
    (pair,) = rep.pairs
    assert all(c.exact_match for c in pair.outputs)
    d = pair.distribution
    assert d is not None and d.stats is not None and d.stats.n == 48
    # Same file, same flags, same requests: the servers compute bit-identical logits.
    assert d.stats.same_top1.value == 1.0
    assert d.stats.kld.value == 0.0 and d.stats.delta_p.value == 0.0


async def test_grammar_and_per_position_agree(real_pair: tuple[ManagedServer, ...],
                                              make_server: Callable[..., ManagedServer]
                                              ) -> None:
    ref = real_pair[1]  # Q8_0
    other = make_server("Q2_K")
    seqs = []
    async with LlamaClient(ref.url, name="Q8_0") as c:
        for p in PROMPTS:
            prefix = tuple(await c.tokenize(p.text))
            body = P24.body() | {"prompt": list(prefix), "stream": False, "return_tokens": True}
            out = await c.post_json("/completion", body)
            seqs.append(ForcedSequence(p.id, prefix, tuple(out["tokens"])))
    runs = {}
    for method in ("per-position", "grammar"):
        async with LlamaClient(ref.url) as a, LlamaClient(other.url) as b:
            runs[method] = (await force_sequences(a, seqs, k=40, method=method),
                            await force_sequences(b, seqs, k=40, method=method))
    (pa, pb), (ga, gb) = runs["per-position"], runs["grammar"]
    # The reference on its own greedy output: the grammar forces every token in one request,
    # and each position is the same one-token evaluation as per position: identical numbers.
    assert [s.grammar_mismatches for s in ga.sequences] == [[], []]
    assert ga.requests == 2 and pa.requests == 48
    assert [s.positions for s in ga.sequences] == [s.positions for s in pa.sequences]
    sp = distribution_stats(pair_runs(pa, pb, 40), 40)
    sg = distribution_stats(pair_runs(ga, gb, 40), 40)
    assert sp is not None and sg is not None and sp.n == sg.n == 48
    # On Q2_K a decode step and a one-token prompt evaluation are different kernels; they
    # differ by the server's own numerical noise (measured in the benchmark), far below the
    # Q8_0-Q2_K divergence itself.
    assert abs(sp.same_top1.value - sg.same_top1.value) <= 2 / 48
    assert sp.kld.value == pytest.approx(sg.kld.value, rel=0.1, abs=0.01)
    assert sp.delta_p.value == pytest.approx(sg.delta_p.value, abs=0.02)


async def test_task_suite_on_the_real_pair(real_pair: tuple[ManagedServer, ...]) -> None:
    specs = [ServerSpec(s.label, s.url) for s in reversed(real_pair)]  # Q8_0 first: reference
    res = await Session(specs, RunPlan(prompts=PROMPTS[:1], params=GenerationParams(
        n_predict=8), warmup=0)).run()
    # One item of each category and length.
    picked: dict[tuple[str, str], object] = {}
    items = tuple(i for i in builtin_tasks()
                  if picked.setdefault((i.category, i.length), i) is i)
    assert len(items) == 12
    rep = await compare_quality(res, specs, PROMPTS[:1], options=QualityOptions(
        distribution=False, task_items=items))
    assert rep.reference == "Q8_0" and not rep.notices
    data = quality_dict(rep)
    groups = {(a["group"], a["server"]) for a in data["accuracy"]}
    assert groups == {(c, s) for c in ("arithmetic", "facts", "code")
                      for s in ("Q8_0", "Q4_K_M")}
    assert {a["group"] for a in data["accuracy_by_length"]} == {"short", "medium", "long"}
    tasks = data["pairs"][0]["tasks"]
    assert {d["group"] for d in tasks["accuracy_diff"]} == {"arithmetic", "facts", "code"}
    assert len(tasks["outputs"]["per_item"]) == 12  # chat items: compared by divergence only
    assert all(o["error"] is None and o["output"] for o in data["task_outcomes"])


async def test_q8_against_q2_through_the_run(real_pair: tuple[ManagedServer, ...],
                                             make_server: Callable[..., ManagedServer]) -> None:
    """The quality step on a real run, servers named by quant and the reference chosen by name:
    Q2_K diverges from Q8_0 measurably but not wildly, and every position's reported
    distribution is a distribution (most likely first, probabilities summing to at most 1)."""
    import math

    q8, q2 = real_pair[1], make_server("Q2_K")
    specs = [ServerSpec("Q2_K", q2.url), ServerSpec("Q8_0", q8.url)]
    res = await Session(specs, RunPlan(prompts=PROMPTS, params=P24, warmup=0)).run()
    rep = await compare_quality(res, specs, PROMPTS, reference="Q8_0", options=QualityOptions(
        k=40, tasks=False, positions_per_prompt=24, run_params=P24))
    (pair,) = rep.pairs
    assert (pair.reference, pair.other) == ("Q8_0", "Q2_K")
    d = pair.distribution
    assert d is not None and d.stats is not None and d.stats.n == 48
    assert 1e-4 < d.stats.kld.value < 1
    assert 0.5 < d.stats.same_top1.value < 1
    assert all(0 <= pc.tail_ref <= 1 for _, ps in d.sequences for pc in ps)
    # what the step read: per position, the top-K as the servers reported them
    async with LlamaClient(q8.url) as c:
        prefix = tuple(await c.tokenize(PROMPTS[0].text, add_special=True))
        out = await c.post_json("/completion", P24.body() | {
            "prompt": list(prefix), "stream": False, "return_tokens": True})
    seq = ForcedSequence(PROMPTS[0].id, prefix, tuple(out["tokens"]))
    for server in (q8, q2):
        async with LlamaClient(server.url) as c:
            run = await force_sequences(c, [seq], k=40, method="grammar")
        assert run.n_positions == 24
        for dist in run.sequences[0].positions:
            lps = [lp for _, lp in dist.top]
            assert len(lps) == 40 and lps == sorted(lps, reverse=True)
            assert sum(math.exp(lp) for lp in lps) <= 1 + 1e-6
