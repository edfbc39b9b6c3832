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


# --against names probes.shim understands besides an Ollama version (anything else it would
# silently take for libcuda).
AGAINST_NAMES = ("libcuda", "libcuda.so.1", "cuda", "nvml", "libnvidia-ml", "libnvidia-ml.so.1")


def check_against(info: ElfInfo, against: str):
    """probes.shim.check_exports, or a ToolError when that module is not there."""
    try:
        from probes.eras import parse_version
        from probes.shim import check_exports
    except ImportError as exc:
        raise ToolError(f"--against is not available: {exc}")
    if against.lower() not in AGAINST_NAMES and parse_version(against) is None:
        raise ToolError(f"--against {against!r}: expected libcuda, nvml or an Ollama version like 0.24.0")
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


TIER_NAMES_SHOWN = 30  # per tier in the text; --json lists every name


def _check_lines(check, against: str, missing, findings):
    lines = []
    if missing:
        lines.append(paint(f"Missing against {against} ({len(missing)}):", "red"))
    else:
        lines.append(paint(f"Nothing required by {against} is missing.", "green"))
    for tier, names in _by_tier(check).items():
        shown = ", ".join(names[:TIER_NAMES_SHOWN])
        more = f", … (+{len(names) - TIER_NAMES_SHOWN} more; --json lists them)" if len(names) > TIER_NAMES_SHOWN else ""
        lines.append(f"  {tier} ({len(names)}): {shown}{more}")
    for f in findings:
        lines.append(f"  [{f.severity}] {f.title}")
    return lines


def run(args, ctx) -> int:
    path = ctx.system_path(args.lib)
    info = read_elf(ctx.host, path)
    if not info.is_elf:
        raise ToolError(f"{path}: {info.error or 'not an ELF file'}")
    if info.error and not info.exports and not info.imports:  # as `resolve` says: no symbols to list
        raise ToolError(f"{path}: {info.error}")
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
    if check is not None:  # the answer asked for comes first, before thousands of exports
        lines.append("")
        lines += _check_lines(check, args.against, missing, findings)
    lines.append("")
    lines.append(paint(f"Exports ({len(info.exports)}):", "bold"))
    ordered = sorted(info.exports, key=lambda s: (s.name, s.version or "", not s.default_version))
    lines += ["  " + l for l in table([(s.type, s.bind, readelf_style(s)) for s in ordered],
                                        header=("Type", "Bind", "Name"))]
    if not args.no_imports:
        lines.append("")
        lines.append(paint(f"Imports ({len(info.imports)}):", "bold"))
        lines += ["  " + (f"{i.name}@{i.version}" if i.version else i.name) + (" (weak)" if i.bind == "WEAK" else "")
                  for i in sorted(info.imports, key=lambda i: (i.name, i.version or ""))]
    print_lines(lines)
    return rc
