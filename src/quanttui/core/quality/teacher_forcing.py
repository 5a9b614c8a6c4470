"""Teacher forcing through llama-server's HTTP API: the next-token distribution at every position
of a fixed token sequence, as one server sees it.

llama-server returns no log-probabilities for prompt tokens, so (docs/metrics.md):

- per-position: one request per position whose `prompt` is the token-id prefix, `n_predict: 1`,
  `n_probs: K`, raw probabilities, `cache_prompt: true` (each request extends the previous one by
  a token, so the server evaluates about one token per request). A `logit_bias` of +1e4 on the
  forced token makes the server sample it; the probabilities it reports are the raw softmax,
  which ignores logit_bias, so `logprob` is the exact probability of the forced token even when
  it is outside the top-K (this gives Δp exactly).
- grammar: one request that forces the server through the target text with a GBNF literal,
  `temperature: 0`. The probabilities are again the raw softmax, before the grammar constrains
  sampling. The grammar constrains text, not token boundaries, so the forced ids are checked
  against the targets; the first position where they differ is taken per position, and the
  grammar resumes after it.

Both read the same raw softmax. Where the server computes a position the same way in both, the
numbers are identical: with flash attention on (llama-server's CPU default) a decode step and a
one-token prompt evaluation on top of the cache are one computation, checked on a real server in
the tests. Elsewhere they differ by the server's own numerical noise, which depends on the
kernels and the batch layout: on the b11434 CPU build, Gemma 3 270M, mean KLD ~1e-4 between
decode and prompt evaluation with flash attention off, and ~2e-3 between batch layouts with it on
(benchmarks/quality_vs_perplexity.py measures it). Non-stream requests are used: in stream mode a
token that ends inside a UTF-8 character produces no event, and its probabilities would be lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from quanttui.core.llama.client import LlamaClient
from quanttui.core.llama.params import GenerationParams
from quanttui.core.quality.divergence import PositionCompare, PositionDist, compare_position

Method = Literal["per-position", "grammar"]
METHODS: tuple[Method, ...] = ("per-position", "grammar")
# Large enough to beat any logit (Gemma soft-caps at 30), small enough to stay finite in float32.
FORCE_BIAS = 1e4


class TeacherForcingError(Exception):
    """The server did not behave as teacher forcing needs (wrong token forced, bad reply)."""


@dataclass(frozen=True, slots=True)
class ForcedSequence:
    """Force `targets` after `prefix`; position i is the distribution that predicts targets[i]."""

    id: str
    prefix: tuple[int, ...]  # token ids as the model sees them (BOS included when it uses one)
    targets: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError(f"{self.id}: teacher forcing needs a non-empty prefix (e.g. BOS)")


@dataclass(slots=True)
class SequenceDists:
    id: str
    positions: list[PositionDist] = field(default_factory=list)
    n_grammar: int = 0  # positions taken from grammar-forced requests
    n_per_position: int = 0
    grammar_mismatches: list[int] = field(default_factory=list)  # positions the grammar missed

    @property
    def grammar_mismatch_at(self) -> int | None:
        return self.grammar_mismatches[0] if self.grammar_mismatches else None


@dataclass(slots=True)
class ForcedRun:
    server: str
    method: Method
    k: int
    sequences: list[SequenceDists] = field(default_factory=list)
    requests: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def n_positions(self) -> int:
        return sum(len(s.positions) for s in self.sequences)


def plan_positions(sequences: Sequence[ForcedSequence], budget: int | None,
                   per_sequence: int | None = None) -> list[ForcedSequence]:
    """Cut the sequences to at most `per_sequence` positions each and `budget` in all (in order),
    dropping those left empty: the cost of a comparison is one request per position."""
    out: list[ForcedSequence] = []
    left = budget if budget is not None else None
    for s in sequences:
        n = len(s.targets) if per_sequence is None else min(len(s.targets), per_sequence)
        if left is not None:
            n = min(n, left)
            left -= n
        if n > 0:
            out.append(ForcedSequence(s.id, s.prefix, s.targets[:n]))
        if left == 0:
            break
    return out


def gbnf_literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _body(k: int, n_predict: int, cache_prompt: bool = True) -> dict[str, Any]:
    body = GenerationParams(n_predict=n_predict, temperature=0.0, n_probs=k,
                            cache_prompt=cache_prompt).body()
    body["stream"] = False
    body["return_tokens"] = True
    return body


def _position(entry: Any, server: str) -> PositionDist:
    try:
        top = tuple((int(t["id"]), float(t["logprob"])) for t in entry["top_logprobs"])
        return PositionDist(int(entry["id"]), float(entry["logprob"]), top)
    except (KeyError, TypeError, ValueError) as e:
        raise TeacherForcingError(
            f"{server}: completion_probabilities entry without id/logprob/top_logprobs "
            f"(raw probabilities need post_sampling_probs: false): {e}") from e


async def _post(client: LlamaClient, body: dict[str, Any]) -> dict[str, Any]:
    # Non-stream /completion (see the module docstring); the client maps errors to ServerError.
    data: dict[str, Any] = await client.post_json("/completion", body)
    return data


async def force_position(client: LlamaClient, prefix: Sequence[int], target: int, k: int,
                         *, cache_prompt: bool = True) -> PositionDist:
    """The distribution after `prefix`, with the exact probability of `target`."""
    body = _body(k, 1, cache_prompt)
    body["prompt"] = list(prefix)
    body["logit_bias"] = [[target, FORCE_BIAS]]
    data = await _post(client, body)
    probs = data.get("completion_probabilities") or []
    if not probs:
        raise TeacherForcingError(f"{client.label}: no completion_probabilities in the reply")
    pos = _position(probs[0], client.label)
    if pos.token_id != target:
        raise TeacherForcingError(
            f"{client.label}: asked to force token {target}, the server sampled {pos.token_id}")
    return pos


async def force_grammar(client: LlamaClient, prefix: Sequence[int], targets: Sequence[int],
                        k: int, eos_ids: frozenset[int] = frozenset(), *,
                        cache_prompt: bool = True) -> list[PositionDist]:
    """One request forcing the targets' text after `prefix`; returns the positions whose forced
    id matched the target, up to the first mismatch (the caller continues from there)."""
    targets = list(targets)
    n_text = len(targets)
    while n_text and targets[n_text - 1] in eos_ids:
        n_text -= 1  # EOS has no text; once the literal is complete the grammar allows only EOG
    text = await client.detokenize(targets[:n_text]) if n_text else ""
    body = _body(k, len(targets), cache_prompt)
    body["prompt"] = list(prefix)
    body["grammar"] = "root ::= " + gbnf_literal(text)
    data = await _post(client, body)
    probs = data.get("completion_probabilities") or []
    out: list[PositionDist] = []
    for i, entry in enumerate(probs[:len(targets)]):
        pos = _position(entry, client.label)
        if pos.token_id != targets[i]:
            break
        out.append(pos)
    return out


async def force_sequences(
    client: LlamaClient,
    sequences: Sequence[ForcedSequence],
    *,
    k: int,
    method: Method = "grammar",
    eos_ids: frozenset[int] = frozenset(),
    on_positions: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    max_grammar_restarts: int = 8,
    cache_prompt: bool = True,
) -> ForcedRun:
    """Every position of every sequence on one server.

    With the grammar method, a position the grammar did not force is taken per position, and
    the grammar resumes after it (at most `max_grammar_restarts` times per sequence, then per
    position to the end): on arbitrary text a model may prefer another tokenization of the same
    characters, which the grammar allows. `on_positions(n)` is called with the positions each
    request added; when `stop` is set the run ends after the current request and is marked
    interrupted (cancelling the task stops it at once). `cache_prompt=False` makes the server
    evaluate every prefix from scratch (slow; for measuring batch-layout noise)."""
    if k < 1:
        raise ValueError("n_probs (K) must be ≥ 1")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    run = ForcedRun(server=client.label, method=method, k=k)
    t0 = time.monotonic()

    def stopped() -> bool:
        if stop is not None and stop.is_set():
            run.interrupted = True
        return run.interrupted

    def add(pos: Sequence[PositionDist]) -> None:
        if pos and on_positions is not None:
            on_positions(len(pos))

    try:
        for seq in sequences:
            if stopped():
                break
            sd = SequenceDists(seq.id)
            run.sequences.append(sd)
            grammar = method == "grammar"
            i = 0
            while i < len(seq.targets) and not stopped():
                if grammar:
                    got = await force_grammar(client, seq.prefix + seq.targets[:i],
                                              seq.targets[i:], k, eos_ids,
                                              cache_prompt=cache_prompt)
                    run.requests += 1
                    sd.positions.extend(got)
                    sd.n_grammar += len(got)
                    i += len(got)
                    add(got)
                    if i == len(seq.targets) or stopped():
                        break
                    sd.grammar_mismatches.append(i)
                    grammar = len(sd.grammar_mismatches) <= max_grammar_restarts
                pos = await force_position(client, seq.prefix + seq.targets[:i], seq.targets[i],
                                           k, cache_prompt=cache_prompt)
                run.requests += 1
                sd.positions.append(pos)
                sd.n_per_position += 1
                i += 1
                add([pos])
    finally:
        run.elapsed_s = time.monotonic() - t0
    return run


def pair_runs(ref: ForcedRun, other: ForcedRun, k: int | None = None
              ) -> list[tuple[str, list[PositionCompare]]]:
    """Per sequence, the positions both servers covered (an interrupted run covers fewer)."""
    by_id = {s.id: s for s in other.sequences}
    out: list[tuple[str, list[PositionCompare]]] = []
    for s in ref.sequences:
        o = by_id.get(s.id)
        if o is None:
            continue
        n = min(len(s.positions), len(o.positions))
        out.append((s.id, [compare_position(a, b, k)
                           for a, b in zip(s.positions[:n], o.positions[:n], strict=True)]))
    return out
