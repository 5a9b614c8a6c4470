"""A stored run (the JSON that `report.results_dict` writes) back into `RunResults`.

Only records are stored as data; statistics are recomputed from them, so a re-rendered report
shows exactly the figures of the original run. Per-event times aren't stored, so a loaded
record carries its text and token ids as one piece, which is all reports need.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from quanttui.core.run.metrics import RequestMetrics
from quanttui.core.llama.protocol import Timings
from quanttui.core.run.records import RequestRecord, RoundRecord, RunResults, ServerInfo
from quanttui.core.reports.run_file import SCHEMA, SCHEMA_VERSION
from quanttui.core.llama.result import CompletionResult


class RunFileError(Exception):
    pass


def _ts(s: str | None) -> float:
    return datetime.fromisoformat(s).timestamp() if s else 0.0


def _record(d: dict[str, Any]) -> RequestRecord:
    rec = RequestRecord(
        request_id=d["request_id"], server=d["server"], prompt_id=d["prompt_id"],
        category=d["category"], repetition=d["repetition"], warmup=d["warmup"],
        concurrency=d["concurrency"], round=d["round"], started_at=_ts(d["started_at"]),
        error_kind=d.get("error_kind"), error=d.get("error"),
    )
    m = d.get("metrics")
    if m is not None:
        m = dict(m)
        m["itl_ms"] = tuple(m.get("itl_ms") or ())
        rec.metrics = RequestMetrics(**m)
    res = CompletionResult(server=d["server"], endpoint="completion", t_sent_ns=0)
    res.event_texts = [d.get("text") or ""]
    # per-event times aren't stored: keep the count (placeholders), not made-up times
    res.event_times_ns = [0] * int(d.get("n_events") or 0)
    res.token_ids = list(d.get("token_ids") or [])
    res.stop_type = d.get("stop_reason")
    res.truncated = bool(d.get("truncated"))
    if d.get("timings"):
        res.timings = msgspec.convert(d["timings"], Timings)
    rec.result = res
    return rec


def results_from_dict(data: dict[str, Any]) -> RunResults:
    if data.get("schema") != SCHEMA:
        raise RunFileError(f"not a quanttui run (schema {data.get('schema')!r})")
    if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
        raise RunFileError(
            f"run written by a newer quanttui (schema version {data['schema_version']}, this "
            f"one reads up to {SCHEMA_VERSION}); upgrade quanttui")
    servers = [ServerInfo(**s) for s in data["servers"]]
    rounds = []
    for r in data.get("rounds", []):
        r = {k: v for k, v in r.items() if k not in ("aggregate_tps", "requests_per_s")}
        rounds.append(RoundRecord(**r))
    res = RunResults(
        servers=servers, schedule=data["schedule"], endpoint=data["endpoint"],
        repetitions=data["repetitions"], warmup=data["warmup"],
        concurrency_levels=tuple(data["concurrency_levels"]),
        records=[_record(r) for r in data["records"]], rounds=rounds,
        notices=list(data.get("notices", [])), started_at=_ts(data.get("started_at")),
        finished_at=_ts(data.get("finished_at")) if data.get("finished_at") else None,
        interrupted=bool(data.get("interrupted")), hardware=data.get("hardware"),
    )
    res.extra = {k: data[k] for k in ("config", "provenance", "quality") if data.get(k)}
    return res


def load_run(path: Path) -> RunResults:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RunFileError(f"{path}: cannot read: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise RunFileError(f"{path}: not JSON (line {e.lineno}: {e.msg})") from e
    try:
        return results_from_dict(data)
    except RunFileError as e:
        raise RunFileError(f"{path}: {e}") from e
    except (KeyError, TypeError, msgspec.ValidationError) as e:
        raise RunFileError(f"{path}: not a complete quanttui run ({e!r})") from e
