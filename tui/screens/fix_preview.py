"""The fix preview: the exact change (file diff or command) a finding's fix makes; y applies it.

The plan is computed by the fix engine in a worker when the screen opens; nothing is changed
until the user confirms. The screen returns the Preview to apply, or None.
"""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.panes.keybar import KeyBar
from probes.errors import ToolError
from tui.panes import actions


def render_preview(finding: dict, preview: Optional[actions.Preview], error: str = "") -> Text:
    out = Text()
    out.append("Finding  ", style="bold")
    out.append(str(finding.get("title") or finding.get("id")))
    fix = finding.get("fix") or {}
    out.append("\nFix      ", style="bold")
    out.append(str(fix.get("kind")), style="green")
    if fix.get("command"):
        out.append("   $ " + str(fix["command"]), style="bold")
    out.append("\n\n")
    if error:
        out.append("Cannot plan this fix: " + error, style="bold red")
        return out
    if preview is None:
        out.append("planning the change…", style="italic")
        return out
    if preview.summary:
        out.append(preview.summary + "\n", style="bold")
    if preview.diff:
        out.append("\nThe exact change:\n", style="bold")
        for line in preview.diff.splitlines():
            style = ""
            if line.startswith(("+++", "---")):
                style = "bold"
            elif line.startswith("+"):
                style = "green"
            elif line.startswith("-"):
                style = "red"
            elif line.startswith("@@"):
                style = "cyan"
            out.append(line + "\n", style=style)
    if preview.commands:
        out.append("\nCommands it runs:\n", style="bold")
        for c in preview.commands:
            out.append("  $ " + c + "\n", style="bold")
    out.append("\nThe change is journaled and can be undone (u in the Changes pane).", style="dim")
    return out


class FixPreviewScreen(ModalScreen[Optional[actions.Preview]]):
    BINDINGS = [
        Binding("y", "apply", "Apply"),
        Binding("n,escape", "cancel", "Cancel"),
    ]

    DEFAULT_CSS = """
    FixPreviewScreen { align: center middle; }
    FixPreviewScreen > Vertical { width: 90%; max-width: 110; height: 80%; border: round $warning; background: $panel; padding: 0 1; }
    FixPreviewScreen #fix-body { height: 1fr; }
    FixPreviewScreen Horizontal { height: 3; align: center middle; }
    FixPreviewScreen Button { margin: 0 2; }
    """

    def __init__(self, host, finding: dict) -> None:
        super().__init__()
        self.host = host
        self.finding = finding
        self.preview: Optional[actions.Preview] = None
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Preview the fix", style="bold"), id="fix-title")
            with VerticalScroll(id="fix-body"):
                yield Static(render_preview(self.finding, None), id="fix-text")
            with Horizontal():
                yield Button("Apply (y)", variant="warning", id="fix-apply", disabled=True)
                yield Button("Cancel (n)", id="fix-cancel")
        yield KeyBar()

    def on_mount(self) -> None:
        self.plan()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def plan(self) -> None:
        try:
            result = actions.preview(self.host, self.finding)
            error = ""
        except ToolError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # a bug in the engine: shown, never a crash
            result, error = None, f"{type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._planned, result, error)

    def _planned(self, result: Optional[actions.Preview], error: str) -> None:
        self.preview, self.error = result, error
        self.query_one("#fix-text", Static).update(render_preview(self.finding, result, error))
        self.query_one("#fix-apply", Button).disabled = result is None
        if result is not None:
            self.query_one("#fix-apply", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "fix-apply":
            self.action_apply()
        else:
            self.action_cancel()

    def action_apply(self) -> None:
        if self.preview is not None:
            self.dismiss(self.preview)

    def action_cancel(self) -> None:
        self.dismiss(None)
