"""What every pane shares: a bordered box with a title, a number key, and a status line.

A pane is a container; its `main` widget takes the focus, so the footer shows the keys of
the focused widget and of the pane around it. `show_status` writes the pane's progress or
"not available yet" line as plain text (never markup: paths and `[rpath]` must survive).
"""
from __future__ import annotations

from typing import ClassVar, Optional

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static


def plain(text: str, style: str = "") -> Text:
    """Text shown exactly as written (no markup parsing)."""
    return Text(text, style=style, no_wrap=False)


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
        rule would restyle the whole pane subtree on every focus change (~50 ms a key)."""
        theme = self.app.current_theme
        colour = (theme.accent or theme.primary) if active else None
        self.styles.border = ("round", colour) if colour else None
        if not active:
            self.styles.clear_rule("border")
        self.styles.border_title_style = "bold" if active else None

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
