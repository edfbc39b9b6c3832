"""`vgpu-tui exports LIB [--against SET]` — a library's dynamic exports and imports.

Text is aligned like `readelf --dyn-syms` (type, binding, name@@version); `--json` prints
the contract's `exports` object. `--against libcuda|nvml|X.Y.Z` lists the required names
the library lacks (probes.shim).
"""
from __future__ import annotations

from probes.elf import ElfInfo, read_elf, readelf_style
from probes.errors import ToolError
from probes.facts import to_plain
from tui.output import emit_json, paint, print_lines, table


def add_arguments(parser) -> None:
    parser.add_argument("lib", metavar="LIB", help="the shared library (a path of the inspected system)")
    parser.add_argument("--against", metavar="SET",
                        help="libcuda, nvml, or an Ollama version like 0.24.0: list the required symbols it lacks")
    parser.add_argument("--no-imports", action="store_true", help="leave the imported symbols out of the text")


def check_against(info: ElfInfo, against: str):
    """probes.shim.check_exports, or a ToolError when that module is not there."""
    try:
        from probes.shim import check_exports
    except ImportError as exc:
        raise ToolError(f"--against is not available: {exc}")
    return check_exports(info, against)


def _missing_and_findings(check):
    """(missing names, findings) of a probes.shim.ShimCheck (missing: MissingSymbol(name, tier, ...))."""
    missing = [getattr(m, "name", m) for m in (getattr(check, "missing", ()) or ())]
    return [str(m) for m in missing], list(getattr(check, "findings", ()) or ())


def _by_tier(check):
    """{tier: [names]} from ShimCheck.missing_detail (every tier, informational included)."""
    tiers = {}
    for m in getattr(check, "missing_detail", None) or getattr(check, "missing", ()) or ():
        tiers.setdefault(getattr(m, "tier", "missing"), []).append(getattr(m, "name", str(m)))
    return tiers


def exports_json(info: ElfInfo, against=None, check=None) -> dict:
    missing, findings = _missing_and_findings(check) if check is not None else ([], [])
    out = {
        "path": info.path, "soname": info.soname, "elf_class": info.elf_class, "machine": info.machine,
        "needed": list(info.needed), "exports": to_plain(info.exports), "imports": to_plain(info.imports),
        "against": against, "missing": missing, "findings": to_plain(findings),
        "error": info.error, "type": info.type, "version_definitions": list(info.version_definitions),
    }
    if check is not None:
        out["check"] = to_plain(check)
    return out


def run(args, ctx) -> int:
    path = ctx.system_path(args.lib)
    info = read_elf(ctx.host, path)
    if not info.is_elf:
        raise ToolError(f"{path}: {info.error or 'not an ELF file'}")
    check = check_against(info, args.against) if args.against else None
    missing, findings = _missing_and_findings(check) if check is not None else ([], [])
    rc = 1 if any(getattr(f, "severity", "") == "error" for f in findings) else 0
    if args.json:
        emit_json(exports_json(info, args.against, check))
        return rc
    lines = [paint(info.path, "bold"), "  " + info.summary()]
    if info.needed:
        lines.append("  needed:  " + ", ".join(info.needed))
    if info.rpath:
        lines.append("  rpath:   " + ":".join(info.rpath))
    if info.runpath:
        lines.append("  runpath: " + ":".join(info.runpath))
    lines.append("")
    lines.append(paint(f"Exports ({len(info.exports)}):", "bold"))
    lines += ["  " + l for l in table([(s.type, s.bind, readelf_style(s)) for s in info.exports],
                                        header=("Type", "Bind", "Name"))]
    if not args.no_imports:
        lines.append("")
        lines.append(paint(f"Imports ({len(info.imports)}):", "bold"))
        lines += ["  " + (f"{i.name}@{i.version}" if i.version else i.name) + (" (weak)" if i.bind == "WEAK" else "")
                  for i in info.imports]
    if check is not None:
        lines.append("")
        if missing:
            lines.append(paint(f"Missing against {args.against} ({len(missing)}):", "red"))
        else:
            lines.append(paint(f"Nothing required by {args.against} is missing.", "green"))
        for tier, names in _by_tier(check).items():
            lines.append(f"  {tier} ({len(names)}): " + ", ".join(names))
        for f in findings:
            lines.append(f"  [{f.severity}] {f.title}")
    print_lines(lines)
    return rc
