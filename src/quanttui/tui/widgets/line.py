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
