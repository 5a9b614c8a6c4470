"""One CSV row per request, for spreadsheets and pandas. Same figures as the JSON records;
the per-token ITL list is left out (it is in the JSON)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime, timezone

from quanttui.core.run.metrics import RequestMetrics
from quanttui.core.run.records import RunResults

METRIC_FIELDS = [f.name for f in dataclasses.fields(RequestMetrics) if f.name != "itl_ms"]
COLUMNS = ["request_id", "server", "quant", "prompt_id", "category", "repetition", "warmup",
           "concurrency", "round", "started_at", "ok", "error_kind", "error", "stop_reason",
           "truncated", *METRIC_FIELDS]


def render(results: RunResults) -> str:
    quant = {s.name: s.model_ftype or "" for s in results.servers}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in results.records:
        m = r.metrics
        res = r.result
        started = datetime.fromtimestamp(r.started_at, tz=timezone.utc).isoformat(
            timespec="seconds")
        row: list[object] = [
            r.request_id, r.server, quant.get(r.server, ""), r.prompt_id, r.category,
            r.repetition, r.warmup, r.concurrency, r.round, started, r.ok, r.error_kind or "",
            r.error or "", (res.stop_reason if res else None) or "",
            res.truncated if res else False]
        for f in METRIC_FIELDS:
            v = getattr(m, f) if m is not None else None
            row.append("" if v is None else (round(v, 4) if isinstance(v, float) else v))
        w.writerow(row)
    return buf.getvalue()
