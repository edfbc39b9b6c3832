"""The footer: the keys of the focused pane and the app, as one line of text.

Textual's Footer re-mounts a widget per key whenever the focus moves (a relayout of the
screen: tens of ms a key on a busy 2-core VM). This bar renders the same active bindings as
one Text and only repaints itself; a click on a key runs its action, as with the Footer.
"""
from __future__ import annotations

from typing import List, Tuple

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widget import Widget

KEY_NAMES = {"slash": "/", "question_mark": "?", "right_square_bracket": "]", "left_square_bracket": "[",
             "escape": "esc", "exclamation_mark": "!", "ctrl+p": "^p", "ctrl+r": "^r", "f1": "F1",
             "f8": "F8", "tab": "tab", "enter": "enter"}


def key_style(value) -> Style:
    """The theme's key colour as a Rich style (ANSI themes name colours like `ansi_magenta`)."""
    try:
        return Style(color=Color.parse(value).rich_color, bold=True)
    except Exception:
        return Style(bold=True)


def key_text(key: str) -> str:
    first = key.split(",")[0].strip()
    return KEY_NAMES.get(first, first)


class KeyBar(Widget):
    """Every key the focused widget, its pane, the screen and the app offer (show=True)."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._text = Text()
        self._spans: List[Tuple[int, int, str, object]] = []
        self._last = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._changed)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.call_after_refresh(self.render_keys)

    def _theme_changed(self, theme) -> None:
        self._last = None
        self.render_keys()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)
        self.app.theme_changed_signal.unsubscribe(self)

    def _changed(self, screen) -> None:
        if screen is self.screen:
            self.render_keys()

    def render_keys(self) -> None:
        seen = set()
        rows = []
        palette = None
        for key, active in self.screen.active_bindings.items():
            b = active.binding
            if b.action == "command_palette" and self.app.ENABLE_COMMAND_PALETTE:
                palette = (active.node, b, active.enabled)
                continue
            if not b.show or not b.description or b.action in seen:
                continue
            seen.add(b.action)
            rows.append((active.node, b, active.enabled))
        state = tuple((id(n), b.key, b.action, e) for n, b, e in rows) + ((palette[1].key,) if palette else ())
        if state == self._last:
            return
        self._last = state
        t = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        accent = key_style(self.app.theme_variables.get("footer-key-foreground"))
        for node, b, enabled in rows + ([palette] if palette else []):
            start = len(t.plain)
            t.append(f" {b.key_display or key_text(b.key)} ", style=accent if enabled else Style(dim=True))
            t.append(("palette" if b.action == "command_palette" else b.description) + " ",
                     style="" if enabled else Style(dim=True))
            self._spans.append((start, len(t.plain), b.action, node))
        self._text = t
        self.refresh()  # one fixed line: no layout (Static.update would lay the screen out again)

    def render(self) -> Text:
        return self._text

    async def on_click(self, event) -> None:
        for start, end, action, node in self._spans:
            if start <= event.x < end:
                await self.app.run_action(action, node)
                return
