"""Teacher forcing against a toy model (tests/quality_toy.py): both methods, the grammar's
fallback, budget, progress, stop and cancel."""

from __future__ import annotations

import asyncio

import pytest

from quality_toy import EOS, VOCAB, ToyLM, tokenize
from quanttui.core.quality.divergence import distribution_stats
from quanttui.core.quality.teacher_forcing import (
    ForcedSequence,
    TeacherForcingError,
    force_sequences,
    gbnf_literal,
    pair_runs,
    plan_positions,
)


def greedy(lm: ToyLM, prefix: list[int], n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        lp = lm.logprobs(prefix + out)
        tok = max(range(len(VOCAB)), key=lambda t: lp[t])
        out.append(tok)
        if tok == EOS:
            break
    return out


def seqs(lm: ToyLM) -> list[ForcedSequence]:
    out = []
    for i, text in enumerate(["ab c", "caab", "d d d"]):
        prefix = tuple(tokenize(text))
        out.append(ForcedSequence(f"s{i}", prefix, tuple(greedy(lm, list(prefix), 12))))
    # Arbitrary text, not the model's own output: "ab" may be forced as "a" + "b".
    out.append(ForcedSequence("text", (2,), tuple(tokenize("ab ab cab 12\nab", False))))
    return out


def test_gbnf_literal_escapes() -> None:
    assert gbnf_literal('say "hi"\\\n\tok\x01') == '"say \\"hi\\"\\\\\\n\\tok\\x01"'


async def test_both_methods_give_identical_numbers() -> None:
    ref, other = ToyLM(seed=1), ToyLM(seed=2, base_seed=1)
    ss = seqs(ref)
    got = {}
    for method in ("per-position", "grammar"):
        async with ref.client("A") as a, other.client("B") as b:
            ra = await force_sequences(a, ss, k=5, method=method, eos_ids=frozenset({EOS}))
            rb = await force_sequences(b, ss, k=5, method=method, eos_ids=frozenset({EOS}))
        got[method] = (ra, rb)
        for run in (ra, rb):
            assert [len(s.positions) for s in run.sequences] == [len(s.targets) for s in ss]
            for s, sd in zip(ss, run.sequences, strict=True):
                assert [p.token_id for p in sd.positions] == list(s.targets)
    (pa, pb), (ga, gb) = got["per-position"], got["grammar"]
    assert [s.positions for s in pa.sequences] == [s.positions for s in ga.sequences]
    assert [s.positions for s in pb.sequences] == [s.positions for s in gb.sequences]
    sp = distribution_stats(pair_runs(pa, pb, 5), 5)
    sg = distribution_stats(pair_runs(ga, gb, 5), 5)
    assert sp == sg and sp is not None and 0 < sp.same_top1.value < 1 and sp.kld.value > 0
    # The reference on its own greedy output: one grammar request per sequence, no fallback.
    assert [s.grammar_mismatches for s in ga.sequences[:3]] == [[], [], []]
    assert ga.requests < pa.requests
    # The arbitrary text on the other model: the grammar tokenized differently somewhere.
    assert gb.sequences[3].grammar_mismatches and gb.sequences[3].n_per_position > 0


async def test_reference_against_itself_is_exactly_zero() -> None:
    lm = ToyLM(seed=3)
    ss = seqs(lm)
    async with lm.client("A") as a, lm.client("B") as b:
        ra, rb = await asyncio.gather(force_sequences(a, ss, k=4), force_sequences(b, ss, k=4))
    st = distribution_stats(pair_runs(ra, rb, 4), 4)
    assert st is not None and st.same_top1.value == 1.0 and st.kld.value == 0.0
    assert st.delta_p.value == 0.0


def test_plan_positions_budget() -> None:
    ss = [ForcedSequence("a", (2,), (3, 4, 5)), ForcedSequence("b", (2,), (3, 4, 5, 6)),
          ForcedSequence("c", (2,), (7,))]
    assert [len(s.targets) for s in plan_positions(ss, 5)] == [3, 2]
    assert [len(s.targets) for s in plan_positions(ss, None, per_sequence=2)] == [2, 2, 1]
    assert plan_positions(ss, 0) == []
    with pytest.raises(ValueError, match="prefix"):
        ForcedSequence("x", (), (1,))


async def test_progress_and_stop() -> None:
    lm = ToyLM(seed=1)
    ss = seqs(lm)
    stop = asyncio.Event()
    seen: list[int] = []

    def on(n: int) -> None:
        seen.append(n)
        if sum(seen) >= 5:
            stop.set()

    async with lm.client() as c:
        run = await force_sequences(c, ss, k=3, method="per-position", on_positions=on,
                                    stop=stop)
    assert run.interrupted and run.n_positions == sum(seen) == 5
    async with lm.client() as c:
        full = await force_sequences(c, ss, k=3, on_positions=seen.append)
    assert not full.interrupted and full.n_positions == sum(len(s.targets) for s in ss)


async def test_cancel_stops_at_once() -> None:
    lm = ToyLM(seed=1, delay=0.05)
    async with lm.client() as c:
        task = asyncio.create_task(force_sequences(c, seqs(lm), k=3, method="per-position"))
        await asyncio.sleep(0.12)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert 1 <= len(lm.requests) <= 4


async def test_a_server_that_does_not_force_is_an_error() -> None:
    lm = ToyLM(seed=1, honour_bias=False)
    s = ForcedSequence("x", (2,), tuple(tokenize("d d d d", False)))
    async with lm.client("stubborn") as c:
        with pytest.raises(TeacherForcingError, match=r"stubborn.*asked to force token"):
            await force_sequences(c, [s], k=3, method="per-position")
