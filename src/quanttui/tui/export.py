"""The TUI's results view of a finished run (rows, verdict), as SVG, without a terminal
(`--format svg`).

Called from the headless run (inside its event loop) and from `quanttui snapshot` (outside
one): the app runs headless on its own loop in a short-lived thread either way.
"""

from __future__ import annotations

import asyncio
import threading

from quanttui.config import Config
from quanttui.core.run.records import RunResults


def preserve_spaces(svg: str) -> str:
    """The screen's SVG with `xml:space="preserve"` on its root: Textual writes each run of
    text with its spaces, which browsers keep but rsvg and other SVG 1.1 renderers collapse
    (columns ran together: "IQ4_NL29.4", code lost its indentation)."""
    if 'xml:space="preserve"' in svg:
        return svg
    return svg.replace("<svg ", '<svg xml:space="preserve" ', 1)


def render_svg(results: RunResults, size: tuple[int, int] = (160, 48),
               config: Config | None = None) -> str:
    from textual.pilot import Pilot

    from quanttui.core.run.plan import ServerSpec
    from quanttui.tui.app import build_app
    from quanttui.tui.registry import ServerRegistry

    out: list[str] = []
    errors: list[BaseException] = []

    async def shoot(pilot: Pilot[object]) -> None:
        app.show_results(results)
        await pilot.pause()
        # the answer, not the streaming screen: the results view (rows, verdict)
        app.action_results()
        await pilot.pause()
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()
        out.append(preserve_spaces(app.export_screenshot(simplify=True)))
        app.exit()

    cfg = config or Config()
    servers = ServerRegistry.from_config(cfg, [ServerSpec(s.name, s.url) for s in results.servers])
    app = build_app(cfg, servers, animations=False, probe_on_start=False)

    def work() -> None:
        try:
            asyncio.run(app.run_async(headless=True, size=size, auto_pilot=shoot))
        except BaseException as e:  # re-raised on the caller's thread
            errors.append(e)

    thread = threading.Thread(target=work, name="quanttui-svg")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    if not out:
        raise RuntimeError("the screen could not be rendered")
    return out[0]
