"""The device pane: the GPU on the PCI bus, /dev/nvidia* nodes, kernel modules, driver, load probe."""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.panes.base import DeferredFocusStyle, Pane
from tui.panes.data import Snapshot

OK, BAD, WARN = "✓", "✗", "!"


def _mark(ok: Optional[bool]) -> Text:
    if ok is None:
        return Text("? ", style="yellow")
    return Text(OK + " ", style="green") if ok else Text(BAD + " ", style="bold red")


def render_device(device: Optional[dict], probe: Optional[dict], note: str = "", pending: bool = False) -> Text:
    """The pane's text from the contract's `device` and `probe` shapes."""
    out = Text()
    if not device:
        out.append(note or "no device facts", style="dim")
        out.append("\n")
    else:
        gpus = [p for p in device.get("pci") or [] if p.get("gpu")]
        out.append("PCI\n", style="bold")
        if not gpus:
            out.append_text(_mark(False))
            out.append("no NVIDIA / vGPU display device\n")
        for p in gpus:
            out.append_text(_mark(bool(p.get("driver"))))
            out.append(f"{p.get('slot', '?')} ")
            out.append(p.get("name") or f"{p.get('vendor_id')}:{p.get('device_id')}")
            out.append(f"  driver={p.get('driver') or 'none'}\n", style="dim" if p.get("driver") else "red")
        nodes = device.get("nodes") or []
        if nodes:
            out.append("Nodes\n", style="bold")
        for n in nodes:
            ok = bool(n.get("exists")) and n.get("usable", True) is not False
            out.append_text(_mark(ok))
            out.append(str(n.get("path")))
            extra = []
            if n.get("mode"):
                extra.append(str(n.get("mode")))
            if n.get("owner"):
                extra.append(f"{n.get('owner')}:{n.get('group', '')}")
            if not n.get("exists"):
                extra.append("missing")
            if extra:
                out.append("  " + " ".join(extra), style="dim")
            out.append("\n")
        modules = device.get("modules") or []
        if modules:
            out.append("Modules  ", style="bold")
            for m in modules:
                out.append_text(_mark(bool(m.get("loaded"))))
                out.append(f"{m.get('name')}  ")
            out.append("\n")
        driver = device.get("driver") or {}
        out.append("Driver   ", style="bold")
        out.append(driver.get("version") or "unknown", style="" if driver.get("version") else "yellow")
        if driver.get("source"):
            out.append(f"  ({driver['source']})", style="dim")
        out.append("\n")
    out.append_text(render_probe(probe, pending))
    return out


def render_probe(probe: Optional[dict], pending: bool = False) -> Text:
    out = Text()
    out.append("Load probe  ", style="bold")
    if pending:
        out.append("⟳ running in a child process…\n", style="italic")
        return out
    if not probe:
        out.append("not run\n", style="dim")
        return out
    if probe.get("crashed") or probe.get("timed_out"):
        out.append("crashed " + str(probe.get("signal") or "") if probe.get("crashed") else "timed out", style="bold red")
        out.append("\n")
    for key, label in (("libcuda", "libcuda"), ("nvml", "nvml")):
        lib = probe.get(key) or {}
        if not lib:
            continue
        out.append("\n")
        out.append_text(_mark(bool(lib.get("loaded"))))
        out.append(f"{label} ")
        out.append(str(lib.get("path") or "not found"), style="dim")
        if lib.get("error"):
            out.append(f"\n   {lib['error']}", style="red")
        if lib.get("device_count") is not None:
            out.append(f"\n   devices={lib['device_count']} init={lib.get('init_result')}")
        for dev in lib.get("devices") or []:
            out.append(f"\n   #{dev.get('index')} {dev.get('name')} cc {dev.get('compute')}")
    out.append("\n")
    return out


class DeviceScroll(DeferredFocusStyle, VerticalScroll):
    """The device pane's scrolling body (takes the focus)."""


class DevicePane(Pane):
    PANE_ID = "device"
    TITLE = "Device"
    SHORT = "Device"
    NUMBER = 1
    HELP = "PCI GPU, /dev/nvidia* nodes, kernel modules, driver version and the load probe's result."

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-status")
        with DeviceScroll(id="device-scroll"):
            yield Static(Text("scanning…", style="italic"), id="device-body")

    def on_mount(self) -> None:
        self.show_status("")

    def show(self, snapshot: Snapshot) -> None:
        section = snapshot.get("device")
        body = render_device(section.data, snapshot.data("probe"), section.note, snapshot.probe_pending)
        self.query_one("#device-body", Static).update(body)
