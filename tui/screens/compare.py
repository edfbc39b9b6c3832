"""Two discovery results side by side: before the relaunch and after it (or any two reports).

Reads the contract's `logs` shape (library, gpu_used, gpu_count, devices, findings).
"""
from __future__ import annotations

from typing import List, Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.panes.keybar import KeyBar
from tui.panes.data import VERDICT_CPU, VERDICT_GPU, VERDICT_LABELS, log_state

STATE_STYLE = {VERDICT_GPU: "bold black on green", VERDICT_CPU: "bold white on red", "unknown": "bold black on yellow"}


def render_result(title: str, log: Optional[dict], other: Optional[dict] = None, note: str = "") -> Text:
    """One column: the verdict, the library, the devices, the findings (new ones marked)."""
    out = Text()
    out.append(title + "\n", style="bold underline")
    if not log:
        out.append(note or "no discovery result yet", style="italic")
        return out
    state = log_state(log)
    out.append(f" {VERDICT_LABELS[state]} ", style=STATE_STYLE[state])
    out.append("\n")
    out.append("library=", style="bold")
    out.append(str(log.get("library") or "?"), style="bold green" if state == VERDICT_GPU else "bold red")
    out.append(f"   gpu_used={log.get('gpu_used')}   gpu_count={log.get('gpu_count')}\n")
    for dev in log.get("devices") or []:
        out.append(f"  • {dev.get('name') or dev.get('id')} ({dev.get('library')}, {dev.get('total') or '?'})\n", style="green")
    before_ids = {f.get("id") for f in (other or {}).get("findings") or []}
    findings: List[dict] = log.get("findings") or []
    if findings:
        out.append("Findings from the log\n", style="bold")
    for f in findings:
        mark = "+ " if other is not None and f.get("id") not in before_ids else "  "
        out.append(mark + f"{f.get('severity')}: {f.get('title')}\n", style="red" if f.get("severity") == "error" else "")
    if other is not None:
        now_ids = {f.get("id") for f in findings}
        for f in (other.get("findings") or []):
            if f.get("id") not in now_ids:
                out.append(f"- gone: {f.get('title')}\n", style="green")
    if note:
        out.append(note + "\n", style="dim")
    return out


class CompareView(Horizontal):
    """Before | after columns."""

    DEFAULT_CSS = """
    CompareView { height: auto; max-height: 50%; }
    CompareView > Static { width: 1fr; padding: 0 1; height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static(Text("before"), id="cmp-before")
        yield Static(Text("after"), id="cmp-after")

    def show(self, before: Optional[dict], after: Optional[dict], after_note: str = "") -> None:
        self.query_one("#cmp-before", Static).update(render_result("Before", before))
        self.query_one("#cmp-after", Static).update(render_result("After", after, before, after_note))


class CompareScreen(ModalScreen[None]):
    """The last relaunch's before/after, shown again (`c`)."""

    BINDINGS = [Binding("escape,q,c", "close", "Close")]

    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen > Vertical { width: 95%; height: 80%; border: round $accent; background: $panel; }
    """

    def __init__(self, before: Optional[dict], after: Optional[dict]) -> None:
        super().__init__()
        self.before, self.after = before, after

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Discovery: before and after the last relaunch", style="bold"))
            with VerticalScroll():
                yield CompareView()
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(CompareView).show(self.before, self.after)

    def action_close(self) -> None:
        self.dismiss(None)
