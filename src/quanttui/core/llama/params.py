"""Generation parameters, sent explicitly on every request.

A GGUF may override the server's sampling defaults through `general.sampling.*` metadata, so two
quant files can sample differently when a field is left out. Every field is therefore sent, and
greedy decoding pins the sampler chain to the argmax so that outputs are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class GenerationParams:
    n_predict: int = 128
    temperature: float = 0.0
    seed: int = 42
    top_k: int = 40
    top_p: float = 1.0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    cache_prompt: bool = False
    ignore_eos: bool = False
    n_probs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

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
