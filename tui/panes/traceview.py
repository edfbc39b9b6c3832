"""A traced relaunch laid over the library tree: which process opened each library, which
libraries no traced process opened, which dependency searches failed, which runner searched
which backend folder.

The trace is probes.trace's TraceReport (recorded with LD_DEBUG/strace, or on a sandbox
computed from its discovery model and labelled SIMULATED); `build` turns it into look-ups by
inspected path. Blocking (it follows symlinks through the Host): call it from a worker.
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Dict, List, Optional, Tuple

from rich.text import Text

SIMULATED = "SIMULATED"
# probes.trace.simulated_report's note for a backend folder no runner probed
_NEVER_PROBED = re.compile(r"^(?P<folder>/\S+) was never probed \((?P<why>.*)\)$")
LIBRARY = re.compile(r"\.so(\.|$)")


@dataclasses.dataclass
class Overlay:
    """What the tree shows of one trace."""

    simulated: bool
    when: str                                   # the time of the traced relaunch (HH:MM:SS)
    how: str                                    # "LD_DEBUG + strace", "LD_DEBUG", "SIMULATED …"
    processes: List[str]                        # labels, in start order
    opened: Dict[str, List[str]]                # path as the process opened it -> labels
    reached: Dict[str, List[Tuple[str, str]]]   # the file it leads to -> (label, path opened)
    failed: Dict[str, List[Tuple[str, object]]]  # the library that asked -> (label, FailedLoad)
    failed_all: List[Tuple[str, object]]
    searched: Dict[str, List[str]]              # folder on a runner's LD_LIBRARY_PATH -> labels
    never_probed: Dict[str, str]                # backend folder -> why no runner probed it
    notes: List[str]
    lines: List[str]                            # probes.trace.format_report

    @property
    def tag(self) -> str:
        return f"trace {self.when}" + (f" · {SIMULATED}" if self.simulated else "")


def now() -> str:
    """The overlay's time stamp (the screenshot script fixes it)."""
    return time.strftime("%H:%M:%S")


def build(report, host) -> Overlay:
    """The overlay of a probes.trace.TraceReport (symlinks followed inside the inspected root)."""
    from probes import trace as T

    simulated = report.method == "simulator"
    how = ("SIMULATED from the sandbox's discovery model" if simulated
           else "LD_DEBUG + strace" if report.strace else "LD_DEBUG")
    opened: Dict[str, List[str]] = {}
    reached: Dict[str, List[Tuple[str, str]]] = {}
    failed: Dict[str, List[Tuple[str, object]]] = {}
    failed_all: List[Tuple[str, object]] = []
    searched: Dict[str, List[str]] = {}
    labels: List[str] = []
    for label, p in T.labelled(report.processes):
        labels.append(label)
        for path in p.opened:
            opened.setdefault(path, []).append(label)
            final = _final(host, path)
            reached.setdefault(final, []).append((label, path))
        for f in p.failed:
            failed_all.append((label, f))
            if f.requested_by:
                failed.setdefault(f.requested_by, []).append((label, f))
                failed.setdefault(_final(host, f.requested_by), []).append((label, f))
        if p.role != "server":
            for folder in p.library_path:
                searched.setdefault(folder.rstrip("/"), []).append(label)
    never: Dict[str, str] = {}
    for note in report.notes:
        m = _NEVER_PROBED.match(note)
        if m:
            never[m.group("folder").rstrip("/")] = m.group("why")
    for key, value in failed.items():  # a failure reached by two names is listed once
        failed[key] = list({id(f): (label, f) for label, f in value}.values())
    return Overlay(simulated, now(), how, labels, opened, reached, failed, failed_all,
                   searched, never, list(report.notes), T.format_report(report))


def _final(host, path: str) -> str:
    try:
        r = host.resolve(path)
        return r.final if r.ok and r.final else path
    except Exception:  # a path the host cannot follow: keep it as written
        return path


def _short(labels: List[str]) -> str:
    return labels[0] + (f" +{len(labels) - 1}" if len(labels) > 1 else "")


def _same_file(ov: Overlay, entry) -> List[Tuple[str, str]]:
    """(label, name it was opened as) for the file this entry is, opened under another name."""
    final = entry.final if entry.kind == "link" and entry.final else entry.path
    return [(label, p) for label, p in ov.reached.get(final, []) if p != entry.path]


def marker(ov: Optional[Overlay], entry) -> Optional[Text]:
    """Two cells before the name: ● opened, ◐ opened under another name, ✗ a search it asked
    for failed, · never opened (libraries only)."""
    if ov is None:
        return None
    if entry.kind == "dir" or getattr(entry, "children", ()):
        return None
    if ov.failed.get(entry.path):
        return Text("✗ ", style="bold red")
    if ov.opened.get(entry.path):
        return Text("● ", style="bold green")
    if _same_file(ov, entry):
        return Text("◐ ", style="green")
    if LIBRARY.search(entry.name):
        return Text("· ", style="dim")
    return None


def badge(ov: Optional[Overlay], entry) -> Optional[Text]:
    """The words after the label: who opened it, or that nobody did."""
    if ov is None:
        return None
    path = entry.path.rstrip("/")
    if entry.kind == "dir" or getattr(entry, "children", ()):
        if path in ov.never_probed:
            return Text(f"○ never probed ({ov.never_probed[path]})", style="bold yellow")
        if ov.searched.get(path):
            return Text(f"◆ searched by {_short(ov.searched[path])}", style="green")
        return None
    t = Text()
    fails = ov.failed.get(entry.path) or []
    if fails:
        t.append(f"✗ {fails[0][1].name} not found ({fails[0][0]})", style="bold red")
        return t
    if ov.opened.get(entry.path):
        t.append(f"opened by {_short(ov.opened[entry.path])}", style="bold green")
        return t
    same = _same_file(ov, entry)
    if same:
        label, name = same[0]
        t.append(f"opened as {name.rsplit('/', 1)[-1]} by {label}", style="green")
        return t
    if LIBRARY.search(entry.name):
        t.append("never opened", style="dim italic")
        return t
    return None


def detail(ov: Optional[Overlay], entry) -> Optional[Text]:
    """For the selected library or folder: every process that opened it, and what failed."""
    if ov is None:
        return None
    out = Text()
    out.append(f"Traced relaunch ({ov.how}, {ov.when})", style="bold magenta" if ov.simulated else "bold")
    path = entry.path.rstrip("/")
    if entry.kind == "dir" or getattr(entry, "children", ()):
        if path in ov.never_probed:
            out.append(f"\n  ○ no runner probed this folder ({ov.never_probed[path]})", style="yellow")
        for label in ov.searched.get(path, []):
            out.append(f"\n  ◆ on the LD_LIBRARY_PATH of {label}", style="green")
        if path not in ov.never_probed and not ov.searched.get(path):
            out.append("\n  no traced process searched this folder", style="dim")
        return out
    for label in ov.opened.get(entry.path, []):
        out.append(f"\n  ● opened by {label}", style="green")
    for label, name in _same_file(ov, entry):
        out.append(f"\n  ◐ opened as {name} by {label}", style="green")
    for label, f in ov.failed.get(entry.path, []):
        out.append(f"\n  ✗ {label}: {f.name} ({f.how} this library) not found", style="bold red")
        looked = ", ".join(dict.fromkeys(f.searched))
        if looked:
            out.append(f"\n      looked in {looked}", style="dim")
        if f.error:
            out.append(f"\n      {f.error}", style="dim")
        for i, tried in enumerate(f.tried[:12], 1):
            out.append(f"\n      {i}. {tried}", style="dim")
    if not (ov.opened.get(entry.path) or _same_file(ov, entry) or ov.failed.get(entry.path)):
        n = len(ov.processes)
        out.append(f"\n  · never opened by any of the {n} traced process{'es' if n != 1 else ''}", style="yellow")
        if ov.never_probed:
            for folder, why in ov.never_probed.items():
                out.append(f"\n    ({folder} was never probed: {why})", style="dim")
    return out


def status(ov: Overlay) -> Text:
    """The pane's status line while the overlay is shown (the SIMULATED label stays visible)."""
    t = Text()
    if ov.simulated:
        t.append(f" {SIMULATED} ", style="bold white on magenta")
        t.append(" ")
    t.append(f"{len(ov.opened)} opened, {len(ov.failed_all)} failed", style="bold")
    t.append(f" · {len(ov.processes)} process(es) traced {ov.when}", style="")
    t.append(" · ● opened ◐ under another name · never ✗ failed", style="dim")
    return t
