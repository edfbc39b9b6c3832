"""`vgpu-tui resolve LIB [--env NAME=VALUE ...]` — how the loader resolves each DT_NEEDED.

Text is a tree like libtree's: each dependency with the rule that found it (`[rpath]`,
`[LD_LIBRARY_PATH]`, `[runpath]`, `[ld.so.cache]`, `[default path]`), objects met again
marked, and for anything not found the numbered paths the loader considered.
"""
from __future__ import annotations

import os
from typing import Dict, List

from probes.errors import ToolError
from probes.facts import to_plain
from probes.loader import ResolveNode, resolve_findings, resolve_tree
from tui.output import emit_json, paint, print_lines

TAGS = {"rpath": "[rpath]", "ld_library_path": "[LD_LIBRARY_PATH]", "runpath": "[runpath]",
        "ld.so.cache": "[ld.so.cache]", "default": "[default path]", "absolute": "[direct]",
        "already-loaded": "[already loaded]"}


def add_arguments(parser) -> None:
    parser.add_argument("lib", metavar="LIB", help="the library or program (a path of the inspected system)")
    parser.add_argument("--env", metavar="NAME=VALUE", action="append", default=[],
                        help="set a variable of the environment the loader sees (repeatable; NAME= empties it)")
    parser.add_argument("--clean-env", action="store_true",
                        help="start from an empty environment instead of this tool's (or the root's) own")
    parser.add_argument("--no-preload", action="store_true", help="ignore LD_PRELOAD and /etc/ld.so.preload")
    parser.add_argument("--depth", type=int, default=0, metavar="N", help="show only N levels (0: all)")


def environment(args, ctx) -> Dict[str, str]:
    env = {} if args.clean_env else dict(ctx.host.env)
    for item in args.env:
        if "=" not in item:
            raise ToolError(f"--env {item}: expected NAME=VALUE")
        name, value = item.split("=", 1)
        if not name:
            raise ToolError(f"--env {item}: the name is empty")
        if value == "":
            env.pop(name, None)
        else:
            env[name] = value
    return env


def resolve_json(tree: ResolveNode, findings) -> dict:
    direct = [c for c in tree.children if not c.preload]
    return {
        "path": tree.path, "rpath": list(tree.rpath), "runpath": list(tree.runpath),
        "needed": [{"name": c.name, "found": c.path if c.error is None else None,
                    "via": c.via if c.error is None else None, "tried": list(c.tried),
                    "error": c.error, "realpath": c.realpath, "skipped": list(c.skipped)} for c in direct],
        "preload": [{"name": c.name, "found": c.path if c.error is None else None, "via": c.via,
                     "tried": list(c.tried), "error": c.error} for c in tree.children if c.preload],
        "tree": to_plain(tree),
        "findings": to_plain(findings),
    }


def tree_lines(node: ResolveNode, depth: int = 0, max_depth: int = 0) -> List[str]:
    lines = [paint(node.path or node.name, "bold")]
    if node.rpath:
        lines.append(paint(f"  rpath: {':'.join(node.rpath)}", "dim"))
    if node.runpath:
        lines.append(paint(f"  runpath: {':'.join(node.runpath)}", "dim"))
    _children(node, "", lines, 1, max_depth, set())
    return lines


def _children(node: ResolveNode, prefix: str, lines: List[str], level: int, max_depth: int, shown: set) -> None:
    kids = node.children
    for i, c in enumerate(kids):
        last = i == len(kids) - 1
        branch = "└── " if last else "├── "
        cont = "    " if last else "│   "
        if c.error is None and c.path:
            tag = TAGS.get(c.via or "", "")
            if c.preload:
                tag = "[preload] " + tag
            head = f"{c.name} {paint(tag, 'yellow' if c.via == 'already-loaded' else 'cyan')}"
            if c.via != "already-loaded" or c.path != c.name:
                head += f" {c.path}"
            lines.append(prefix + branch + head)
            for s in c.skipped:
                lines.append(prefix + cont + paint(f"  skipped {s}", "dim"))
            if c.children and (max_depth == 0 or level < max_depth):
                _children(c, prefix + cont, lines, level + 1, max_depth, shown)
        else:
            lines.append(prefix + branch + f"{c.name} " + paint("not found" if "No such file" in (c.error or "") else "cannot be loaded", "red")
                         + ("" if "No such file" in (c.error or "") else f": {c.error}"))
            key = (c.name, c.tried)
            if c.tried and key in shown:
                lines[-1] += paint(" (same paths as above)", "dim")
            elif c.tried:
                shown.add(key)
                lines.append(prefix + cont + "    Paths considered in this order:")
                for n, t in enumerate(c.tried, 1):
                    lines.append(prefix + cont + f"    {n:>3}. {t}")


def _denied(host, path: str) -> bool:
    """Whether `path` is there but this user may not look (stat fails with EACCES)."""
    try:
        os.stat(host.path(path))
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def run(args, ctx) -> int:
    path = ctx.system_path(args.lib)
    host = ctx.host
    if not host.exists(path):
        if not host.islink(path) and _denied(host, path):
            raise ToolError(f"{path}: permission denied")
        r = host.resolve(path) if host.islink(path) else None
        raise ToolError(f"{path}: no such file" + (f" ({r.status} symlink)" if r and r.status in ("dangling", "loop") else ""))
    if args.depth < 0:
        raise ToolError(f"--depth {args.depth}: give 0 (all levels) or a positive number")
    env = environment(args, ctx)
    tree = resolve_tree(host, path, env, preload=not args.no_preload)
    if tree.error and not tree.children:
        raise ToolError(f"{path}: {tree.error}")
    findings = resolve_findings(tree)
    rc = 1 if any(f.severity == "error" for f in findings) else 0
    if args.json:
        emit_json(resolve_json(tree, findings))
        return rc
    print_lines(verdict_lines(tree, env, ctx) + tree_lines(tree, max_depth=args.depth) + hint_lines(tree, env, ctx))
    return rc


def _missing(tree: ResolveNode, preload: bool = False) -> List[str]:
    return [c.name for c in tree.children if bool(c.preload) == preload and not (c.error is None and c.path)]


def verdict_lines(tree: ResolveNode, env: Dict[str, str], ctx) -> List[str]:
    """The answer first: does every DT_NEEDED resolve, and in which environment."""
    direct = [c for c in tree.children if not c.preload]
    missing = _missing(tree)
    llp = env.get("LD_LIBRARY_PATH")
    where = f"LD_LIBRARY_PATH={llp}" if llp else "no LD_LIBRARY_PATH"
    if not direct:
        out = [paint("no dependencies (no DT_NEEDED)", "green")]
    elif not missing:
        out = [paint(f"its dependency resolves ({where})" if len(direct) == 1 else
                     f"all {len(direct)} dependencies resolve ({where})", "green")]
    else:
        out = [paint(f"{len(missing)} of {len(direct)} dependencies cannot be loaded ({where}): "
                     + ", ".join(missing), "red")]
    bad_preload = _missing(tree, preload=True)
    if bad_preload:  # ld.so prints an error for each and goes on without it
        out.append(paint("preload cannot be loaded (ld.so reports it and goes on without it): "
                         + ", ".join(bad_preload), "yellow"))
    return out


def hint_lines(tree: ResolveNode, env: Dict[str, str], ctx) -> List[str]:
    """A library of an Ollama tree is loaded by a runner whose LD_LIBRARY_PATH names the
    library folder and the backend folder; without it most of its dependencies look missing."""
    path = tree.path or ""
    if not _missing(tree) or env.get("LD_LIBRARY_PATH") or "/lib/ollama" not in path:
        return []
    lib = path[:path.index("/lib/ollama") + len("/lib/ollama")]
    folder = path.rsplit("/", 1)[0]
    value = ":".join(dict.fromkeys([lib, folder]))
    root = ctx.command_root() if hasattr(ctx, "command_root") else ""
    cmd = " ".join(x for x in ("vgpu-tui", root, "resolve", path, f"--env LD_LIBRARY_PATH={value}") if x)
    return ["", paint("note: Ollama's runner loads this library with LD_LIBRARY_PATH set to its folders; "
                      f"what the runner sees: {cmd}  (or `{' '.join(x for x in ('vgpu-tui', root, 'tree') if x)}`)",
                      "yellow")]
