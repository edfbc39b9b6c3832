"""The library tree pane: Ollama's lib/ollama with symlink targets, broken links and backend verdicts.

The walk goes through the Host (so the demo's absolute links stay inside its root); each
backend folder is annotated with the scanner model's verdict from the report. Selecting a
library shows, below the tree, how the loader resolves its DT_NEEDED (with reasons) and,
for a driver library, what it exports against the required set.
"""
from __future__ import annotations

import dataclasses
import stat as stat_mod
from typing import Dict, List, Optional

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static, Tree

from tui.panes.base import DeferredFocusStyle, Pane
from tui.panes.data import Snapshot
from tui.panes import libinfo, traceview

MAX_ENTRIES = 3000  # a tree bigger than this is cut, with a note (bounded work and memory)
MAX_DEPTH = 4


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file of the tree, as the inspected system sees it."""

    path: str
    name: str
    kind: str  # "dir", "file", "link", "other"
    target: Optional[str] = None  # a symlink's target as written
    status: str = "ok"  # for links: ok / dangling / loop / not-dir / error
    final: Optional[str] = None  # where a link leads
    size: Optional[int] = None
    children: tuple = ()


def scan(host, top: str, depth: int = 0, budget: Optional[List[int]] = None) -> Entry:
    """The tree under `top` (links are shown, not entered; folders reached by a link are)."""
    budget = budget if budget is not None else [MAX_ENTRIES]
    name = top.rstrip("/").rsplit("/", 1)[-1] or "/"
    st = host.lstat(top)
    if st is None:
        return Entry(top, name, "other", status="missing")
    if stat_mod.S_ISLNK(st.st_mode):
        r = host.resolve(top)
        entry = Entry(top, name, "link", host.readlink(top), r.status, r.final)
        if r.ok and host.isdir(top) and depth < MAX_DEPTH:
            kids = _children(host, top, depth, budget)
            return dataclasses.replace(entry, children=kids)
        return entry
    if stat_mod.S_ISDIR(st.st_mode):
        kids = _children(host, top, depth, budget) if depth < MAX_DEPTH else ()
        return Entry(top, name, "dir", children=kids)
    if stat_mod.S_ISREG(st.st_mode):
        return Entry(top, name, "file", size=st.st_size)
    return Entry(top, name, "other")


def _children(host, folder: str, depth: int, budget: List[int]) -> tuple:
    kids = []
    for child in host.listdir(folder):
        if budget[0] <= 0:
            kids.append(Entry(folder + "/…", "… (cut: too many files)", "other"))
            break
        budget[0] -= 1
        kids.append(scan(host, folder.rstrip("/") + "/" + child, depth + 1, budget))
    # folders first, then files, each by name: how operators read `ls`
    return tuple(sorted(kids, key=lambda e: (e.kind != "dir" and not (e.kind == "link" and e.children), e.name)))


def _size(n: Optional[int]) -> str:
    if n is None:
        return ""
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024.0
    return ""


def label(entry: Entry, backend: Optional[dict] = None) -> Text:
    """A tree label: the name, the link target, broken-link marks, the scanner's verdict."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if entry.kind == "dir" or (entry.kind == "link" and entry.children):
        t.append(entry.name + "/", style="bold blue")
    elif entry.kind == "link" and entry.status != "ok":
        t.append("✗ ", style="bold red")
        t.append(entry.name, style="bold red")
    elif entry.kind == "link":
        t.append(entry.name, style="cyan")
    elif entry.kind == "file":
        t.append(entry.name)
    else:
        t.append(entry.name, style="dim")
    if entry.kind == "link":
        t.append(" → ", style="dim")
        t.append(entry.target or "?", style="red" if entry.status != "ok" else "dim cyan")
        if entry.status != "ok":
            t.append(f"  broken: {entry.status}", style="bold red")
    elif entry.kind == "file" and entry.size is not None:
        t.append(f"  {_size(entry.size)}", style="dim")
    if backend is not None:
        t.append("  ")
        t.append_text(backend_badge(backend))
    return t


def backend_badge(backend: dict) -> Text:
    """The scanner model's verdict for a backend folder, in words."""
    if backend.get("probed") and backend.get("would_load"):
        return Text("● probed, would load", style="bold green")
    if backend.get("probed") and "cuda_backend" in backend and not backend.get("cuda_backend"):
        return Text("● probed (CPU backends only)", style="dim")  # by design, not a fault
    if backend.get("probed"):
        return Text("● probed, would NOT load", style="bold red")
    return Text("○ not probed", style="bold yellow")


def backend_detail(entry: "Entry", backend: dict) -> Text:
    """The scanner model's whole verdict for one folder (shown when it is selected)."""
    out = Text()
    out.append(entry.path + "/", style="bold")
    out.append("\n")
    out.append_text(backend_badge(backend))
    reason = str(backend.get("reason") or "")
    if reason:  # the scanner's sentence starts with "probed"/"not probed": don't repeat the badge's words
        for lead in ("not probed: ", "not probed ", "probed: "):
            if reason.startswith(lead):
                reason = reason[len(lead):]
                break
        out.append("\n" + reason)
    return out


class LibTree(DeferredFocusStyle, Tree):
    """The tree widget; keys beyond Tree's own are shown in the footer."""

    BINDINGS = [
        Binding("e", "expand_all", "Expand all"),
        Binding("c", "collapse_all", "Collapse all"),
    ]

    def action_expand_all(self) -> None:
        self.root.expand_all()

    def action_collapse_all(self) -> None:
        self.root.collapse_all()
        self.root.expand()


class LibTreePane(Pane):
    PANE_ID = "libtree"
    TITLE = "Library tree"
    SHORT = "Tree"
    NUMBER = 2
    HELP = ("Ollama's lib/ollama: symlinks with their targets, broken links marked ✗, each "
            "backend folder with what Ollama's scanner does with it. Enter on a library: its "
            "dependency resolution and, for a driver library, its exports. After a traced "
            "relaunch (T) each library says which process opened it (● opened, ◐ under another "
            "name, · never opened, ✗ a dependency it needed was not found); on the demo the "
            "trace is SIMULATED from the sandbox's discovery model.")

    DEFAULT_CSS = """
    LibTreePane LibTree { height: 1fr; min-height: 4; }
    LibTreePane #libtree-detail { height: 45%; border-top: solid $panel-lighten-2; }
    LibTreePane #libtree-detail.-empty { display: none; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.host = None
        self.backends: Dict[str, dict] = {}
        self.top: Optional[str] = None
        self.selected: Optional[Entry] = None
        self._shown_key = None
        self.trace: Optional[traceview.Overlay] = None  # the last traced relaunch, overlaid

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-status")
        tree: LibTree = LibTree(Text("lib/ollama"), id="libtree-tree")
        tree.show_root = True
        tree.guide_depth = 3
        yield tree
        with VerticalScroll(id="libtree-detail", classes="-empty"):
            yield Static("", id="libtree-detail-body")

    def on_mount(self) -> None:
        self.show_status("scanning…")

    def show(self, snapshot: Snapshot, host) -> None:
        self.host = host
        ollama = snapshot.data("ollama") or {}
        backends = snapshot.data("backends") or []
        self.backends = {str(b.get("dir", "")).rstrip("/"): b for b in backends}
        top = ollama.get("lib_dir") or _guess_lib_dir(host)
        if not top:
            self.show_status("no lib/ollama folder found (" + (snapshot.get("ollama").note or "Ollama not found") + ")")
            self.query_one(LibTree).root.set_label(Text("(no Ollama library folder)", style="dim"))
            return
        self.top = top
        self.show_status("")
        self._trace_status()
        self.load_tree(host, top)

    # -- the traced relaunch's overlay ----------------------------------------------------
    def set_trace(self, overlay: Optional[traceview.Overlay]) -> None:
        """Lay a trace over the tree (None removes it); labels change in place, so what the
        user opened and selected stays."""
        self.trace = overlay
        self.border_subtitle = overlay.tag if overlay is not None else ""
        self._trace_status()
        tree = self.query_one(LibTree)
        for node in _nodes(tree.root):
            if node.data is not None:
                node.set_label(self._label(node.data))
        if self.selected is not None and not self.query_one("#libtree-detail").has_class("-empty"):
            self._show_detail(self.selected)

    def _trace_status(self) -> None:
        status = self.status_widget()
        # one line, cut at the pane's edge (the legend is whole when zoomed; the help has it)
        status.styles.text_wrap = "nowrap" if self.trace is not None else None
        status.styles.text_overflow = "ellipsis" if self.trace is not None else None
        if self.trace is None:
            return
        status.display = True
        status.update(traceview.status(self.trace))

    def _label(self, entry: Entry) -> Text:
        text = label(entry, self.backends.get(entry.path.rstrip("/")))
        mark = traceview.marker(self.trace, entry)
        words = traceview.badge(self.trace, entry)
        if mark is None and words is None:
            return text
        out = Text(no_wrap=True, overflow="ellipsis")
        if mark is not None:
            out.append_text(mark)
        out.append_text(text)
        if words is not None:
            out.append("  ")
            out.append_text(words)
        return out

    @work(thread=True, exclusive=True, group="libtree", exit_on_error=False)
    def load_tree(self, host, top: str) -> None:
        entry = scan(host, top)
        self.app.call_from_thread(self._fill, entry)

    def _fill(self, top: Entry) -> None:
        key = (top, tuple(sorted((d, str(sorted(b.items()))) for d, b in self.backends.items())))
        if key == self._shown_key:
            return  # the same files and verdicts: keep what the user opened and selected
        self._shown_key = key
        tree = self.query_one(LibTree)
        tree.clear()
        tree.root.set_label(self._label(top))
        tree.root.data = top
        if top.status == "missing":
            self.show_status(f"{top.path}: missing")
        self._add(tree.root, top)
        tree.root.expand()
        for node in tree.root.children:  # backend folders open: their verdict is the point
            if node.data is not None and node.data.children:
                node.expand()

    def _add(self, node, entry: Entry) -> None:
        for child in entry.children:
            text = self._label(child)
            if child.children:
                sub = node.add(text, data=child)
                self._add(sub, child)
            else:
                node.add_leaf(text, data=child)

    @on(Tree.NodeSelected, "#libtree-tree")
    def _selected(self, event: Tree.NodeSelected) -> None:
        entry = event.node.data
        if entry is None:
            return
        self._show_detail(entry)

    def _show_detail(self, entry: Entry) -> None:
        detail = self.query_one("#libtree-detail")
        body = self.query_one("#libtree-detail-body", Static)
        traced = traceview.detail(self.trace, entry)
        backend = self.backends.get(entry.path.rstrip("/"))
        if backend is not None or (traced is not None and (entry.kind == "dir" or entry.children)):
            self.selected = entry
            detail.remove_class("-empty")
            text = backend_detail(entry, backend) if backend is not None else Text(entry.path + "/", style="bold")
            body.update(_joined(traced, text))
            return
        if entry.kind not in ("file", "link") or entry.children:
            return
        self.selected = entry
        detail.remove_class("-empty")
        body.update(_joined(traced, Text(f"resolving {entry.path}…", style="italic")))
        self.resolve_selected(entry, traced)

    @work(thread=True, exclusive=True, group="libtree-detail", exit_on_error=False)
    def resolve_selected(self, entry: Entry, traced: Optional[Text] = None) -> None:
        text = libinfo.describe(self.host, entry.path, self.top)
        self.app.call_from_thread(self.query_one("#libtree-detail-body", Static).update, _joined(traced, text))


def _joined(first: Optional[Text], second: Text) -> Text:
    """The trace's lines (who opened it) above the library's own detail."""
    if first is None:
        return second
    out = first.copy()
    out.append("\n")
    out.append_text(second)
    return out


def _nodes(node):
    yield node
    for child in node.children:
        yield from _nodes(child)


def _guess_lib_dir(host) -> Optional[str]:
    for candidate in ("/usr/local/lib/ollama", "/usr/lib/ollama"):
        if host is not None and host.isdir(candidate):
            return candidate
    return None
