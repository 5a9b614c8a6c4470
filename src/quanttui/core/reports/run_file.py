"""The run JSON (core.reports.schema.RunDoc): RunResults to file, and a stored run back.

Writing builds the structs and encodes them; the file is written atomically (temporary file in
the same folder, then rename), so an interrupted export leaves either the old file or the new
one, never half of one.

Reading decodes the structs and rebuilds RunResults from the records and rounds only; statistics
are recomputed from them, so a re-rendered report shows exactly the figures of the original run.
Per-event times aren't stored, so a loaded record carries its text and token ids as one piece,
which is all reports need.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec

from quanttui import __version__
from quanttui.core.ladder.section import LadderSection
from quanttui.core.llama.result import CompletionResult
from quanttui.core.quality.section import QualitySection, with_intervals
from quanttui.core.reports.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    LevelStats,
    PairedLevel,
    RecordDoc,
    RoundDoc,
    RunDoc,
)
from quanttui.core.run.events import Notice
from quanttui.core.run.perturbation import Perturbation
from quanttui.core.run.records import (
    PAIRED_METRICS,
    SUMMARY_METRICS,
    RequestRecord,
    RoundRecord,
    RunResults,
)
from quanttui.core.run.stats import Summary


class RunFileError(Exception):
    pass


# ------------------------------------------------------------------ writing


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def _summary(s: Summary | None) -> Summary | None:
    if s is None:
        return None
    return Summary(*(round(getattr(s, f.name), 4) for f in dataclasses.fields(s)))


def _record_doc(r: RequestRecord) -> RecordDoc:
    res = r.result
    return RecordDoc(
        request_id=r.request_id, server=r.server, prompt_id=r.prompt_id, category=r.category,
        repetition=r.repetition, warmup=r.warmup, concurrency=r.concurrency, round=r.round,
        started_at=_iso(r.started_at), block=r.block, ok=r.ok, error_kind=r.error_kind,
        error=r.error,
        n_events=r.n_events, text=r.text, token_ids=r.token_ids,
        stop_reason=res.stop_reason if res else None,
        truncated=res.truncated if res else False,
        timings=res.timings if res else None,
        token_times="server" if res is not None and res.server_dated else "arrival",
        metrics=r.metrics,
    )


def _level_stats(results: RunResults, name: str, level: int) -> LevelStats:
    summaries: dict[str, Any] = {m: _summary(results.summary(name, m, level))
                                 for m in SUMMARY_METRICS}
    agg = results.aggregate(name, level)
    measured = results.measured(name, level)
    return LevelStats(
        **summaries,
        itl_ms=_summary(results.itl_summary(name, level)),
        aggregate_tps=round(agg[0], 3) if agg else None,
        requests_per_s=round(agg[1], 4) if agg else None,
        n_ok=sum(1 for r in measured if r.ok),
        n_failed=sum(1 for r in measured if not r.ok),
    )


def _round_doc(r: RoundRecord) -> RoundDoc:
    return RoundDoc(**dataclasses.asdict(r), aggregate_tps=r.aggregate_tps,
                    requests_per_s=r.requests_per_s)


def run_doc(results: RunResults, config: Mapping[str, Any] | None = None) -> RunDoc:
    """The run as the JSON document; `config` defaults to the one the run carries."""
    names = results.server_names
    levels = results.concurrency_levels
    paired: dict[str, dict[int, PairedLevel]] = {}
    if len(names) >= 2:
        a = names[0]
        for b in names[1:]:
            paired[f"{b} vs {a}"] = {
                level: PairedLevel(**{m: results.paired(m, a, b, level) for m in PAIRED_METRICS})
                for level in levels}
    quality = results.extra.get("quality")
    ladder = results.extra.get("ladder")
    perturbed = results.extra.get("perturbation")
    return RunDoc(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        quanttui_version=__version__,
        started_at=_iso(results.started_at),
        finished_at=_iso(results.finished_at),
        interrupted=results.interrupted,
        schedule=results.schedule,
        endpoint=results.endpoint,
        repetitions=results.repetitions,
        confirm_from=results.confirm_from,
        warmup=results.warmup,
        concurrency_levels=list(levels),
        drift_floor=results.drift_floor,
        config=dict(config) if config is not None else results.extra.get("config"),
        provenance=results.extra.get("provenance"),
        servers=list(results.servers),
        stats={name: {level: _level_stats(results, name, level) for level in levels}
               for name in names},
        paired=paired,
        rounds=[_round_doc(r) for r in results.rounds],
        notices=[msgspec.convert(n, Notice) for n in results.notices],
        hardware=results.hardware,
        records=[_record_doc(r) for r in results.records],
        # carried as plain data (core.quality.step.quality_dict); checked against the structs
        quality=msgspec.UNSET if quality is None else msgspec.convert(quality, QualitySection),
        ladder=msgspec.UNSET if ladder is None else msgspec.convert(ladder, LadderSection),
        perturbation=(msgspec.UNSET if perturbed is None
                      else msgspec.convert(perturbed, Perturbation)),
    )


def results_dict(results: RunResults, config: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The document as plain JSON types (what the run history stores)."""
    data: dict[str, Any] = msgspec.to_builtins(run_doc(results, config), str_keys=True)
    return data


def encode_run(results: RunResults, config: Mapping[str, Any] | None = None) -> bytes:
    return msgspec.json.format(msgspec.json.encode(run_doc(results, config)), indent=1)


def _umask() -> int:
    """The process umask (read, not changed, where /proc tells it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all, with the permissions a new file gets under the umask
    (mkstemp alone would make it 0600). Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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
    write_atomic(path, encode_run(results, config))


# ------------------------------------------------------------------ reading


class _Header(msgspec.Struct):
    """Read before the rest, so that another format or a newer version is named as such."""

    schema: Any = None
    schema_version: Any = 0


def _check(header: _Header) -> None:
    if header.schema != SCHEMA:
        raise RunFileError(f"not a quanttui run (schema {header.schema!r})")
    version = header.schema_version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RunFileError(f"not a quanttui run (schema version {version!r})")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"run written by a newer quanttui (schema version {version}, this one reads up "
            f"to {SCHEMA_VERSION}); upgrade quanttui")
    # Version 1 has the same fields as 2 (see core.reports.schema): it decodes as it is.


def _ts(s: str | None) -> float:
    if not s:
        return 0.0
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError as e:
        raise RunFileError(f"not a complete quanttui run (time {s!r})") from e


def _record(d: RecordDoc) -> RequestRecord:
    rec = RequestRecord(
        request_id=d.request_id, server=d.server, prompt_id=d.prompt_id, category=d.category,
        repetition=d.repetition, warmup=d.warmup, concurrency=d.concurrency, round=d.round,
        started_at=_ts(d.started_at), metrics=d.metrics, error_kind=d.error_kind,
        error=d.error, block=d.block)
    res = CompletionResult(server=d.server, endpoint="completion", t_sent_ns=0)
    res.event_texts = [d.text]
    # per-event times aren't stored: keep the count (placeholders), not made-up times
    res.event_times_ns = [0] * d.n_events
    res.token_ids = list(d.token_ids)
    res.stop_type = d.stop_reason
    res.truncated = d.truncated
    res.timings = d.timings
    res.server_dated = d.token_times == "server"
    rec.result = res
    return rec


def results_from_doc(doc: RunDoc) -> RunResults:
    res = RunResults(
        servers=list(doc.servers), schedule=doc.schedule, endpoint=doc.endpoint,
        repetitions=doc.repetitions, confirm_from=doc.confirm_from, warmup=doc.warmup,
        concurrency_levels=tuple(doc.concurrency_levels),
        records=[_record(r) for r in doc.records],
        rounds=[RoundRecord(r.server, r.concurrency, r.round, r.n_requests, r.n_ok, r.wall_s,
                            r.tokens) for r in doc.rounds],
        notices=[msgspec.to_builtins(n) for n in doc.notices],
        started_at=_ts(doc.started_at),
        finished_at=_ts(doc.finished_at) if doc.finished_at else None,
        interrupted=doc.interrupted, hardware=doc.hardware, drift_floor=doc.drift_floor,
    )
    if doc.schedule == "sequential" and not any(r.block for r in res.records):
        # written before blocks were recorded: sequential gave each server a block of its own
        order = {s.name: i + 1 for i, s in enumerate(res.servers)}
        for r in res.records:
            r.block = order.get(r.server, 0)
    if doc.config:
        res.extra["config"] = doc.config
    if doc.provenance:
        res.extra["provenance"] = doc.provenance
    if doc.quality is not msgspec.UNSET:
        # runs written before the KLD and same-top-1 intervals get them from per-prompt figures
        res.extra["quality"] = msgspec.to_builtins(with_intervals(doc.quality))
    if doc.ladder is not msgspec.UNSET:
        res.extra["ladder"] = msgspec.to_builtins(doc.ladder)
    if doc.perturbation is not msgspec.UNSET:
        res.extra["perturbation"] = msgspec.to_builtins(doc.perturbation)
    return res


def results_from_dict(data: dict[str, Any]) -> RunResults:
    """A run from its plain-JSON form (a decoded file, or the run history's copy)."""
    _check(_Header(data.get("schema"), data.get("schema_version", 0)))
    try:
        doc = msgspec.convert(data, RunDoc, str_keys=True)
    except msgspec.ValidationError as e:
        raise RunFileError(f"not a complete quanttui run ({e})") from e
    return results_from_doc(doc)


_header_decoder = msgspec.json.Decoder(_Header)
_doc_decoder = msgspec.json.Decoder(RunDoc)


def _malformed(raw: bytes, e: msgspec.DecodeError) -> str:
    """msgspec names the byte where the JSON breaks; say the line as well."""
    msg = str(e).removeprefix("JSON is malformed: ")
    m = re.search(r" \(byte (\d+)\)$", msg)
    if m is None:
        return msg
    line = raw.count(b"\n", 0, int(m[1])) + 1
    return f"line {line}: {msg[:m.start()]}"


def load_run(path: Path) -> RunResults:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RunFileError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        try:
            header = _header_decoder.decode(raw)
        except msgspec.ValidationError as e:  # valid JSON, but not an object
            raise RunFileError(f"not a quanttui run ({e})") from e
        _check(header)
        return results_from_doc(_doc_decoder.decode(raw))
    except RunFileError as e:
        raise RunFileError(f"{path}: {e}") from e
    except msgspec.ValidationError as e:
        raise RunFileError(f"{path}: not a complete quanttui run ({e})") from e
    except msgspec.DecodeError as e:
        raise RunFileError(f"{path}: not JSON ({_malformed(raw, e)})") from e
