"""The plain-text summary a headless run prints: speed per server, paired differences, memory,
and the run's warnings."""

from __future__ import annotations

from typing import Any

from quanttui.core.hardware.reading import format_bytes
from quanttui.core.ladder.section import run_answer
from quanttui.core.models.discovery import requantized_words
from quanttui.core.reports import wording
from quanttui.core.run.records import RunResults


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def format_summary(results: RunResults) -> str:
    names = results.server_names
    lines: list[str] = []
    answer = run_answer(results)
    if answer is not None:  # the answer first, as every report gives it
        lines.append("verdict: " + answer.verdict.reason)
        lines += [f"  within noise: {x}" for x in answer.verdict.within_noise]
        lines.append("")
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
                name, (info.model_ftype or ("unreachable" if not info.reachable else "?"))
                + (f" ({requantized_words(src)})" if (src := info.requantized_from)
                   else ""),
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
                    lines.append(
                        f"{b} − {a} decode tok/s: {d.mean_diff:+.1f}, 95% CI "
                        f"{wording.interval(d)}, ratio {wording.ratio(d)}: "
                        f"{wording.verdict(d, a, b, higher='faster', lower='slower')}; "
                        f"{wording.win_rate(d, b)}")
        lines.append("")
    lines += _memory_lines(results)
    for n in results.notices:
        if n["level"] != "info":
            lines.append(f"{n['level']}: {n['message']}")
    return "\n".join(lines).rstrip() + "\n"


def _mb(v: Any) -> str:
    if isinstance(v, dict):  # {"n/a": reason}
        return f"n/a ({v['n/a']})"
    return format_bytes(v) if isinstance(v, (int, float)) else "n/a"


def _memory_lines(results: RunResults) -> list[str]:
    hw = results.hardware
    if not hw:
        return []
    out = []
    for name, s in hw.get("servers", {}).items():
        cpu = s.get("cpu_percent_mean")
        cpu_text = f", CPU {cpu:.0f}% of a core" if isinstance(cpu, (int, float)) else ""
        out.append(f"memory {name}: {_memory_text(s)}{cpu_text}")
    return [*out, ""] if out else []


def _memory_text(s: dict[str, Any]) -> str:
    """Private memory, the model file's resident pages out of its size, RSS (docs/metrics.md)."""
    if "private_peak" not in s:  # recorded before quanttui measured private memory
        return (f"RSS peak {_mb(s.get('rss_peak'))}, USS peak {_mb(s.get('uss_peak'))}, "
                f"model file {_mb(s.get('model_file'))}")
    private, pages, rss, size = (s.get(k) for k in ("private_peak", "model_pages_peak",
                                                    "rss_peak", "model_file"))
    if isinstance(private, dict) and private == pages == rss:  # one reason for all: say it once
        return f"{_mb(private)}, model file {_mb(size)}"
    if isinstance(pages, (int, float)) and isinstance(size, (int, float)):
        model = f"model pages peak {_mb(pages)} of the {_mb(size)} file"
    else:
        model = f"model pages peak {_mb(pages)}, model file {_mb(size)}"
    if s.get("shared_model_file") is True:
        with_ = ", ".join(s.get("model_shared_with") or []) or "another process"
        model += f" (shared with {with_})"
    return f"private peak {_mb(private)}, {model}, RSS peak {_mb(rss)}"
