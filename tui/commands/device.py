"""`vgpu-tui device`: PCI devices, device nodes, kernel modules, driver version, CPU."""
from __future__ import annotations

from typing import List

from probes import device
from tui.output import emit_json, paint, print_lines, table

SEVERITY_COLOUR = {"error": "red", "warning": "yellow", "info": "blue"}


def add_arguments(parser) -> None:
    parser.add_argument("--service-user", metavar="USER", default=None,
                        help="the user the Ollama service runs as (default: the unit's User=, else ollama)")
    parser.add_argument("--all", action="store_true",
                        help="list every PCI device (default: GPUs and display controllers first, others summarised)")


def service_user_for(args, ctx) -> str:
    """The service user: --service-user, else the Ollama unit's User= (probes.ollama), else ollama."""
    if getattr(args, "service_user", None):
        return args.service_user
    try:
        from probes import ollama  # written by the Ollama issue; optional here
        install = ollama.find_install(ctx.host, args)
        if install.user:
            return str(install.user)
    except Exception:  # noqa: BLE001 - the device pane must not fail on another probe
        pass
    return "ollama"


def run(args, ctx) -> int:
    facts = device.collect(ctx.host, gpu_ids=getattr(args, "gpu", None) or (),
                           service_user=service_user_for(args, ctx))
    if args.json:
        emit_json(facts)
    else:
        print_lines(render(facts, show_all=getattr(args, "all", False)))
    return 1 if any(f.severity == "error" for f in facts.findings) else 0


def _dash(v) -> str:
    return "-" if v is None or v == "" else str(v)


def render(facts: device.DeviceFacts, show_all: bool = False) -> List[str]:
    out: List[str] = []
    out.append(paint("PCI devices", "bold") + f"  (names: {facts.pci_ids or 'built-in excerpt, no pci.ids found'})")
    shown = [d for d in facts.pci if show_all or d.gpu or d.class_code.startswith("03")]
    rows = []
    for d in shown:
        mark = paint("GPU", "green") if d.gpu else ""
        rows.append([d.slot, d.ids, d.class_code, _dash(d.driver), _dash(d.iommu_group),
                     _dash(d.numa_node), mark,
                     " ".join(x for x in (d.vendor, d.name or d.class_name) if x) or "-"])
    if rows:
        out += ["  " + line for line in table(rows, ["slot", "ids", "class", "driver", "iommu", "numa", "", "name"])]
    else:
        out.append("  no GPU or display controller")
    hidden = len(facts.pci) - len(shown)
    if hidden:
        out.append(f"  ({hidden} other devices; --all lists them)")
    for d in facts.gpus:
        if d.subsystem_vendor_id:
            out.append(f"  {d.slot}: subsystem {d.subsystem_vendor_id}:{d.subsystem_device_id}"
                       f"{' ' + d.subsystem_name if d.subsystem_name else ''}; {d.gpu_reason}")
    out.append("")
    out.append(paint("Driver", "bold"))
    drv = facts.driver
    out.append(f"  version {_dash(drv.version)}" + (f" ({drv.module_type} kernel module, from {drv.source})" if drv.version else ""))
    for g in drv.gpus:
        out.append(f"  {_dash(g.bus_location)}  {_dash(g.model)}  {_dash(g.uuid)}  minor {_dash(g.minor)}"
                   f"  vbios {_dash(g.video_bios)}")
    out.append("  modules: " + ", ".join(
        (m.name + (f" {m.version}" if m.version else "")) if m.loaded else paint(m.name + " (not loaded)", "dim")
        for m in facts.modules if m.loaded or m.name in ("nvidia", "nvidia_uvm")))
    out.append("")
    u = facts.service_user
    who = (f"{u.name} (uid {u.uid}, groups {','.join(u.groups) or '-'})" if u.exists
           else f"{u.name} (not in /etc/passwd)")
    out.append(paint("Device nodes", "bold") + f"  (access judged for {who} by mode bits and groups)")
    rows = []
    for n in facts.nodes:
        if not n.exists:
            rows.append([n.path, paint("missing", "red") if n.required else "missing", "", "", "", ""])
            continue
        kind = "char" if n.char_device else paint("not a device", "red")
        access = {True: paint("yes", "green"), False: paint("NO", "red"), None: "?"}[n.service_user_access]
        rows.append([n.path, kind, f"{_dash(n.major)}:{_dash(n.minor)}", _dash(n.mode),
                     f"{_dash(n.owner)}:{_dash(n.group)}", access])
    if rows:
        out += ["  " + line for line in table(rows, ["node", "type", "maj:min", "mode", "owner", f"{u.name} may open"])]
    else:
        out.append("  no /dev/nvidia* nodes")
    out.append("")
    c = facts.cpu
    out.append(paint("CPU", "bold") + f"  {_dash(c.model)} ({c.count} logical{', hypervisor' if c.hypervisor else ''})")
    out.append(f"  vector extensions: {' '.join(c.features) or '-'}; ggml CPU variant: "
               f"{c.ggml_cpu_variants[0] if c.ggml_cpu_variants else '-'}")
    if facts.declared_gpus:
        out.append(f"\nDeclared GPU IDs: {', '.join(facts.declared_gpus)}" + (f" (config: {facts.config})" if facts.config else ""))
    for note in facts.notes:
        out.append(paint("note: ", "dim") + note)
    out.append("")
    out += findings_lines(facts.findings)
    return out


def findings_lines(findings) -> List[str]:
    if not findings:
        return [paint("No problems found.", "green")]
    out = [paint("Findings", "bold")]
    for f in findings:
        out.append(f"  {paint(f.severity.upper(), SEVERITY_COLOUR.get(f.severity, 'bold'))} [{f.category}] {f.title}")
        if f.detail:
            out.append(f"    {f.detail}")
        for e in f.evidence:
            out.append(f"    > {e}")
        if f.fix is not None:
            command = f.fix.command or f.fix.args.get("command")
            hint = f.fix.args.get("hint")
            if command and hint:  # e.g. "on the inspected system itself, not on this machine"
                out.append(f"    fix ({hint}): {command}")
            elif command or hint:
                out.append(f"    fix: {command or hint}")
    return out
