"""What a planned run will hold in memory, checked before it starts.

Every request's record (its tokens, their texts and arrival times) stays in memory until the
run is written, so repetitions × prompts × concurrency levels × servers × tokens is memory; a
typing slip like `-r 1000000000` would otherwise grow until the kernel kills the process. The
figures below are generous estimates, not measurements of one run: the check is for plans that
cannot fit, not for a tight fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from quanttui.core.run.plan import RunPlan

# A record and its result without tokens, with their share of what is written at the end.
BYTES_PER_REQUEST = 8 << 10
# One generated token: its id, text piece, arrival time and count (~150 B measured through
# the client) and its share of the JSON and history written at the end.
BYTES_PER_TOKEN = 256
# One of a token's `n_probs` top candidates (id, text, probability).
BYTES_PER_PROB = 128
# One request in flight: its stream thread's stack and buffers (an event is read whole).
BYTES_PER_STREAM = 1 << 20


def planned_bytes(plan: RunPlan, n_servers: int) -> int:
    """The memory `plan` implies on `n_servers` servers (see the module docstring)."""
    n_requests = (len(plan.prompts) * plan.repetitions * len(plan.concurrency_levels)
                  * n_servers)
    per_request = BYTES_PER_REQUEST + plan.params.n_predict * (
        BYTES_PER_TOKEN + plan.params.n_probs * BYTES_PER_PROB)
    in_flight = max(plan.concurrency_levels) * n_servers
    return n_requests * per_request + in_flight * BYTES_PER_STREAM


def check_fits(plan: RunPlan, n_servers: int, available: int | None = None) -> None:
    """Raise ValueError, saying what to change, when `plan` needs more memory than is
    available (default: what the system says is available now)."""
    need = planned_bytes(plan, n_servers)
    have = psutil.virtual_memory().available if available is None else available
    if need <= have:
        return
    levels = len(plan.concurrency_levels)
    n = len(plan.prompts) * plan.repetitions * levels * n_servers
    raise ValueError(
        f"the run is too large for this machine's memory: {n:,} requests ({len(plan.prompts):,} "
        f"prompt(s) × {plan.repetitions:,} repetition(s) × {levels} concurrency level(s) × "
        f"{n_servers} server(s)) of up to {plan.params.n_predict:,} tokens, up to "
        f"{max(plan.concurrency_levels):,} at once per server, would hold about "
        f"{_size(need)} in memory, and {_size(have)} is available; use fewer repetitions "
        "(-r), prompts, tokens (-n) or a lower --concurrency")


def _size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1e6:.1f} MB"
