"""Printing for the headless commands: JSON on stdout, aligned text, colour only on a terminal."""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Iterable, List, Optional, Sequence, TextIO

from probes.facts import to_json

_COLOURS = {
    "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
    "cyan": "36", "dim": "2", "bold": "1",
}


def colour_enabled(stream: Optional[TextIO] = None) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    stream = stream or sys.stdout
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, colour: str, stream: Optional[TextIO] = None) -> str:
    if not colour_enabled(stream) or colour not in _COLOURS:
        return text
    return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def emit_json(value: Any, stream: Optional[TextIO] = None) -> None:
    (stream or sys.stdout).write(to_json(value) + "\n")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible_len(text: str) -> int:
    """The width a cell takes on screen: colour codes (paint) take none."""
    return len(_ANSI.sub("", text))


def table(rows: Sequence[Sequence[str]], header: Optional[Sequence[str]] = None, gap: int = 2) -> List[str]:
    """Rows aligned in columns (the last column is never padded); painted cells align too."""
    all_rows = ([list(header)] if header else []) + [list(r) for r in rows]
    if not all_rows:
        return []
    widths = [0] * max(len(r) for r in all_rows)
    for r in all_rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], visible_len(cell))
    lines = []
    for r in all_rows:
        cells = [c + " " * (widths[i] - visible_len(c)) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append((" " * gap).join(cells).rstrip())
    return lines


def print_lines(lines: Iterable[str], stream: Optional[TextIO] = None) -> None:
    stream = stream or sys.stdout
    for line in lines:
        stream.write(line + "\n")
