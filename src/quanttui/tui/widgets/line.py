"""A few lines of markup, redrawn only when the text changes, never re-laid out for it."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget


class Line(Widget):
    """A line (or a few) of markup that is redrawn only when its text changes, and never asks
    for a new layout: `Static.update` re-lays out the whole screen, which at a few updates a
    second cost more than everything else the app does. Height comes from the stylesheet; a
    `grow` line sets its height to its line count (a layout only when that count changes)."""

    def __init__(self, content: str = "", *, id: str | None = None,
                 classes: str | None = None, grow: bool = False) -> None:
        super().__init__(id=id, classes=classes)
        self._text = content
        self._content = Content.from_markup(content)
        self._grow = grow

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        if not self._grow:
            return
        width = self.content_region.width
        if not self._text:
            height = 0
        elif width > 0:  # wrapped lines; RenderStyles is what Textual itself passes here
            height = self._content.get_height(self.styles, width)  # type: ignore[arg-type]
        else:
            height = self._text.count("\n") + 1
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height

    def set(self, content: str, tooltip: str | None = None) -> None:
        if content != self._text:
            self._text = content
            self._content = Content.from_markup(content)
            self._fit()
            self.refresh()
        if tooltip != self.tooltip:
            self.tooltip = tooltip

    def render(self) -> Content:
        return self._content


class FitLine(Widget):
    """Groups of figures, each group on one line, or on two where the screen is narrow and
    there are fewer than three groups: a figure is shown whole or not at all (never cut
    mid-figure). The first figure of a group is always shown; the others follow in order of
    importance while they fit, joined by " · ". The height is the same whatever the figures,
    so new numbers never re-lay out the screen."""

    def __init__(self, *, id: str | None = None, wide: int = 120) -> None:
        super().__init__(id=id)
        self._groups: list[list[str]] = []
        self._slots = 0  # groups the height is kept for
        self._wide = wide
        self._content = Content("")
        self._width = -1

    def set(self, groups: list[list[str]]) -> None:
        if groups != self._groups:
            self._groups = groups
            self._width = -1
            self._fit()
            self.refresh()

    def keep_room(self, slots: int) -> None:
        """Keep the height of `slots` groups, shown or not yet (no layout when they come)."""
        self._slots = slots
        self._fit()

    def lines_per_group(self) -> int:
        """One line per group on a wide screen, or with three groups or more (then the
        outputs above keep their room); else two."""
        wide = self.content_region.width >= self._wide
        return 1 if wide or max(len(self._groups), self._slots) >= 3 else 2

    def on_resize(self) -> None:
        self._width = -1
        self._fit()

    def on_mount(self) -> None:
        self._fit()

    def _fit(self) -> None:
        height = max(len(self._groups), self._slots) * self.lines_per_group()
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height

    def plain(self) -> str:
        """The lines as shown (for tests)."""
        return self.render().plain

    def render(self) -> Content:
        width = self.content_region.width
        if width != self._width:
            self._width = width
            lines: list[str] = []
            for group in self._groups:
                lines += pack(group, width, self.lines_per_group())
            lines += [""] * (self._slots - len(self._groups)) * self.lines_per_group()
            self._content = Content.from_markup("\n".join(lines))
        return self._content


def pack(parts: list[str], width: int, max_lines: int, sep: str = " · ") -> list[str]:
    """Markup `parts` packed into at most `max_lines` lines of `width` cells, whole parts only,
    in order; a part that doesn't fit is left out (the first is always kept, cut by the
    terminal if even it is too wide). Always `max_lines` lines (blank ones at the end)."""
    lines: list[tuple[str, int]] = []
    for part in parts:
        n = Content.from_markup(part).cell_length
        if lines and lines[-1][1] + len(sep) + n <= width:
            text, used = lines[-1]
            lines[-1] = (f"{text}{sep}{part}", used + len(sep) + n)
        elif len(lines) < max_lines and (not lines or n <= width):
            lines.append((part, n))
    out = [t for t, _ in lines][:max_lines]
    return out + [""] * (max_lines - len(out))
