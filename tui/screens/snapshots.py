"""Compare with…: pick a saved known-good snapshot, then see what differs now, most suspicious
first (probes.snapshot: the same files and diff as `vgpu-tui snapshot save/diff`).

The diff is of the report the panes already show (`diff_report`: no second scan); reading
the snapshot files and capturing the report's file identities run in thread workers.
"""
from __future__ import annotations

import os
from typing import List, Optional

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from probes.errors import ToolError
from tui.panes.keybar import KeyBar

SUSPICIOUS, NOTABLE = 80, 40  # the CLI's marks: !! and !


def change_line(change) -> Text:
    """One change as `snapshot diff` prints it: !! for a likely cause, ! for a notable one."""
    t = Text(no_wrap=False)
    if change.score >= SUSPICIOUS:
        t.append("!! ", style="bold red")
    elif change.score >= NOTABLE:
        t.append(" ! ", style="bold yellow")
    else:
        t.append("   ")
    t.append(change.text, style="bold" if change.score >= SUSPICIOUS else ("" if change.score >= NOTABLE else "dim"))
    return t


class SnapshotPickScreen(ModalScreen[Optional[str]]):
    """The saved snapshots, newest first; Enter picks one (returns its file path)."""

    BINDINGS = [Binding("escape,q", "cancel", "Cancel")]

    DEFAULT_CSS = """
    SnapshotPickScreen { align: center middle; }
    SnapshotPickScreen > Vertical { width: 90%; max-width: 110; height: auto; max-height: 80%;
                                    border: round $accent; background: $panel; padding: 0 1; }
    SnapshotPickScreen OptionList { height: auto; max-height: 20; border: none; }
    """

    def __init__(self, folder: Optional[str] = None) -> None:
        super().__init__()
        self.folder = folder
        self.snapshots: List = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Compare with… which saved snapshot?", style="bold"))
            yield Static(Text("reading the snapshot folder…", style="italic"), id="pick-state")
            yield OptionList(id="pick-list", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        from probes import snapshot as snap

        folder = self.folder or snap.snapshot_dir()
        try:
            found = snap.list_snapshots(folder)
            error = ""
        except OSError as exc:
            found, error = [], f"{folder}: {exc}"
        self.app.call_from_thread(self._show, found, folder, error)

    def _show(self, found: list, folder: str, error: str) -> None:
        self.snapshots = found
        self.loaded = True
        state = self.query_one("#pick-state", Static)
        if error or not found:
            state.update(Text(error or f"no snapshot saved in {folder} yet: command palette → Save snapshot… "
                                       "(or `vgpu-tui snapshot save NAME`; copy one from a working VM)",
                              style="yellow"))
            return
        state.update(Text(f"{len(found)} in {folder} (newest first) — Enter compares, Esc cancels", style="dim"))
        ol = self.query_one(OptionList)
        for info in found:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(info.name, style="bold")
            t.append(f"  {info.time}", style="cyan")
            t.append(f"  {info.root}", style="dim")
            ol.add_option(Option(t))
        ol.highlighted = 0
        ol.focus()

    @on(OptionList.OptionSelected, "#pick-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.snapshots[event.option_index].path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SnapshotDiffScreen(ModalScreen[None]):
    """What differs between a saved snapshot and the report on the screen, most suspicious first."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    DEFAULT_CSS = """
    SnapshotDiffScreen { align: center middle; }
    SnapshotDiffScreen > Vertical { width: 95%; height: 85%; border: round $accent; background: $panel; padding: 0 1; }
    SnapshotDiffScreen #diff-state { height: auto; }
    """

    def __init__(self, name: str, report) -> None:
        super().__init__()
        self.name_or_path = name
        self.report = report
        self.changes: Optional[List] = None
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            title = Text("Compared with the saved snapshot ", style="bold")
            base = os.path.basename(self.name_or_path)
            title.append(base[:-5] if base.endswith(".json") else base, style="bold cyan")
            if "/" in self.name_or_path:
                title.append(f"  ({self.name_or_path})", style="dim")
            yield Static(title, id="diff-title")
            yield Static(Text("comparing…", style="italic"), id="diff-state")
            with VerticalScroll():
                yield Static(Text(), id="diff-body")
        yield KeyBar()

    def on_mount(self) -> None:
        self.compare()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def compare(self) -> None:
        from probes import snapshot as snap

        try:
            old = snap.load(self.name_or_path)
            changes = snap.diff_report(self.name_or_path, self.report)
            error, when = "", str(old.get("time") or "?")
        except ToolError as exc:
            changes, error, when = [], str(exc), ""
        self.app.call_from_thread(self._show, changes, error, when)

    def _show(self, changes: list, error: str, when: str) -> None:
        self.changes, self.error = changes, error
        state = self.query_one("#diff-state", Static)
        if error:
            state.update(Text(error, style="bold red"))
            return
        if not changes:
            state.update(Text(f"saved {when}: nothing differs", style="bold green"))
            return
        likely = sum(1 for c in changes if c.score >= SUSPICIOUS)
        state.update(Text(f"saved {when}: {len(changes)} change(s), {likely} likely cause(s) (!!), "
                          "most suspicious first", style="bold"))
        body = Text()
        for i, c in enumerate(changes):
            if i:
                body.append("\n")
            body.append_text(change_line(c))
        self.query_one("#diff-body", Static).update(body)

    def action_close(self) -> None:
        self.dismiss(None)
