"""The Textual app: one screen to see why Ollama uses the CPU, fix it, relaunch and watch.

`run_app(args)` is what `vgpu-tui` (no subcommand) calls. The first frame is painted before
anything is read; a thread worker builds the Context (the demo VM, when --demo) and the
report, then fills the panes. Every change goes through the fix engine (journaled, undoable)
and `--readonly` removes every action (hidden from the footer, refused if invoked).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from types import SimpleNamespace
from typing import Dict, Iterable, List, Optional

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from probes.errors import ToolError
from tui.panes import actions, data
from tui.panes.base import Pane
from tui.panes.changes import ChangesPane
from tui.panes.device import DevicePane
from tui.panes.findings import FindingsPane
from tui.panes.header import VerdictBar
from tui.panes.keybar import KeyBar
from tui.panes.libtree import LibTreePane
from tui.panes.log import LogPane
from tui.panes.shim import ShimPane

PANES = (DevicePane, LibTreePane, ShimPane, LogPane, FindingsPane, ChangesPane)
NARROW_WIDTH = 100  # below this (or NARROW_HEIGHT rows) one pane at a time, with tabs
NARROW_HEIGHT = 30
ACTIONS_THAT_CHANGE = ("relaunch", "trace_relaunch", "undo_last", "fix")
MAIN_SCREEN_ONLY = ACTIONS_THAT_CHANGE + ("zoom", "rescan", "compare", "focus_pane", "help",
                                          "compare_snapshot", "save_snapshot")
DEFAULT_THEME = "textual-dark"
# The sizes of the 120x40 layout (app.tcss has the same; single-pane mode overrides them inline).
WIDE = {"row-top": 16, "device": 38, "col-findings": 58, "changes": 7}


class PaneTabs(Static):
    """The pane switcher shown when one pane fills the body (80×24, or zoomed)."""

    DEFAULT_CSS = """
    PaneTabs { height: 1; background: $panel; display: none; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.active = "findings"
        self._spans: List[tuple] = []

    def show_active(self, active: str) -> None:
        self.active = active
        t = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        for cls in PANES:
            start = len(t.plain)
            label = f" {cls.NUMBER} {cls.SHORT} "
            t.append(label, style="bold reverse" if cls.PANE_ID == active else "")
            self._spans.append((start, len(t.plain), cls.PANE_ID))
            t.append("│", style="dim")
        self.update(t)

    def on_click(self, event) -> None:
        for start, end, pane_id in self._spans:
            if start <= event.x < end:
                self.app.action_focus_pane(pane_id)


GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)


def freeze_heap() -> Optional[tuple]:
    """Move what the app has built so far (widgets, the report, modules: ~100k objects) out of
    the garbage collector's sight, and collect the young generation less often. Every frame
    allocates thousands of short-lived objects, so full collections came every few keys and
    each walked the whole heap: ~60 ms of the UI thread at a random key (the p95 of the key
    latency). Objects made later are still collected. Returns the old thresholds for
    `thaw_heap` (the app undoes it when it ends: the frozen widgets form reference cycles)."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(old[0], GC_YOUNG_THRESHOLD), *old[1:])
    return old


def thaw_heap(old: Optional[tuple]) -> None:
    gc.unfreeze()
    if old:
        gc.set_threshold(*old)


class MainScreen(Screen):
    """The main screen. Textual's `Screen.focused` repaints the whole screen on every focus
    change (a full 120x40 composite: ~25 ms a key on the 2-core VM); here only what the focus
    change itself restyles is repainted (the widget losing it, the one gaining it, the two
    pane borders and the key bar)."""

    focused: Reactive[Optional[Widget]] = Reactive(None, repaint=False)


class VgpuApp(App):
    """The vgpu-tui main screen."""

    CSS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.tcss")
    TITLE = "vgpu-tui"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("r", "relaunch", "Relaunch"),
        Binding("T", "trace_relaunch", "Trace"),
        Binding("u", "undo_last", "Undo last", show=False),
        Binding("z", "zoom", "Zoom"),
        Binding("ctrl+r", "rescan", "Rescan"),
        Binding("c", "compare", "Compare", show=False),
        Binding("tab", "cycle_pane(1)", "Next pane", show=False, priority=True),
        Binding("shift+tab", "cycle_pane(-1)", "Prev pane", show=False, priority=True),
        Binding("1", "focus_pane('device')", "Device", show=False),
        Binding("2", "focus_pane('libtree')", "Tree", show=False),
        Binding("3", "focus_pane('shim')", "Shim", show=False),
        Binding("4", "focus_pane('log')", "Log", show=False),
        Binding("5", "focus_pane('findings')", "Findings", show=False),
        Binding("6", "focus_pane('changes')", "Changes", show=False),
        Binding("f8", "screenshot", "Screenshot", show=False),
    ]

    def __init__(self, args, ctx=None) -> None:
        super().__init__()
        self.args = args
        self.readonly = bool(getattr(args, "readonly", False))
        self.ctx = ctx
        self.host = ctx.host if ctx is not None else None
        self.snapshot: Optional[data.Snapshot] = None
        self.active = "findings"
        self.zoomed = False
        self._layout_key: Optional[tuple] = None
        self._lit: Optional[Pane] = None  # the pane whose border shows the focus
        self._term_size = None
        self.last_compare: Optional[tuple] = None
        self.last_trace = None  # tui.panes.traceview.Overlay of the last traced relaunch
        self.timings: Dict[str, float] = {"start": time.perf_counter()}
        self._owns_ctx = ctx is None
        self._heap_frozen = False
        self._gc_thresholds: Optional[tuple] = None
        theme = os.environ.get("VGPU_TUI_THEME") or DEFAULT_THEME
        if theme in self.available_themes:
            self.theme = theme

    # -- layout -----------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        bar = VerdictBar(id="verdict")
        bar.readonly = self.readonly
        yield bar
        yield PaneTabs(id="pane-tabs")
        with Vertical(id="body"):
            with Horizontal(id="row-top"):
                yield DevicePane()
                yield LibTreePane()
                yield ShimPane()
            with Horizontal(id="row-bottom"):
                with Vertical(id="col-findings"):
                    yield FindingsPane()
                    yield ChangesPane()
                yield LogPane()
        yield KeyBar()

    def on_mount(self) -> None:
        self.timings["mounted"] = time.perf_counter()
        for pane in (self.query_one(FindingsPane), self.query_one(ChangesPane)):
            pane.readonly = self.readonly
        self._apply_layout()
        self.query_one(FindingsPane).focus_main()
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.call_after_refresh(self._first_paint)

    def _theme_changed(self, theme) -> None:
        if self._lit is not None:
            self._lit.mark_active(True)  # the lit border takes the new theme's accent

    def _first_paint(self) -> None:
        """The first frame is on the screen: only now start the work (it competes for the GIL)."""
        self.timings.setdefault("first_paint", time.perf_counter())
        self.prepare()

    def on_resize(self, event) -> None:
        self._term_size = event.size  # App.size is updated after this handler runs
        self._apply_layout()

    @property
    def single(self) -> bool:
        """One pane at a time: a small terminal, or zoomed."""
        size = self._term_size or self.size
        return self.zoomed or size.width < NARROW_WIDTH or size.height < NARROW_HEIGHT

    def _apply_layout(self) -> None:
        """Show every pane, or only the active one; touches the DOM only when that changes."""
        single = self.single
        key = (single, self.active if single else None)
        tabs = self.query_one(PaneTabs)
        if single:
            tabs.show_active(self.active)
        if key == self._layout_key:
            return
        self._layout_key = key
        # Inline styles on the few containers concerned: a class on the screen would restyle
        # every widget of it (~40 ms a key on a busy VM).
        tabs.display = single
        top_ids = ("device", "libtree", "shim")
        q = self.query_one
        q("#row-top").styles.height = "1fr" if single else WIDE["row-top"]
        q("#device").styles.width = "1fr" if single else WIDE["device"]
        q("#col-findings").styles.width = "1fr" if single else WIDE["col-findings"]
        q("#changes").styles.height = "1fr" if single and self.active == "changes" else WIDE["changes"]
        for cls in PANES:
            q(f"#{cls.PANE_ID}").display = (not single) or cls.PANE_ID == self.active
        q("#row-top").display = (not single) or self.active in top_ids
        q("#row-bottom").display = (not single) or self.active not in top_ids
        q("#col-findings").display = (not single) or self.active in ("findings", "changes")

    def on_descendant_focus(self, event) -> None:
        widget = event.widget if hasattr(event, "widget") else None
        node = widget
        while node is not None and not isinstance(node, Pane):
            node = node.parent
        if isinstance(node, Pane) and node is not self._lit:
            if self._lit is not None:
                self._lit.mark_active(False)
            node.mark_active(True)
            self._lit = node
            self.active = node.id
            self._apply_layout()

    # -- loading ----------------------------------------------------------------------
    def set_busy(self, text: str) -> None:
        self.query_one(VerdictBar).busy = text

    @work(thread=True, exclusive=True, group="prepare", exit_on_error=False)
    def prepare(self) -> None:
        """Build the Context (the demo VM) if needed, start the log, then the report."""
        call = self.call_from_thread
        if self.ctx is None:
            call(self.set_busy, "building the demo VM…" if getattr(self.args, "demo", False) else "opening the system…")
            from tui.context import Context

            try:
                self.ctx = Context.from_args(self.args)
            except ToolError as exc:
                call(self._fatal, str(exc))
                return
            self.host = self.ctx.host
        call(self._host_ready)
        self._collect()

    def _collect(self) -> None:
        """The report, in two steps when the load probe runs: the static analysis fills the
        panes at once, the probe's child process (up to its timeout with a hanging shim) then
        completes them, with its progress in the header."""
        call = self.call_from_thread
        probe = not getattr(self.args, "no_probe", False)
        steps = [(argparse.Namespace(**{**vars(self.args), "no_probe": True}), True)] if probe else []
        steps.append((self.args, False))
        for args, pending in steps:
            call(self.set_busy, "diagnosing: device, Ollama, libraries, shims, log…" if not pending or not probe
                 else "diagnosing (static analysis)…")
            try:
                snapshot = data.collect(self.host, args, progress=lambda s: call(self.set_busy, s))
            except Exception as exc:  # a probe's bug must not freeze or kill the screen
                snapshot = data.Snapshot({"findings": data.Section(note=f"diagnosis failed: {type(exc).__name__}: {exc}")})
            snapshot.probe_pending = pending and probe
            changes = actions.list_changes(self.host) if self.host is not None else []
            call(self._show_snapshot, snapshot, changes)
            if pending:
                call(self.set_busy, "load probe: dlopen and cuInit of the driver libraries in a child process…")

    def _fatal(self, message: str) -> None:
        self.set_busy("")
        self.query_one(VerdictBar).update(Text("vgpu-tui: " + message, style="bold red"))
        self.notify(message, severity="error", timeout=30)

    def _host_ready(self) -> None:
        bar = self.query_one(VerdictBar)
        if self.host is not None and not self.host.live:
            bar.root_label = ("demo VM " if self.host.is_sandbox else "") + self.host.root
        bar.refresh_text()
        self.query_one(LogPane).start(self.host, self.args)
        self.refresh_bindings()

    def _show_snapshot(self, snapshot: data.Snapshot, changes: List[dict]) -> None:
        self.snapshot = snapshot
        if not snapshot.probe_pending:
            self.set_busy("")
        self.query_one(VerdictBar).show(snapshot)
        self.query_one(DevicePane).show(snapshot)
        self.query_one(LibTreePane).show(snapshot, self.host)
        self.query_one(ShimPane).show(snapshot)
        self.query_one(FindingsPane).show(snapshot)
        self.query_one(ChangesPane).show(changes)
        self.refresh_bindings()
        self.timings.setdefault("filled", time.perf_counter())
        if not snapshot.probe_pending:
            self.timings.setdefault("complete", time.perf_counter())
            if not self._heap_frozen:
                self._heap_frozen = True
                self.set_timer(0.3, self._freeze_heap)

    async def settled(self, timeout: float = 20.0) -> bool:
        """Wait until the panes are filled and no worker runs but the log's follower (tests, bench)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [w for w in self.workers if w.is_running and w.group not in ("log-source",)]
            if "filled" in self.timings and not busy and not self.query_one(VerdictBar).busy:
                return True
            await asyncio.sleep(0.02)
        return False

    def action_rescan(self) -> None:
        if self.host is None:
            return
        self.rescan()

    @work(thread=True, exclusive=True, group="prepare", exit_on_error=False)
    def rescan(self) -> None:
        self._collect()

    def on_worker_state_changed(self, event) -> None:
        """A worker that failed (a bug in a probe or here) is said in one line, never a traceback."""
        from textual.worker import WorkerState

        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.set_busy("")
            self.notify(f"{event.worker.name} failed: {type(error).__name__}: {error}", severity="error", timeout=15)

    # -- focus and panes --------------------------------------------------------------
    def action_focus_pane(self, pane_id: str) -> None:
        self.active = pane_id
        self._apply_layout()
        self.query_one(f"#{pane_id}", Pane).focus_main()

    def action_cycle_pane(self, step: int) -> None:
        if isinstance(self.screen, Screen) and self.screen is not self.screen_stack[0]:
            # a modal screen: tab moves between its widgets as usual
            self.screen.focus_next() if step > 0 else self.screen.focus_previous()
            return
        ids = [cls.PANE_ID for cls in PANES]
        index = (ids.index(self.active) + step) % len(ids) if self.active in ids else 0
        self.action_focus_pane(ids[index])

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self._apply_layout()

    # -- actions ----------------------------------------------------------------------
    def check_action(self, action: str, parameters) -> Optional[bool]:
        if self.readonly and action in ACTIONS_THAT_CHANGE:
            return False
        if action in MAIN_SCREEN_ONLY and len(self.screen_stack) > 1:
            return False  # not from inside the fix preview, the watch or help
        if action in ("relaunch", "trace_relaunch", "undo_last") and self.host is None:
            return None  # shown greyed until the system is open
        return True

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        sections = [("Everywhere", "", [b for b in self.BINDINGS if self.check_action(b.action.split("(")[0], ()) is not False])]
        for cls in PANES:
            pane = self.query_one(f"#{cls.PANE_ID}", Pane)
            bindings: List[Binding] = []
            for widget in [pane] + list(pane.query("*")):
                if not type(widget).__module__.startswith("tui."):
                    continue  # Textual's own scrolling keys are listed once, in the intro
                for b in type(widget).__dict__.get("BINDINGS", []):
                    if isinstance(b, Binding) and not (self.readonly and b.action.startswith(("pane_fix", "pane_undo"))):
                        bindings.append(b)
            sections.append((f"{cls.NUMBER} {cls.TITLE}", getattr(cls, "HELP", ""), bindings))
        self.push_screen(HelpScreen(sections))

    @on(FindingsPane.FixRequested)
    def _fix_requested(self, event: FindingsPane.FixRequested) -> None:
        self.open_fix(event.finding)

    def open_fix(self, finding: dict) -> None:
        """Preview the finding's fix; apply it through the fix engine when confirmed."""
        if self.readonly or self.host is None:
            self.notify("read-only: changes are refused", severity="warning")
            return
        if (finding.get("fix") or {}).get("kind") == "relaunch":
            self.action_relaunch()  # the fix is the restart itself: the watch shows it
            return
        from tui.screens.fix_preview import FixPreviewScreen

        def confirmed(preview: Optional[actions.Preview]) -> None:
            if preview is not None:
                self.apply_fix(preview)

        self.push_screen(FixPreviewScreen(self.host, finding), confirmed)

    @work(thread=True, exclusive=True, group="change", exit_on_error=False)
    def apply_fix(self, preview: actions.Preview) -> None:
        call = self.call_from_thread
        call(self.set_busy, "applying the change…")
        try:
            record = actions.apply(self.host, preview, readonly=self.readonly)
        except ToolError as exc:
            call(self.notify, f"not applied: {exc}", severity="error", timeout=10)
            call(self.set_busy, "")
            return
        call(self.notify, f"applied {record.get('id')}: {record.get('summary')} — press r to relaunch Ollama")
        self._collect()

    @on(ChangesPane.UndoRequested)
    def _undo_requested(self, event: ChangesPane.UndoRequested) -> None:
        self.undo(event.change_id)

    def action_undo_last(self) -> None:
        self.undo(None)

    @work(thread=True, exclusive=True, group="change", exit_on_error=False)
    def undo(self, change_id: Optional[str]) -> None:
        call = self.call_from_thread
        if self.readonly:
            call(self.notify, "read-only: changes are refused", severity="warning")
            return
        call(self.set_busy, "undoing…")
        try:
            record = actions.undo(self.host, change_id, readonly=self.readonly)
        except ToolError as exc:
            call(self.notify, f"not undone: {exc}", severity="error", timeout=10)
            call(self.set_busy, "")
            return
        call(self.notify, f"undone {record.get('id')}: {record.get('summary')} — press r to relaunch Ollama")
        self._collect()

    def action_relaunch(self) -> None:
        self._relaunch(trace=False)

    def action_trace_relaunch(self) -> None:
        self._relaunch(trace=True)

    def _relaunch(self, trace: bool) -> None:
        """Relaunch and watch; traced, the loader's trace is then laid over the library tree."""
        if self.readonly or self.host is None:
            return
        from tui.screens.relaunch import RelaunchScreen

        before = self.snapshot.data("log") if self.snapshot else None
        screen = RelaunchScreen(self.host, before, readonly=self.readonly, trace=trace, install=self._install())

        def finished(after: Optional[dict]) -> None:
            self.last_compare = (before, after)
            if screen.trace_report is not None:
                self.show_trace(screen.trace_report)
            elif after is not None:
                self.query_one(LibTreePane).set_trace(None)  # a plain start since: that trace is history
            self.rescan()

        self.push_screen(screen, finished)

    def _install(self):
        """The Ollama binary the report found (a child-process relaunch starts that one)."""
        if self.host is None or self.host.is_sandbox or not self.host.live:
            return None
        given = getattr(self.args, "ollama", None)
        binary = (self.ctx.system_path(given) if given and self.ctx is not None else
                  ((self.snapshot.data("ollama") or {}).get("binary") if self.snapshot else None))
        return SimpleNamespace(binary=binary) if binary else None

    @work(thread=True, group="trace-overlay", exit_on_error=False)
    def show_trace(self, report) -> None:
        from tui.panes import traceview

        overlay = traceview.build(report, self.host)
        self.last_trace = overlay
        self.call_from_thread(self.query_one(LibTreePane).set_trace, overlay)

    def action_trace_report(self) -> None:
        if self.last_trace is None:
            self.notify("no traced relaunch yet: press T")
            return
        from tui.screens.textview import TextScreen

        self.push_screen(TextScreen("The last traced relaunch, per process", self.last_trace.lines,
                                    label="SIMULATED" if self.last_trace.simulated else ""))

    def action_clear_trace(self) -> None:
        self.last_trace = None
        self.query_one(LibTreePane).set_trace(None)
        self.query_one(LibTreePane).show_status("")

    # -- known-good snapshots (probes.snapshot) -------------------------------------------
    def _report_or_say(self):
        report = self.snapshot.report if self.snapshot is not None else None
        if report is None:
            self.notify("the report is not ready yet", severity="warning")
        return report

    def action_save_snapshot(self) -> None:
        """Save what the report knows as a named known-good state (`vgpu-tui snapshot save`)."""
        report = self._report_or_say()
        if report is None:
            return
        from probes import snapshot as snap
        from tui.screens.prompt import PromptScreen

        def answered(name: Optional[str]) -> None:
            if name:
                self.save_snapshot(report, name)

        default = time.strftime("known-good-%Y%m%d-%H%M")
        self.push_screen(PromptScreen(f"Save this state as a snapshot named (kept in {snap.snapshot_dir()}, "
                                      "or a path ending in .json):", default), answered)

    @work(thread=True, group="snapshot", exit_on_error=False)
    def save_snapshot(self, report, name: str) -> None:
        from probes import snapshot as snap

        try:
            path = snap.save(snap.capture(report, name), name)
        except ToolError as exc:
            self.call_from_thread(self.notify, f"not saved: {exc}", severity="error", timeout=10)
            return
        self.call_from_thread(self.notify, f"snapshot saved: {path}")

    def action_compare_snapshot(self) -> None:
        """Compare with…: pick a saved snapshot, see what differs now, most suspicious first."""
        report = self._report_or_say()
        if report is None:
            return
        from tui.screens.snapshots import SnapshotDiffScreen, SnapshotPickScreen

        def picked(name: Optional[str]) -> None:
            if name:
                self.push_screen(SnapshotDiffScreen(name, report))

        self.push_screen(SnapshotPickScreen(), picked)

    @on(FindingsPane.CompareRequested)
    def _compare_requested(self, event) -> None:
        self.action_compare_snapshot()

    def action_compare(self) -> None:
        if not self.last_compare:
            self.notify("no relaunch yet: press r to relaunch Ollama and compare")
            return
        from tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(*self.last_compare))

    def action_screenshot(self) -> None:
        path = self.save_screenshot()
        self.notify(f"screenshot saved: {path}")

    # -- command palette ----------------------------------------------------------------
    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help: keys and panes", "What each pane shows and every key", self.action_help)
        for cls in PANES:
            yield SystemCommand(f"Go to pane: {cls.NUMBER} {cls.TITLE}", getattr(cls, "HELP", ""),
                                lambda pane_id=cls.PANE_ID: self.action_focus_pane(pane_id))
        yield SystemCommand("Zoom the focused pane", "One pane fills the screen (z toggles)", self.action_zoom)
        yield SystemCommand("Rescan", "Read the system again and diagnose (ctrl+r)", self.action_rescan)
        yield SystemCommand("Log: filter", "Regex filter of the live log; a leading ! inverts (/)",
                            lambda: self._log_do("open_filter"))
        yield SystemCommand("Log: follow on/off", "Follow new lines (f)", lambda: self._log_do("toggle_follow"))
        yield SystemCommand("Log: wrap on/off", "Wrap long lines (w)", lambda: self._log_do("toggle_wrap"))
        yield SystemCommand("Log: timestamps on/off", "Show journald/slog timestamps (t)",
                            lambda: self._log_do("toggle_timestamps"))
        yield SystemCommand("Log: save to a file", "Write the lines the filter shows (s)", lambda: self._log_do("save"))
        yield SystemCommand("Shim: filter exports", "Regex filter of the export table (/)",
                            lambda: self._pane_do(ShimPane, "open_filter"))
        yield SystemCommand("Shim: change view", "exports + missing / missing only / diff to the real driver (m)",
                            lambda: self._pane_do(ShimPane, "cycle_mode"))
        yield SystemCommand("Compare before/after the last relaunch", "c", self.action_compare)
        yield SystemCommand("Compare with… a saved snapshot", "What differs from a known-good state, most "
                            "suspicious first (d on the findings pane)", self.action_compare_snapshot)
        yield SystemCommand("Save snapshot…", "Save this state as a known-good snapshot (vgpu-tui snapshot save)",
                            self.action_save_snapshot)
        if self.last_trace is not None:
            yield SystemCommand("Trace: show the last traced relaunch", "Per process: libraries opened, "
                                "failed searches", self.action_trace_report)
            yield SystemCommand("Trace: remove the overlay from the library tree", "", self.action_clear_trace)
        yield SystemCommand("Theme: ANSI dark (the terminal's own colours, best over SSH)", "",
                            lambda: setattr(self, "theme", "ansi-dark"))
        yield SystemCommand("Theme: ANSI light (the terminal's own colours)", "",
                            lambda: setattr(self, "theme", "ansi-light"))
        if not self.readonly:
            finding = self.query_one(FindingsPane).current
            if finding is not None and (finding.get("fix") or {}).get("kind") not in (None, "manual"):
                yield SystemCommand(f"Fix: {finding.get('title')}", "Preview the change, then apply it (x)",
                                    lambda: self.open_fix(finding))
            yield SystemCommand("Relaunch Ollama and watch discovery", "r", self.action_relaunch)
            yield SystemCommand("Traced relaunch: which libraries each process opens",
                                "LD_DEBUG (and strace) for one start, then laid over the library tree (T)",
                                self.action_trace_relaunch)
            yield SystemCommand("Undo the last change", "u", self.action_undo_last)

    def _log_do(self, name: str) -> None:
        self.action_focus_pane("log")
        getattr(self.query_one(LogPane), name)()

    def _pane_do(self, cls, name: str) -> None:
        self.action_focus_pane(cls.PANE_ID)
        getattr(self.query_one(cls), name)()

    def _freeze_heap(self) -> None:
        if self.is_running:
            self._gc_thresholds = freeze_heap()

    # -- shutdown -----------------------------------------------------------------------
    def on_unmount(self) -> None:
        if self._gc_thresholds is not None:
            thaw_heap(self._gc_thresholds)
            self._gc_thresholds = None
        if self._owns_ctx and self.ctx is not None:
            self.ctx.__exit__(None, None, None)


def run_app(args) -> int:
    """Start the TUI (`vgpu-tui` without a subcommand); the exit status."""
    screen = sys.__stderr__  # Textual's Linux driver paints on stderr
    if not (sys.stdin.isatty() and screen is not None and screen.isatty()) and not getattr(VgpuApp, "HEADLESS", False):
        # Without a terminal the app would paint escape codes into a pipe forever.
        example = "vgpu-tui report --demo" if getattr(args, "demo", False) else "vgpu-tui report"
        raise ToolError(f"the TUI needs a terminal; for scripts use a subcommand, e.g. `{example}` (see --help)")
    app = VgpuApp(args)
    app.run()
    return int(app.return_code or 0)
