"""Run results → schema-versioned JSON, and the plain-text summary the headless run prints.

JSON is written atomically (temporary file in the same folder, then rename), so an interrupted
export leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec

from quanttui import __version__
from quanttui.core.run.records import (
    PAIRED_METRICS,
    SUMMARY_METRICS,
    RequestRecord,
    RunResults,
)
from quanttui.core.run.stats import Summary

SCHEMA = "quanttui.run"
SCHEMA_VERSION = 1


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def _summary(s: Summary | None) -> dict[str, float] | None:
    return None if s is None else {k: round(v, 4) for k, v in dataclasses.asdict(s).items()}


def record_dict(r: RequestRecord) -> dict[str, Any]:
    res = r.result
    d: dict[str, Any] = {
        "request_id": r.request_id,
        "server": r.server,
        "prompt_id": r.prompt_id,
        "category": r.category,
        "repetition": r.repetition,
        "warmup": r.warmup,
        "concurrency": r.concurrency,
        "round": r.round,
        "started_at": _iso(r.started_at),
        "ok": r.ok,
        "error_kind": r.error_kind,
        "error": r.error,
        "n_events": r.n_events,
        "text": r.text,
        "token_ids": r.token_ids,
        "stop_reason": res.stop_reason if res else None,
        "truncated": res.truncated if res else False,
        "timings": msgspec.to_builtins(res.timings) if res and res.timings else None,
    }
    if r.metrics is not None:
        d["metrics"] = dataclasses.asdict(r.metrics)
    else:
        d["metrics"] = None
    return d


def results_dict(results: RunResults, config: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    names = results.server_names
    stats: dict[str, Any] = {}
    for name in names:
        per_level: dict[str, Any] = {}
        for level in results.concurrency_levels:
            m: dict[str, Any] = {metric: _summary(results.summary(name, metric, level))
                                 for metric in SUMMARY_METRICS}
            m["itl_ms"] = _summary(results.itl_summary(name, level))
            agg = results.aggregate(name, level)
            m["aggregate_tps"] = round(agg[0], 3) if agg else None
            m["requests_per_s"] = round(agg[1], 4) if agg else None
            m["n_ok"] = sum(1 for r in results.measured(name, level) if r.ok)
            m["n_failed"] = sum(1 for r in results.measured(name, level) if not r.ok)
            per_level[str(level)] = m
        stats[name] = per_level
    paired: dict[str, Any] = {}
    if len(names) >= 2:
        a = names[0]
        for b in names[1:]:
            per_level = {}
            for level in results.concurrency_levels:
                per_level[str(level)] = {
                    metric: (dataclasses.asdict(d) if (d := results.paired(metric, a, b, level))
                             else None)
                    for metric in PAIRED_METRICS
                }
            paired[f"{b} vs {a}"] = per_level
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "quanttui_version": __version__,
        "started_at": _iso(results.started_at),
        "finished_at": _iso(results.finished_at),
        "interrupted": results.interrupted,
        "schedule": results.schedule,
        "endpoint": results.endpoint,
        "repetitions": results.repetitions,
        "warmup": results.warmup,
        "concurrency_levels": list(results.concurrency_levels),
        "config": dict(config) if config is not None else results.extra.get("config"),
        "provenance": results.extra.get("provenance"),
        "servers": [dataclasses.asdict(s) for s in results.servers],
        "stats": stats,
        "paired": paired,
        "rounds": [dataclasses.asdict(r) | {"aggregate_tps": r.aggregate_tps,
                                            "requests_per_s": r.requests_per_s}
                   for r in results.rounds],
        "notices": results.notices,
        "hardware": results.hardware,
        "records": [record_dict(r) for r in results.records],
    }
    quality = results.extra.get("quality")
    if quality is not None:  # runs with a quality step (core.quality_run) only
        out["quality"] = quality
    return out


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, results: RunResults, config: Mapping[str, Any] | None = None
               ) -> None:
    write_atomic(path, msgspec.json.format(msgspec.json.encode(results_dict(results, config)),
                                           indent=1))


# ------------------------------------------------------------------ text summary

def _f(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def format_summary(results: RunResults) -> str:
    names = results.server_names
    lines: list[str] = []
    for level in results.concurrency_levels:
        head = f"concurrency {level}" if len(results.concurrency_levels) > 1 else ""
        lines.append(f"schedule: {results.schedule}  endpoint: {results.endpoint}  {head}".rstrip())
        cols = ["server", "model", "ok/fail", "decode tok/s (client)", "server tok/s",
                "TTFT p50 ms", "E2E p50 ms", "tokens"]
        rows = []
        for name in names:
            info = next(s for s in results.servers if s.name == name)
            dc = results.summary(name, "decode_tps_client", level)
            ds = results.summary(name, "decode_tps_server", level)
            tt = results.summary(name, "ttft_ms", level)
            e2 = results.summary(name, "e2e_ms", level)
            no = results.summary(name, "n_out", level)
            meas = results.measured(name, level)
            rows.append([
                name, info.model_ftype or ("unreachable" if not info.reachable else "?"),
                f"{sum(r.ok for r in meas)}/{sum(not r.ok for r in meas)}",
                f"{_f(dc.mean if dc else None)} ± {_f(dc.std if dc else None)}",
                _f(ds.mean if ds else None), _f(tt.p50 if tt else None),
                _f(e2.p50 if e2 else None), _f(no.mean if no else None, ".0f"),
            ])
            if level > 1 and (agg := results.aggregate(name, level)):
                rows[-1][-1] += f"  (aggregate {agg[0]:.1f} tok/s, {agg[1]:.2f} req/s)"
        widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows, strict=False)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
        for row in rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if len(names) >= 2:
            a = names[0]
            for b in names[1:]:
                d = results.paired("decode_tps_client", a, b, level)
                if d is not None:
                    ci = (f"95% CI [{d.ci_low:+.1f}, {d.ci_high:+.1f}]"
                          if d.ci_low is not None and d.ci_high is not None else "CI n/a")
                    lines.append(
                        f"{b} − {a} decode tok/s: {d.mean_diff:+.1f} ({ci}), ratio "
                        f"{_f(d.ratio, '.2f')}, {b} faster on {d.win_rate_b:.0%} of "
                        f"{d.n} prompts")
        lines.append("")
    lines += _memory_lines(results)
    for n in results.notices:
        if n["level"] != "info":
            lines.append(f"{n['level']}: {n['message']}")
    return "\n".join(lines).rstrip() + "\n"


def _mb(v: Any) -> str:
    if isinstance(v, dict):  # {"n/a": reason}
        return f"n/a ({v['n/a']})"
    return f"{v / 1e6:.0f} MB" if isinstance(v, (int, float)) else "n/a"


def _memory_lines(results: RunResults) -> list[str]:
    hw = results.hardware
    if not hw:
        return []
    out = []
    for name, s in hw.get("servers", {}).items():
        cpu = s.get("cpu_percent_mean")
        cpu_text = f", CPU {cpu:.0f}% of a core" if isinstance(cpu, (int, float)) else ""
        out.append(f"memory {name}: RSS peak {_mb(s.get('rss_peak'))}, USS peak "
                   f"{_mb(s.get('uss_peak'))}, model file {_mb(s.get('model_file'))}{cpu_text}")
    return [*out, ""] if out else []
