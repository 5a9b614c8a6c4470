"""One compared server: what it serves, its live speed, its memory, and its output.

A column is two widgets in the compare screen's grid, the figures (one widget drawing header,
sparkline, speed and memory lines) and the output, plus `ServerColumn`, which keeps them up to
date. Two widgets and no containers on purpose: Textual redraws every widget whose container
overlaps a change, at full height, so each container level or extra line widget costs at every
refresh tick while text streams. Nothing is redrawn when its text didn't change.
"""

from __future__ import annotations

from pathlib import Path

from textual.widget import Widget

from quanttui.core.hardware import NA, HwSample, ProcessSample, Reading, format_bytes
from quanttui.core.models.discovery import (
    REQUANTIZED_MARK,
    requantized_legend,
    requantized_words,
)
from quanttui.tui import fmt
from quanttui.tui.live import Key, LiveRun, Stream
from quanttui.tui.registry import ServerEntry
from quanttui.tui.widgets.figures import Run, Runs, ServerFigures
from quanttui.tui.widgets.gauges import bar
from quanttui.tui.widgets.stream_view import DIFF, FIRST, NORMAL, NOTE, StreamView

HEALTH_RUN: dict[str, Run] = {
    "ok": ("●", "ok"), "checking": ("○", "muted"), "unknown": ("○", "muted"),
    "loading": ("◐", "warn"), "down": ("✗", "bad"),
}
HEALTH_MARK = {
    "ok": "[$success]●[/]",
    "checking": "[$text-muted]○[/]",
    "unknown": "[$text-muted]○[/]",
    "loading": "[$warning]◐[/]",
    "down": "[$error]✗[/]",
}


class ServerColumn:
    """Keeps one server's figures and output up to date from the live run."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.figures = ServerFigures()
        self.output = StreamView(classes="col-out")
        self._stream: Stream | None = None
        self._key: Key | None = None
        self._shown = 0
        self._div: int | None = None
        self._final: tuple[int, bool] | None = None
        self._ended = False  # the run had ended when the "waiting" note was written

    @property
    def widgets(self) -> tuple[Widget, Widget]:
        return self.figures, self.output

    def has_class(self, name: str) -> bool:
        return self.output.has_class(name)

    # ------------------------------------------------------------------ header, stats, memory

    def show_entry(self, entry: ServerEntry, state: Runs | None = None, *,
                   label: str | None = None, reference: bool = False) -> None:
        """Health, the server's short label (A, the reference, marked "ref"), quant and size;
        the full name, URL and model file in the tooltip."""
        info = entry.info
        label = label or entry.name
        mark = HEALTH_RUN[entry.health]
        size = fmt.size(info.model_size) if info.model_size else None
        ftype = info.model_ftype
        if ftype and ftype.replace(" - ", "_").replace("Medium", "M").replace(
                "Small", "S").replace("Large", "L").upper() == label.upper():
            ftype = None  # "Q4_K - Medium" says no more than the label Q4_K_M
        ref: Runs = [(" ref", "muted")] if reference else []
        long: Runs = [mark, (" ", None), (label, "b"), *ref]
        short: Runs = [mark, (" ", None), (label, "b"), *ref]
        for part in (size, ftype):
            if part:
                long.append((f" · {part}", None))
        if size:
            short.append((f" · {size}", None))
        tiny: Runs = [mark, (" ", None), (label, "b"), *ref]
        if src := info.requantized_from:  # the words where they fit, the mark (tip) where not
            long.append((f" · {requantized_words(src)}", "muted"))
            short.insert(3 + len(ref), (f" {REQUANTIZED_MARK}", "muted"))
            tiny.append((f" {REQUANTIZED_MARK}", "muted"))
        if state:
            long += [(" · ", None), *state]
            short += [(" ", None), *state]
            tiny += [(" ", None), *state]
        tip = [f"{entry.name}: {entry.spec.url}"]
        if info.model_path:
            tip.append(f"model: {Path(info.model_path).name}")
        if src:
            tip.append(requantized_legend([src]))
        if entry.error:
            tip.append(f"error: {entry.error}")
        self.figures.put_head((long, short, tiny), "\n".join(tip))

    def show_stats(self, current: float | None, mean: str, n: int, ttft: float | None,
                   prompt_tps: float | None) -> None:
        self.figures.put_stats(
            ([("decode ", None), (fmt.num(current), "b"), (f" t/s  mean {mean} ", None),
              (f"(n {n})", "muted")],
             [(fmt.num(current), "b"), (f" t/s μ{mean}", None), (f" n{n}", "muted")],
             [(fmt.num(current), "b"), (" t/s", None)]),
            ([(f"TTFT {fmt.ms(ttft)}  prompt {fmt.rate(prompt_tps)} t/s", None)],
             [(f"TTFT {fmt.ms(ttft)} pp {fmt.rate(prompt_tps)}", None)],
             [(f"TTFT {fmt.ms(ttft)}", None)]))

    def show_rate(self, values: list[float], top: float | None = None, label: str = "") -> None:
        self.figures.put_rate(values, top, label)

    def show_memory(self, sample: HwSample | None, off_reason: str | None) -> None:
        if sample is None:
            reason = off_reason or "waiting for the first sample"
            self.figures.put_memory([("RAM ", None), (f"n/a ({reason})", "muted")], reason)
            return
        proc = sample.process(self.server)
        if proc is None:
            self.figures.put_memory([("RAM ", None), ("n/a (not watched)", "muted")])
            return
        gpus = sample.gpus
        if isinstance(gpus, NA) or not gpus:
            # No GPU here: the host line says so once; no VRAM figure per server.
            vram: Runs = []
        else:
            total = sum(g.memory_total_bytes for g in gpus
                        if not isinstance(g.memory_total_bytes, NA))
            vram = [("  ", None), *_gauge("VRAM", proc.vram_bytes, total)]
        ram = _ram(proc)
        forms: tuple[Runs, ...] = ([*ram, *vram], ram) if vram else (ram,)
        forms = (*forms, *_ram_shorter(proc))
        cpu = _cpu(proc)
        if cpu:  # first on the line, in every form; the narrowest columns keep memory alone
            forms = (*([*cpu, ("  " if i < 2 else " ", None), *f]
                       for i, f in enumerate(forms)), forms[-1])
        self.figures.put_memory(forms, _memory_tip(proc))

    def mark_failed(self, failed: int, down: str | None, last_error: str | None) -> None:
        self.output.set_class(bool(failed or down), "-failed")
        tip = down or last_error
        if tip:
            self.output.tooltip = tip

    # ------------------------------------------------------------------ output

    def _not_run(self, prompt: str, live: LiveRun) -> str:
        """Why the column has no output for the prompt: waiting for it while the run goes on,
        not after the run ended (stopped with x, or over without it)."""
        if not live.finished:
            return f"waiting for {self.server} to run {prompt} …"
        if live.results.interrupted:
            return f"stopped before {self.server} ran {prompt}"
        return f"{self.server} did not run {prompt}"

    def reset(self) -> None:
        self._stream, self._key, self._shown, self._div, self._final = None, None, 0, None, None
        self._ended = False
        self.output.clear()
        self.output.border_title = None
        self.output.set_class(False, "-failed")
        self.show_rate([])

    def sync(self, live: LiveRun) -> None:
        """Show the focused key's output: append what arrived, restyle, finish when done."""
        key = live.focus
        stream = live.stream_for(self.server, key) if key is not None else None
        view = self.output
        ended = live.finished
        if key != self._key or stream is not self._stream or (
                stream is None and ended != self._ended):
            self._key, self._stream, self._ended = key, stream, ended
            self._shown, self._div, self._final = 0, None, None
            view.clear()
            if stream is None and key is not None:
                left_out = live.left_out(self.server)
                view.append(f"not in this run: {left_out}" if left_out is not None
                            else self._not_run(key[0], live), NOTE)
        if stream is None or key is None:
            self._title(key, None, live)
            return
        if stream.done:
            exact = live.exact_diff(key, self.server)
            state = (stream.request_id, exact is not None)
            if self._final != state:
                if self._div is None:
                    self._div = live.live_divergence(key, self.server)
                self._render_final(stream, live)
                self._final = state
            self._title(key, stream, live)
            return
        new = stream.chunks[self._shown:]
        if new:
            view.extend((c.text, self._chunk_style(c.c_start, c.c_end)) for c in new)
            self._shown = len(stream.chunks)
        if self._div is None:
            self._div = live.live_divergence(key, self.server)
            if self._div is not None:
                div = self._div
                first = next((i for i, c in enumerate(stream.chunks[:self._shown])
                              if c.c_end > div), None)
                if first is not None:
                    view.restyle(first, first, FIRST)
                    view.restyle(first + 1, self._shown - 1, DIFF)
        self._title(key, stream, live)

    def _chunk_style(self, c_start: int, c_end: int) -> int:
        div = self._div
        if div is None or c_end <= div:
            return NORMAL
        return FIRST if c_start <= div else DIFF

    def _render_final(self, stream: Stream, live: LiveRun) -> None:
        rec = stream.record
        assert rec is not None and self._key is not None
        pieces, exact = live.final_view(self._key, self.server)
        if exact is not None:
            mask = exact.equal_mask("a" if self.server == live.reference else "b")
            styles = [NORMAL if m else DIFF for m in mask]
            if exact.first_divergence is not None and exact.first_divergence < len(styles):
                styles[exact.first_divergence] = FIRST
        else:  # no finished counterpart: keep the live (character) divergence
            styles, pos = [], 0
            for t in pieces:
                styles.append(self._chunk_style(pos, pos + len(t)))
                pos += len(t)
        out = list(zip(pieces, styles, strict=True))
        if rec.error is not None:
            out.append((f"\n✗ {rec.error}", NOTE))
        self.output.set_pieces(out)

    def _title(self, key: Key | None, stream: Stream | None, live: LiveRun) -> None:
        """Prompt, divergence, tokens, stop reason (most telling first: a narrow column cuts
        the end) on the output's top border."""
        parts: list[str] = []
        if key is not None:
            prompt, rep, warm = key
            parts.append(f"{prompt} #{rep + 1}" + (" warm-up" if warm else ""))
        if stream is not None:
            rec = stream.record
            first = live.first_difference(stream.key, self.server) if rec is not None else None
            if first is not None:
                fd, unit = first
                parts.append("identical" if fd is None else f"≠ {unit} {fd}")
            elif self._div is not None:
                parts.append("diverged")
            if rec is None:  # no running count here: a new title repaints the whole pane
                parts.append("streaming …")
            else:
                n = rec.metrics.n_out if rec.metrics is not None else stream.n_tokens
                stop = rec.result.stop_reason if rec.result is not None else None
                parts += [f"{n} tok", rec.error_kind or stop or "done"]
        title = " · ".join(parts) or None
        if self.output.border_title != title:
            self.output.border_title = title


def _ram(proc: ProcessSample) -> Runs:
    """`private 84 MB  model 285/292 MB ███▉  RSS 386 MB`: private memory, the model file's
    resident pages against its size (a bar), RSS; "shared" when another process maps the file."""
    model = proc.model
    if isinstance(model, NA) and model == proc.private_bytes:  # one reason: say it once
        if model == proc.rss_bytes:
            return [("RAM ", None), (str(model), "muted")]
        # another user's process, or a run stored before these were read: RSS first
        return [*_figure("RSS", proc.rss_bytes), ("  private, model ", None),
                (str(model), "muted")]
    runs = _figure("private", proc.private_bytes)
    runs.append(("  ", None))
    if isinstance(model, NA):
        runs += [("model ", None), (str(model), "muted")]
    elif isinstance(model.file_bytes, NA) or model.file_bytes <= 0:
        runs.append((f"model {format_bytes(model.resident_bytes)}", None))
    else:
        share = model.resident_bytes / model.file_bytes
        filled, empty = bar(share, 4)
        runs += [(f"model {_pair(model.resident_bytes, model.file_bytes)} ", None),
                 (filled, "accent"), (empty, "muted")]
    if not isinstance(model, NA) and (model.shared or proc.model_shared_with):
        runs.append((" shared", "muted"))
    return [*runs, ("  ", None), *_figure("RSS", proc.rss_bytes)]


def _ram_shorter(proc: ProcessSample) -> tuple[Runs, ...]:
    """For narrow columns: `private 84 MB  model 285/292 MB ███▉` (no RSS), then
    `priv 84 MB · model 285/292 MB` (the two figures that differ between quants), then the
    model pages alone (three or four columns at 80)."""
    model = proc.model
    if isinstance(model, NA) and isinstance(proc.private_bytes, NA):
        return (_figure("RSS", proc.rss_bytes),)
    ram = _ram(proc)
    rss = next((i for i, (t, _) in enumerate(ram) if t.startswith("RSS")), len(ram))
    medium = ram[:max(rss - 1, 0)]  # without "  " and RSS
    runs = _figure("priv", proc.private_bytes)
    if isinstance(model, NA):  # the reason is in the tooltip
        return [(t, s) if s != "muted" else ("n/a", s) for t, s in ram], runs
    pages = format_bytes(model.resident_bytes)
    if isinstance(model.file_bytes, NA) or model.file_bytes <= 0:
        return medium, [*runs, (f" · model {pages}", None)], [(f"model {pages}", None)]
    return (medium,
            [*runs, (f" · model {_pair(model.resident_bytes, model.file_bytes)}", None)],
            [(f"model {_pair(model.resident_bytes, model.file_bytes)}", None)],
            [(f"model {pages}", None)])


def _cpu(proc: ProcessSample) -> Runs:
    """`CPU 98%`: the server process's CPU since the previous sample (100% = one core); none
    when not sampled (a remote server, a stored run: the tooltip says why)."""
    if isinstance(proc.cpu_percent, NA):
        return []
    return [(f"CPU {proc.cpu_percent:.0f}%", None)]


def _figure(label: str, value: Reading[int]) -> Runs:
    if isinstance(value, NA):
        return [(f"{label} ", None), (str(value), "muted")]
    return [(f"{label} {format_bytes(value)}", None)]


def _pair(part: int, whole: int) -> str:
    """`285/292 MB`, or `950 MB/1.2 GB` across units."""
    a, b = format_bytes(part), format_bytes(whole)
    return f"{a.split()[0]}/{b}" if a.split()[1] == b.split()[1] else f"{a}/{b}"


def _memory_tip(proc: ProcessSample) -> str:
    """What each memory figure is (docs/metrics.md), and why any is n/a. It changes only when
    a reason or the sharing does: a new tooltip every sample costs."""
    tips = ["CPU: the server process's CPU since the previous sample, 100% = one core",
            "private: anonymous memory (KV cache, compute buffers, repacked weights)",
            "model: the model file's pages in RAM, mapped by this server / the file's size",
            "RSS: all resident pages, libraries included"]
    model = proc.model
    if not isinstance(model, NA) and (model.shared or proc.model_shared_with):
        who = ", ".join(proc.model_shared_with) or "another process"
        tips.append(f"shared: {who} maps the same model file; its pages sit in RAM once but "
                    "count in each one's model pages and RSS")
    tips += [f"{k}: {v.reason}" for k, v in (("CPU", proc.cpu_percent),
                                             ("private", proc.private_bytes), ("model", model),
                                             ("RSS", proc.rss_bytes), ("VRAM", proc.vram_bytes))
             if isinstance(v, NA)]
    return "\n".join(tips)


def _gauge(label: str, value: Reading[int], total: Reading[int], width: int = 4) -> Runs:
    """`VRAM 402 MB ▎─── 2%`: the bar and share are of the machine's GPU memory."""
    if isinstance(value, NA):
        return [(f"{label} ", None), (f"n/a ({value.reason})", "muted")]
    if isinstance(total, NA) or total <= 0:
        return [(f"{label} {format_bytes(value)}", None)]
    filled, empty = bar(value / total, width)
    return [(f"{label} {format_bytes(value)} ", None), (filled, "accent"), (empty, "muted"),
            (f" {value / total:.0%}", None)]
