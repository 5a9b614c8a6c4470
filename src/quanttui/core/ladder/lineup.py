"""Which files make a ladder: N ≥ 2 quants of one model, in order, with one reference.

Files come from directories (every GGUF in them, as discovery finds it) or are named. They must
be the same model (architecture, vocabulary, parameter count within a few percent: tensor
counts differ a little between quant types), and are ordered by bits per weight, highest first.
The reference is the one named, else the source the others say they were requantized from,
else the highest-bit quant.

Context size and KV cache type are dimensions too (`expand`): each quant × context × cache
type is a rung of its own ("Q4_K_M@32k/kv q8_0"), with the reference quant at the first context
and an f16 cache as the reference.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from quanttui.core.models.discovery import GGUFError, ModelInfo, discover, read_gguf_info


class LadderError(ValueError):
    """Files that can't make a ladder; the message names them and says why."""


@dataclass(frozen=True)
class Rung:
    name: str  # the column / row name: the quant ("Q4_K_M"), unique in the ladder
    model: ModelInfo
    ctx_size: int | None = None  # -c (None: the launch default)
    cache_type: str | None = None  # -ctk/-ctv (None: the server's default, f16)
    base: str = ""  # the quant's name without context and cache ("Q4_K_M"); "" = name

    @property
    def quant(self) -> str:
        return self.base or self.name

    @property
    def cache(self) -> str:
        return self.cache_type or "f16"


@dataclass(frozen=True)
class Lineup:
    rungs: tuple[Rung, ...]  # highest bits per weight first
    reference: str

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rungs]

    def rung(self, name: str) -> Rung:
        return next(r for r in self.rungs if r.name == name)

    @property
    def others(self) -> list[Rung]:
        return [r for r in self.rungs if r.name != self.reference]

    @property
    def contexts(self) -> list[int | None]:
        """The contexts measured, in the order given (one None: the launch default)."""
        return list(dict.fromkeys(r.ctx_size for r in self.rungs))

    def base_of(self, rung: Rung) -> Rung | None:
        """What a rung is compared with as a neighbour along the new dimensions: a quantized
        KV cache against the same quant's f16 cache at the same context; a larger context
        against the same quant at the first context (both f16). None for the first context's
        f16 rungs (their neighbours are the quants beside them)."""
        first = self.contexts[0]
        if rung.cache != "f16":
            want = (rung.quant, rung.ctx_size, "f16")
        elif rung.ctx_size != first:
            want = (rung.quant, first, "f16")
        else:
            return None
        return next((r for r in self.rungs if (r.quant, r.ctx_size, r.cache) == want), None)

    def neighbours(self) -> list[tuple[str, str]]:
        """Pairs shown side by side (a, b): quants next to each other in bits per weight at the
        first context with an f16 cache, then each other rung against `base_of` it."""
        first = self.contexts[0]
        plain = [r.name for r in self.rungs if r.ctx_size == first and r.cache == "f16"]
        out = list(itertools.pairwise(plain))
        out += [(b.name, r.name) for r in self.rungs if (b := self.base_of(r)) is not None]
        return out


def collect_models(paths: Sequence[Path]) -> list[ModelInfo]:
    """The GGUF models in these files and directories (a directory: every model found in it)."""
    models: list[ModelInfo] = []
    for p in paths:
        p = p.expanduser()
        if p.is_dir():
            found = discover([p], include_default_places=False)
            models += found.models
            if not found.models:
                why = "; ".join(f"{q.path.name}: {q.reason}" for q in found.problems[:3])
                raise LadderError(f"{p}: no readable GGUF model in this folder"
                                  + (f" ({why})" if why else ""))
        elif not p.exists():
            raise LadderError(f"{p}: no such file or folder")
        else:
            try:
                models.append(read_gguf_info(p))
            except GGUFError as e:
                raise LadderError(str(e)) from None
    seen: dict[Path, ModelInfo] = {}
    for m in models:
        seen.setdefault(m.path.resolve(), m)
    return list(seen.values())


def _name(m: ModelInfo, taken: set[str]) -> str:
    stem = m.path.name.removesuffix(".gguf")
    for c in (m.quant, stem):
        if c and c not in taken:
            return c
    i = 2
    while f"{stem}-{i}" in taken:
        i += 1
    return f"{stem}-{i}"


def ctx_label(ctx: int) -> str:
    """2048 -> "2k", 32768 -> "32k", 3000 -> "3000"."""
    return f"{ctx // 1024}k" if ctx % 1024 == 0 else str(ctx)


def rung_name(quant: str, ctx_size: int | None, cache_type: str | None) -> str:
    """"Q4_K_M", "Q4_K_M@32k", "Q4_K_M@32k/kv q8_0" (f16, the default cache, unnamed)."""
    name = quant if ctx_size is None else f"{quant}@{ctx_label(ctx_size)}"
    return name if cache_type in (None, "f16") else f"{name}/kv {cache_type}"


def expand(lu: Lineup, ctx_sizes: Sequence[int] = (),
           cache_types: Sequence[str] = ()) -> Lineup:
    """Every quant of `lu` at every context and KV cache type: quant by quant (bits per weight,
    highest first), then context and cache type in the order given; f16 is measured first
    whether named or not (the quality of a quantized cache is judged against it). The
    reference: the reference quant at the first context with an f16 cache."""
    if not ctx_sizes and not cache_types:
        return lu
    ctxs: list[int | None] = list(dict.fromkeys(ctx_sizes)) or [None]
    caches = ["f16", *dict.fromkeys(c for c in cache_types if c != "f16")]
    rungs = [Rung(rung_name(r.name, c, None if k == "f16" else k), r.model, c,
                  None if k == "f16" else k, r.name)
             for r in lu.rungs for c in ctxs for k in caches]
    if len(rungs) < 2:
        raise LadderError("a ladder needs at least 2 rungs: more files, contexts or cache types")
    ref = rung_name(lu.reference, ctxs[0], None)
    return Lineup(tuple(rungs), ref)


def lineup(models: Sequence[ModelInfo], reference: str | None = None,
           single: bool = False) -> Lineup:
    """Check that `models` are quants of one model, order them, and pick the reference.
    `single`: one model is enough (its contexts or cache types make the rungs, `expand`)."""
    if len(models) < (1 if single else 2):
        raise LadderError(f"a ladder needs at least 2 quants of one model, got {len(models)}"
                          + (f" ({models[0].path})" if models else ""))
    first = models[0]
    for m in models[1:]:
        if m.architecture != first.architecture:
            raise LadderError(f"{m.path.name} is a {m.architecture} model, {first.path.name} a "
                              f"{first.architecture} one: a ladder compares quants of one model")
        if m.vocab_size != first.vocab_size:
            raise LadderError(f"{m.path.name} has a vocabulary of {m.vocab_size} tokens, "
                              f"{first.path.name} of {first.vocab_size}: not the same model")
        if m.n_params and first.n_params and abs(m.n_params - first.n_params) > 0.05 * max(
                m.n_params, first.n_params):
            raise LadderError(f"{m.path.name} has {m.n_params:,} parameters, {first.path.name} "
                              f"{first.n_params:,}: not the same model")
    ordered = sorted(models, key=lambda m: -(m.bits_per_weight or m.size_bytes))
    taken: set[str] = set()
    rungs = []
    for m in ordered:
        name = _name(m, taken)
        taken.add(name)
        rungs.append(Rung(name, m))
    names = [r.name for r in rungs]
    if reference is not None:
        match = [r.name for r in rungs if reference in (r.name, r.model.quant,
                                                         r.model.path.name)]
        if not match:
            raise LadderError(f"no quant named {reference!r} in the ladder; "
                              f"choose one of {', '.join(names)}")
        ref = match[0]
    else:
        sources = {r.model.requantized_from for r in rungs} - {None}
        from_source = [r.name for r in rungs if r.model.quant in sources
                       and r.model.requantized_from is None]
        ref = from_source[0] if from_source else rungs[0].name
    return Lineup(tuple(rungs), ref)
