"""Secrets never leave in what quanttui records: one masking function for command lines.

Used for every place a llama-server command line is kept: the run JSON (launch args, config,
provenance), the history, the server log and the messages that quote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# llama-server flags whose value is a secret, or names where one is kept
SECRET_FLAGS = frozenset({"--api-key", "--api-key-file", "--hf-token", "-hft", "--ssl-key-file"})
# NAME=value where NAME looks like an environment variable holding a secret (HF_TOKEN=...)
_ENV_SECRET = re.compile(r"([A-Z_][A-Z0-9_]*(?:TOKEN|KEY|SECRET|PASSWORD)[A-Z0-9_]*)=.+", re.S)


def mask_args(args: Iterable[str]) -> list[str]:
    """`args` with each secret replaced by `***`: the value after a secret flag (`--api-key K`,
    `--api-key=K`) and the value of an env-style `HF_TOKEN=...`."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
        elif m := _ENV_SECRET.fullmatch(arg):
            out.append(f"{m[1]}={MASK}")
        else:
            out.append(arg)
    return out
