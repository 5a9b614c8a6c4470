"""quanttui's teacher-forced distribution figures against `llama-perplexity --kl-divergence`.

    python benchmarks/quality_vs_perplexity.py [--chunks 6] [--ctx 128] [--k 100] [--method ...]

Same text, same model pair (demo Gemma 3 270M: reference Q8_0, compared Q2_K), same positions.

Alignment. `llama-perplexity -c CTX --chunks N` tokenizes the whole text once (BOS first) and
cuts it into chunks of CTX tokens. In every chunk the first token is replaced by BOS, the chunk is
evaluated in one batch from an empty KV cache, and only the second half is scored: the logits at
positions j = CTX/2 … CTX−2 predict token j+1, so CTX/2 − 1 positions per chunk. With
`--kl-divergence-base FILE` it saves those tokens and each position's log-probs (16-bit packed).
quanttui reads the very tokens from that file and builds, per chunk, the token-id prefix
[BOS] + chunk[1 … CTX/2] and the targets chunk[CTX/2+1 … CTX−1]; teacher forcing through
llama-server (a token-id prompt gets no BOS added, so the prefix is exactly what the model saw)
gives at position j the distribution over token j+1. Each chunk starts a new prefix.

What the script runs: llama-perplexity saves Q8_0's log-probs (BASE) and Q2_K's (OTHER), then
prints its KL statistics for Q2_K against BASE and for Q8_0 against BASE (its noise floor);
quanttui teacher-forces the same positions on a Q8_0 and a Q2_K llama-server. Both tools use the
same flash-attention setting: off by default, because on this CPU build flash attention makes
the logits depend on the batch layout (Δ log p std ~0.09 nats between llama-perplexity's 128-token
batch and the server's one-token steps; run with `--fa on` to see it). With it off, the server's
Q8_0 log-probs equal llama-perplexity's to the 16-bit storage step.

Tolerance. Both tools describe KL(Q8_0 ‖ Q2_K) and same-top-1 over identical positions, so
their statistical uncertainties are shared and do not belong in the tolerance. Two things separate
the figures, and the script measures each from llama-perplexity's own saved log-probs:
(a) truncation: KLD@K merges everything outside Q8_0's top-K into one tail bucket and can only
under-read (log-sum inequality). Computing KLD@K and the full KLD from BASE and OTHER gives the
under-read at each K without any server in the loop. (b) numerics: the server evaluates each
prefix in another batch layout than llama-perplexity's one CTX-token batch; the script counts the
positions where either model's argmax differs between the server and the saved log-probs. Each
such flip can change the same-top-1 outcome of at most one position, so |same-top-1 count
difference| ≤ flips is a strict bound. For the KLD, a noise δ on the log-probs moves KL(A‖B) by
about E[δ²]/2; the script measures δ per model (server against the saved log-probs) and prints
that estimate. quanttui's KLD@K must match KLD@K computed from llama-perplexity's log-probs within
`--kld-num-tol` (default 5%, a few times that estimate on the demo pair).

Targets:
- |same-top-1 count of quanttui − llama-perplexity's| ≤ the positions where either model's
  argmax differs between the server and llama-perplexity's saved log-probs;
- |quanttui's KLD@K − KLD@K from llama-perplexity's log-probs| / the latter ≤ 5%
  (`--kld-num-tol`).

    .venv/bin/python benchmarks/quality_vs_perplexity.py              # ~3 min
    .venv/bin/python benchmarks/quality_vs_perplexity.py --chunks 2   # ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import Targets
from quanttui.core.llama.client import LlamaClient
from quanttui.core.models.binaries import find_companion, find_llama_server
from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.core.quality.divergence import (
    DistributionStats,
    PositionCompare,
    PositionDist,
    compare_position,
    distribution_stats,
)
from quanttui.core.quality.teacher_forcing import (
    ForcedRun,
    ForcedSequence,
    Method,
    force_sequences,
    pair_runs,
)
from quanttui.core.suites.texts import PROSE_PATH

HERE = Path(__file__).parent
MODELS = Path.home() / ".cache" / "quanttui" / "models"


# ------------------------------------------------------------------ llama-perplexity


def run_perplexity(tool: Path, args: list[str], threads: int) -> str:
    cmd = [str(tool), *args, "-t", str(threads), "-tb", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode == -4:  # SIGILL in the repacked (AMX) kernels on this CPU: as the server does
        cmd.append("--no-repack")
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.exit(f"llama-perplexity failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return p.stdout + p.stderr


_NUM = r"(-?[0-9.]+(?:e[-+]?\d+)?)"


def parse_kld(out: str) -> dict[str, float]:
    """The final blocks of `--kl-divergence` output (fractions, not %)."""
    want = {
        "kld": rf"Mean\s+KLD:\s+{_NUM}\s+±\s+{_NUM}",
        "same_top1": rf"Same top p:\s+{_NUM}\s+±\s+{_NUM}\s+%",
        "delta_p": rf"Mean\s+Δp:\s+{_NUM}\s+±\s+{_NUM}\s+%",
        "rms_delta_p": rf"RMS Δp\s+:\s+{_NUM}\s+±\s+{_NUM}\s+%",
        "ppl_q": rf"Mean PPL\(Q\)\s+:\s+{_NUM}\s+±\s+{_NUM}",
        "ppl_base": rf"Mean PPL\(base\)\s+:\s+{_NUM}\s+±\s+{_NUM}",
    }
    got: dict[str, float] = {}
    for key, rx in want.items():
        m = re.search(rx, out)
        if m is None:
            sys.exit(f"could not find {key} in llama-perplexity's output:\n{out[-3000:]}")
        scale = 0.01 if key in ("same_top1", "delta_p", "rms_delta_p") else 1.0
        got[key], got[key + "_unc"] = float(m.group(1)) * scale, float(m.group(2)) * scale
    for name, label in (("max", "Maximum"), ("p99", "99.0%"), ("p90", "90.0%"),
                        ("median", "Median"), ("p10", "10.0%")):
        m = re.search(rf"{re.escape(label)}\s+KLD:\s+{_NUM}", out)
        if m:
            got["kld_" + name] = float(m.group(1))
    return got


@dataclass
class SavedLogits:
    """A `--kl-divergence-base` file: n_ctx, n_vocab, n_chunk, the tokens, then per scored
    position two float32 (scale, min log-prob) and n_vocab uint16, padded to an even count."""

    n_ctx: int
    n_vocab: int
    n_chunk: int
    tokens: np.ndarray
    packed: np.memmap

    @classmethod
    def read(cls, path: Path) -> SavedLogits:
        head = np.fromfile(path, dtype=np.uint8, count=20)
        if bytes(head[:8]) != b"_logits_":
            sys.exit(f"{path}: not a llama-perplexity logits file")
        n_ctx, n_vocab, n_chunk = (int(x) for x in np.frombuffer(bytes(head[8:20]),
                                                                 dtype=np.int32))
        tokens = np.fromfile(path, dtype=np.int32, count=n_ctx * n_chunk, offset=20)
        nv = 2 * ((n_vocab + 1) // 2) + 4
        n_pos = n_ctx - 1 - n_ctx // 2
        packed = np.memmap(path, dtype=np.uint16, mode="r", offset=20 + 4 * n_ctx * n_chunk,
                           shape=(n_chunk * n_pos, nv))
        return cls(n_ctx, n_vocab, n_chunk, tokens, packed)

    def logprobs(self, row: int) -> np.ndarray:
        r = np.asarray(self.packed[row])
        scale, min_lp = np.frombuffer(r[:4].tobytes(), dtype=np.float32)
        return float(scale) * r[4:4 + self.n_vocab].astype(np.float64) + float(min_lp)

    def targets(self) -> list[int]:
        first = self.n_ctx // 2
        return [int(t) for i in range(self.n_chunk)
                for t in self.tokens[i * self.n_ctx + first + 1:(i + 1) * self.n_ctx]]


def file_position(lp: np.ndarray, target: int, k: int) -> PositionDist:
    top = np.argpartition(-lp, k)[:k]
    top = top[np.argsort(-lp[top], kind="stable")]
    return PositionDist(target, float(lp[target]), tuple((int(t), float(lp[t])) for t in top))


@dataclass
class FileFigures:
    """What llama-perplexity's saved log-probs say, position by position."""

    kld_full: list[float]  # as llama-perplexity: over tokens with log p_base > −16
    at_k: dict[int, list[PositionCompare]]
    argmax_ref: list[int]
    argmax_other: list[int]


def file_figures(ref: SavedLogits, other: SavedLogits, ks: list[int]) -> FileFigures:
    targets = ref.targets()
    out = FileFigures([], {k: [] for k in ks}, [], [])
    kmax = max(ks)
    for row, t in enumerate(targets):
        a, b = ref.logprobs(row), other.logprobs(row)
        keep = a > -16
        out.kld_full.append(float(np.sum(np.exp(a[keep]) * (a[keep] - b[keep]))))
        out.argmax_ref.append(int(np.argmax(a)))
        out.argmax_other.append(int(np.argmax(b)))
        pa, pb = file_position(a, t, kmax), file_position(b, t, kmax)
        for k in ks:
            out.at_k[k].append(compare_position(pa, pb, k))
    return out


# ------------------------------------------------------------------ quanttui side


def chunk_sequences(saved: SavedLogits, bos: int) -> list[ForcedSequence]:
    n_ctx, first = saved.n_ctx, saved.n_ctx // 2
    out = []
    for i in range(saved.n_chunk):
        chunk = [int(t) for t in saved.tokens[i * n_ctx:(i + 1) * n_ctx]]
        out.append(ForcedSequence(f"chunk-{i + 1}", (bos, *chunk[1:first + 1]),
                                  tuple(chunk[first + 1:])))
    return out


async def force(url: str, seqs: list[ForcedSequence], k: int, method: Method, name: str,
                cache_prompt: bool = True) -> ForcedRun:
    async with LlamaClient(url, name=name) as c:
        done = 0
        total = sum(len(s.targets) for s in seqs)

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if done == total or done % 100 < n:
                print(f"  {name} {method}: {done}/{total} positions", file=sys.stderr)

        return await force_sequences(c, seqs, k=k, method=method, on_positions=tick,
                                     cache_prompt=cache_prompt)


async def server_side(a: argparse.Namespace, ref_model: Path, oth_model: Path,
                      saved: SavedLogits
                      ) -> tuple[list[int], dict[Method, tuple[ForcedRun, ForcedRun]],
                                 dict[str, ForcedRun]]:
    spec = {"threads": a.threads, "ctx_size": max(256, saved.n_ctx + 16),
            "extra_args": ("-fa", a.fa)}
    with ManagedServer(LaunchSpec(model=ref_model, **spec), name=a.ref) as s_ref, \
            ManagedServer(LaunchSpec(model=oth_model, **spec), name=a.other) as s_oth:
        async with LlamaClient(s_ref.url) as c:
            bos = (await c.tokenize("", add_special=True))[0]
            text_ids = await c.tokenize(a.text.read_text(encoding="utf-8"), add_special=True)
        seqs = chunk_sequences(saved, bos)
        methods: list[Method] = (["per-position", "grammar"] if a.method == "both"
                                 else [a.method])
        runs: dict[Method, tuple[ForcedRun, ForcedRun]] = {}
        for m in methods:
            runs[m] = await asyncio.gather(force(s_ref.url, seqs, a.k, m, a.ref),
                                           force(s_oth.url, seqs, a.k, m, a.other))
        # quanttui's noise floor, first chunk only: the reference against itself (1) with every
        # prefix evaluated from scratch in one batch instead of one token at a time on top of
        # the cache, (2) through the grammar method, whose positions come from decode steps.
        floor = {
            "whole prefix per request": await force(s_ref.url, seqs[:1], a.k, "per-position",
                                                    a.ref, cache_prompt=False),
            "grammar (decode steps)": await force(s_ref.url, seqs[:1], a.k, "grammar", a.ref),
        }
    return text_ids, runs, floor


def stats_at(ref: ForcedRun, other: ForcedRun, k: int) -> DistributionStats:
    s = distribution_stats(pair_runs(ref, other, k), k)
    assert s is not None
    return s


def flips(run: ForcedRun, argmax_file: list[int]) -> set[int]:
    """Positions where the server's argmax differs from the one in llama-perplexity's logits."""
    tops = [p.top1 for s in run.sequences for p in s.positions]
    return {i for i, (x, y) in enumerate(zip(tops, argmax_file, strict=True)) if x != y}


def logprob_agreement(run: ForcedRun, saved: SavedLogits) -> tuple[float, float]:
    """std and max of Δ log p over the server's top-10 tokens above e^-12 (the saved log-probs
    are clamped 16 nats below the top, so rarer tokens are not comparable)."""
    d: list[float] = []
    row = 0
    for s in run.sequences:  # a chunk's positions are consecutive rows
        for p in s.positions:
            lp = saved.logprobs(row)
            row += 1
            d += [float(lp[t]) - lg for t, lg in p.top[:10] if lg > -12]
    arr = np.asarray(d)
    return float(arr.std()), float(np.abs(arr).max())


# ------------------------------------------------------------------ main


def row(label: str, *cells: str) -> str:
    return f"{label:<24}" + "".join(f"{c:>24}" for c in cells)


def main() -> int:
    a = parse_args()
    server_tool = find_llama_server()
    ppl_tool = find_companion("llama-perplexity", server_tool).path
    ref_model = MODELS / f"gemma3-270m-{a.ref}.gguf"
    oth_model = MODELS / f"gemma3-270m-{a.other}.gguf"
    for m in (ref_model, oth_model):
        if not m.is_file():
            sys.exit(f"{m}: missing (run `quanttui demo --prepare`)")
    ks = sorted({10, 40, 100, a.k})
    with tempfile.TemporaryDirectory(prefix="quanttui-kld-") as tmp:
        base, other = Path(tmp) / "base.kld", Path(tmp) / "other.kld"
        common = ["-f", str(a.text), "-c", str(a.ctx), "--chunks", str(a.chunks), "-fa", a.fa]
        t0 = time.monotonic()
        print(f"llama-perplexity: saving {a.ref} and {a.other} log-probs …", file=sys.stderr)
        run_perplexity(ppl_tool, ["-m", str(ref_model), *common, "--kl-divergence-base",
                                  str(base)], a.threads)
        run_perplexity(ppl_tool, ["-m", str(oth_model), *common, "--kl-divergence-base",
                                  str(other)], a.threads)
        print(f"llama-perplexity: {a.other} against {a.ref}, and {a.ref} against itself …",
              file=sys.stderr)
        lp = parse_kld(run_perplexity(ppl_tool, ["-m", str(oth_model), *common,
                                                 "--kl-divergence-base", str(base),
                                                 "--kl-divergence"], a.threads))
        lp_self = parse_kld(run_perplexity(ppl_tool, ["-m", str(ref_model), *common,
                                                      "--kl-divergence-base", str(base),
                                                      "--kl-divergence"], a.threads))
        t_lp = time.monotonic() - t0
        s_ref, s_oth = SavedLogits.read(base), SavedLogits.read(other)
        if not np.array_equal(s_ref.tokens, s_oth.tokens):
            sys.exit("the two models tokenized the text differently")
        t1 = time.monotonic()
        text_ids, runs, floor = asyncio.run(server_side(a, ref_model, oth_model, s_ref))
        t_qt = time.monotonic() - t1
        main_m: Method = "per-position" if a.method == "both" else a.method
        r_ref, r_oth = runs[main_m]
        ff = file_figures(s_ref, s_oth, ks)
        agree_ref = logprob_agreement(r_ref, s_ref)
        agree_oth = logprob_agreement(r_oth, s_oth)
        del s_ref, s_oth  # release the memory maps before the folder goes
    return report(a, lp, lp_self, ff, runs, floor, main_m, ks, text_ids, t_lp, t_qt,
                  agree_ref, agree_oth)


def report(a: argparse.Namespace, lp: dict[str, float], lp_self: dict[str, float],
           ff: FileFigures, runs: dict[Method, tuple[ForcedRun, ForcedRun]],
           floor: dict[str, ForcedRun], main_m: Method, ks: list[int], text_ids: list[int],
           t_lp: float, t_qt: float, agree_ref: tuple[float, float],
           agree_oth: tuple[float, float]) -> int:
    r_ref, r_oth = runs[main_m]
    st = {k: stats_at(r_ref, r_oth, k) for k in ks}
    fst = {k: distribution_stats([("text", ff.at_k[k])], k) for k in ks}  # one text
    full = st[a.k]
    n = full.n
    kld_full_files = math.fsum(ff.kld_full) / n
    same_files = sum(x == y for x, y in zip(ff.argmax_ref, ff.argmax_other, strict=True))
    fl_ref, fl_oth = flips(r_ref, ff.argmax_ref), flips(r_oth, ff.argmax_other)
    bound = len(fl_ref | fl_oth)
    same_qt = round(full.same_top1.value * n)
    same_lp = round(lp["same_top1"] * n)

    print()
    print(f"text {a.text.name}: {len(text_ids)} tokens; {a.chunks} chunks × {a.ctx} tokens, "
          f"{n} scored positions; flash attention {a.fa} in both tools")
    print(f"reference {a.ref}, compared {a.other}; quanttui: {main_m}, n_probs K={a.k}; "
          f"time: llama-perplexity (4 runs) {t_lp:.0f} s, quanttui servers {t_qt:.0f} s")
    print()
    print(row("figure", "llama-perplexity", "its logits, @K", "quanttui (server)"))
    print(row("same top-1", f"{lp['same_top1']:.2%} ± {lp['same_top1_unc']:.2%}",
              f"{same_files / n:.2%}",
              f"{full.same_top1.value:.2%} ± {full.same_top1.unc:.2%}"))
    print(row("mean KLD (full)", f"{lp['kld']:.5f} ± {lp['kld_unc']:.5f}",
              f"{kld_full_files:.5f}", "n/a (truncated)"))
    for k in ks:
        f = fst[k]
        assert f is not None
        print(row(f"mean KLD@{k}", "", f"{f.kld.value:.5f}",
                  f"{st[k].kld.value:.5f} ± {st[k].kld.unc:.5f}")
              + f"   under-read {1 - f.kld.value / kld_full_files:.1%}, "
                f"{a.ref} tail mass {st[k].tail_ref_mean:.3f}")
    for name in ("median", "p90", "p99", "max"):
        if "kld_" + name in lp:
            print(row(f"  KLD {name}", f"{lp['kld_' + name]:.5f}", "",
                      f"{full.kld_percentiles[name]:.5f} (@{a.k})"))
    print(row("mean Δp", f"{lp['delta_p']:+.3%} ± {lp['delta_p_unc']:.3%}", "",
              f"{full.delta_p.value:+.3%} ± {full.delta_p.unc:.3%}"))
    print(row("RMS Δp", f"{lp['rms_delta_p']:.3%} ± {lp['rms_delta_p_unc']:.3%}", "",
              f"{full.rms_delta_p.value:.3%} ± {full.rms_delta_p.unc:.3%}"))
    print(row(f"PPL {a.other} / {a.ref}", f"{lp['ppl_q']:.2f} / {lp['ppl_base']:.2f}", "",
              f"{full.ppl_other:.2f} / {full.ppl_ref:.2f}"))
    if len(runs) > 1:
        g = stats_at(*runs["grammar"], a.k)
        fb = sum(len(s.grammar_mismatches) for s in runs["grammar"][1].sequences)
        print(row("grammar method", "", "", f"{g.same_top1.value:.2%}, KLD@{a.k} "
                  f"{g.kld.value:.5f}") + f"   ({fb} grammar restarts on {a.other})")

    print()
    print("numerics and noise floor")
    for name, (sd, mx), fl in ((a.ref, agree_ref, fl_ref), (a.other, agree_oth, fl_oth)):
        print(f"  {name}: server vs llama-perplexity's logits: Δ log p (top-10) std {sd:.1e}, "
              f"max {mx:.1e} nats; argmax differs at {len(fl)} of {n} positions")
    print(f"  llama-perplexity {a.ref} vs itself: same top {lp_self['same_top1']:.2%}, "
          f"mean KLD {lp_self['kld']:.1e}")
    for name, fr in floor.items():
        fs = stats_at(r_ref, fr, a.k)
        print(f"  quanttui {a.ref} vs itself, {main_m} vs {name} ({fs.n} positions): same "
              f"top-1 {fs.same_top1.value:.2%}, mean KLD@{a.k} {fs.kld.value:.1e}, max "
              f"{fs.kld_percentiles['max']:.1e}")

    f_k = fst[a.k]
    assert f_k is not None
    num = abs(full.kld.value - f_k.kld.value) / f_k.kld.value
    print()
    print(f"same top-1: quanttui {same_qt} vs llama-perplexity {same_lp} of {n} positions; "
          f"|difference| {abs(same_qt - same_lp)}, bound {bound}: the positions where the "
          f"server's and llama-perplexity's numerics disagree on an argmax")
    # Noise δ on B's log-probs (renormalized) moves KL(A‖B) by about E[δ²]/2.
    expect = (agree_ref[0] ** 2 + agree_oth[0] ** 2) / 2 / f_k.kld.value
    print(f"  expected numerical effect on the mean KLD: (σ_{a.ref}² + σ_{a.other}²)/2 = "
          f"{expect:.1%} of it")
    print(f"mean KLD: quanttui KLD@{a.k} {full.kld.value:.5f} vs KLD@{a.k} from "
          f"llama-perplexity's logits {f_k.kld.value:.5f}: {num:.1%} apart (tolerance "
          f"{a.kld_num_tol:.0%}, numerics); against its printed full KLD, KLD@{a.k} under-reads "
          f"by {1 - full.kld.value / lp['kld']:.1%} (truncation "
          f"{1 - f_k.kld.value / kld_full_files:.1%} of it)")
    t = Targets("quality_vs_perplexity")
    t.check(f"|same-top-1 count, quanttui − llama-perplexity| over {n} positions", "≤", bound,
            abs(same_qt - same_lp),
            detail=f"quanttui {same_qt}, llama-perplexity {same_lp}; limit: positions where "
                   "the two tools' numerics disagree on an argmax")
    t.check(f"|quanttui KLD@{a.k} − KLD@{a.k} from llama-perplexity's logits| / the latter", "≤",
            a.kld_num_tol, num, "%",
            detail=f"{full.kld.value:.5f} vs {f_k.kld.value:.5f}")
    return t.finish()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, default=PROSE_PATH)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--k", type=int, default=100, help="n_probs for quanttui")
    ap.add_argument("--method", choices=["per-position", "grammar", "both"],
                    default="per-position",
                    help="per-position evaluates prefixes as prompts, as llama-perplexity does")
    ap.add_argument("--ref", default="Q8_0")
    ap.add_argument("--other", default="Q2_K")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fa", choices=["on", "off", "auto"], default="off",
                    help="flash attention in both tools")
    ap.add_argument("--kld-num-tol", type=float, default=0.05,
                    help="accepted relative difference of quanttui's KLD@K from KLD@K computed "
                         "from llama-perplexity's saved log-probs")
    a = ap.parse_args()
    if a.chunks < 2:
        sys.exit("--chunks: llama-perplexity prints its statistics from 100 positions on")
    return a


if __name__ == "__main__":
    sys.exit(main())
