"""llama-server's wire formats (b11434) as typed structs, decoded with msgspec.

Only the fields quanttui reads are declared; unknown fields are ignored so that a newer server
still decodes. Field names are the server's own (llama.cpp's tools/server/server.cpp at b11434).
"""

from __future__ import annotations

import msgspec


class Timings(msgspec.Struct, frozen=True):
    """`timings` on the final event. predicted_per_second uses the n-1 convention."""

    cache_n: int = 0
    prompt_n: int = 0
    prompt_ms: float = 0.0
    prompt_per_token_ms: float = 0.0
    prompt_per_second: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    predicted_per_token_ms: float = 0.0
    predicted_per_second: float = 0.0
    draft_n: int | None = None
    draft_n_accepted: int | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    message: str = ""
    type: str | None = None
    code: int | None = None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    error: ErrorBody


class TopProb(msgspec.Struct, frozen=True):
    id: int
    token: str = ""
    logprob: float | None = None  # raw softmax (post_sampling_probs: false)
    prob: float | None = None  # post_sampling_probs: true


class TokenProb(msgspec.Struct, frozen=True):
    id: int
    token: str = ""
    logprob: float | None = None
    prob: float | None = None
    top_logprobs: list[TopProb] | None = None
    top_probs: list[TopProb] | None = None


class NativeEvent(msgspec.Struct):
    """One event of POST /completion (stream): one token per partial event, `stop` on the last."""

    content: str = ""
    tokens: list[int] = []
    stop: bool = False
    stop_type: str | None = None
    stopping_word: str | None = None
    truncated: bool = False
    tokens_predicted: int | None = None
    tokens_evaluated: int | None = None
    timings: Timings | None = None
    completion_probabilities: list[TokenProb] | None = None
    error: ErrorBody | None = None


class Usage(msgspec.Struct, frozen=True):
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0


class Delta(msgspec.Struct, frozen=True):
    content: str | None = None
    reasoning_content: str | None = None
    role: str | None = None


class LogprobsContent(msgspec.Struct, frozen=True):
    content: list[TokenProb] | None = None


class OAIChoice(msgspec.Struct, frozen=True):
    index: int = 0
    text: str | None = None  # /v1/completions
    delta: Delta | None = None  # /v1/chat/completions
    finish_reason: str | None = None
    logprobs: LogprobsContent | None = None


class OAIChunk(msgspec.Struct):
    """One event of /v1/completions or /v1/chat/completions (stream); `[DONE]` ends it."""

    choices: list[OAIChoice] = []
    usage: Usage | None = None
    timings: Timings | None = None
    error: ErrorBody | None = None


class Health(msgspec.Struct, frozen=True):
    status: str = ""


native_event_decoder = msgspec.json.Decoder(NativeEvent)
oai_chunk_decoder = msgspec.json.Decoder(OAIChunk)
error_decoder = msgspec.json.Decoder(ErrorEnvelope)
