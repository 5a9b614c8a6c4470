"""A toy language model behind httpx.MockTransport, speaking the part of llama-server's API that
teacher forcing and task scoring use: /tokenize, /detokenize, /props and non-stream /completion
with n_probs (raw probabilities), logit_bias (sampling only) and a GBNF string-literal grammar.

Its next-token distribution is a deterministic function of the prefix, so every method of
reading it must give identical numbers. The vocabulary has overlapping pieces ("a", "b", "ab"),
so a grammar over text can be satisfied by another tokenization than the reference's: the
grammar method's mismatch handling gets exercised.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections.abc import Sequence
from typing import Any

import httpx

from quanttui.core.llama.client import LlamaClient

VOCAB = ["<pad>", "<eos>", "<bos>", "a", "b", "ab", "c", " ", "d", "ca", "1", "2", "\n"]
EOS, BOS = 1, 2
SPECIAL = {0, EOS, BOS}


def tokenize(text: str, add_special: bool = True) -> list[int]:
    """Greedy longest match, special tokens parsed (as /tokenize's parse_special)."""
    out = [BOS] if add_special else []
    i = 0
    while i < len(text):
        best = max((t for t in range(1, len(VOCAB)) if text.startswith(VOCAB[t], i)),
                   key=lambda t: len(VOCAB[t]), default=None)
        if best is None:
            raise ValueError(f"toy tokenizer: no token for {text[i]!r}")
        out.append(best)
        i += len(VOCAB[best])
    return out


class ToyLM:
    def __init__(self, seed: int = 1, base_seed: int | None = None, noise: float = 0.7,
                 honour_bias: bool = True, delay: float = 0.0) -> None:
        # base_seed: a "quantized" copy of the model with that seed, off by `noise`.
        self.seed = seed
        self.base_seed = base_seed
        self.noise = noise
        self.honour_bias = honour_bias
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.fixed: dict[str, str] = {}  # prompt text → forced completion (task tests)

    def logprobs(self, prefix: Sequence[int]) -> list[float]:
        key = ",".join(map(str, prefix[-4:]))
        if self.base_seed is None:
            rng = random.Random(f"{self.seed}:{key}")
            logits = [rng.gauss(0.0, 2.0) for _ in VOCAB]
        else:
            base = random.Random(f"{self.base_seed}:{key}")
            mine = random.Random(f"{self.seed}:{key}")
            logits = [base.gauss(0.0, 2.0) + self.noise * mine.gauss(0.0, 1.0) for _ in VOCAB]
        logits[0] = logits[BOS] = -30.0  # never generated
        m = max(logits)
        lse = m + math.log(sum(math.exp(x - m) for x in logits))
        return [x - lse for x in logits]

    # --------------------------------------------------------------- HTTP

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        path = request.url.path
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        if path == "/props":
            return httpx.Response(200, json={"eos_token": "<eos>", "bos_token": "<bos>"})
        if path == "/tokenize":
            return httpx.Response(200, json={"tokens": tokenize(body["content"],
                                                                body.get("add_special", True))})
        if path == "/detokenize":
            return httpx.Response(200, json={"content": "".join(VOCAB[t] for t in body["tokens"])})
        if path == "/completion":
            self.requests.append(body)
            return httpx.Response(200, json=self.complete(body))
        return httpx.Response(404, json={"error": {"code": 404, "message": "File Not Found",
                                                   "type": "not_found_error"}})

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        if isinstance(prompt, str) and prompt in self.fixed:
            text = self.fixed[prompt]
            return {"content": text, "tokens": [1000 + ord(ch) for ch in text], "stop": True,
                    "stop_type": "limit"}
        ctx = tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        bias = {int(t): float(b) for t, b in body.get("logit_bias", [])} \
            if self.honour_bias else {}
        remaining: str | None = None
        if "grammar" in body:
            m = re.fullmatch(r'root ::= "(.*)"', body["grammar"], re.S)
            assert m, body["grammar"]
            remaining = json.loads('"' + m.group(1) + '"')  # the escapes used are JSON's too
        k = int(body.get("n_probs", 0))
        out_ids: list[int] = []
        probs: list[dict[str, Any]] = []
        stop_type = "limit"
        for _ in range(int(body.get("n_predict", 16))):
            lp = self.logprobs(ctx)
            allowed = range(len(VOCAB))
            if remaining is not None:
                allowed = [EOS] if remaining == "" else [
                    t for t in range(len(VOCAB))
                    if t not in SPECIAL and remaining.startswith(VOCAB[t])]
            if not allowed:
                break
            tok = max(allowed, key=lambda t: lp[t] + bias.get(t, 0.0))
            if k:
                order = sorted(range(len(VOCAB)), key=lambda t: -lp[t])[:k]
                probs.append({"id": tok, "token": VOCAB[tok], "logprob": lp[tok],
                              "top_logprobs": [{"id": t, "token": VOCAB[t], "logprob": lp[t]}
                                               for t in order]})
            out_ids.append(tok)
            ctx.append(tok)
            if remaining is not None and tok != EOS:
                remaining = remaining[len(VOCAB[tok]):]
            if tok == EOS:
                stop_type = "eos"
                break
        data: dict[str, Any] = {"content": "".join(VOCAB[t] for t in out_ids if t != EOS),
                                "stop": True, "stop_type": stop_type}
        if body.get("return_tokens"):
            data["tokens"] = out_ids
        if k:
            data["completion_probabilities"] = probs
        return data

    def client(self, name: str = "toy") -> LlamaClient:
        return LlamaClient(f"http://{name}.test", name=name,
                           transport=httpx.MockTransport(self.handle))
