"""The live log's model: a bounded ring of raw lines, the filter, and the display transforms.

No Textual here: the pane asks this model which lines to show (filtered by a regex, `!`
inverts; timestamps shown or stripped; wrapped to a width or not), so filtering, wrapping
and timestamps are tested without a screen and memory stays bounded however long it runs.
"""
from __future__ import annotations

import collections
import re
from typing import Deque, Iterable, List, Optional, Pattern, Tuple

MAX_LINES = 20_000  # raw lines kept; older ones are dropped (bounded memory)

# The journald short prefix `Nov 29 19:34:12 host ollama[1234]: ` and slog's `time=… ` field:
# hidden when timestamps are off, as k9s does (the level and message stay).
JOURNAL_PREFIX = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [^\s:]+(?:\[\d+\])?: ")
SLOG_TIME = re.compile(r"^time=\S+ ")
SLOG_SOURCE = re.compile(r"^(level=\S+ )source=\S+ ")
GO_LOGGER_TIME = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")


def strip_timestamp(line: str) -> str:
    line = JOURNAL_PREFIX.sub("", line, count=1)
    line = SLOG_TIME.sub("", line, count=1)
    line = SLOG_SOURCE.sub(r"\1", line, count=1)  # the Go source position: noise for an operator
    return GO_LOGGER_TIME.sub("", line, count=1)


class LogFilter:
    """A `/` filter as k9s has it: a case-insensitive regex; a leading `!` inverts it."""

    def __init__(self, text: str = ""):
        self.text = text
        self.invert = text.startswith("!")
        body = text[1:] if self.invert else text
        self.error: Optional[str] = None
        self.pattern: Optional[Pattern[str]] = None
        if body:
            try:
                self.pattern = re.compile(body, re.IGNORECASE)
            except re.error as exc:  # a half-typed regex filters as plain text
                self.error = str(exc)
                self.pattern = re.compile(re.escape(body), re.IGNORECASE)

    @property
    def active(self) -> bool:
        return self.pattern is not None

    def matches(self, line: str) -> bool:
        if self.pattern is None:
            return True
        return bool(self.pattern.search(line)) != self.invert


class LogModel:
    """Raw lines (bounded) and the view options; `display()` gives the lines to show."""

    def __init__(self, max_lines: int = MAX_LINES):
        self.lines: Deque[str] = collections.deque(maxlen=max_lines)
        self.filter = LogFilter("")
        self.timestamps = False
        self.wrap = True  # the pane is narrow and discovery lines are long
        self.total = 0  # lines received since the start (including dropped ones)

    def set_filter(self, text: str) -> None:
        self.filter = LogFilter(text)

    def add(self, lines: Iterable[str]) -> List[str]:
        """Store new raw lines; return the display lines among them (filtered, transformed)."""
        fresh = [_clean(line) for line in lines]
        self.lines.extend(fresh)
        self.total += len(fresh)
        return [self.transform(line) for line in fresh if self.filter.matches(line)]

    def transform(self, line: str) -> str:
        return line if self.timestamps else strip_timestamp(line)

    def display(self, limit: Optional[int] = None) -> List[str]:
        """Every stored line that passes the filter, transformed (the last `limit` of them)."""
        shown = [self.transform(line) for line in self.lines if self.filter.matches(line)]
        return shown[-limit:] if limit else shown

    def counts(self) -> Tuple[int, int]:
        """(lines matching the filter, lines stored)."""
        if not self.filter.active:
            return len(self.lines), len(self.lines)
        return sum(1 for line in self.lines if self.filter.matches(line)), len(self.lines)


def wrap_lines(lines: Iterable[str], width: int) -> List[str]:
    """Hard-wrap lines at `width` columns (continuations indented by two spaces)."""
    if width < 8:
        return list(lines)
    out: List[str] = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        out.append(line[:width])
        rest = line[width:]
        step = width - 2
        while rest:
            out.append("  " + rest[:step])
            rest = rest[step:]
    return out


_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def _clean(line: str) -> str:
    """No ANSI colour or control characters (they would break the screen), no line ending."""
    line = line.rstrip("\r\n")
    return line if line.isprintable() else _CONTROL.sub("", line)  # isprintable: one C-speed pass
