"""The shim exports pane: the driver libraries Ollama's runner would load, their exports, the
required names they lack grouped by tier (fatal, degrading, informational), and the
difference to the real NVIDIA driver's export list.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from tui.panes.base import DeferredFocusStyle, Pane
from tui.panes.data import Snapshot

TIERS = ("fatal", "conditional", "degrading", "informational")
TIER_STYLES = {"fatal": "bold red", "conditional": "red", "degrading": "yellow", "informational": "dim"}
MODES = ("all", "missing", "diff")
COLUMNS = ("name", "status", "version", "note")
MODE_LABELS = {"all": "exports + missing", "missing": "missing only", "diff": "diff to real driver"}


def missing_rows(shim: dict) -> List[dict]:
    """[{name, tier, why}] of the required names the library lacks (probes.shim's tiers)."""
    rows = shim.get("missing_tiers")
    if isinstance(rows, list):
        return [r for r in rows if isinstance(r, dict)]
    return [{"name": n, "tier": t, "why": ""} for t, names in missing_by_tier(shim).items() for n in names]


def missing_by_tier(shim: dict) -> Dict[str, List[str]]:
    """{tier: [names]} from whichever form the shim check gives (dict, rows, or a flat list)."""
    if isinstance(shim.get("missing_tiers"), list):
        out: Dict[str, List[str]] = {}
        for row in shim["missing_tiers"]:
            out.setdefault(str(row.get("tier")), []).append(str(row.get("name")))
        return out
    for key in ("missing_by_tier", "tiers"):
        value = shim.get(key)
        if isinstance(value, dict):
            out = {}
            for tier, names in value.items():
                if isinstance(names, dict):  # {"missing": [...], ...}
                    names = names.get("missing") or []
                out[str(tier)] = [n if isinstance(n, str) else str(n.get("name")) for n in names or []]
            return out
    rows = shim.get("missing") or []
    out: Dict[str, List[str]] = {}
    for row in rows:
        if isinstance(row, dict):
            out.setdefault(str(row.get("tier") or "fatal"), []).append(str(row.get("name")))
        else:
            out.setdefault("required", []).append(str(row))
    return out


def real_driver_diff(shim: dict) -> Tuple[List[str], List[str]]:
    """(names the real NVIDIA driver exports that this library lacks, names only it has)."""
    kind = (shim.get("check") or {}).get("kind") or shim.get("against")
    try:
        from probes.shim import real_driver_exports

        real = set(real_driver_exports(str(kind))) if kind else set()
    except Exception:  # the shim check is not there yet, or has no list for this kind
        real = set()
    if not real:
        return [], []
    mine = {str(e.get("name")) for e in shim.get("exports") or [] if e.get("default_version", True)}
    return sorted(real - mine), sorted(mine - real)


def rows_for(shim: dict, mode: str, pattern: Optional[re.Pattern]) -> List[tuple]:
    """The table rows (name, status, version, type) for one shim in one mode."""
    rows: List[tuple] = []
    ok = (lambda name: True) if pattern is None else (lambda name: bool(pattern.search(name)))
    if mode in ("all", "missing"):
        order = lambda r: (TIERS.index(r.get("tier")) if r.get("tier") in TIERS else 9, str(r.get("name")))
        for row in sorted(missing_rows(shim), key=order):
            name, tier = str(row.get("name")), str(row.get("tier"))
            if ok(name):
                style = TIER_STYLES.get(tier, "red")
                rows.append((Text(name, style=style), Text(f"MISSING {tier}", style=style), Text(""),
                             Text(str(row.get("why") or ""), style="dim")))
    if mode == "all":
        for e in shim.get("exports") or []:
            name = str(e.get("name"))
            if ok(name):
                version = e.get("version") or ""
                if version and not e.get("default_version", True):
                    version = version + " (hidden)"
                rows.append((Text(name), Text("exported", style="green"), Text(version), Text(str(e.get("type") or ""))))
    if mode == "diff":
        lacks, extra = real_driver_diff(shim)
        for name in lacks:
            if ok(name):
                rows.append((Text(name, style="yellow"), Text("only in real driver", style="yellow"), Text(""), Text("")))
        for name in extra:
            if ok(name):
                rows.append((Text(name, style="cyan"), Text("only in shim", style="cyan"), Text(""), Text("")))
    return rows


def compile_filter(text: str) -> Optional[re.Pattern]:
    text = text.strip()
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE)


class ShimTable(DeferredFocusStyle, DataTable):
    BINDINGS = [
        Binding("slash", "pane_filter", "Filter"),
        Binding("m", "pane_mode", "Mode"),
        Binding("right_square_bracket", "pane_next", "Next lib"),
        Binding("left_square_bracket", "pane_prev", "Prev lib", show=False),
    ]

    def action_pane_filter(self) -> None:
        self.query_ancestor(ShimPane).open_filter()

    def action_pane_mode(self) -> None:
        self.query_ancestor(ShimPane).cycle_mode()

    def action_pane_next(self) -> None:
        self.query_ancestor(ShimPane).cycle_shim(1)

    def action_pane_prev(self) -> None:
        self.query_ancestor(ShimPane).cycle_shim(-1)


class ShimPane(Pane):
    PANE_ID = "shim"
    TITLE = "Shim exports"
    SHORT = "Shim"
    NUMBER = 3
    MAIN = "#shim-table"
    HELP = ("The driver libraries (libcuda.so.1, libnvidia-ml.so.1) Ollama's runner would load: "
            "their exports, the required names missing by tier, the diff to a real driver.")

    DEFAULT_CSS = """
    ShimPane #shim-head { height: auto; }
    ShimPane #shim-filter { height: 1; border: none; padding: 0 1; display: none; }
    ShimPane #shim-filter.-open { display: block; }
    ShimPane ShimTable { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shims: List[dict] = []
        self.index = 0
        self.mode = "all"
        self.pattern: Optional[re.Pattern] = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-status")
        yield Static("", id="shim-head")
        yield Input(placeholder="filter (regex), Enter to apply, Esc to close", id="shim-filter")
        table = ShimTable(id="shim-table", cursor_type="row", zebra_stripes=False)
        yield table

    def on_mount(self) -> None:
        self.show_status("scanning…")

    def show(self, snapshot: Snapshot) -> None:
        section = snapshot.get("shims")
        self.shims = [s for s in (section.data or []) if isinstance(s, dict)]
        self.index = min(self.index, max(0, len(self.shims) - 1))
        if not self.shims:
            notes = [n for n in snapshot.data("notes") or [] if "shim" in str(n)]
            self.show_status(notes[0] if notes else (section.note or "no driver library found on the runner's path"))
        else:
            self.show_status("")
        self.refill()

    @property
    def current(self) -> Optional[dict]:
        return self.shims[self.index] if self.shims else None

    def cycle_shim(self, step: int) -> None:
        if self.shims:
            self.index = (self.index + step) % len(self.shims)
            self.refill()

    def cycle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.refill()

    def open_filter(self) -> None:
        box = self.query_one("#shim-filter", Input)
        box.add_class("-open")
        box.focus()

    @on(Input.Changed, "#shim-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.pattern = compile_filter(event.value)
        self.refill()

    @on(Input.Submitted, "#shim-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one(ShimTable).focus()
        if not event.value:
            self.query_one("#shim-filter", Input).remove_class("-open")

    def key_escape(self) -> None:
        box = self.query_one("#shim-filter", Input)
        if box.has_focus:
            box.value = ""
            box.remove_class("-open")
            self.query_one(ShimTable).focus()

    def refill(self) -> None:
        shim = self.current
        head = Text(no_wrap=True, overflow="ellipsis")
        table = self.query_one(ShimTable)
        table.clear(columns=True)  # columns sized again for what the view shows
        table.add_columns(*COLUMNS)
        if shim is None:
            self.query_one("#shim-head", Static).update(head)
            return
        tiers = missing_by_tier(shim)
        head.append(f"{self.index + 1}/{len(self.shims)} ", style="dim")
        head.append(str(shim.get("path") or "?"), style="bold")
        if shim.get("via"):
            from tui.panes.libinfo import VIA_LABELS

            head.append(" " + VIA_LABELS.get(shim["via"], f"[{shim['via']}]"), style="cyan")
        head.append(f"  SONAME {shim.get('soname') or '(none)'} ELF{shim.get('elf_class') or '?'}", style="dim")
        check = shim.get("check") or {}
        head.append("\n")
        head.append(f"{len(shim.get('exports') or [])} exports", style="bold")
        if check.get("real_driver_exports"):
            head.append(f" · real driver has {check.get('missing_vs_real')} more", style="dim")
        head.append(" · missing ")
        for tier in TIERS:
            n = len(tiers.get(tier, []))
            if n or tier == "fatal":
                head.append(f"{tier} {n} ", style=TIER_STYLES[tier] if n else "green")
        for tier, names in tiers.items():
            if tier not in TIERS:
                head.append(f"{tier} {len(names)} ", style="red" if names else "dim")
        self.border_subtitle = f"m view: {MODE_LABELS[self.mode]}"
        self.query_one("#shim-head", Static).update(head)
        table.add_rows(rows_for(shim, self.mode, self.pattern))
