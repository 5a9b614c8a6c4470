"""The main screen: the selected servers side by side, run status, paired figures, host memory,
and the prompt line. It draws the registry and the run state the app hands it; a typed prompt
goes up as `StartRun`, the other keys are the app's actions."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input

from quanttui.core.hardware import NA, HwSample
from quanttui.core.reports import wording
from quanttui.tui import fmt
from quanttui.tui.live import LiveRun
from quanttui.tui.messages import StartRun
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.state import RunState
from quanttui.tui.widgets.gauges import bar
from quanttui.tui.widgets.line import Line
from quanttui.tui.widgets.server_column import ServerColumn
from quanttui.tui.widgets.stream_view import NOTE

FIRST_RUN_HINT = ("r runs the prompt suite on every selected server, / types your own prompt; "
                  "outputs stream here side by side, differences highlighted.")
PAIRED_S = 5.0
SLOW_S = 1.0  # sparklines, paired line, status, memory: once a second
PROMPT_HINT = "/ to type a prompt, Enter runs it on the selected servers · r runs the suite"


class CompareScreen(Screen[None]):
    AUTO_FOCUS = ""  # no widget focused: the footer's letter keys work at once
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_prompt", "Prompt", key_display="/"),
        Binding("r", "app.run_suite", "Run"),
        Binding("x", "app.stop", "Stop"),
        Binding("s", "app.servers", "Servers"),
        Binding("t", "app.cycle_schedule", "Schedule"),
        Binding("u", "app.cycle_suite", "Suite"),
        Binding("plus,equals", "app.repetitions(1)", "Reps", key_display="+/-"),
        Binding("minus", "app.repetitions(-1)", "Fewer repetitions", show=False),
        Binding("escape", "leave_prompt", "Leave prompt"),
    ]

    def __init__(self, registry: ServerRegistry, state: RunState, *, blink: bool = True) -> None:
        super().__init__(id="compare")
        self.registry = registry
        self.state = state
        self._blink = blink
        self.columns: dict[str, ServerColumn] = {}
        self._bucket = -1
        self._slow_at = -1.0
        self._paired_at = -1.0
        self._paired_keys = 0
        self._means: dict[str, tuple[str, int]] = {}
        self._final_drawn = False
        self._headers_due = False  # a request ended: failure marks in the headers
        self.hw_pending = False  # a sample to draw with the next figures

    def compose(self) -> ComposeResult:
        # A grid, filled row by row: status; each server's figures; each server's output; the
        # bottom box (spanning). Flat on purpose: see quanttui.tui.widgets.server_column.
        yield Line(id="status")
        with Vertical(id="bottom"):
            yield Line(id="paired", grow=True)
            yield Line(id="host", grow=True)
            yield Input(id="prompt", placeholder=PROMPT_HINT, compact=True,
                        select_on_focus=False)
            yield Footer(compact=True)

    async def on_mount(self) -> None:
        self.query_one("#prompt", Input).cursor_blink = self._blink
        await self.set_columns(list(self.registry.selected))

    # ------------------------------------------------------------------ actions

    def action_focus_prompt(self) -> None:
        # After this key is handled, or the "/" itself would land in the input.
        self.call_later(self.query_one("#prompt", Input).focus)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing = self.query_one("#prompt", Input).has_focus
        if action == "leave_prompt":
            return typing
        if action == "focus_prompt":  # "/" is typed into the prompt then: hide the key
            return not typing
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self) -> None:
        self.refresh_bindings()

    def action_leave_prompt(self) -> None:
        self.set_focus(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            # Leave the input (the text stays: / then Enter runs it again) so that the run's
            # keys, x to stop first, work at once.
            self.set_focus(None)
            self.post_message(StartRun(text))

    # ------------------------------------------------------------------ columns

    async def set_columns(self, names: list[str]) -> None:
        for col in self.columns.values():
            for w in col.widgets:
                await w.remove()
        await self.query(".empty").remove()
        self.columns = {n: ServerColumn(n) for n in names}
        span = max(len(names), 1)
        self.styles.grid_size_columns = span
        for w in (self.query_one("#status"), self.query_one("#bottom")):
            w.styles.column_span = span
        bottom = self.query_one("#bottom")
        cols = list(self.columns.values())
        if cols:
            cols[-1].figures.add_class("-last")
            cols[-1].output.add_class("-last")
            await self.mount_all([c.figures for c in cols] + [c.output for c in cols],
                                 before=bottom)
        else:
            await self.mount_all([Line(classes="empty"), Line(
                "No server selected: press [b]s[/b] to choose the servers to compare.",
                classes="empty")], before=bottom)
        if self.state.live is None:
            for col in cols:
                col.output.append(FIRST_RUN_HINT, NOTE)
        self.draw_servers()
        self.draw_hardware(self.state.hw)

    def reset_columns(self) -> None:
        for col in self.columns.values():
            col.reset()
        self._bucket = -1
        self._slow_at = -1.0
        self._paired_at = -1.0
        self._paired_keys = 0
        self._means.clear()
        self._final_drawn = False
        self._headers_due = False
        self.query_one("#paired", Line).set("")

    # ------------------------------------------------------------------ drawing

    def draw_servers(self) -> None:
        live = self.state.live
        for name, col in self.columns.items():
            entry = self.registry.entries.get(name)
            if entry is None:
                continue
            state: list[tuple[str, str | None]] = []
            if live is not None and name in live.by_server:
                srv = live.by_server[name]
                if srv.down:
                    state = [("down", "bad")]
                elif srv.failed:
                    state = [(f"✗ {srv.failed} failed", "bad")]
            col.show_entry(entry, state)
        self.draw_status()

    def draw_status(self) -> None:
        state = self.state
        live, opts = state.live, state.options
        if state.running and live is not None:
            p = live.progress
            if p is None or not live.started:
                left = "[$accent]▶[/] starting: probing servers, warm-up …"
            else:
                filled, empty = bar(p.done / p.total if p.total else 1.0, 10)
                eta = f" {fmt.hms(p.eta_s)} left" if p.eta_s is not None else ""
                fails = f" [$error]✗{p.failed}[/]" if p.failed else ""
                left = (f"[$accent]▶[/] {p.done}/{p.total} [$accent]{filled}[/]"
                        f"[$text-muted]{empty}[/]{eta}{fails}")
        elif live is not None and live.finished:
            p = live.progress
            done = f"{p.done}/{p.total}" if p is not None else "0"
            took = f" in {fmt.hms(p.elapsed_s)}" if p is not None else ""
            if live.results.interrupted:
                left = f"[$warning]■[/] stopped at {done}"
            else:
                fails = f", [$error]{p.failed} failed[/]" if p is not None and p.failed else ""
                left = f"[$success]✓[/] done {done}{took}{fails}"
        else:
            left = "[$success]●[/] ready"
        right = (f"[@click=app.cycle_schedule]{opts.schedule}[/] │ "
                 f"[@click=app.cycle_suite]{state.suite_label()}[/] │ "
                 f"[@click=app.repetitions(1)]×{opts.repetitions}[/] │ {opts.n_predict} tok")
        warn = ""
        if state.contention:
            warn = " │ [$warning]⚠ contention[/]"
        self.query_one("#status", Line).set(f"{left} │ {right}{warn}",
                                            "\n\n".join(state.contention) or None)

    def draw_run(self, live: LiveRun, now: float) -> None:
        """One refresh tick. Outputs and each server's live figures (decode t/s, TTFT) follow
        every tick, which is when new tokens show anyway; the rest (sparklines, headers,
        paired line, status, memory) at most once a second and all in one frame: Textual
        repaints the box around all of a frame's changes, so small changes scattered over the
        screen at every tick would repaint most of it at every tick."""
        final = live.finished and not self._final_drawn
        results = live.results
        finished_any = False
        for name, col in self.columns.items():
            col.sync(live)
            srv = live.by_server.get(name)
            if srv is None or not (srv.changed or final):
                continue
            srv.changed = False
            finished_any |= srv.finished_since_flush
            cur = srv.current
            streaming = cur is not None and not cur.done
            last = srv.last_ok
            m = last.metrics if last is not None else None
            rate = cur.decode_tps() if cur is not None and streaming else None
            if rate is None and m is not None:
                rate = m.decode_tps_client
            ttft = cur.ttft_ms if cur is not None and streaming and cur.ttft_ms else None
            if ttft is None and m is not None:
                ttft = m.ttft_ms
            if srv.finished_since_flush or final or name not in self._means:
                s = results.summary(name, "decode_tps_client")  # only when one ended
                self._means[name] = (fmt.mean(s), s.n if s else 0)
            col.show_stats(rate, *self._means[name], ttft, m.prompt_tps_server if m else None)
            col.mark_failed(srv.failed, srv.down, srv.last_error)
            srv.finished_since_flush = False
        self._headers_due |= finished_any
        if not final and now - self._slow_at < SLOW_S:
            return
        self._slow_at = now
        self._final_drawn = live.finished
        bucket_moved = live.now_bucket != self._bucket
        self._bucket = live.now_bucket
        if bucket_moved or final:
            # once finished, the last (partial) second is complete too
            end = live.now_bucket + (1 if live.finished else 0)
            for name, col in self.columns.items():
                srv = live.by_server.get(name)
                if srv is not None:
                    col.show_rate(srv.rate.window(end, col.figures.size.width or 40))
        if self._headers_due or final:
            self._headers_due = False
            self.draw_servers()  # failure marks in the headers
        # Only when a prompt has finished on every server, at most every PAIRED_S seconds while
        # running (the line stays put while it is read), and once at the end.
        if final or (live.completed_keys != self._paired_keys
                     and now - self._paired_at >= PAIRED_S):
            self._paired_keys, self._paired_at = live.completed_keys, now
            self.draw_paired(live)
        self.draw_status()
        if self.hw_pending:
            self.draw_hardware(self.state.hw)

    def draw_paired(self, live: LiveRun) -> None:
        """B − A per prompt (paired t interval), identical outputs; throttled with the status."""
        results = live.results
        a = live.reference
        # One line per pair when wide, two when narrow: a fixed height whatever the numbers
        # (a line that wraps or not as its figures change would re-lay out the screen).
        sep = " · " if self.size.width >= 120 else "\n"
        lines = []
        for b in live.servers[1:]:
            same, compared = live.identical_outputs(b)
            ident = f"same output {same}/{compared}"
            d = results.paired("decode_tps_client", a, b)
            head = f"[b]{fmt.escape(b)}[/b]−{fmt.escape(a)}"
            if d is None or d.n < 2:
                have = 0 if d is None else d.n
                lines.append(f"{head} decode Δ after 2 prompts on both ({have} so far)"
                             f"{sep}{ident}")
                continue
            t = mean_difference(results.per_prompt(a, "ttft_ms"),
                                results.per_prompt(b, "ttft_ms"))
            ttft = f"TTFT {round(t):+d} ms · " if t is not None else ""  # no "-0"
            say = ("[$text-muted]no measurable difference[/]" if not d.measurable
                   else f"[b]{'faster' if d.mean_diff > 0 else 'slower'}[/b]")
            lines.append(f"{head} decode {d.mean_diff:+.1f} t/s "
                         f"{fmt.escape(wording.interval(d))} ×{d.ratio or 0:.2f}: "
                         f"{say} (n {d.n}, wins {d.win_rate_b:.0%} of prompts)"
                         f"{sep}{ttft}{ident}")
        self.query_one("#paired", Line).set("\n".join(lines))

    def draw_hardware(self, sample: HwSample | None) -> None:
        off = self.state.hw_off_reason
        self.hw_pending = False
        for col in self.columns.values():
            col.show_memory(sample, off)
        host = self.query_one("#host", Line)
        if sample is None:
            reason = off or "waiting for the first sample"
            host.set(f"host [$text-muted]n/a ({fmt.escape(reason)})[/]")
            return
        h = sample.host
        parts = []
        tips = []
        if isinstance(h.ram_used_bytes, NA) or isinstance(h.ram_total_bytes, NA):
            na = h.ram_used_bytes if isinstance(h.ram_used_bytes, NA) else h.ram_total_bytes
            assert isinstance(na, NA)
            parts.append(f"RAM [$text-muted]n/a ({fmt.escape(na.reason)})[/]")
        else:
            filled, empty = bar(h.ram_used_bytes / h.ram_total_bytes, 8)
            parts.append(f"RAM [$accent]{filled}[/][$text-muted]{empty}[/] "
                         f"{h.ram_used_bytes / 1e9:.1f}/{fmt.size(h.ram_total_bytes)}")
        if not isinstance(h.cpu_percent, NA):
            parts.append(f"CPU {h.cpu_percent:.0f}%")
        if not isinstance(h.swap_used_bytes, NA) and h.swap_used_bytes:
            parts.append(f"swap {fmt.size(h.swap_used_bytes)}")
        gpus = sample.gpus
        lines = []
        if isinstance(gpus, NA):
            parts.append(f"GPU [$text-muted]n/a ({fmt.escape(gpus.reason)})[/]")
            tips.append(f"GPU: {gpus.reason}")
        elif not gpus:
            parts.append("GPU [$text-muted]n/a (no GPU found)[/]")
        else:
            for g in gpus:
                name = "" if isinstance(g.name, NA) else f" {fmt.escape(g.name)}"
                util = "" if isinstance(g.util_percent, NA) else f" {g.util_percent:.0f}%"
                used, total = g.memory_used_bytes, g.memory_total_bytes
                if isinstance(used, NA) or isinstance(total, NA):
                    mem = "VRAM [$text-muted]n/a[/]"
                else:
                    filled, empty = bar(used / total if total else 0.0, 8)
                    mem = (f"VRAM [$accent]{filled}[/][$text-muted]{empty}[/] "
                           f"{used / 1e9:.1f}/{fmt.size(total)}")
                lines.append(f"GPU{g.index}{name}{util} {mem}")
        text = "host " + " · ".join(parts)
        if lines:
            text += ("\n" + "\n".join(lines)) if len(lines) > 1 else " · " + lines[0]
        host.set(text, "\n".join(tips) or None)


def mean_difference(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Mean of B − A over the prompts both have (the paired mean, without its interval)."""
    diffs = [b[k] - a[k] for k in a if k in b]
    return sum(diffs) / len(diffs) if diffs else None
