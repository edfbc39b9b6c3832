"""What the panes show, asked of the probes and turned into the contract's plain JSON.

The whole diagnosis comes from `probes.report.build_report`; while that module is not there
(the probes are built in parallel), each section falls back to its own probe, and a section
whose probe is missing carries a note ("not available yet: probes.device") instead of data.
Everything here is blocking and runs in the app's thread workers, never on the UI thread.
"""
from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from probes.facts import to_plain

NOT_YET = "not available yet"

# The report's sections, in the order the panes fill.
SECTIONS = ("ollama", "device", "tree", "backends", "shims", "probe", "log", "findings", "verdict", "notes")

# Where the demo VM's simulated Ollama writes its service log (the sandbox contract).
SANDBOX_LOG = "/var/log/ollama/ollama.log"


@dataclasses.dataclass
class Section:
    """One section of the report: plain JSON data, or a note saying why there is none."""

    data: Any = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclasses.dataclass
class Snapshot:
    """Everything the panes show at one moment."""

    sections: Dict[str, Section]
    elapsed: float = 0.0
    probe_pending: bool = False  # the load probe still runs: this is the static analysis
    report: Any = None  # probes.report's own object (for known-good snapshots: capture/diff_report)

    def get(self, name: str) -> Section:
        return self.sections.get(name) or Section(note=NOT_YET)

    def data(self, name: str, default: Any = None) -> Any:
        section = self.sections.get(name)
        return default if section is None or section.data is None else section.data


def _module(name: str):
    """A probe module, or None while it is not there yet."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _plain(value: Any) -> Any:
    return None if value is None else to_plain(value)


def _build_report(host, args) -> Tuple[Any, Optional[dict]]:
    """(the report object, its plain JSON), or (None, None) while probes.report is missing."""
    mod = _module("probes.report")
    fn = getattr(mod, "build_report", None) if mod else None
    if fn is None:
        return None, None
    options = _report_options_object(mod, args)
    raw = fn(host, options)
    return raw, _plain(raw)


def _report_options_object(mod, args):
    """`probes.report`'s own options from the command line's (its options_from_args)."""
    convert = getattr(mod, "options_from_args", None)
    if convert is not None:
        return convert(args)
    return args


def _fallback_device(host, args) -> Section:
    mod = _module("probes.device")
    if mod is None or not hasattr(mod, "collect"):
        return Section(note=f"{NOT_YET}: probes.device")
    return Section(_plain(mod.collect(host)))


def _fallback_ollama(host, args) -> Section:
    mod = _module("probes.ollama")
    if mod is None or not hasattr(mod, "find_install"):
        return Section(note=f"{NOT_YET}: probes.ollama")
    return Section(_plain(mod.find_install(host)))


def collect(host, args, progress: Optional[Callable[[str], None]] = None) -> Snapshot:
    """The whole snapshot: the report when it exists, else each probe that does."""
    started = time.perf_counter()
    say = progress or (lambda text: None)
    sections: Dict[str, Section] = {}
    say("building the report")
    raw = None
    try:
        raw, report = _build_report(host, args)
    except Exception as exc:  # a probe's bug must not take the screen down
        report = None
        sections["findings"] = Section(note=f"report failed: {type(exc).__name__}: {exc}")
    if report is not None:
        for name in SECTIONS:
            value = report.get(name)
            sections[name] = Section(value) if value is not None else Section(note="not in the report")
    else:
        for name, fallback in (("device", _fallback_device), ("ollama", _fallback_ollama)):
            say(f"reading {name}")
            try:
                sections[name] = fallback(host, args)
            except Exception as exc:
                sections[name] = Section(note=f"{name} failed: {type(exc).__name__}: {exc}")
        for name in SECTIONS:
            sections.setdefault(name, Section(note=f"{NOT_YET}: probes.report"))
    return Snapshot(sections, time.perf_counter() - started, report=raw)


# -- the header's verdict --------------------------------------------------------------

VERDICT_GPU, VERDICT_CPU, VERDICT_UNKNOWN = "gpu", "cpu", "unknown"
VERDICT_LABELS = {VERDICT_GPU: "GPU in use", VERDICT_CPU: "CPU only", VERDICT_UNKNOWN: "unknown"}


def verdict(snapshot: Optional[Snapshot]) -> Tuple[str, str]:
    """(state, summary): what the last discovery did, and the report's one-line summary."""
    if snapshot is None:
        return VERDICT_UNKNOWN, "scanning…"
    log = snapshot.data("log") or {}
    summary = (snapshot.data("verdict") or {}).get("summary") or ""
    return log_state(log), summary


def log_state(log: dict) -> str:
    """GPU in use / CPU only / unknown, from a parsed log (contract `logs` shape)."""
    if not log:
        return VERDICT_UNKNOWN
    if log.get("gpu_used") is True:
        return VERDICT_GPU
    library = (log.get("library") or "").lower()
    if log.get("gpu_used") is False or library == "cpu":
        return VERDICT_CPU
    if library in ("cuda", "rocm", "vulkan", "metal"):
        return VERDICT_GPU
    return VERDICT_UNKNOWN


def errors_first(findings: List[dict]) -> List[dict]:
    """Findings ordered error, warning, info (stable within a severity)."""
    rank = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings or [], key=lambda f: rank.get(f.get("severity"), 3))
