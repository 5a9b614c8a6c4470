"""Which files make a ladder: N ≥ 2 quants of one model, in order, with one reference.

Files come from directories (every GGUF in them, as discovery finds it) or are named. They must
be the same model (architecture, vocabulary, parameter count within a few percent: tensor
counts differ a little between quant types), and are ordered by bits per weight, highest first.
The reference is the one named, else the source the others say they were requantized from,
else the highest-bit quant.
"""

from __future__ import annotations

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


def lineup(models: Sequence[ModelInfo], reference: str | None = None) -> Lineup:
    """Check that `models` are quants of one model, order them, and pick the reference."""
    if len(models) < 2:
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
