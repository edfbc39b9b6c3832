"""A library folder as a tree: each entry's kind, symlinks (as written and where they lead),
ELF facts, and the dependencies the loader would not find.

Nothing stops the walk: a dangling link, a loop, an unreadable folder, a FIFO, a 10 GB
sparse file, a folder named `libx.so` or a name that is not UTF-8 is one more entry with
its problem stated. Symlinked folders are shown with their target but not descended (the
target is usually elsewhere in the tree, and a loop must not recurse).
"""
from __future__ import annotations

import dataclasses
import os
import stat as stat_mod
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from probes.elf import ElfInfo, ElfSymbol, read_elf
from probes.loader import LoaderEnv, Resolution, object_kind, find_library

MAX_DEPTH = 8
MAX_ENTRIES = 20000


@dataclasses.dataclass(frozen=True)
class Dependency:
    name: str
    found: Optional[str]
    via: Optional[str]
    error: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ElfSummary:
    is_elf: bool
    error: Optional[str] = None
    elf_class: Optional[int] = None
    machine: Optional[str] = None
    type: Optional[str] = None
    soname: Optional[str] = None
    needed: Tuple[str, ...] = ()
    rpath: Tuple[str, ...] = ()
    runpath: Tuple[str, ...] = ()
    export_count: Optional[int] = None
    exports: Optional[Tuple[ElfSymbol, ...]] = None  # only when asked for (tree --exports)

    @classmethod
    def of(cls, info: ElfInfo, with_exports: bool) -> "ElfSummary":
        return cls(info.is_elf, info.error, info.elf_class, info.machine, info.type, info.soname,
                   info.needed, info.rpath, info.runpath,
                   len(info.exports) if info.is_elf and with_exports else None,
                   info.exports if with_exports and info.is_elf else None)


@dataclasses.dataclass(frozen=True)
class TreeNode:
    name: str
    path: str
    kind: str                          # "dir", "file", "symlink", "fifo", "socket", "device", "missing"
    link_target: Optional[str] = None  # as written in the link
    resolves_to: Optional[str] = None  # where it really leads (inspected path), when it does
    link_status: Optional[str] = None  # "ok", "dangling", "loop", "not-dir", "error"
    target_kind: Optional[str] = None  # what the link leads to: "dir", "file", ...
    leaves_tree: bool = False          # the link leads outside the scanned folder
    leaves_root: bool = False          # the link climbs above --root (clamped, as a chroot would)
    size: Optional[int] = None
    error: Optional[str] = None        # unreadable folder, and the like
    elf: Optional[ElfSummary] = None
    dependencies: Tuple[Dependency, ...] = ()
    unresolved: Tuple[str, ...] = ()   # DT_NEEDED names the loader would not find
    children: Tuple["TreeNode", ...] = ()
    truncated: bool = False

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    @property
    def problems(self) -> List[str]:
        out = []
        if self.link_status and self.link_status != "ok":
            out.append({"dangling": "dangling symlink", "loop": "symlink loop"}.get(self.link_status, self.link_status))
        if self.leaves_root:
            out.append("leaves the root")
        if self.error:
            out.append(self.error)
        if self.elf and self.elf.is_elf and self.elf.error:
            out.append(self.elf.error)
        if self.unresolved:
            out.append("not found: " + ", ".join(self.unresolved))
        return out


def _kind(mode: int) -> str:
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISREG(mode):
        return "file"
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    if stat_mod.S_ISFIFO(mode):
        return "fifo"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    return "device"


def _looks_like_library(name: str) -> bool:
    return ".so" in name or name.endswith((".a", ".o"))


def scan_tree(host, libdir: str, env: Optional[Mapping[str, str]] = None, *, exports: bool = False,
              resolve: bool = True, folder_env: Optional[Callable[[str], Mapping[str, str]]] = None,
              max_depth: int = MAX_DEPTH) -> TreeNode:
    """The tree under `libdir` (an inspected path).

    `env` is the environment the dependencies are resolved in (default: the host's);
    `folder_env(folder)` may give one per folder (Ollama's runner sets LD_LIBRARY_PATH to
    the backend folder). `exports=True` adds every library's exports (costs a full parse).
    """
    base_env = dict(host.env if env is None else env)
    libdir = libdir.rstrip("/") or "/"
    lenvs: Dict[Tuple, LoaderEnv] = {}
    deps_memo: Dict[Tuple, Tuple[Tuple[Dependency, ...], Tuple[str, ...]]] = {}
    count = [0]

    def lenv_for(e: Mapping[str, str], info: ElfInfo) -> LoaderEnv:
        key = (tuple(sorted(e.items())), object_kind(info))
        le = lenvs.get(key)
        if le is None:
            le = lenvs[key] = LoaderEnv(host, e, object_kind(info))
        return le

    def elf_facts(path: str, folder: str):
        info = read_elf(host, path, symbols=exports)
        summary = ElfSummary.of(info, exports)
        deps: Tuple[Dependency, ...] = ()
        unresolved: Tuple[str, ...] = ()
        if resolve and info.is_elf and not info.error and info.needed:
            e = dict(folder_env(folder)) if folder_env else base_env
            key = (path, tuple(sorted(e.items())))
            if key not in deps_memo:
                le = lenv_for(e, info)
                res: List[Resolution] = [find_library(host, n, e, info, None, chain=(info,), main=info, lenv=le)
                                         for n in info.needed]
                deps_memo[key] = (tuple(Dependency(r.name, r.found if r.ok else None, r.via if r.ok else None, r.error)
                                        for r in res),
                                  tuple(r.name for r in res if not r.ok))
            deps, unresolved = deps_memo[key]
        return summary, deps, unresolved

    def node(path: str, name: str, depth: int) -> TreeNode:
        count[0] += 1
        st = host.lstat(path)
        if st is None:
            return TreeNode(name, path, "missing", error="cannot be read (vanished or no permission)")
        kind = _kind(st.st_mode)
        folder = os.path.dirname(path) or "/"
        if kind == "symlink":
            target = host.readlink(path)
            r = host.resolve(path)
            tkind = None
            size = None
            if r.ok:
                tst = host.lstat(r.final)
                tkind = _kind(tst.st_mode) if tst else None
                size = tst.st_size if tst else None
            inside = r.final == libdir or r.final.startswith(libdir + "/")
            n = TreeNode(name, path, "symlink", target, r.final if r.status in ("ok", "dangling") else None,
                         r.status, tkind, leaves_tree=(r.status == "ok" and not inside),
                         leaves_root=r.clamped, size=size, error=r.error)
            if r.ok and tkind == "file" and (_looks_like_library(name) or _looks_like_library(r.final)):
                summary, deps, unresolved = elf_facts(path, folder)
                n = dataclasses.replace(n, elf=summary, dependencies=deps, unresolved=unresolved)
            return n
        if kind == "dir":
            if depth >= max_depth:
                return TreeNode(name, path, "dir", truncated=True, error="too deep; not listed")
            try:
                names = sorted(os.listdir(host.path(path)))
            except OSError as exc:
                return TreeNode(name, path, "dir", error=(exc.strerror or str(exc)).lower())
            kids = []
            for child in names:
                if count[0] >= MAX_ENTRIES:
                    return TreeNode(name, path, "dir", children=tuple(kids), truncated=True)
                kids.append(node((path.rstrip("/") + "/" + child), child, depth + 1))
            return TreeNode(name, path, "dir", children=tuple(kids))
        if kind == "file":
            n = TreeNode(name, path, "file", size=st.st_size)
            if _looks_like_library(name) or (st.st_mode & 0o111):
                summary, deps, unresolved = elf_facts(path, folder)
                if summary.is_elf or _looks_like_library(name):
                    n = dataclasses.replace(n, elf=summary, dependencies=deps, unresolved=unresolved)
            return n
        return TreeNode(name, path, kind)

    top = host.lstat(libdir)
    if top is None:
        return TreeNode(os.path.basename(libdir) or "/", libdir, "missing", error="no such folder")
    if not host.isdir(libdir):
        return node(libdir, os.path.basename(libdir), 0)
    real = host.resolve(libdir)
    if real.ok and real.final != libdir:
        # The folder itself is reached through a link: scan where it leads, say so on top.
        inner = scan_tree(host, real.final, base_env, exports=exports, resolve=resolve,
                          folder_env=folder_env, max_depth=max_depth)
        return dataclasses.replace(inner, name=os.path.basename(libdir) or "/", path=libdir,
                                   link_target=host.readlink(libdir), resolves_to=real.final, link_status="ok")
    return node(libdir, os.path.basename(libdir) or "/", 0)


def libraries(tree: TreeNode) -> List[TreeNode]:
    """Every ELF entry of the tree (files and links to files)."""
    return [n for n in tree.walk() if n.elf is not None and n.elf.is_elf]
