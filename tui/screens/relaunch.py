"""The relaunch watch: restart Ollama, follow its new log until discovery has finished, and show
the new discovery result beside the previous one.

The restart and the watch are the launcher's (probes.launcher.iter_relaunch: systemd, a
child process, or the sandbox's simulator); this screen shows its events as they come.
"""
from __future__ import annotations

import importlib
import time
from typing import Callable, List, Optional, Tuple

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Log, Static
from textual.worker import get_current_worker

from tui.panes.keybar import KeyBar
from probes.errors import ToolError
from probes.facts import to_plain
from tui.panes.logmodel import strip_timestamp
from tui.panes.signatures import SignatureHighlighter
from tui.screens.compare import CompareView

WATCH_S = 30.0


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class Watcher:
    """Runs one relaunch through the launcher and reports progress through callbacks.

    Called in a worker thread; `state` and `lines` are called with progress (lines batched
    every 50 ms so a chatty start does not flood the screen).
    """

    def __init__(self, host, state: Callable[[str], None], lines: Callable[[List[str]], None],
                 cancelled: Callable[[], bool], readonly: bool = False, trace: bool = False,
                 install=None):
        self.host = host
        self.state = state
        self.lines = lines
        self.cancelled = cancelled
        self.readonly = readonly
        self.trace = trace
        self.install = install
        self.trace_report = None  # probes.trace.TraceReport of a traced relaunch

    def run(self) -> Tuple[Optional[dict], dict]:
        """(the new log's report in the contract's `logs` shape, the relaunch result)."""
        launcher = _module("probes.launcher")
        if launcher is None or not hasattr(launcher, "iter_relaunch"):
            raise ToolError("relaunch: not available yet (probes.launcher)")
        batch: List[str] = []
        last = time.monotonic()
        result = None
        events = launcher.iter_relaunch(self.host, self.install, watch_seconds=WATCH_S, trace=self.trace,
                                        readonly=self.readonly)
        try:
            result = self._follow(events, batch, last)
        finally:
            # closing the generator now (not when collected) stops the follower and, for a
            # traced start, takes the tracing out of the service even when the user left early
            events.close()
        if result is None:
            raise ToolError("the relaunch gave no result")
        self.trace_report = getattr(result, "trace", None)
        after = getattr(result, "after", None)
        return (to_plain(after) if after is not None else None), to_plain(result)

    def _follow(self, events, batch: List[str], last: float):
        result = None
        for ev in events:
            if ev.kind == "line":
                batch.append(ev.text)
            elif ev.kind == "status":
                self.state(ev.text)
            elif ev.kind == "result":
                result = ev.result
            now = time.monotonic()
            if batch and (now - last >= 0.05 or ev.kind != "line"):
                self.lines(batch)
                batch, last = [], now
            if self.cancelled():
                break
        if batch:
            self.lines(batch)
        return result


class RelaunchScreen(ModalScreen[Optional[dict]]):
    """The watch. Returns the new discovery result (contract `logs` shape) or None."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    DEFAULT_CSS = """
    RelaunchScreen { align: center middle; }
    RelaunchScreen > Vertical { width: 96%; height: 92%; border: round $accent; background: $panel; }
    RelaunchScreen #watch-state { height: 1; padding: 0 1; }
    RelaunchScreen Log { height: 1fr; border-top: solid $panel-lighten-2; }
    """

    def __init__(self, host, before: Optional[dict], readonly: bool = False, trace: bool = False,
                 install=None) -> None:
        super().__init__()
        self.host = host
        self.readonly = readonly
        self.trace = trace
        self.install = install
        self.trace_report = None  # probes.trace.TraceReport, after a traced relaunch
        self.result: dict = {}
        self.before = before
        self.after: Optional[dict] = None
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical():
            title = ("Traced relaunch: which libraries each process opens (loader tracing for one start)"
                     if self.trace else "Relaunch and watch discovery")
            yield Static(Text(title, style="bold"), id="watch-title")
            yield Static(Text("starting…", style="italic"), id="watch-state")
            yield CompareView()
            log = Log(max_lines=5000, highlight=True, id="watch-log")
            log.highlighter = SignatureHighlighter()
            yield log
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(CompareView).show(self.before, None, "waiting for discovery…")
        self.watch()

    def set_state(self, text: str, style: str = "italic") -> None:
        self.query_one("#watch-state", Static).update(Text(("⟳ " if not self.done else "") + text, style=style))

    def add_lines(self, lines: List[str]) -> None:
        self.query_one("#watch-log", Log).write_lines([strip_timestamp(line) for line in lines])

    @work(thread=True, exclusive=True, exit_on_error=False)
    def watch(self) -> None:
        worker = get_current_worker()
        call = self.app.call_from_thread
        watcher = Watcher(self.host, lambda s: call(self.set_state, s), lambda ls: call(self.add_lines, ls),
                          lambda: worker.is_cancelled, readonly=self.readonly, trace=self.trace,
                          install=self.install)
        try:
            after, result = watcher.run()
            error = ""
        except ToolError as exc:
            after, result, error = None, {}, str(exc)
        except Exception as exc:  # a launcher bug: shown, never a crash
            after, result, error = None, {}, f"{type(exc).__name__}: {exc}"
        if worker.is_cancelled:
            return
        self.trace_report = watcher.trace_report
        call(self._finished, after, result, error)

    def _finished(self, after: Optional[dict], result: dict, error: str) -> None:
        self.done = True
        self.after = after
        self.result = result
        error = error or (result.get("problem") or "")
        note = f"{result.get('method', '')}: {' '.join(result.get('command') or [])}" if result else ""
        if error and after is None:
            self.set_state("relaunch failed: " + error + "   (Esc closes)", "bold red")
            self.query_one(CompareView).show(self.before, None, error)
            return
        if error:
            note = (note + "\n" if note else "") + error
        self.query_one(CompareView).show(self.before, after, note)
        if self.trace_report is not None:
            from probes import trace as T

            log = self.query_one("#watch-log", Log)
            log.write_lines(["", "──── trace " + "─" * 60] + T.format_report(self.trace_report))
            log.scroll_end(animate=False)
            what = ("the SIMULATED trace (the sandbox's discovery model, no loader ran)"
                    if getattr(self.trace_report, "method", "") == "simulator" else "the loader's trace")
            self.set_state(f"discovery finished; {what} is below and is laid over the library tree "
                           "(pane 2) — Esc returns", "bold")
            return
        self.set_state("discovery finished — Esc returns to the main screen (the panes are refreshed)", "bold")

    def action_close(self) -> None:
        self.workers.cancel_all()
        self.dismiss(self.after)
