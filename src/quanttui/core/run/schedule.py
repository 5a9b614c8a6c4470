"""How a run orders its requests between servers.

- simultaneous: each prompt goes to every server at once (shared load, side by side);
- alternating: one server at a time per prompt, in a shuffled order per prompt (solo speeds);
- sequential: all of the first server's requests, then the next server's.
"""

from __future__ import annotations

from typing import Literal

Schedule = Literal["simultaneous", "alternating", "sequential"]
SCHEDULES: tuple[Schedule, ...] = ("simultaneous", "alternating", "sequential")
