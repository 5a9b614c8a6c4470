"""Generation parameters, sent explicitly on every request.

A GGUF may override the server's sampling defaults through `general.sampling.*` metadata, so two
quant files can sample differently when a field is left out. Every field is therefore sent, and
greedy decoding pins the sampler chain to the argmax so that outputs are comparable.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

_Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Sampling(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The generation fields a user sets: the config's `[generation]` section is this struct,
    and every request's parameters extend it, so the fields and their limits are written once."""

    n_predict: Annotated[int, msgspec.Meta(ge=1, le=32768)] = 128
    temperature: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    seed: Annotated[int, msgspec.Meta(ge=-1, le=2**32 - 1)] = 42
    top_k: Annotated[int, msgspec.Meta(ge=0)] = 40
    top_p: _Fraction = 1.0
    min_p: _Fraction = 0.0
    repeat_penalty: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0
    stop: tuple[Annotated[str, msgspec.Meta(min_length=1)], ...] = ()
    cache_prompt: bool = False
    ignore_eos: bool = False


class GenerationParams(Sampling, frozen=True, kw_only=True):
    """What one request sends: the user's sampling fields, plus what a step asks for itself."""

    n_probs: int = 0
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def of(cls, sampling: Sampling, **changes: Any) -> GenerationParams:
        """Request parameters from the configured sampling fields (and any changes)."""
        return cls(**(msgspec.structs.asdict(sampling) | changes))

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def body(self) -> dict[str, Any]:
        """The sampling part of a request body, identical for every endpoint."""
        body: dict[str, Any] = {
            "n_predict": self.n_predict,
            "temperature": self.temperature,
            "seed": self.seed,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "typical_p": 1.0,
            "repeat_penalty": self.repeat_penalty,
            "repeat_last_n": 64,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "dry_multiplier": 0.0,
            "xtc_probability": 0.0,
            "mirostat": 0,
            "stop": list(self.stop),
            "cache_prompt": self.cache_prompt,
            "ignore_eos": self.ignore_eos,
        }
        if self.greedy:
            # Argmax only: penalties or DRY switched on by GGUF metadata can't change the pick.
            body["samplers"] = ["temperature"]
        if self.n_probs:
            body["n_probs"] = self.n_probs
            body["post_sampling_probs"] = False  # raw softmax over the whole vocabulary
        body.update(self.extra)
        return body
