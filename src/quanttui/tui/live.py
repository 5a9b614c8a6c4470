"""A run as the UI sees it: the session's events, buffered until the UI's next refresh tick.

`LiveRun.on_event` is the session's emit callback. It runs on the event loop, a few times a
second per streaming request (token times are stamped on the stream threads), so it only appends
and marks what changed; the UI reads the buffers on a timer (a few Hz) and draws only what
changed. No Textual here, so this
is tested without an app.

Outputs are grouped by key (prompt, repetition, warm-up): the columns show the same key side by
side, whatever the schedule. The focus moves to a newly started key only once every request of
the focused key has finished, so a fast server can't pull the view away from a slow one.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from quanttui.core.quality.diff import (
    Segment,
    TokenDiff,
    common_prefix_len,
    diff_tokens,
    token_agreement,
    units,
)
from quanttui.core.quality.outputs import Unit, first_difference
from quanttui.core.run.events import (
    Event,
    Notice,
    Progress,
    RequestFinished,
    RequestStarted,
    RunFinished,
    RunStarted,
    TokenBatch,
)
from quanttui.core.run.metrics import decode_rate
from quanttui.core.run.records import RequestRecord, RunResults

Key = tuple[str, int, bool]  # prompt id, repetition, warm-up
_WORDS = re.compile(r"\s*\S+|\s+")
NS = 1_000_000_000
# Past this many units after the first divergence, outputs are not aligned (difflib is
# quadratic); everything after the divergence is then marked as different.
ALIGN_LIMIT = 1500


@dataclass(eq=False, slots=True)
class Chunk:
    """One network read of one request: its text and where it sits in the stream's text."""

    text: str
    c_start: int
    c_end: int


@dataclass(eq=False)
class Stream:
    """One request, growing while it streams."""

    request_id: int
    server: str
    key: Key
    chunks: list[Chunk] = field(default_factory=list)
    n_chars: int = 0
    n_tokens: int = 0
    n_first: int = 1  # tokens the first event carried
    ttft_ms: float | None = None  # from the first batch on
    t_first_ns: int | None = None
    t_last_ns: int | None = None
    record: RequestRecord | None = None
    _text: str = ""
    _text_chunks: int = 0

    @property
    def done(self) -> bool:
        return self.record is not None

    @property
    def text(self) -> str:
        """The text so far (joined lazily: the UI asks a few times a second, not per read)."""
        if self._text_chunks < len(self.chunks):
            self._text += "".join(c.text for c in self.chunks[self._text_chunks:])
            self._text_chunks = len(self.chunks)
        return self._text

    def decode_tps(self) -> float | None:
        """Client decode rate so far (core.run.metrics.decode_rate, as the final figure)."""
        return decode_rate(self.n_tokens - self.n_first, self.t_first_ns, self.t_last_ns)


class RateSeries:
    """Tokens per one-second bucket, on the run's clock (the token events' own stamps)."""

    def __init__(self, keep: int = 7200) -> None:
        self.keep = keep
        self.first = 0
        self.values: list[int] = []

    def add(self, bucket: int, n: int) -> None:
        if bucket < self.first:
            return
        end = self.first + len(self.values)
        if bucket >= end:
            self.values.extend([0] * (bucket - end + 1))
        self.values[bucket - self.first] += n
        if len(self.values) > 2 * self.keep:
            drop = len(self.values) - self.keep
            del self.values[:drop]
            self.first += drop

    def upto(self, end_bucket: int) -> list[int]:
        """Every kept bucket from the run's start (or the oldest kept) up to `end_bucket`."""
        lo = self.first
        return [self.values[b - lo] if b - lo < len(self.values) else 0
                for b in range(lo, max(end_bucket, lo))]

    def window(self, now_bucket: int, width: int) -> list[int]:
        """The last `width` completed buckets before `now_bucket` (the current, partial one is
        left out so the last bar doesn't dip every second)."""
        lo = max(now_bucket - width, 0)
        return [self.values[b - self.first] if 0 <= b - self.first < len(self.values) else 0
                for b in range(lo, now_bucket)]


@dataclass(eq=False)
class ServerLive:
    name: str
    current: Stream | None = None
    rate: RateSeries = field(default_factory=RateSeries)
    failed: int = 0
    last_error: str | None = None
    down: str | None = None
    last_ok: RequestRecord | None = None
    changed: bool = True  # stats or state to redraw
    finished_since_flush: bool = False


class LiveRun:
    """Buffers one run's events for the UI. `results` is the session's own (growing) results."""

    def __init__(self, results: RunResults) -> None:
        self.results = results
        self.servers = results.server_names
        self.reference = self.servers[0]
        self.by_server = {n: ServerLive(n) for n in self.servers}
        self.streams: dict[int, Stream] = {}
        self.by_key: dict[Key, dict[str, Stream]] = {}
        self.focus: Key | None = None
        self.pinned = False  # the user picked the focused key: the run doesn't move it
        self.left: dict[str, str] = {}  # selected servers left out of the run, and why
        self.completed_keys = 0  # keys every server has finished: new paired figures
        self.progress: Progress | None = None
        self.total: int | None = None
        self.notices: list[Notice] = []
        self.started = False
        self.finished = False
        self.t0_ns: int | None = None
        self.now_bucket = 0
        self.version = 0  # bumped by every event: an unchanged version means nothing to draw
        self._div: dict[tuple[Key, str], tuple[int, int | None]] = {}
        self._exact: dict[tuple[Key, str], tuple[TokenDiff, list[str], list[str]] | None] = {}

    # ------------------------------------------------------------------ the emit callback

    def on_event(self, ev: Event) -> None:
        self.version += 1
        if isinstance(ev, TokenBatch):
            self._tokens(ev)
        elif isinstance(ev, RequestStarted):
            key: Key = (ev.prompt_id, ev.repetition, ev.warmup)
            s = Stream(ev.request_id, ev.server, key)
            self.streams[ev.request_id] = s
            self.by_key.setdefault(key, {})[ev.server] = s
            self.by_server[ev.server].current = s
            if not self.pinned and (self.focus is None or self._complete(self.focus)) \
                    and self.focus != key:
                self.focus = key
        elif isinstance(ev, RequestFinished):
            rec = ev.record
            st = self.streams.get(rec.request_id)
            if st is not None:
                st.record = rec
                done = self.by_key.get(st.key, {})
                if len(done) == len(self.servers) and all(s.done for s in done.values()):
                    self.completed_keys += 1
            srv = self.by_server[rec.server]
            if rec.error is not None and rec.error_kind != "cancelled":
                srv.failed += 1
                srv.last_error = rec.error
            elif rec.ok and not rec.warmup:
                srv.last_ok = rec
            srv.changed = srv.finished_since_flush = True
        elif isinstance(ev, Progress):
            self.progress = ev
        elif isinstance(ev, Notice):
            self.notices.append(ev)
            if ev.code in ("server-down", "server-unreachable") and ev.server in self.by_server:
                self.by_server[ev.server].down = ev.message
                self.by_server[ev.server].changed = True
        elif isinstance(ev, RunStarted):
            self.started = True
            self.total = ev.total_requests
        elif isinstance(ev, RunFinished):
            self.finished = True
            for srv in self.by_server.values():
                srv.changed = True

    def _tokens(self, ev: TokenBatch) -> None:
        s = self.streams.get(ev.request_id)
        if s is None:
            return
        n = ev.n_tokens
        start = s.n_chars
        s.n_chars += len(ev.text)
        s.chunks.append(Chunk(ev.text, start, s.n_chars))
        if s.t_first_ns is None:
            # The rate counts the tokens after the first event from the first event's time (the
            # batch's other tokens arrived after it); that event carried one token, or all of
            # a one-event batch's (a character of several byte tokens).
            s.t_first_ns = ev.t_first_ns
            s.n_first = n if ev.n_events == 1 else 1
            if ev.t_sent_ns:
                s.ttft_ms = (ev.t_first_ns - ev.t_sent_ns) / 1e6
        s.n_tokens += n
        s.t_last_ns = ev.t_ns
        if self.t0_ns is None:
            self.t0_ns = ev.t_first_ns
        bucket = (ev.t_ns - self.t0_ns) // NS
        if bucket > self.now_bucket:
            self.now_bucket = bucket
        srv = self.by_server[ev.server]
        self._spread(srv.rate, ev.t_first_ns, ev.t_ns, n)
        srv.changed = True

    def _spread(self, rate: RateSeries, t_first: int, t_last: int, n: int) -> None:
        """A batch's tokens into the seconds its events span, in proportion to the time in
        each (a batch is a quarter of a second of tokens: put whole into the second of its
        last event, a second that a batch straddles would take all of it, the one before none
        of it, and a steady rate would draw as a saw)."""
        assert self.t0_ns is not None
        lo = max((t_first - self.t0_ns) // NS, 0)  # another server's first batch may start
        hi = (t_last - self.t0_ns) // NS  # before the run's clock: its first second takes it
        if lo >= hi or n <= 1:
            rate.add(hi, n)
            return
        span, done = t_last - t_first, 0
        for b in range(lo, hi):
            edge = self.t0_ns + (b + 1) * NS
            k = round(n * (edge - t_first) / span) - done
            rate.add(b, k)
            done += k
        rate.add(hi, n - done)

    def _complete(self, key: Key) -> bool:
        return all(s.done for s in self.by_key.get(key, {}).values())

    # ------------------------------------------------------------------ the user's choice

    def pin(self, key: Key) -> None:
        """Show `key` until `unpin`, whatever the run starts meanwhile."""
        self.focus, self.pinned = key, True
        self.version += 1

    def unpin(self) -> None:
        """Follow the run again: the latest key that every server started."""
        self.pinned = False
        if self.by_key:
            started = [k for k, st in self.by_key.items() if len(st) == len(self.servers)]
            self.focus = started[-1] if started else next(reversed(self.by_key))
        self.version += 1

    def keys(self) -> list[Key]:
        """The measured keys in the order they started (warm-ups left out)."""
        return [k for k in self.by_key if not k[2]]

    # ------------------------------------------------------------------ read by the UI

    def left_out(self, server: str) -> str | None:
        """Why a selected server takes no part in this run (None: it does)."""
        if server in self.left:
            return self.left[server]
        info = next((s for s in self.results.servers if s.name == server), None)
        if info is None:
            return "selected after the run started"
        if not info.reachable:
            return info.error or "unreachable"
        return None

    def stream_for(self, server: str, key: Key | None = None) -> Stream | None:
        key = self.focus if key is None else key
        return None if key is None else self.by_key.get(key, {}).get(server)

    def counterpart(self, server: str) -> str | None:
        """Whom a column is compared with: the reference, or for the reference the next one."""
        if server != self.reference:
            return self.reference
        return self.servers[1] if len(self.servers) > 1 else None

    def live_divergence(self, key: Key, server: str) -> int | None:
        """Character offset where `server`'s text first differs from its counterpart's, as far
        as both have streamed; None while they agree. Incremental: each call resumes."""
        other = self.counterpart(server)
        if other is None:
            return None
        a, b = self.stream_for(other, key), self.stream_for(server, key)
        if a is None or b is None:
            return None
        checked, div = self._div.get((key, server), (0, None))
        if div is not None:
            return div
        ta, tb = a.text, b.text
        checked = common_prefix_len(ta, tb, checked)
        if checked < min(len(ta), len(tb)) or (
                (a.done and len(tb) > len(ta) == checked) or (b.done and len(ta) > len(tb))):
            div = checked
        self._div[(key, server)] = (checked, div)
        return div

    def exact_diff(self, key: Key, server: str) -> TokenDiff | None:
        """Token-level diff of the key's two finished outputs that `server`'s column shows,
        once both finished without error: A = the reference, B = the other server (for the
        reference's own column, B = the next server)."""
        return self.final_view(key, server)[1]

    def first_difference(self, key: Key, server: str) -> tuple[int | None, Unit] | None:
        """Where the key's two finished outputs that `server`'s column shows first differ, as
        the run's reports count it (a run read back from its file says the same); None until
        both finished without error. The highlighting may count otherwise (`final_view`)."""
        other = self.counterpart(server)
        a_name, b_name = (other, server) if server != self.reference else (server, other)
        a = self.stream_for(a_name, key) if a_name else None
        b = self.stream_for(b_name, key) if b_name else None
        if a is None or b is None or a.record is None or b.record is None:
            return None
        if not (a.record.ok and b.record.ok):
            return None
        return first_difference(a.record, b.record)

    def final_view(self, key: Key, server: str) -> tuple[list[str], TokenDiff | None]:
        """`server`'s finished output as pieces (one per diff unit), and the diff if any."""
        own = self.stream_for(server, key)
        if own is None or own.record is None:
            return [], None
        other = self.counterpart(server)
        a_name, b_name = (other, server) if server != self.reference else (server, other)
        memo = (key, b_name or server)
        if memo not in self._exact:
            a = self.stream_for(a_name, key) if a_name else None
            b = self.stream_for(b_name, key) if b_name else None
            if a is None or b is None or a.record is None or b.record is None:
                return record_pieces(own.record)[1], None
            if not (a.record.ok and b.record.ok):
                self._exact[memo] = None
            else:
                self._exact[memo] = diff_records(a.record, b.record)
        found = self._exact[memo]
        if found is None:
            return record_pieces(own.record)[1], None
        diff, pieces_a, pieces_b = found
        return (pieces_a if server == a_name else pieces_b), diff

    def identical_outputs(self, server: str) -> tuple[int, int]:
        """(identical, compared) finished measured outputs of `server` against the reference."""
        same = total = 0
        for key, streams in self.by_key.items():
            if key[2]:
                continue
            a, b = streams.get(self.reference), streams.get(server)
            if a is None or b is None or a.record is None or b.record is None:
                continue
            if not (a.record.ok and b.record.ok):
                continue
            total += 1
            same += a.record.token_ids == b.record.token_ids and a.record.text == b.record.text
        return same, total


def record_pieces(rec: RequestRecord) -> tuple[Sequence[Hashable], list[str]]:
    """(units to compare, text of each unit): the token ids with their text when the stream
    had one token per event (/completion); else words with their leading spaces (chat streams
    carry no ids, and a run loaded from JSON keeps its text as one piece)."""
    texts = list(rec.result.event_texts) if rec.result is not None else []
    ids = rec.token_ids
    if ids and len(ids) == len(texts):
        return units(ids, texts), texts
    words = _WORDS.findall(rec.text)
    return words, words


def diff_records(a: RequestRecord, b: RequestRecord
                 ) -> tuple[TokenDiff, list[str], list[str]]:
    """The diff of two outputs and each side's pieces, one per compared unit."""
    ua, pa = record_pieces(a)
    ub, pb = record_pieces(b)
    if (pa is ua) != (pb is ub):  # one side compared by words: compare both that way
        ua = pa = _WORDS.findall(a.text)
        ub = pb = _WORDS.findall(b.text)
    p = common_prefix_len(ua, ub)
    if min(len(ua), len(ub)) - p > ALIGN_LIMIT:
        return _unaligned(ua, ub, p), pa, pb
    return diff_tokens(ua, ub), pa, pb


def _unaligned(a: Sequence[Hashable], b: Sequence[Hashable], p: int) -> TokenDiff:
    segs = [Segment("equal", 0, p, 0, p)] if p else []
    segs.append(Segment("replace", p, len(a), p, len(b)))
    return TokenDiff(len(a), len(b), p, token_agreement(a, b), tuple(segs))


def replay(results: RunResults) -> LiveRun:
    """A finished run's records as the events the session emitted, so a stored or loaded run
    is shown exactly as a live one ends. A record with per-event times (this process's run)
    replays every event; a loaded one (no times) replays its text at its end."""
    live = LiveRun(results)
    live.on_event(RunStarted(tuple(results.servers), len(results.measured())))
    t_base = min((r.started_at for r in results.records), default=0.0)
    done = failed = 0
    for rec in sorted(results.records, key=lambda r: r.started_at):
        live.on_event(RequestStarted(rec.request_id, rec.server, rec.prompt_id, rec.repetition,
                                     rec.warmup))
        res = rec.result
        if res is not None and res.event_times_ns and len(res.event_texts) == len(
                res.event_times_ns):
            one_id = len(res.token_ids) == len(res.event_texts)
            for i, (t, text) in enumerate(zip(res.event_times_ns, res.event_texts, strict=True)):
                ids = (res.token_ids[i],) if one_id else ()
                ntok = res.event_ntokens[i] if i < len(res.event_ntokens) else 1
                live.on_event(TokenBatch(rec.request_id, rec.server, res.t_sent_ns, t, t, text,
                                         ids, 1, max(ntok, 1), rec.warmup))
        elif rec.text:
            e2e = rec.metrics.e2e_ms if rec.metrics is not None and rec.metrics.e2e_ms else 0.0
            t = int(((rec.started_at - t_base) * 1000 + e2e) * 1_000_000)
            n = rec.metrics.n_out if rec.metrics is not None else len(rec.token_ids)
            ttft = rec.metrics.ttft_ms if rec.metrics is not None and rec.metrics.ttft_ms else 0.0
            live.on_event(TokenBatch(rec.request_id, rec.server, t - int(ttft * 1e6), t, t,
                                     rec.text, tuple(rec.token_ids), 1, max(n, 1), rec.warmup))
        live.on_event(RequestFinished(rec))
        if not rec.warmup:
            done += 1
            failed += rec.error is not None
    elapsed = (results.finished_at or t_base) - t_base
    live.on_event(Progress(done, len(results.measured()), failed, max(elapsed, 0.0), 0.0))
    live.on_event(RunFinished(results))
    live.notices.clear()  # said when the run happened; not again on a re-render
    return live
