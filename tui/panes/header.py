"""The header: the verdict (GPU in use / CPU only / unknown), Ollama's version, era and lib folder."""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.panes.data import VERDICT_CPU, VERDICT_GPU, VERDICT_LABELS, Snapshot, verdict

_VERDICT_STYLES = {
    VERDICT_GPU: "bold black on green",
    VERDICT_CPU: "bold white on red",
    "unknown": "bold black on yellow",
}


class VerdictBar(Static):
    """Two lines: the verdict and where Ollama is; the report's summary."""

    DEFAULT_CSS = """
    VerdictBar {
        height: 2;
        background: $panel;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    busy: reactive[str] = reactive("")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Optional[Snapshot] = None
        self.root_label = ""
        self.readonly = False

    def show(self, snapshot: Optional[Snapshot]) -> None:
        self.snapshot = snapshot
        self.refresh_text()

    def watch_busy(self, value: str) -> None:
        self.refresh_text()

    @property
    def state(self) -> str:
        return verdict(self.snapshot)[0]

    def refresh_text(self) -> None:
        state, summary = verdict(self.snapshot)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {VERDICT_LABELS[state]} ", style=_VERDICT_STYLES[state])
        ollama = (self.snapshot.data("ollama") if self.snapshot else None) or {}
        log = (self.snapshot.data("log") if self.snapshot else None) or {}
        version = ollama.get("version") or log.get("ollama_version")
        era = ollama.get("era") or log.get("era")
        line.append("  Ollama ", style="bold")
        line.append(version or "?")
        if era:
            line.append(f"  era {era}")
        line.append("  lib ", style="bold")
        line.append(ollama.get("lib_dir") or "?")
        if log.get("library"):
            line.append("  library=", style="bold")
            line.append(str(log["library"]), style="bold green" if state == VERDICT_GPU else "bold red")
        if self.root_label:
            line.append("  root ", style="bold")
            line.append(self.root_label)
        if self.readonly:
            line.append("  READ-ONLY", style="bold reverse")
        second = Text(no_wrap=True, overflow="ellipsis")
        if self.busy:
            second.append("⟳ " + self.busy, style="italic")
        elif self.snapshot is None:
            second.append("scanning…", style="italic")
        else:
            second.append(summary or self._fallback_summary(state))
        both = Text("\n").join([line, second])
        both.no_wrap, both.overflow = True, "ellipsis"
        self.update(both)

    def _fallback_summary(self, state: str) -> str:
        if state == VERDICT_CPU:
            return "Ollama's last discovery ended on the CPU; see the findings."
        if state == VERDICT_GPU:
            return "Ollama's last discovery found the GPU."
        return "No discovery result in the log yet."
