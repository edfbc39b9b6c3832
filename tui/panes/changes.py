"""The change list: every change this tool made (the fix engine's journal), with undo."""
from __future__ import annotations

from typing import List, Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.panes.base import DeferredFocusStyle, Pane


def change_prompt(c: dict) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    undone = bool(c.get("undone"))
    t.append("↶ " if undone else "✓ ", style="dim" if undone else "green")
    t.append(f"{c.get('id', '?')} ", style="dim")
    t.append(str(c.get("summary") or c.get("kind") or ""), style="dim strike" if undone else "")
    if undone:
        t.append("  (undone)", style="dim")
    return t


class ChangeList(DeferredFocusStyle, OptionList):
    BINDINGS = [Binding("u", "pane_undo", "Undo")]

    def action_pane_undo(self) -> None:
        pane = self.query_ancestor(ChangesPane)
        change = pane.current
        if change is not None:
            pane.post_message(ChangesPane.UndoRequested(change.get("id")))

    def check_action(self, action: str, parameters) -> Optional[bool]:
        if action == "pane_undo":
            pane = self.query_ancestor(ChangesPane)
            return not pane.readonly and pane.current is not None and not pane.current.get("undone")
        return True


class ChangesPane(Pane):
    PANE_ID = "changes"
    TITLE = "Changes"
    SHORT = "Changes"
    NUMBER = 6
    HELP = "The changes made (the journal). u: undo the highlighted one."

    DEFAULT_CSS = """
    ChangesPane { height: 7; }
    ChangesPane ChangeList { height: 1fr; border: none; }
    """

    class UndoRequested(Message):
        def __init__(self, change_id: Optional[str]) -> None:
            super().__init__()
            self.change_id = change_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.changes: List[dict] = []
        self.readonly = False

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-status")
        yield ChangeList(id="changes-list", compact=True, markup=False)

    def on_mount(self) -> None:
        self.show_status("no change made yet")

    @property
    def current(self) -> Optional[dict]:
        ol = self.query_one(ChangeList)
        if ol.highlighted is None or ol.highlighted >= len(self.changes):
            return None
        return self.changes[ol.highlighted]

    def show(self, changes: List[dict]) -> None:
        self.changes = list(reversed(changes))  # newest first
        ol = self.query_one(ChangeList)
        ol.clear_options()
        ol.add_options([Option(change_prompt(c)) for c in self.changes])
        if self.changes:
            ol.highlighted = 0
            self.show_status("")
        else:
            self.show_status("no change made yet" if not self.readonly else "read-only: no changes")
        self.app.refresh_bindings()
