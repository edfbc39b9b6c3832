"""Lines of text in a scrollable box (the last traced relaunch's report, per process)."""
from __future__ import annotations

from typing import List

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.panes.keybar import KeyBar


class TextScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > Vertical { width: 95%; height: 90%; border: round $accent; background: $panel; padding: 0 1; }
    TextScreen #text-label { width: auto; }
    """

    def __init__(self, title: str, lines: List[str], label: str = "") -> None:
        super().__init__()
        self.title_text, self.lines, self.label = title, list(lines), label

    def compose(self) -> ComposeResult:
        head = Text()
        if self.label:
            head.append(f" {self.label} ", style="bold white on magenta")
            head.append(" ")
        head.append(self.title_text, style="bold")
        with Vertical():
            yield Static(head)
            with VerticalScroll():
                yield Static(Text("\n".join(self.lines)), id="text-body")  # paths as written: no markup
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)
