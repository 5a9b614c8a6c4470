"""Secrets never leave in what quanttui records: one masking function for command lines, one
for URLs, and the split that keeps secret values off a llama-server's command line.

`mask_args` is used for every place a llama-server command line is kept: the run JSON (launch
args, config, provenance), the history, the server log and the messages that quote it.
`mask_url` for every place a server's URL is shown or written (the password of its
`user:password@`, a username alone as in `TOKEN@`, and key-like query values).
`split_secrets` before a llama-server is started: `ps` shows every user a process's arguments,
its environment only to its owner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# llama-server flags whose value is a secret, or names where one is kept
SECRET_FLAGS = frozenset({"--api-key", "--api-key-file", "--hf-token", "-hft", "--ssl-key-file"})
# NAME=value where NAME looks like an environment variable holding a secret (HF_TOKEN=...)
_ENV_SECRET = re.compile(r"([A-Z_][A-Z0-9_]*(?:TOKEN|KEY|SECRET|PASSWORD)[A-Z0-9_]*)=.+", re.S)
# The secret-valued flags llama-server also reads from its environment, and from where
# (its --help: "(env: LLAMA_API_KEY)", "(env: HF_TOKEN)").
SECRET_ENV = {"--api-key": "LLAMA_API_KEY", "--hf-token": "HF_TOKEN", "-hft": "HF_TOKEN"}
# Query parameters whose value is a secret (…?api_key=K, ?token=T)
_QUERY_SECRET = re.compile(r"(?i).*(key|token|secret|password|passwd|auth|sig).*")


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


def mask_url(url: str) -> str:
    """`url` with its password (`user:password@`), a username without a password (`TOKEN@`, a
    common way to pass a token: all of it) and key-like query values replaced by `***`;
    unchanged when it has none (or isn't a URL)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed URL, left as it is
    except ValueError:
        return url
    netloc, query = parts.netloc, parts.query
    if "@" in parts.netloc:
        host_part = parts.netloc.rpartition("@")[2]
        netloc = (f"{parts.username or ''}:{MASK}@{host_part}" if parts.password is not None
                  else f"{MASK}@{host_part}")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_QUERY_SECRET.fullmatch(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _QUERY_SECRET.fullmatch(k) else v) for k, v in pairs],
                              safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def split_secrets(args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """llama-server arguments without the secret values of `SECRET_ENV`'s flags (`--api-key K`
    and `--api-key=K` alike: llama-server rejects the second form, and echoes its value when it
    does), and the environment that carries them instead. Several API keys become one
    comma-separated list, as `--api-key K1,K2` takes them."""
    out: list[str] = []
    env: dict[str, str] = {}
    keys: list[str] = []
    i = 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        if flag in SECRET_ENV and (eq or i + 1 < len(args)):
            if not eq:
                value = args[i + 1]
                i += 1
            if SECRET_ENV[flag] == "LLAMA_API_KEY":
                keys.append(value)
            else:
                env[SECRET_ENV[flag]] = value
        else:
            out.append(args[i])
        i += 1
    if keys:
        env["LLAMA_API_KEY"] = ",".join(keys)
    return out, env
