"""What every pane shares: a bordered box with a title, a number key, and a status line.

A pane is a container; its `main` widget takes the focus, so the footer shows the keys of
the focused widget and of the pane around it. `show_status` writes the pane's progress or
"not available yet" line as plain text (never markup: paths and `[rpath]` must survive).
"""
from __future__ import annotations

import weakref
from typing import ClassVar, Optional

from rich.text import Text
from textual.containers import Vertical
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Static


def plain(text: str, style: str = "") -> Text:
    """Text shown exactly as written (no markup parsing)."""
    return Text(text, style=style, no_wrap=False)


def _no_refresh(*args, **kwargs):
    return None


class DeferredFocusStyle:
    """Mixin for a pane's main widget: its `:focus` restyle waits until the frame that answers
    the key is painted.

    Textual restyles a widget when it gains or loses the focus, in the key's own path (CSS
    rules, component classes, then its line caches are dropped and every visible row is drawn
    again: ~15 ms of a Tab on the 2-core VM). The pane's lit border already says where the
    keys go, so the cursor's focused/blurred colours follow 40 ms later (each widget once,
    however many times the focus crossed it meanwhile).
    """

    def watch_has_focus(self, has_focus: bool) -> None:
        widget: Widget = self  # type: ignore[assignment]
        if not widget.is_mounted:
            widget.update_node_styles()
            return
        app = widget.app
        pending = _PENDING.get(app)
        if pending is None:
            pending = _PENDING[app] = weakref.WeakSet()
        pending.add(widget)
        if app not in _SCHEDULED:
            _SCHEDULED.add(app)
            app.set_timer(FOCUS_STYLE_DELAY, lambda: _restyle_pending(app), name="focus-style")


# Per app (a test runs several): the widgets waiting for their restyle, and whether the
# timer is set. Weak, so an app that ends before its timer fires leaves nothing behind.
_PENDING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SCHEDULED: "weakref.WeakSet" = weakref.WeakSet()
FOCUS_STYLE_DELAY = 0.04  # after the key's frame (one frame is 1/60 s); a key sooner coalesces


def _restyle_pending(app) -> None:
    _SCHEDULED.discard(app)
    for widget in list(_PENDING.pop(app, ())):
        if widget.is_attached:
            widget.update_node_styles()


class Pane(Vertical):
    """A titled pane of the main screen."""

    PANE_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    SHORT: ClassVar[str] = ""  # the tab label at 80 columns
    NUMBER: ClassVar[int] = 0
    MAIN: ClassVar[str] = ""  # selector of the widget that takes the focus

    DEFAULT_CSS = """
    Pane {
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        height: 1fr;
        width: 1fr;
    }
    Pane > .pane-status {
        height: auto;
        color: $text-muted;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(id=kwargs.pop("id", self.PANE_ID), **kwargs)
        self.border_title = f"{self.NUMBER} {self.TITLE}"

    @property
    def main(self) -> Optional[Widget]:
        """The widget that takes the focus when the pane is chosen."""
        if self.MAIN:
            return self.query_one(self.MAIN)
        for child in self.query("*"):
            if child.focusable and child.display:
                return child
        return None

    def mark_active(self, active: bool) -> None:
        """The focused pane's border is lit. Inline styles on this node only: a `:focus-within`
        rule would restyle the whole pane subtree on every focus change (~50 ms a key). And only
        the frame is repainted: the style setters would repaint the whole pane, i.e. composite
        again everything inside it (~4 ms a pane a key on the 2-core VM)."""
        theme = self.app.current_theme
        colour = (theme.accent or theme.primary) if active else None
        frame = self._frame_regions()
        if frame:
            self.refresh = _no_refresh  # type: ignore[method-assign]  # (this instance only)
        try:
            self.styles.border = ("round", colour) if colour else None
            if not active:
                self.styles.clear_rule("border")
            self.styles.border_title_style = "bold" if active else None
        finally:
            self.__dict__.pop("refresh", None)
        if frame:
            self.refresh(*frame)
        else:
            self.refresh()

    def _frame_regions(self) -> list:
        """The four one-cell-wide edges of the pane, in the coordinates `refresh` takes."""
        if not self.is_mounted or not self.outer_size:
            return []
        width, height = self.outer_size
        dx, dy = self.content_offset
        return [Region(-dx, -dy, width, 1), Region(-dx, height - 1 - dy, width, 1),
                Region(-dx, -dy, 1, height), Region(width - 1 - dx, -dy, 1, height)]

    def focus_main(self) -> None:
        widget = self.main
        if widget is not None:
            widget.focus()

    def status_widget(self) -> Static:
        return self.query_one(".pane-status", Static)

    def show_status(self, text: str, style: str = "") -> None:
        try:
            status = self.status_widget()
        except Exception:
            return
        status.display = bool(text)
        status.update(plain(text, style))
