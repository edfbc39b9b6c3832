"""What the library tree shows for one selected library: ELF facts, resolution, exports.

Blocking (pyelftools, the loader model): called from a thread worker. Reads the contract's
`resolve` and `exports` shapes, so it only depends on the probe modules' entry points.
"""
from __future__ import annotations

import importlib
import re
from typing import Optional

from rich.text import Text

from probes.facts import to_plain

NOT_YET = "not available yet"

# Driver libraries: for these the exports are checked against a required set.
DRIVER_LIBS = (
    (re.compile(r"^libcuda\.so"), "libcuda"),
    (re.compile(r"^libnvidia-ml\.so"), "nvml"),
)

VIA_LABELS = {
    "rpath": "[rpath]", "ld_library_path": "[LD_LIBRARY_PATH]", "runpath": "[runpath]",
    "ld.so.cache": "[ld.so.cache]", "default": "[default path]", "absolute": "[direct]",
    "already-loaded": "[already loaded]",
}


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def driver_set(path: str) -> Optional[str]:
    name = path.rsplit("/", 1)[-1]
    for pattern, against in DRIVER_LIBS:
        if pattern.match(name):
            return against
    return None


def runner_env(path: str, lib_dir: Optional[str]) -> dict:
    """The environment Ollama 0.12.4+ gives the runner that opens a library of this folder:
    LD_LIBRARY_PATH = lib/ollama, then the backend folder (as its log shows)."""
    folder = path.rsplit("/", 1)[0]
    if not lib_dir:
        return {}
    inside = folder.startswith(lib_dir.rstrip("/") + "/")
    dirs = [lib_dir, folder] if inside else [lib_dir]
    return {"LD_LIBRARY_PATH": ":".join(dirs)}


def resolve_plain(host, path: str, env: Optional[dict]) -> Optional[dict]:
    """The loader model's dependency tree of `path` (probes.loader), or None while it is missing."""
    mod = _module("probes.loader")
    if mod is None or not hasattr(mod, "resolve_tree"):
        return None
    return to_plain(mod.resolve_tree(host, path, env))


def exports_plain(host, path: str, against: Optional[str]) -> Optional[dict]:
    """The contract's `exports` shape for `path` (with its missing names when `against` is given)."""
    mod = _module("probes.shim")
    if mod is not None and hasattr(mod, "exports_report"):
        return mod.exports_report(host, path, against)
    return None


def describe(host, path: str, lib_dir: Optional[str] = None) -> Text:
    """The detail text for one library (never raises: a failure is shown as text)."""
    out = Text()
    out.append(path, style="bold")
    r = host.resolve(path)
    for link, target in r.hops:
        out.append(f"\n  {link} → {target}", style="dim")
    if not r.ok:
        out.append(f"\n  ✗ {r.status}: {r.final}", style="bold red")
        return out
    env = runner_env(path, lib_dir)
    try:
        res = resolve_plain(host, path, env)
    except Exception as exc:
        res = None
        out.append(f"\n  resolution failed: {type(exc).__name__}: {exc}", style="red")
    if res is None:
        out.append(f"\n  dependency resolution: {NOT_YET} (probes.loader)", style="dim")
    else:
        if env:
            out.append(f"\n  as the runner loads it: LD_LIBRARY_PATH={env['LD_LIBRARY_PATH']}", style="dim")
        out.append_text(render_resolution(res))
    against = driver_set(path)
    if against:
        try:
            exp = exports_plain(host, path, against)
        except Exception as exc:
            exp = None
            out.append(f"\n  exports failed: {type(exc).__name__}: {exc}", style="red")
        if exp is not None:
            out.append_text(render_exports_summary(exp, against))
        else:
            out.append(f"\n  exports: {NOT_YET} (probes.shim)", style="dim")
    return out


def render_resolution(res: dict, depth: int = 0) -> Text:
    """Each DT_NEEDED with where it was found and by which rule, libtree style; for one not
    found, every path tried in order. Dependencies of dependencies one level down."""
    out = Text()
    if depth == 0:
        if res.get("error"):
            out.append(f"\n  ✗ {res['error']}", style="bold red")
        for key in ("rpath", "runpath"):
            if res.get(key):
                out.append(f"\n  {key.upper()} {':'.join(res[key])}", style="dim")
        out.append(f"\n  NEEDED ({len(res.get('children') or [])})", style="bold")
    pad = "  " * (depth + 1)
    for n in res.get("children") or []:
        if n.get("already_loaded") and depth > 0:
            continue
        found = n.get("path") and not n.get("error")
        out.append(f"\n{pad}")
        out.append("✓ " if found else "✗ ", style="green" if found else "bold red")
        out.append(str(n.get("name")))
        if found:
            out.append(f" → {n.get('path')} ", style="dim")
            out.append(VIA_LABELS.get(n.get("via") or "", f"[{n.get('via')}]"), style="cyan")
        else:
            out.append("  " + str(n.get("error") or "not found"), style="bold red")
            tried = n.get("tried") or []
            if tried:
                out.append(f"\n{pad}    paths considered in this order:", style="dim")
                for i, p in enumerate(tried, 1):
                    out.append(f"\n{pad}    {i}. {p}", style="dim")
        if depth < 1 and n.get("children"):
            out.append_text(render_resolution(n, depth + 1))
    return out


def render_exports_summary(exp: dict, against: Optional[str]) -> Text:
    out = Text()
    exports = exp.get("exports") or []
    out.append(f"\n  SONAME {exp.get('soname') or '(none)'}  ELF{exp.get('elf_class') or '?'} {exp.get('machine') or ''}", style="dim")
    out.append(f"\n  exports {len(exports)}", style="bold")
    missing = [f"{m.get('name')} ({m.get('tier')})" for m in exp.get("missing_tiers") or []] or exp.get("missing") or []
    if against:
        out.append(f"  against {against}: ")
        if missing:
            out.append(f"{len(missing)} missing", style="bold red")
            for name in missing[:40]:
                out.append(f"\n    ✗ {name}", style="red")
            if len(missing) > 40:
                out.append(f"\n    … {len(missing) - 40} more", style="dim")
        else:
            out.append("none missing", style="green")
        out.append("\n  (every export, by tier and against the real driver: pane 3)", style="dim")
    return out
