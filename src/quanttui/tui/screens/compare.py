"""The main screen: the selected servers side by side, run status, paired figures, host memory,
the last notice, and the prompt line. It draws the registry and the run state the app hands it;
a typed prompt goes up as `StartRun`, a prompt to show as `ShowPrompt`; the other keys are the
app's actions.

Servers are named by their short label (`quanttui.tui.labels`: the quant, where the names carry
one); the full name is in each column's tooltip. The outputs of the prompt shown scroll together;
`d` brings the first divergence into view; `[` and `]` step through the run's prompts.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input

from quanttui.core.hardware import NA, HwSample, ProcessSample
from quanttui.core.reports import wording
from quanttui.tui import fmt
from quanttui.tui.labels import short_labels
from quanttui.tui.live import LiveRun
from quanttui.tui.messages import ShowPrompt, StartRun
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.state import RunState
from quanttui.tui.widgets.gauges import bar, fit_series, rate_label
from quanttui.tui.widgets.line import FitLine, Line
from quanttui.tui.widgets.memory_stack import bar_width, stack_of
from quanttui.tui.widgets.server_column import ServerColumn
from quanttui.tui.widgets.stream_view import FIRST, NOTE, StreamView

FIRST_RUN_HINT = ("r runs the prompt suite on every selected server, / types your own prompt; "
                  "outputs stream here side by side, differences highlighted.")
PAIRED_S = 5.0
SLOW_S = 1.0  # sparklines, paired line, status, memory: once a second
PROMPT_HINT = "/ to type a prompt, Enter runs it on the selected servers · r runs the suite"
LEVEL_MARK = {"info": "[$text-muted]·[/]", "warning": "[$warning]⚠[/]", "error": "[$error]✗[/]"}


class _Bottom(Vertical):
    """The bottom box; its lines cover it whole, so it draws as blank (no styled lines of its
    own to render at every frame that reaches down here)."""

    BLANK = True


class CompareScreen(Screen[None]):
    AUTO_FOCUS = ""  # no widget focused: the footer's letter keys work at once
    # The grid's widgets cover the screen: its own lines are drawn blank (at every frame it
    # would otherwise render its background for every line of the frame's box).
    BLANK = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_prompt", "Type a prompt", key_display="/", show=False),
        Binding("r", "app.run_suite", "Run"),
        Binding("x", "app.stop", "Stop"),
        Binding("v", "app.results", "Results", tooltip="The comparison table and the verdict"),
        Binding("p", "app.prompts", "Prompts", tooltip="Every prompt of the run, its figures"),
        Binding("k", "app.quality", "Quality",
                tooltip="Same-top-1, KLD and task accuracy against the reference"),
        Binding("d", "first_divergence", "First difference", show=False,
                tooltip="Scroll the outputs to where they first differ"),
        Binding("left_square_bracket", "step(-1)", "Previous prompt", show=False,
                key_display="["),
        Binding("right_square_bracket", "step(1)", "Next prompt", show=False, key_display="]"),
        Binding("s", "app.servers", "Servers"),
        Binding("h", "app.history", "History", show=False,
                tooltip="The stored runs: open one, compare two"),
        Binding("n", "app.notices", "Notices", show=False, tooltip="Everything said so far"),
        Binding("t", "app.cycle_schedule", "Schedule", show=False,
                tooltip="simultaneous, alternating, sequential"),
        Binding("u", "app.cycle_suite", "Suite", show=False, tooltip="The prompts r runs"),
        Binding("plus,equals", "app.repetitions(1)", "More repetitions", show=False,
                key_display="+"),
        Binding("minus", "app.repetitions(-1)", "Fewer repetitions", show=False),
        Binding("escape", "leave", "Back", show=False,
                tooltip="Leave the prompt line, or follow the run again"),
    ]

    def __init__(self, registry: ServerRegistry, state: RunState, *, blink: bool = True) -> None:
        super().__init__(id="compare")
        self.registry = registry
        self.state = state
        self._blink = blink
        self.columns: dict[str, ServerColumn] = {}
        self.labels: dict[str, str] = {}
        self._bucket = -1
        self._slow_at = -1.0
        self._paired_at = -1.0
        self._paired_keys = 0
        self._means: dict[str, tuple[str, int]] = {}
        self._final_drawn = False
        self._headers_due = False  # a request ended: failure marks in the headers
        self.hw_pending = False  # a sample to draw with the next figures
        # A frame drew the outputs but not the rest (status, figures): the next frame after
        # SLOW_S must draw it even if no event comes meanwhile.
        self.slow_owed = False
        self._prompts_focus: tuple[str, int, bool] | None = None
        self._stacks_key: tuple[object, ...] = ()  # what the memory bars were drawn from

    def compose(self) -> ComposeResult:
        # A grid, filled row by row: status; each server's figures; each server's output; the
        # bottom box (spanning). Flat on purpose: see quanttui.tui.widgets.server_column.
        yield Line(id="status")
        with _Bottom(id="bottom"):
            yield Line(id="run-prompts")  # tall screens: the run's prompts so far
            yield FitLine(id="paired")
            yield Line(id="host", grow=True)
            yield Line(id="log")
            yield Input(id="prompt", placeholder=PROMPT_HINT, compact=True,
                        select_on_focus=False)
            yield Footer(compact=True)

    async def on_mount(self) -> None:
        self.query_one("#prompt", Input).cursor_blink = self._blink
        await self.set_columns(list(self.registry.selected))
        self.draw_log()

    # ------------------------------------------------------------------ actions

    def action_focus_prompt(self) -> None:
        # After this key is handled, or the "/" itself would land in the input.
        self.call_later(self.query_one("#prompt", Input).focus)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing = self.query_one("#prompt", Input).has_focus
        if action == "focus_prompt":  # "/" is typed into the prompt then: hide the key
            return not typing
        if action in ("step", "first_divergence"):
            return not typing and self.state.live is not None
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self) -> None:
        self.refresh_bindings()

    def action_leave(self) -> None:
        if self.query_one("#prompt", Input).has_focus:
            self.set_focus(None)
        elif self.state.live is not None and self.state.live.pinned:
            self.post_message(ShowPrompt())  # follow the run again

    def action_step(self, step: int) -> None:
        self.post_message(ShowPrompt(step=step))

    def action_first_divergence(self) -> None:
        """Scroll every output to the line where the outputs first differ (the same line in
        each: the text before it is the same)."""
        found = []
        for col in self.columns.values():
            piece = col.output.first_of_style(FIRST)
            if piece is not None:
                found.append(col.output.line_of_piece(piece))
        if not found:
            self.app.notify("The outputs shown do not differ (yet).", timeout=3)
            return
        top = max(min(found) - 2, 0)
        for col in self.columns.values():
            col.output.scroll_quietly(top)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            # Leave the input (the text stays: / then Enter runs it again) so that the run's
            # keys, x to stop first, work at once.
            self.set_focus(None)
            self.post_message(StartRun(text))

    def _sync_scroll(self, view: StreamView, top: int) -> None:
        """The user scrolled one output: the others follow to the same line."""
        for col in self.columns.values():
            if col.output is not view:
                col.output.scroll_quietly(top)

    # ------------------------------------------------------------------ columns

    async def set_columns(self, names: list[str]) -> None:
        for col in self.columns.values():
            for w in col.widgets:
                await w.remove()
        await self.query(".empty").remove()
        self.columns = {n: ServerColumn(n) for n in names}
        self.labels = short_labels(names)
        span = max(len(names), 1)
        self.styles.grid_size_columns = span
        for w in (self.query_one("#status"), self.query_one("#bottom")):
            w.styles.column_span = span
        bottom = self.query_one("#bottom")
        cols = list(self.columns.values())
        for col in cols:
            col.output.on_user_scroll = self._sync_scroll
        if self.state.live is not None:  # room for the pairs' figures (none before a run)
            self.query_one("#paired", FitLine).keep_room(max(len(names) - 1, 0))
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
        paired = self.query_one("#paired", FitLine)
        paired.set([])
        paired.keep_room(max(len(self.columns) - 1, 0))  # one layout now, none while it runs

    def redraw(self) -> None:
        """Everything again, from the run shown (a prompt picked, back on this screen)."""
        self._final_drawn = False
        self._bucket = -1
        self._slow_at = -1.0
        self._paired_at = -1.0
        self.draw_servers()
        live = self.state.live
        if live is not None:
            for srv in live.by_server.values():
                srv.changed = True
            self.draw_run(live, 0.0)
            self.draw_prompts(live)

    def on_resize(self) -> None:
        live = self.state.live
        if live is not None:
            self.call_after_refresh(self._draw_rates, live)
            self.call_after_refresh(self.draw_prompts, live)

    # ------------------------------------------------------------------ drawing

    def draw_servers(self) -> None:
        live = self.state.live
        ref = next(iter(self.columns), None)
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
            elif live is not None and live.left_out(name) is not None:
                state = [("not in this run", "muted")]
            col.show_entry(entry, state, label=self.labels.get(name), reference=name == ref)
        self.draw_status()

    def draw_status(self) -> None:
        state = self.state
        live, opts = state.live, state.options
        q = state.quality
        ladder = state.ladder
        if ladder is not None:
            # the share and the time left first: at 80 columns the step is what gets cut
            filled, empty = bar(ladder.fraction or 0.0, 10)
            share = "" if ladder.fraction is None else f" {ladder.fraction:.0%}"
            when = f" {ladder.left}" if ladder.left else ""
            what = "stopping …" if ladder.stopping else "x stops"
            left = (f"[$accent]◆[/] ladder{share} [$accent]{filled}[/][$text-muted]{empty}[/]"
                    f"{when} · {what} · {fmt.escape(ladder.step)}")
        elif q is not None:
            frac = q.done / q.total if q.total else 0.0
            filled, empty = bar(frac, 10)
            what = "stopping …" if q.stopping else "x stops"
            left = (f"[$accent]◆[/] quality: {q.words()} "
                    f"[$accent]{filled}[/][$text-muted]{empty}[/] · {what}")
        elif state.running and live is None:
            left = "[$accent]▶[/] starting: checking the servers …"
        elif state.running and live is not None:
            p = live.progress
            shown = self._shown_prompt(live)
            if not live.started:
                left = "[$accent]▶[/] starting: checking the servers …"
            elif live.focus is not None and live.focus[2] and not live.pinned:
                left = f"[$accent]▶[/] warm-up ({fmt.escape(live.focus[0])}) …"
            else:
                done, total = (p.done, p.total) if p is not None else (0, live.total or 0)
                filled, empty = bar(done / total if total else 0.0, 10)
                eta = f" {fmt.hms(p.eta_s)} left" if p is not None and p.eta_s is not None \
                    else ""
                fails = f" [$error]✗{p.failed}[/]" if p is not None and p.failed else ""
                left = (f"[$accent]▶[/] {done}/{total} [$accent]{filled}[/]"
                        f"[$text-muted]{empty}[/]{eta}{fails} · {shown}")
        elif live is not None and live.finished:
            p = live.progress
            count = f"{p.done}/{p.total}" if p is not None else "0"
            took = f" in {fmt.hms(p.elapsed_s)}" if p is not None else ""
            if live.results.interrupted:
                left = f"[$warning]■[/] stopped at {count}"
            else:
                fails = f", [$error]{p.failed} failed[/]" if p is not None and p.failed else ""
                left = f"[$success]✓[/] done {count}{took}{fails}"
            if live.pinned:
                left += f" · {self._shown_prompt(live)}"
        else:
            left = self._readiness()
        right = (f"[@click=app.cycle_schedule]{opts.schedule}[/] │ "
                 f"[@click=app.cycle_suite]{state.suite_label()}[/] │ "
                 f"[@click=app.repetitions(1)]×{opts.repetitions}[/] │ {opts.n_predict} tok")
        warn = ""
        if state.contention:
            warn = " │ [$warning]⚠ contention[/]"
        self.query_one("#status", Line).set(f"{left} │ {right}{warn}",
                                            "\n\n".join(state.contention) or None)

    def _readiness(self) -> str:
        """Idle: what the servers' last probes found, not "ready" whatever they said."""
        entries = list(self.registry.entries.values())
        if not entries:
            return "[$warning]●[/] no servers: s adds one"
        if any(e.health == "checking" for e in entries):
            return "[$text-muted]●[/] checking the servers …"
        if all(e.health == "unknown" for e in entries):
            return "[$text-muted]●[/] servers not checked yet"
        entries = [e for e in entries if e.health != "unknown"]
        up = sum(e.health in ("ok", "loading") for e in entries)
        if up == 0:
            return ("[$error]●[/] no server reachable" if len(entries) == 1
                    else f"[$error]●[/] none of {len(entries)} servers reachable")
        if up < len(entries):
            return f"[$warning]●[/] {up} of {len(entries)} servers reachable"
        return "[$success]●[/] ready"

    def _shown_prompt(self, live: LiveRun) -> str:
        """The prompt the columns show: "quick-2 #1", and its place when picked by the user."""
        key = live.focus
        if key is None:
            return ""
        name = fmt.escape(key[0]) + (f" #{key[1] + 1}" if live.results.repetitions > 1 else "")
        if key[2]:
            name += " warm-up"
        if live.pinned:
            keys = live.keys()
            at = f" {keys.index(key) + 1}/{len(keys)}" if key in keys else ""
            follow = " · esc follows the run" if self.state.running else ""
            return f"[b]{name}[/b]{at} [$text-muted]\\[ ]{follow}[/]"
        return name

    def draw_run(self, live: LiveRun, now: float) -> None:
        """One refresh tick. Outputs follow every tick, which is when new tokens show anyway;
        the rest (each server's speed, sparklines, headers, paired line, status, memory) at most
        once a second and all in one frame: Textual repaints the box around all of a frame's
        changes, so small changes scattered over the screen at every tick would repaint most of
        it at every tick."""
        final = live.finished and not self._final_drawn
        slow = final or now - self._slow_at >= SLOW_S
        results = live.results
        finished_any = False
        for name, col in self.columns.items():
            col.sync(live)
            srv = live.by_server.get(name)
            if srv is None or not slow or not (srv.changed or final):
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
        self.slow_owed = not slow
        if not slow:
            return
        self._slow_at = now
        self._final_drawn = live.finished
        bucket_moved = live.now_bucket != self._bucket
        self._bucket = live.now_bucket
        if bucket_moved or final:
            self._draw_rates(live)
        if self._headers_due or final:
            self._headers_due = False
            self.draw_servers()  # failure marks in the headers
        # Only when a prompt has finished on every server, at most every PAIRED_S seconds while
        # running (the line stays put while it is read), and once at the end.
        if final or (live.completed_keys != self._paired_keys
                     and now - self._paired_at >= PAIRED_S):
            self._paired_keys, self._paired_at = live.completed_keys, now
            self.draw_paired(live)
            self.draw_prompts(live)
        elif live.focus != self._prompts_focus:  # the ▶ follows the prompt shown
            self.draw_prompts(live)
        self.draw_status()
        if self.hw_pending:
            self.draw_hardware(self.state.hw)

    def _draw_rates(self, live: LiveRun) -> None:
        """Every server's tokens/s over the whole run, on one scale (the largest value any of
        them shows), named in each chart's gutter."""
        end = live.now_bucket + (1 if live.finished else 0)
        series = {n: live.by_server[n].rate.upto(end) for n in self.columns
                  if n in live.by_server}
        if not series:
            return
        # One time axis for all: the same seconds per column in every chart (the narrowest
        # chart decides). The label's width depends on the scale: first fit with room for the
        # widest label, then with the label's own width.
        width = min(self.columns[n].figures.content_region.width or 40 for n in series)
        longest = max(len(v) for v in series.values())
        first = {n: fit_series(v, max(width - 9, 1), longest) for n, v in series.items()}
        top = max((max(v, default=0.0) for v in first.values()), default=0.0)
        label = rate_label(top) if top > 0 else ""
        gutter = len(label) + 1 if label else 0
        for n, values in series.items():
            fitted = fit_series(values, max(width - gutter, 1), longest)
            self.columns[n].show_rate(fitted, top if top > 0 else None, label)

    def draw_paired(self, live: LiveRun) -> None:
        """B against A (the reference), one group of figures per pair: the paired decode
        difference with its t interval, identical outputs, memory, TTFT, wins. A figure is
        shown whole or left out (narrow screens), never cut."""
        results = live.results
        a = live.reference
        groups = []
        hw = self.state.hw
        for b in live.servers[1:]:
            same, compared = live.identical_outputs(b)
            head = f"[b]{fmt.escape(self.labels.get(b, b))}[/b] vs " \
                   f"{fmt.escape(self.labels.get(a, a))}"
            ident = f"same output {same}/{compared}"
            mem = memory_difference(hw, a, b)
            d = results.paired("decode_tps_client", a, b)
            if d is None or d.n < 2:
                have = 0 if d is None else d.n
                groups.append([head, f"decode Δ after 2 prompts on both ({have} so far)",
                               ident] + ([mem] if mem else []))
                continue
            # TTFT as the results view, the Markdown and `compare` give it: the p50
            sa, sb = results.summary(a, "ttft_ms"), results.summary(b, "ttft_ms")
            t = sb.p50 - sa.p50 if sa is not None and sb is not None else None
            say = ("[$text-muted]≈ no measurable difference[/]" if not d.measurable
                   else f"[b]{'faster' if d.mean_diff > 0 else 'slower'}[/b]")
            decode = (f"decode {d.mean_diff:+.1f} t/s {fmt.escape(wording.interval(d))} "
                      f"×{d.ratio or 0:.2f} {say}")
            parts = [head, decode, ident]
            if mem:
                parts.append(mem)
            if t is not None:
                parts.append(f"TTFT p50 {round(t):+d} ms")  # no "-0"
            parts.append(f"n {d.n}, wins {d.win_rate_b:.0%} of prompts")
            groups.append(parts)
        self.query_one("#paired", FitLine).set(groups)

    def draw_prompts(self, live: LiveRun) -> None:
        """Tall screens: the run's latest prompts, one line each (each server's decode t/s,
        where each other output first differs from the reference's), the one shown marked;
        `p` lists them all. Drawn with the paired line: when a prompt has finished
        everywhere."""
        box = self.query_one("#run-prompts", Line)
        self._prompts_focus = live.focus
        if not box.display:  # short screens: not shown, not built
            return
        keys = live.keys()
        rows = max((box.content_region.height or 8) - 1, 1)  # under the header
        shown = keys[-rows:]
        if live.focus in keys and live.focus not in shown:
            at = keys.index(live.focus)
            shown = keys[max(at - rows + 1, 0):at + 1]
        names = live.servers
        texts = self.state.prompt_texts
        head = ["  prompt"] + [f"{self.labels.get(n, n)} t/s" for n in names] + [
            f"{self.labels.get(n, n)} vs {self.labels.get(names[0], names[0])}"
            for n in names[1:]]
        lines = [[h for h in head]]
        for key in shown:
            mark = "▶ " if key == live.focus else "  "
            cells = [f"{mark}{key[0]}" + (f" #{key[1] + 1}" if key[1] else "")]
            for n in names:
                s = live.stream_for(n, key)
                rec = s.record if s is not None else None
                m = rec.metrics if rec is not None else None
                cells.append("✗" if rec is not None and rec.error else
                             fmt.num(m.decode_tps_client) if m is not None else "…")
            for n in names[1:]:
                d = live.first_difference(key, n)
                cells.append("…" if d is None else "same" if d[0] is None
                             else f"≠ {d[1]} {d[0]}")
            lines.append(cells)
        widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
        width = box.content_region.width or 80
        out = []
        for j, r in enumerate(lines):
            text = "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                             for i, c in enumerate(r))
            if j:
                key = shown[j - 1]
                # Only what fits is parsed as markup: a long prompt's whole text, parsed every
                # few seconds per line, was a third of the app's CPU while streaming.
                room = max(width - len(text) - 2, 0)
                excerpt = " ".join(texts.get(key[0], "")[:4 * room + 64].split())
                if len(excerpt) > room:
                    excerpt = excerpt[:max(room - 1, 0)] + "…"
                text = fmt.escape(text + "  ") + f"[$text-muted]{fmt.escape(excerpt)}[/]"
                if key == live.focus:
                    text = f"[b]{text}[/b]"
            else:
                text = f"[$text-muted]{fmt.escape(text)}[/]"
            out.append(text)
        if not shown:
            out.append("[$text-muted]  the run's prompts list here as they finish (p: all of "
                       "them, with their figures)[/]")
        box.set("\n".join(out))

    def draw_stacks(self) -> None:
        """Each column's memory as a stacked bar, every server on one scale, from the shown
        run's hardware section (the log's parts for a server quanttui started, the measured
        figures for one it attached to): once a run has ended, or one opened from the
        history. Redrawn only when that run or the columns change."""
        live = self.state.live
        hw = live.results.hardware if live is not None and live.finished else None
        narrowest = min((c.figures.content_region.width for c in self.columns.values()),
                        default=0)
        key = (id(hw), narrowest, *(id(c.figures) for c in self.columns.values()))
        if key == self._stacks_key:
            return
        self._stacks_key = key
        servers = (hw or {}).get("servers") or {}
        stacks = {n: stack_of(servers[n]) if n in servers else None for n in self.columns}
        scale = max((s.total for s in stacks.values() if s is not None), default=0)
        for n, col in self.columns.items():
            col.figures.put_stack(stacks[n], scale, bar_width(narrowest or 40))
        self.set_class(any(s is not None for s in stacks.values()), "-stacks")

    def draw_hardware(self, sample: HwSample | None) -> None:
        off = self.state.hw_off_reason
        self.hw_pending = False
        self.draw_stacks()
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
        if not isinstance(h.ram_available_bytes, NA):
            parts.append(f"free {fmt.size(h.ram_available_bytes)}")
            tips.append("free: memory available for new processes without swapping "
                        "(MemAvailable)")
        if not isinstance(h.cpu_percent, NA):
            parts.append(f"CPU {h.cpu_percent:.0f}%")
        if not isinstance(h.swap_used_bytes, NA) and h.swap_used_bytes:
            parts.append(f"swap {fmt.size(h.swap_used_bytes)}")
        gpus = sample.gpus
        lines = []
        if isinstance(gpus, NA):
            parts.append("[$text-muted]no GPU[/]")
            tips.append(f"no GPU figures: {gpus.reason}")
        elif not gpus:
            parts.append("[$text-muted]no GPU[/]")
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
        live = self.state.live
        if live is not None and not self.state.running and len(live.servers) > 1:
            self.draw_paired(live)  # the memory difference

    def draw_log(self) -> None:
        """The last notice, on one line (all of them: n)."""
        notices = self.state.notices
        log = self.query_one("#log", Line)
        if not notices:
            log.set("")
            log.display = False
            return
        last = notices[-1]
        count = f" [$text-muted]({len(notices)} notices: n)[/]" if len(notices) > 1 else ""
        log.display = True
        log.set(f"{LEVEL_MARK[last.level]} {fmt.escape(last.line())}{count}",
                fmt.escape(last.text))


def footprint(p: ProcessSample | None) -> int | None:
    """Private memory plus the model's resident pages (what a second copy would cost, with the
    file's pages): the memory figure that differs between quants. None when either is n/a."""
    if p is None or isinstance(p.private_bytes, NA) or isinstance(p.model, NA):
        return None
    return p.private_bytes + p.model.resident_bytes


def memory_difference(sample: HwSample | None, a: str, b: str) -> str | None:
    """`memory −43 MB (−12%)`: B's private memory and model pages against A's, now."""
    if sample is None:
        return None
    fa, fb = footprint(sample.process(a)), footprint(sample.process(b))
    if fa is None or fb is None or fa <= 0:
        return None
    return f"memory {fmt.signed_size(fb - fa)} ({fmt.signed_pct(fb / fa - 1)})"
