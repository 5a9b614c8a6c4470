"""Plain-text charts for the reports (plotext, one figure per chart, no colours), used by the
Markdown of a run (core.reports.markdown) and of a ladder (core.reports.ladder) alike: a module
of their own so neither of those imports the other for them."""

from __future__ import annotations


def bar_chart(title: str, labels: list[str], values: list[float], width: int = 64) -> str:
    """A horizontal bar chart as plain text (plotext, one Figure per chart, no colours)."""
    import plotext as plt
    from plotext._figure import _figure_class

    fig = _figure_class()  # a figure of our own: no state shared with other charts
    fig.theme("clear")
    fig.plotsize(width, 3 + 3 * len(labels))
    fig.bar(labels, values, orientation="horizontal", width=0.4)
    fig.title(title)
    return str(plt.uncolorize(fig.build())).rstrip()
