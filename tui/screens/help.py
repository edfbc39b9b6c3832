"""The help screen: what each pane shows and every key, generated from the bindings."""
from __future__ import annotations

from typing import Iterable, List, Tuple

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.panes.keybar import KeyBar


INTRO = (
    "vgpu-tui shows why Ollama runs on the CPU although a (virtual) NVIDIA GPU is there. "
    "Read the header's verdict, then the Findings pane: each finding has its evidence and, "
    "where possible, a fix. x previews the exact change, y applies it (journaled), r relaunches "
    "Ollama and shows the new discovery beside the old one, u undoes a change. T relaunches with "
    "the loader traced and marks on the library tree which process opened each library; d on "
    "the findings compares this state with a saved known-good snapshot."
)


KEY_NAMES = {"slash": "/", "question_mark": "?", "right_square_bracket": "]", "left_square_bracket": "[",
             "exclamation_mark": "!", "escape": "Esc", "f1": "F1", "f8": "F8", "tab": "Tab",
             "shift+tab": "Shift+Tab", "enter": "Enter"}


def key_label(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return " ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def section(title: str, help_text: str, bindings: Iterable[Binding]) -> Text:
    out = Text()
    out.append(title + "\n", style="bold underline")
    if help_text:
        out.append(help_text + "\n", style="dim")
    for b in bindings:
        if not b.description:
            continue
        out.append(f"  {key_label(b):>8}  ", style="bold cyan")
        out.append(b.description + "\n")
    return out


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "dismiss_help", "Close"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 110; height: 90%; border: round $accent; background: $panel; padding: 0 1; }
    """

    def __init__(self, sections: List[Tuple[str, str, list]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        body = Text()
        body.append("vgpu-tui — keys\n", style="bold")
        body.append(INTRO + "\n")
        body.append("In every pane: ↑ ↓ PgUp PgDn Home End move, Enter selects; ctrl+p opens the "
                    "command palette (every action, the themes); the mouse works too.\n\n", style="dim")
        for title, help_text, bindings in self.sections:
            body.append_text(section(title, help_text, bindings))
            body.append("\n")
        body.append("Esc, q or ? closes this screen.", style="dim")
        with VerticalScroll():
            yield Static(body, id="help-body")
        yield KeyBar()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
