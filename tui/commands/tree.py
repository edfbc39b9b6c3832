"""`vgpu-tui tree [LIBDIR]` — a library folder as a tree, with what Ollama's scanner makes of it.

Without LIBDIR: the library folder of the Ollama install found (probes.ollama), each
backend folder annotated with the scanner's verdict (probes.scanner), and dependencies
resolved in the environment Ollama's runner would have for that folder.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from probes.errors import ToolError
from probes.facts import Finding, to_plain
from probes.libtree import TreeNode, scan_tree
from tui.commands.resolve import environment
from tui.output import emit_json, paint, print_lines


def add_arguments(parser) -> None:
    parser.add_argument("libdir", metavar="LIBDIR", nargs="?",
                        help="the folder to show (default: the Ollama install's library folder)")
    parser.add_argument("--exports", action="store_true", help="include every library's exports in the JSON")
    parser.add_argument("--env", metavar="NAME=VALUE", action="append", default=[],
                        help="resolve dependencies with this variable set (repeatable)")
    parser.add_argument("--clean-env", action="store_true", help="resolve in an empty environment")


def _ollama_context(ctx):
    """(lib_dir, install, backends) from probes.ollama and probes.scanner, when available."""
    try:
        from probes.ollama import find_install
    except ImportError as exc:
        raise ToolError(f"give LIBDIR: the Ollama install probe is not available ({exc})")
    install = find_install(ctx.host, ctx.args)
    lib_dir = getattr(install, "lib_dir", None)
    if not lib_dir:
        raise ToolError("no Ollama library folder was found; give LIBDIR (or --ollama PATH)")
    backends = []
    try:
        from probes.scanner import analyze
        backends = list(getattr(analyze(ctx.host, install), "backends", ()) or ())
    except ImportError:
        backends = []
    return lib_dir, install, backends


CUDA_BACKEND = "libggml-cuda.so"


def _broken(n: TreeNode) -> bool:
    return n.link_status in ("dangling", "loop") or bool(n.unresolved)


def tree_findings(tree: TreeNode) -> List[Finding]:
    """A broken link or unresolvable dependency is a warning — but an error, as `report` says
    too, when it breaks the CUDA backend and no other libggml-cuda.so in the tree would load."""
    out: List[Finding] = []
    backends = [n for n in tree.walk() if n.name == CUDA_BACKEND]
    fatal = bool(backends) and all(_broken(n) for n in backends)

    def severity(n: TreeNode) -> str:
        return "error" if fatal and n.name == CUDA_BACKEND else "warning"

    for n in tree.walk():
        if n.link_status in ("dangling", "loop") and (".so" in n.name):
            out.append(Finding(
                f"{'dangling' if n.link_status == 'dangling' else 'loop'}-link-{n.name}", "backend-lib-missing", severity(n),
                f"{n.path} is a {'dangling symlink' if n.link_status == 'dangling' else 'symlink loop'}",
                f"It points to {n.link_target!r}, which {'does not exist' if n.link_status == 'dangling' else 'leads back to itself'}.",
                (f"{n.path} -> {n.link_target}",)))
        if n.unresolved:
            out.append(Finding(
                f"unresolved-deps-{n.name}", "backend-lib-missing", severity(n),
                f"{n.path}: {', '.join(n.unresolved)} would not be found",
                "The loader would fail to open this library in the environment shown.",
                tuple(d.error if str(d.error or "").startswith(d.name + ":") else f"{d.name}: {d.error}"
                      for d in n.dependencies if d.found is None)))
    return out


def _line(n: TreeNode, verdict: Optional[str]) -> str:
    name = n.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    bits = [paint(name + ("/" if n.kind == "dir" else ""), "blue" if n.kind == "dir" else "bold" if n.elf else "")]
    if n.kind == "symlink":
        bits.append("-> " + (n.link_target or "?"))
        if n.link_status == "dangling":
            bits.append(paint("(dangling)", "red"))
        elif n.link_status == "loop":
            bits.append(paint("(loop)", "red"))
        elif n.link_status != "ok":
            bits.append(paint(f"({n.link_status})", "red"))
        elif n.resolves_to and n.leaves_tree and n.resolves_to != n.link_target:  # not said twice
            bits.append(paint(f"[{n.resolves_to}]", "dim"))
        if n.leaves_root:
            bits.append(paint("(climbs above the root)", "yellow"))
    elif n.kind not in ("file", "dir"):
        bits.append(paint(f"({n.kind})", "yellow"))
    if n.elf is not None:
        e = n.elf
        if e.is_elf and e.machine is None:
            bits.append(paint("ELF", "dim"))
        elif e.is_elf:
            desc = f"ELF{e.elf_class} {e.machine} {e.type}" + (f" SONAME {e.soname}" if e.soname else "")
            bits.append(paint(desc, "dim"))
            if e.error:
                bits.append(paint(f"({e.error})", "red"))
        elif n.kind == "file" or n.link_status == "ok":
            bits.append(paint(f"({e.error or 'not ELF'})", "yellow"))
    if n.unresolved:
        bits.append(paint("missing: " + ", ".join(n.unresolved), "red"))
    if n.error:
        bits.append(paint(f"({n.error})", "red"))
    if verdict:
        bits.append(verdict)
    return " ".join(b for b in bits if b)


def tree_lines(tree: TreeNode, verdicts: Mapping[str, str]) -> List[str]:
    lines = [_line(tree, verdicts.get(tree.path))]

    def walk(node: TreeNode, prefix: str) -> None:
        for i, c in enumerate(node.children):
            last = i == len(node.children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + _line(c, verdicts.get(c.path)))
            if c.children:
                walk(c, prefix + ("    " if last else "│   "))
    walk(tree, "")
    return lines


def _verdict_text(b) -> str:
    """One line per backend folder: the scanner's verdict (probes.scanner.BackendVerdict),
    whose reason is already a whole sentence ("probed ...", "not probed: ...")."""
    reason = str(getattr(b, "reason", "") or "")
    colour = "green" if getattr(b, "would_load", False) else ("red" if getattr(b, "probed", False) else "yellow")
    return paint(f"[scanner: {reason}]", colour)


def run(args, ctx) -> int:
    host = ctx.host
    backends = []
    folder_env = None
    if args.libdir:
        libdir = ctx.system_path(args.libdir)
        if not host.exists(libdir) and not host.islink(libdir):
            raise ToolError(f"{libdir}: no such folder")
        if not host.isdir(libdir):
            raise ToolError(f"{libdir}: not a folder (for one library: "
                            f"{ctx.on_this_system(f'vgpu-tui resolve {libdir}')})")
        env = environment(args, ctx)
    else:
        libdir, install, backends = _ollama_context(ctx)
        env = dict(getattr(install, "env", None) or {}) if not args.clean_env else {}
        for item in args.env:
            name, _, value = item.partition("=")
            env[name] = value
        base_llp = env.get("LD_LIBRARY_PATH", "")

        backend_envs = {getattr(b, "dir", "").rstrip("/"): dict(getattr(b, "env", None) or {})
                        for b in backends if getattr(b, "env", None)}

        def folder_env(folder: str, _base=dict(env)) -> Dict[str, str]:
            # The scanner's runner environment for a backend folder (it owns the rule per
            # era); elsewhere the library folder and the folder itself come first.
            if folder.rstrip("/") in backend_envs:
                e = dict(_base)
                e.update(backend_envs[folder.rstrip("/")])
                return e
            e = dict(_base)
            parts = [p for p in (folder, libdir, base_llp) if p]
            e["LD_LIBRARY_PATH"] = ":".join(dict.fromkeys(parts))
            return e
    tree = scan_tree(host, libdir, env, exports=args.exports, folder_env=folder_env)
    verdicts = {}
    for b in backends:
        d = getattr(b, "dir", None)
        if d:
            verdicts[d.rstrip("/")] = _verdict_text(b)
    findings = tree_findings(tree)
    rc = 1 if any(f.severity == "error" for f in findings) else 0
    if args.json:
        emit_json({"root": libdir, "tree": to_plain(tree), "backends": to_plain(backends),
                   "findings": to_plain(findings)})
        return rc
    print_lines(tree_lines(tree, verdicts))
    for b in backends:
        d = getattr(b, "dir", "")
        if d and d.rstrip("/") not in {n.path for n in tree.walk()}:
            print_lines([f"{d}: " + _verdict_text(b)])
    if findings:
        from tui.commands.device import findings_lines
        print_lines([""] + findings_lines(findings))
    return rc
