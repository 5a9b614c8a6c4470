"""A scrolling, word-wrapped view of streamed text that only ever appends.

Each appended piece (a network read while streaming, a token once the request finished) keeps a
style: normal, different from the other server, the first divergence, or a note. Appending
re-wraps only the last line (greedy wrapping never changes the lines before it), so a token costs
the same at token 10 and at token 10 000; restyling a piece redraws only its lines. This is what
keeps the app cheap while two servers stream: nothing is re-rendered from the start.

Following the end, the view moves by half a page when the text reaches its bottom, not by a line
for every new line: a scroll redraws the whole view, and at 80×24 a line-by-line follow would do
that every second or so per column. A scroll the user makes (wheel, keys) is handed to
`on_user_scroll`, so that side-by-side outputs scroll together.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

NORMAL, DIFF, FIRST, NOTE = 0, 1, 2, 3
STEP = 8  # the scrollable height grows this many lines at a time
_COMPONENTS = {DIFF: "stream-view--diff", FIRST: "stream-view--first", NOTE: "stream-view--note"}
# Control characters would move the terminal's cursor: tabs become spaces, the rest go.
_CLEAN = {i: None for i in range(32) if i not in (9, 10)} | {9: "    ", 127: None}


def wrap_offsets(text: str, width: int) -> list[tuple[int, int]]:
    """Greedy word wrap: (start, end) offsets of each line; newlines end lines and are dropped,
    a break at a space drops that space, a word longer than the line is cut."""
    width = max(width, 1)
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        nl = text.find("\n", start)
        end = len(text) if nl < 0 else nl
        _wrap_paragraph(text, start, end, width, out)
        if nl < 0:
            return out
        start = nl + 1


def _wrap_paragraph(text: str, s: int, e: int, width: int, out: list[tuple[int, int]]) -> None:
    if text[s:e].isascii():  # one cell per character: plain index arithmetic
        line = s
        while e - line > width:
            cut = text.rfind(" ", line + 1, line + width + 1)
            if cut <= line:
                out.append((line, line + width))
                line += width
            else:
                out.append((line, cut))
                line = cut + 1
        out.append((line, e))
        return
    line, w, space, j = s, 0, -1, s
    while j < e:
        cw = get_character_cell_size(text[j])
        if w + cw > width and j > line:
            if text[j] == " ":  # the break falls on a space: drop it, as the ASCII path does
                out.append((line, j))
                line, w, space = j + 1, 0, -1
                j += 1
                continue
            if space > line:
                out.append((line, space))
                line = space + 1
                w = cell_len(text[line:j])
            else:
                out.append((line, j))
                line, w = j, 0
            space = -1
            continue
        if text[j] == " ":
            space = j
        w += cw
        j += 1
    out.append((line, e))


class StreamView(ScrollView, can_focus=True):
    """Append-only styled text with word wrap; follows the end unless scrolled up."""

    COMPONENT_CLASSES: ClassVar[set[str]] = set(_COMPONENTS.values())
    DEFAULT_CSS = """
    StreamView {
        overflow-x: hidden;
        overflow-y: scroll;  /* always there: a scrollbar that comes and goes re-lays out */
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._buf = ""
        self._starts: list[int] = []  # where each piece starts in _buf
        self._styles: list[int] = []
        self._lines: list[tuple[int, int]] = [(0, 0)]
        self._wrap_width = 0
        self._cache: dict[int, Strip] = {}
        self._rich: dict[int, Style] | None = None
        self._auto = False  # the view scrolls itself (following the end, or synced)
        self._room = 0  # following: the scrollable height reaches down to here
        # A scroll the user made: the view and its new top line (to scroll the others along).
        self.on_user_scroll: Callable[[StreamView, int], None] | None = None

    # ------------------------------------------------------------------ content

    @property
    def text(self) -> str:
        return self._buf

    @property
    def piece_count(self) -> int:
        return len(self._starts)

    def style_of(self, piece: int) -> int:
        return self._styles[piece]

    def clear(self) -> None:
        self._buf = ""
        self._starts.clear()
        self._styles.clear()
        self._lines = [(0, 0)]
        self._cache.clear()
        self._room = 0
        self.scroll_quietly(0)
        self._set_virtual()
        self.refresh()

    def first_of_style(self, style: int) -> int | None:
        """The first piece drawn in `style` (the first divergence: FIRST), if any."""
        try:
            return self._styles.index(style)
        except ValueError:
            return None

    def line_of_piece(self, piece: int) -> int:
        return self._line_of(self._starts[piece]) if 0 <= piece < len(self._starts) else 0

    def scroll_quietly(self, y: int) -> None:
        """Scroll to line `y` without telling `on_user_scroll` (following, or synced)."""
        self._auto = True
        try:
            self.scroll_to(y=y, animate=False, immediate=True)
        finally:
            self._auto = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._auto and self.on_user_scroll is not None and round(old_value) != round(
                new_value):
            self.on_user_scroll(self, round(new_value))

    def set_pieces(self, pieces: Iterable[tuple[str, int]]) -> None:
        """Replace everything (one wrap for all of it). When the text is what is shown already
        (a finished stream redrawn per token), only lines whose styles change are redrawn."""
        old_buf, old_starts, old_styles = self._buf, self._starts, self._styles
        self._buf, self._starts, self._styles = "", [], []
        self._add(pieces)
        if self._buf == old_buf and self._wrap_width:
            lines: set[int] = set()
            for starts, styles in ((self._starts, self._styles), (old_starts, old_styles)):
                for i, st in enumerate(styles):
                    if st != NORMAL:
                        end = starts[i + 1] if i + 1 < len(starts) else len(self._buf)
                        lines.update(range(self._line_of(starts[i]),
                                           self._line_of(max(end - 1, 0)) + 1))
            for y in sorted(lines):
                self._cache.pop(y, None)
                self.refresh_lines(y)
            return
        self._lines = wrap_offsets(self._buf, self._wrap_width) if self._wrap_width else [(0, 0)]
        self._cache.clear()
        self._room = 0
        self._set_virtual()
        self.call_after_refresh(self._to_tail)  # once the layout has taken the new size
        self.refresh()

    def append(self, text: str, style: int = NORMAL) -> None:
        self.extend([(text, style)])

    def extend(self, pieces: Iterable[tuple[str, int]]) -> None:
        at_end = self.scroll_y >= self._tail_top() or self._following_page()
        if not self._add(pieces) or not self._wrap_width:
            return
        first = len(self._lines) - 1
        start = self._lines[first][0]
        self._lines[first:] = [(start + s, start + e)
                               for s, e in wrap_offsets(self._buf[start:], self._wrap_width)]
        for y in range(first, len(self._lines)):
            self._cache.pop(y, None)
        self._set_virtual()
        self.refresh_lines(first, len(self._lines) - first)
        if at_end and len(self._lines) > self.scroll_y + self.scrollable_content_region.height:
            self._page_on()

    def restyle(self, first_piece: int, last_piece: int, style: int) -> None:
        """Give pieces first..last (inclusive) a style, redrawing only their lines."""
        last_piece = min(last_piece, len(self._styles) - 1)
        if first_piece > last_piece:
            return
        changed = False
        for i in range(first_piece, last_piece + 1):
            if self._styles[i] != style:
                self._styles[i] = style
                changed = True
        if not changed:
            return
        lo = self._line_of(self._starts[first_piece])
        end_char = (self._starts[last_piece + 1] if last_piece + 1 < len(self._starts)
                    else len(self._buf))
        hi = self._line_of(max(end_char - 1, 0))
        for y in range(lo, hi + 1):
            self._cache.pop(y, None)
        self.refresh_lines(lo, hi - lo + 1)

    def _add(self, pieces: Iterable[tuple[str, int]]) -> bool:
        added = False
        parts = [self._buf]
        pos = len(self._buf)
        for text, style in pieces:
            clean = text.translate(_CLEAN) if not text.isprintable() else text
            self._starts.append(pos)
            self._styles.append(style)
            parts.append(clean)
            pos += len(clean)
            added = True
        if added:
            self._buf = "".join(parts)
        return added

    def _line_of(self, offset: int) -> int:
        return max(bisect_right(self._lines, (offset, 1 << 62)) - 1, 0)

    def _set_virtual(self) -> None:
        """The scrollable height: the text's lines, or down to the page shown past its end
        while following, in steps of STEP lines. Set without a layout of the screen (Textual's
        `virtual_size` asks for one, which costs more than everything else a tick draws): the
        view's own size doesn't change, its scrollbar is always there, so the scrollbar and the
        scroll limits are all that follow. In steps, because a new height repaints the whole
        scrollbar, and with it every line beside it."""
        view = self.scrollable_content_region.height
        need = max(len(self._lines), self._room)
        height = view if need <= view else -(-need // STEP) * STEP
        size = Size(self._wrap_width, height)
        if size == self.virtual_size:
            return
        self.set_reactive(Widget.virtual_size, size)
        if self.is_mounted:
            self._scroll_update(size)

    def _to_tail(self) -> None:
        self.scroll_quietly(self._tail_top())

    def _following_page(self) -> bool:
        """Paged on past the end (the last line shows, blank lines below it)."""
        return self.scroll_y > 0 and len(self._lines) <= self.scroll_y + \
            self.scrollable_content_region.height

    def _page_on(self) -> None:
        """The text reached the bottom: move on half a page (the last line lands mid-view)."""
        view = self.scrollable_content_region.height
        top = max(0, len(self._lines) - view + view // 2)
        self._room = top + view
        self._set_virtual()
        self.scroll_quietly(top)

    def _tail_top(self) -> int:
        """The scroll offset that shows the last line at the bottom."""
        return max(0, len(self._lines) - self.scrollable_content_region.height)

    # ------------------------------------------------------------------ rendering

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width <= 0:
            return
        if width != self._wrap_width:
            self._wrap_width = width
            self._lines = wrap_offsets(self._buf, width)
            self._cache.clear()
        self._room = 0
        self._set_virtual()
        self.call_after_refresh(self._to_tail)
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._rich = None
        self._cache.clear()

    def _styles_map(self) -> dict[int, Style]:
        if self._rich is None:
            base = self.rich_style
            self._rich = {NORMAL: base}
            for code, component in _COMPONENTS.items():
                self._rich[code] = base + self.get_component_rich_style(component, partial=True)
        return self._rich

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        styles = self._styles_map()
        if index >= len(self._lines):
            return Strip.blank(width, styles[NORMAL])
        strip = self._cache.get(index)
        if strip is None:
            strip = self._build(index, styles).crop_extend(0, width, styles[NORMAL])
            self._cache[index] = strip
        return strip

    def _build(self, index: int, styles: dict[int, Style]) -> Strip:
        s, e = self._lines[index]
        # Runs of pieces with one style become one segment: fewer escape codes to the terminal.
        runs: list[tuple[int, int, int]] = []  # style, start, end
        if s < e and self._starts:
            i = max(bisect_right(self._starts, s) - 1, 0)
            pos = s
            n = len(self._starts)
            while pos < e:
                piece_end = self._starts[i + 1] if i + 1 < n else len(self._buf)
                stop = min(e, piece_end)
                code = self._styles[i]
                if runs and runs[-1][0] == code:
                    runs[-1] = (code, runs[-1][1], stop)
                elif stop > pos:
                    runs.append((code, pos, stop))
                pos = stop
                i += 1
        return Strip([Segment(self._buf[a:b], styles[code]) for code, a, b in runs])
