"""The findings pane: each finding with its evidence and fix; `x` previews the fix, `r` relaunches.

Errors come first. The list shows severity and title; the box below shows the highlighted
finding's detail, its evidence lines exactly as written, and the command its fix runs.
"""
from __future__ import annotations

from typing import List, Optional

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.panes.base import DeferredFocusStyle, Pane
from tui.panes.data import Snapshot, errors_first

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "cyan"}
SEVERITY_MARK = {"error": "✗", "warning": "!", "info": "i"}


def finding_prompt(f: dict) -> Text:
    sev = f.get("severity", "info")
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"{SEVERITY_MARK.get(sev, '?')} ", style=SEVERITY_STYLE.get(sev, ""))
    t.append(str(f.get("title") or f.get("id")))
    fix = f.get("fix") or {}
    if fix.get("kind") and fix.get("kind") != "manual":
        t.append(f"  [fix: {fix['kind']}]", style="bold green")
    return t


EVIDENCE_CHARS = 240  # a whole `server config` line is kilobytes: the start says what it is


def finding_detail(f: Optional[dict], readonly: bool = False) -> Text:
    """The highlighted finding: what, why, the fix (first: it is what to do), then the evidence."""
    out = Text()
    if not f:
        return out
    sev = f.get("severity", "info")
    out.append(str(f.get("title") or ""), style="bold")
    out.append(f"\n{sev} · {f.get('category')} · {f.get('id')}", style=SEVERITY_STYLE.get(sev, "dim"))
    if f.get("detail"):
        out.append("\n" + str(f["detail"]))
    fix = f.get("fix")
    if fix:
        out.append("\nFix ", style="bold")
        out.append(str(fix.get("kind")), style="green")
        if fix.get("command"):
            out.append("  $ " + str(fix["command"]), style="bold green")
        steps = (fix.get("args") or {}).get("steps")
        if steps:
            for step in steps if isinstance(steps, list) else [steps]:
                out.append(f"\n  - {step}")
        if not readonly and fix.get("kind") == "relaunch":
            out.append("\n  x or r: relaunch Ollama and watch discovery", style="bold italic")
        elif not readonly and fix.get("kind") != "manual":
            out.append("\n  x: preview and apply this fix · then r: relaunch Ollama and watch", style="bold italic")
    evidence = f.get("evidence") or []
    if evidence:
        out.append("\nEvidence", style="bold")
        for line in evidence:
            line = str(line)
            if len(line) > EVIDENCE_CHARS:
                line = line[:EVIDENCE_CHARS] + "…"
            out.append("\n  • ")
            out.append(line, style="dim")
    return out


class FindingList(DeferredFocusStyle, OptionList):
    BINDINGS = [
        Binding("x", "pane_fix", "Fix…"),
        Binding("d", "pane_compare", "Compare with…"),
    ]

    def action_pane_compare(self) -> None:
        self.post_message(FindingsPane.CompareRequested())

    def action_pane_fix(self) -> None:
        pane = self.query_ancestor(FindingsPane)
        f = pane.current
        if f is not None:
            pane.post_message(FindingsPane.FixRequested(f))

    def check_action(self, action: str, parameters) -> Optional[bool]:
        if action == "pane_fix":
            pane = self.query_ancestor(FindingsPane)
            if pane.readonly:
                return False
            f = pane.current
            return bool(f and (f.get("fix") or {}).get("kind") not in (None, "manual"))
        return True


class FindingsPane(Pane):
    PANE_ID = "findings"
    TITLE = "Findings"
    SHORT = "Findings"
    NUMBER = 5
    HELP = ("What is wrong, with evidence. x: preview the fix and apply it; r: relaunch Ollama and watch; "
            "d: compare with a saved known-good snapshot (palette: Save snapshot…).")

    DEFAULT_CSS = """
    FindingsPane FindingList { height: auto; max-height: 45%; border: none; }
    FindingsPane #findings-detail { height: 1fr; }
    """

    class FixRequested(Message):
        def __init__(self, finding: dict) -> None:
            super().__init__()
            self.finding = finding

    class CompareRequested(Message):
        """Compare with…: the app lists the saved snapshots."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.findings: List[dict] = []
        self.readonly = False

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-status")
        yield FindingList(id="findings-list", compact=True, markup=False)
        with VerticalScroll(id="findings-detail"):
            yield Static("", id="findings-detail-body")

    def on_mount(self) -> None:
        self.show_status("diagnosing…")

    @property
    def current(self) -> Optional[dict]:
        ol = self.query_one(FindingList)
        if ol.highlighted is None or not self.findings:
            return None
        return self.findings[ol.highlighted] if ol.highlighted < len(self.findings) else None

    def show(self, snapshot: Snapshot) -> None:
        section = snapshot.get("findings")
        previous = self.current.get("id") if self.current else None
        self.findings = errors_first([f for f in section.data or [] if isinstance(f, dict)])
        ol = self.query_one(FindingList)
        ol.clear_options()
        ol.add_options([Option(finding_prompt(f), id=f"f{i}") for i, f in enumerate(self.findings)])
        if not self.findings:
            self.show_status(section.note or "no findings: nothing wrong was found")
        else:
            errors = sum(1 for f in self.findings if f.get("severity") == "error")
            self.show_status("")
            self.border_subtitle = f"{errors} error(s), {len(self.findings)} finding(s)"
        index = 0
        for i, f in enumerate(self.findings):
            if f.get("id") == previous:
                index = i
        if self.findings:
            ol.highlighted = index
        self._show_detail()
        self.app.refresh_bindings()

    @on(OptionList.OptionHighlighted, "#findings-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_detail()
        self.app.refresh_bindings()  # x is offered only on a finding with a fix

    @on(OptionList.OptionSelected, "#findings-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        f = self.current
        if f is not None and not self.readonly and (f.get("fix") or {}).get("kind") not in (None, "manual"):
            self.post_message(self.FixRequested(f))

    def _show_detail(self) -> None:
        self.query_one("#findings-detail-body", Static).update(finding_detail(self.current, self.readonly))
