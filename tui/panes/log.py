"""The live log pane: follows the Ollama service's log (the demo's simulated one in a sandbox).

k9s's keys: `/` filter (regex, `!` inverts), `f` follow (also stops by itself when you scroll
up and resumes at the end), `w` wrap, `t` timestamps, `s` save. The lines come from the
probes' log source (probes.logsource: the journal, a followed file, or --log FILE) in an
async worker and reach the view in batches every 50 ms; the model keeps a bounded ring,
the widget is Textual's fast `Log` with a signature highlighter.
"""
from __future__ import annotations

import asyncio
import collections
import importlib
import os
import time
from typing import Deque, Iterable, Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Input, Log, Static

from tui.panes.base import DeferredFocusStyle, Pane
from tui.panes.logmodel import LogModel, wrap_lines
from tui.panes.signatures import SignatureHighlighter

VIEW_MAX = 10_000  # lines in the widget (the model keeps more for re-filtering)
FLUSH_S = 0.05  # batch window for the async source
MAX_PENDING = 50_000  # lines waiting for the next flush (a burst beyond this drops the oldest)


class LogView(DeferredFocusStyle, Log):
    """Textual's Log with the pane's keys (shown in the footer while it has the focus)."""

    BINDINGS = [
        Binding("slash", "pane('open_filter')", "Filter"),
        Binding("f", "pane('toggle_follow')", "Follow"),
        Binding("w", "pane('toggle_wrap')", "Wrap"),
        Binding("t", "pane('toggle_timestamps')", "Time"),
        Binding("s", "pane('save')", "Save"),
        Binding("G", "pane('to_end')", "End", show=False),
    ]

    def action_pane(self, name: str) -> None:
        getattr(self.query_ancestor(LogPane), name)()

    # Textual lays out the whole screen whenever a widget's virtual size changes, i.e. on every
    # batch of lines (~40 ms a time under load). The log's scrollbars are always shown
    # (overflow: scroll), so only they need to know: refresh them, not the layout.
    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        if self.is_mounted and self.container_size:
            self._scroll_update(size)


class LogPane(Pane):
    PANE_ID = "log"
    TITLE = "Live log"
    SHORT = "Log"
    NUMBER = 4
    MAIN = "#log-view"
    HELP = ("Follows the Ollama service's log. / filter (regex, a leading ! inverts), f follow "
            "(stops when you scroll up, resumes at the end), w wrap, t timestamps, s save.")

    DEFAULT_CSS = """
    LogPane #log-filter { height: 1; border: none; padding: 0 1; display: none; }
    LogPane #log-filter.-open { display: block; }
    LogPane LogView { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = LogModel()
        self.source_label = "no source"
        self.source_state = "starting"
        self.highlighter = SignatureHighlighter()
        self._last_width = 0
        self._subtitle = ""
        self._rewrap = None  # the pending re-wrap after a resize
        self.received = 0
        self._pending: Deque[str] = collections.deque(maxlen=MAX_PENDING)

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-status")
        yield Input(placeholder="filter: regex, !regex inverts; Enter keeps, Esc clears", id="log-filter")
        view = LogView(highlight=True, max_lines=VIEW_MAX, id="log-view")
        view.highlighter = self.highlighter
        yield view

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.show_status("waiting for the log source…")
        self.set_interval(0.25, self.update_subtitle)
        self.set_interval(FLUSH_S, self._flush_pending)
        self.update_subtitle()

    # -- sources ----------------------------------------------------------------------
    def start(self, host, args) -> None:
        """Follow --log FILE, else the service's log (the sandbox's file, or the journal)."""
        mod = _module("probes.logsource")
        if mod is None:
            self.set_state("not available yet: probes.logsource (the service's journal)")
            return
        saved = getattr(args, "log", None)
        try:
            source = mod.FileSource(saved) if saved else mod.service_log_source(host)
        except Exception as exc:  # a source that cannot even be built: one line
            self.set_state(f"log source failed: {type(exc).__name__}: {exc}")
            return
        self.source_label = str(getattr(source, "name", None) or "service log")
        if getattr(source, "state", None) == "unavailable":
            self.set_state(f"log unavailable: {getattr(source, 'reason', '')}")
            return
        self.follow_source(source)

    def set_state(self, text: str) -> None:
        self.source_state = text
        self.show_status(text if text not in ("following", "") else "")

    @work(exclusive=True, group="log-source", exit_on_error=False)
    async def follow_source(self, source) -> None:
        """Read the probes' async log source; a timer flushes what arrived every 50 ms."""
        self.set_state("following")
        pending = self._pending
        try:
            async for item in source:
                line = _line_of(item)
                if line is not None:
                    pending.append(line)
                    if len(pending) % 1000 == 0:
                        await asyncio.sleep(0)  # let the screen breathe during a burst
        finally:
            self._flush_pending()
        state = getattr(source, "state", "ended")
        reason = getattr(source, "reason", None)
        self.set_state(f"log source {state}" + (f": {reason}" if reason else ""))

    def _flush_pending(self) -> None:
        if self._pending:
            batch = list(self._pending)
            self._pending.clear()
            self.add_lines(batch)

    # -- lines ------------------------------------------------------------------------
    def add_lines(self, lines: Iterable[str]) -> None:
        shown = self.model.add(lines)
        self.received = self.model.total
        if not shown:
            return
        if self.model.wrap:
            shown = wrap_lines(shown, self._wrap_width())
        self.view.write_lines(shown)

    def _wrap_width(self) -> int:
        return max(20, self.view.scrollable_content_region.width - 1)

    def rebuild(self) -> None:
        """Redraw the view from the model (after a filter, wrap or timestamps change)."""
        view = self.view
        following = view.auto_scroll
        lines = self.model.display(limit=VIEW_MAX)
        if self.model.wrap:
            lines = wrap_lines(lines, self._wrap_width())[-VIEW_MAX:]
        view.clear()
        view.write_lines(lines, scroll_end=following)
        if following:
            view.scroll_end(animate=False, immediate=True)
        self.update_subtitle()

    def on_resize(self) -> None:
        """Re-wrap for the new width, once the size has settled and only while shown."""
        width = self.size.width
        if not self.model.wrap or width == self._last_width or width == 0 or not self.display:
            return
        self._last_width = width
        if self._rewrap is not None:
            self._rewrap.stop()
        self._rewrap = self.set_timer(0.15, self.rebuild)

    # -- keys -------------------------------------------------------------------------
    def open_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.value = self.model.filter.text  # `/` recalls the current filter (k9s #3106)
        box.add_class("-open")
        box.focus()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        box = self.query_one("#log-filter", Input)
        if not event.value:
            box.remove_class("-open")
        self.view.focus()

    def key_escape(self) -> None:
        box = self.query_one("#log-filter", Input)
        if box.has_focus:
            box.value = ""
            box.remove_class("-open")
            self.apply_filter("")
            self.view.focus()

    def apply_filter(self, text: str) -> None:
        self.model.set_filter(text)
        f = self.model.filter
        self.highlighter.filter = None if (f.invert or not f.active) else f.pattern
        self.rebuild()

    def toggle_follow(self) -> None:
        view = self.view
        view.auto_scroll = not (view.auto_scroll and view.is_vertical_scroll_end)
        if view.auto_scroll:
            view.scroll_end(animate=False, immediate=True)
        self.update_subtitle()

    def to_end(self) -> None:
        self.view.auto_scroll = True
        self.view.scroll_end(animate=False, immediate=True)
        self.update_subtitle()

    def toggle_wrap(self) -> None:
        self.model.wrap = not self.model.wrap
        self.rebuild()

    def toggle_timestamps(self) -> None:
        self.model.timestamps = not self.model.timestamps
        self.rebuild()

    def save(self) -> None:
        from tui.screens.prompt import PromptScreen

        default = os.path.abspath(time.strftime("ollama-log-%Y%m%d-%H%M%S.txt"))
        self.app.push_screen(PromptScreen("Save the log (the lines the filter shows) to:", default), self._save_to)

    def _save_to(self, path: Optional[str]) -> None:
        if not path:
            return
        lines = self.model.display()
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + ("\n" if lines else ""))
        except OSError as exc:
            self.app.notify(f"could not save: {exc.strerror}", severity="error")
            return
        self.app.notify(f"saved {len(lines)} lines to {path}")

    @property
    def following(self) -> bool:
        view = self.view
        return bool(view.auto_scroll and (view.is_vertical_scroll_end or view.max_scroll_y == 0))

    def update_subtitle(self) -> None:
        m = self.model
        parts = ["FOLLOW" if self.following else "PAUSED (End resumes)"]
        if m.filter.active:
            parts.append(f"filter {m.filter.text}")
        parts.append(f"{len(m.lines) // 100 * 100 if len(m.lines) > 1000 else len(m.lines)} lines")
        parts.append("wrap" if m.wrap else "nowrap")
        parts.append("time" if m.timestamps else "notime")
        text = " · ".join(parts)
        if text != self._subtitle:  # setting it refreshes the pane: only on a change
            self._subtitle = text
            self.border_subtitle = Content(text)


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _line_of(item) -> Optional[str]:
    """A log line from whatever the source yields (a str, bytes, or an object with .text)."""
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    for attr in ("text", "line"):
        value = getattr(item, attr, None)
        if isinstance(value, str):
            return value
    return None
