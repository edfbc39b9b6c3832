"""Known-good snapshots: everything the report knows as plain JSON, and what changed since.

`capture(report)` turns a report into a plain dict: device, driver, Ollama's version and
paths, the tree with symlink targets and file identities (size, mtime, and a hash of the ELF
header, program headers and dynamic section rather than of whole multi-GB files), the loader
cache, ld.so.conf and ld.so.preload, the service environment (configured and running), the
driver libraries' SONAMEs and exports, the backend verdicts and the log's verdict.
`diff(old, new)` lists the changes, most suspicious first (WEIGHTS: a changed link or a
missing library outranks a changed mtime; a consequence such as a backend verdict ranks below
its causes). Snapshots are files an operator can copy from a working VM to a broken one.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import posixpath
import re
import struct
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from probes import diagnose
from probes.diagnose import g
from probes.errors import ToolError
from probes.host import Host

FORMAT = 1
TREE_DEPTH = 3
TREE_LIMIT = 3000
ELF_DYNAMIC_LIMIT = 1 << 20  # never hash more than 1 MiB of a dynamic section
# What a change of each kind weighs: causes first, consequences last.
WEIGHTS = {
    "lib-dir": 110, "link-target": 100, "link-broken": 100, "moved": 97, "missing": 95, "soname": 92,
    "elf-class": 92, "env": 90, "binary": 88, "version": 86, "ldcache-driver": 85,
    "ld-conf": 84, "device-gone": 82, "nodes": 80, "driver": 80, "preload": 80,
    "became-link": 78, "link-consequence": 70, "exports": 75, "identity": 60, "new": 50, "env-other": 45,
    "ldcache": 40, "loaded": 35, "backend": 30, "findings": 28, "log": 25, "size": 20, "mtime": 5,
}
DRIVER_PREFIXES = ("libcuda.so", "libnvidia-ml.so")
DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")
SUSPECT_NAMES = ("libggml-cuda", "libcuda", "libnvidia-ml", "libcublas", "libcudart", "ggml-base", "ollama")


@dataclasses.dataclass(frozen=True)
class Change:
    kind: str    # a key of WEIGHTS
    key: str     # what changed: a path, a variable, a field
    before: Any
    after: Any
    text: str    # one line a person understands
    score: int


# --------------------------------------------------------------------------------------
# File identities


def elf_identity(real_path: str) -> Optional[str]:
    """sha256 of the ELF header, program headers and PT_DYNAMIC contents; None if not ELF."""
    try:
        with open(real_path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return None
            cls, data = head[4], head[5]
            end = "<" if data == 1 else ">"
            if cls == 2:
                phoff, = struct.unpack_from(end + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
                fmt, width = end + "IIQQQQQQ", 56
            else:
                phoff, = struct.unpack_from(end + "I", head, 28)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
                fmt, width = end + "IIIIIIII", 32
            digest = hashlib.sha256(head)
            if phentsize < width or phnum > 512:
                return digest.hexdigest()
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
            digest.update(table)
            for i in range(len(table) // phentsize):
                fields = struct.unpack_from(fmt, table, i * phentsize)
                p_type = fields[0]
                if p_type != 2:  # PT_DYNAMIC
                    continue
                offset, filesz = (fields[2], fields[5]) if cls == 2 else (fields[1], fields[4])
                fh.seek(offset)
                digest.update(fh.read(min(filesz, ELF_DYNAMIC_LIMIT)))
            return digest.hexdigest()
    except (OSError, struct.error):
        return None


def file_entry(host: Host, path: str) -> Dict[str, Any]:
    st = host.lstat(path)
    if st is None:
        return {"kind": "missing"}
    if host.islink(path):
        r = host.resolve(path)
        entry: Dict[str, Any] = {"kind": "link", "target": host.readlink(path), "status": r.status,
                                 "final": r.final}
        if r.ok and host.isfile(path):
            entry.update(_identity(host, path))
        return entry
    if host.isdir(path):
        return {"kind": "dir"}
    return dict({"kind": "file"}, **_identity(host, path))


def _identity(host: Host, path: str) -> Dict[str, Any]:
    st = host.stat(path)
    real = host.real_path(path)
    return {
        "size": st.st_size if st else None,
        "mtime": int(st.st_mtime) if st else None,
        "elf": elf_identity(real) if real else None,
    }


def tree_entries(host: Host, roots: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """Every entry under the roots (links not descended), by inspected path."""
    out: Dict[str, Dict[str, Any]] = {}
    queue = [(r, 0) for r in roots if r]
    while queue and len(out) < TREE_LIMIT:
        folder, level = queue.pop(0)
        if folder in out:
            continue
        out[folder] = file_entry(host, folder)
        for name in host.listdir(folder):
            path = posixpath.join(folder, name)
            entry = file_entry(host, path)
            out[path] = entry
            if entry["kind"] == "dir" and level < TREE_DEPTH:
                out.pop(path)
                queue.append((path, level + 1))
    return out


# --------------------------------------------------------------------------------------
# Capturing


def capture(report: Any, name: str = "") -> Dict[str, Any]:
    """A plain, JSON-ready snapshot of what the report knows."""
    facts = report.facts
    host: Host = facts.host
    o = report.ollama
    lib_dir = o.get("lib_dir")
    binary = o.get("binary_as_found") or o.get("binary")
    loaded = [str(g(x, "realpath") or g(x, "path")) for x in diagnose._items(facts.drivers, "libraries") if g(x, "path")]
    driver_dirs = sorted({posixpath.dirname(p) for p in loaded}
                         | set(diagnose._conf_dirs(facts)) | set(DEFAULT_DIRS) | ({lib_dir} if lib_dir else set()))
    return {
        "snapshot": FORMAT,
        "name": name,
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "root": host.root,
        "ollama": {k: o.get(k) for k in ("binary", "binary_as_found", "version", "era", "lib_dir")},
        "binary": file_entry(host, binary) if binary else None,
        "env": {"configured": o.get("env") or {}, "running": o.get("env_running")},
        "device": _device(facts.device),
        "tree": tree_entries(host, [lib_dir] if lib_dir else []),
        "driver_files": driver_files(host, driver_dirs),
        "ldcache": _ldcache(host, facts),
        "ld_conf": diagnose._conf_dirs(facts),
        "preload": (host.read_text("/etc/ld.so.preload") or "").splitlines(),
        "shims": sorted(set(loaded)),
        "backends": {str(b["dir"]): {"probed": b["probed"], "would_load": b["would_load"]} for b in report.backends},
        "log": {k: g(report.log, k) for k in ("library", "gpu_used", "gpu_count", "ollama_version")} if report.log else None,
        "findings": sorted(x.id for x in report.findings),
        "verdict": {"gpu_ready": report.verdict.gpu_ready, "summary": report.verdict.summary},
    }


def _device(d: Any) -> Dict[str, Any]:
    if d is None:
        return {}
    gpus = {str(g(p, "slot")): {"id": f"{g(p, 'vendor_id')}:{g(p, 'device_id')}", "driver": g(p, "driver"),
                                "name": g(p, "name")}
            for p in diagnose._items(d, "pci") if g(p, "gpu")}
    nodes = {str(g(n, "path")): {k: g(n, k) for k in ("exists", "mode", "major", "minor", "owner", "group",
                                                     "service_user_access")}
             for n in diagnose._items(d, "nodes")}
    modules = {str(g(m, "name")): bool(g(m, "loaded", False)) for m in diagnose._items(d, "modules")}
    return {"gpus": gpus, "nodes": nodes, "modules": modules,
            "driver_version": g(g(d, "driver"), "version")}


def _ldcache(host: Host, facts: Any) -> Dict[str, List[str]]:
    entries = diagnose._items(g(facts.ldcache, "cache"), "entries")
    if not entries:
        try:
            from probes import ldcache
            entries = list(g(ldcache.read_ld_cache(host), "entries", ()) or ())
        except Exception:  # noqa: BLE001 - a snapshot without the cache is still a snapshot
            entries = []
    out: Dict[str, List[str]] = {}
    for e in entries:
        name = str(g(e, "name", "") or g(e, "soname", ""))
        out.setdefault(name, []).append(str(g(e, "path", "")))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _shim(host: Host, path: str) -> Dict[str, Any]:
    """SONAME, class, machine and export names of a driver library."""
    try:
        from probes import elf
        info = elf.read_elf(host, path)
    except Exception:  # noqa: BLE001 - an unreadable file is recorded as such
        return {"soname": None, "elf_class": None, "machine": None, "exports": []}
    return {"soname": info.soname, "elf_class": info.elf_class, "machine": info.machine,
            "exports": sorted({e.name for e in info.exports})}


def driver_files(host: Host, folders: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """Every driver library (libcuda.so*, libnvidia-ml.so*) in the folders the loader may use."""
    out: Dict[str, Dict[str, Any]] = {}
    for folder in folders:
        for name in host.listdir(folder):
            if not name.startswith(DRIVER_PREFIXES):
                continue
            path = posixpath.join(folder, name)
            entry = file_entry(host, path)
            if entry.get("elf"):
                entry.update(_shim(host, path))
            out[path] = entry
    return out


def _entries(files: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The file-identity part of driver_files (what _diff_tree compares)."""
    keys = ("kind", "target", "status", "final", "size", "mtime", "elf")
    return {p: {k: v for k, v in e.items() if k in keys} for p, e in (files or {}).items()}


# --------------------------------------------------------------------------------------
# Diffing


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[Change]:
    """What differs between two snapshots, most suspicious first."""
    changes: List[Change] = []
    changes += _diff_ollama(old, new)
    changes += _diff_env(old, new)
    changes += _diff_tree(old.get("tree") or {}, new.get("tree") or {})
    changes += _diff_tree(_entries(old.get("driver_files")), _entries(new.get("driver_files")))
    changes += _diff_shims(old.get("driver_files") or {}, new.get("driver_files") or {})
    changes += _diff_ldcache(old.get("ldcache") or {}, new.get("ldcache") or {})
    changes += _diff_list("ld-conf", "ld.so.conf folders", old.get("ld_conf") or [], new.get("ld_conf") or [])
    changes += _diff_list("preload", "/etc/ld.so.preload", old.get("preload") or [], new.get("preload") or [])
    changes += _diff_device(old.get("device") or {}, new.get("device") or {})
    changes += _diff_list("loaded", "driver libraries the runner loads", old.get("shims") or [], new.get("shims") or [])
    changes += _diff_backends(old.get("backends") or {}, new.get("backends") or {})
    changes += _diff_outcome(old, new)
    return sorted(changes, key=lambda c: (-c.score, c.key))


def _change(kind: str, key: str, before: Any, after: Any, text: str) -> Change:
    bonus = 5 if any(s in key for s in SUSPECT_NAMES) else 0
    return Change(kind, key, before, after, text, WEIGHTS[kind] + bonus)


def _diff_ollama(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[Change]:
    a, b = old.get("ollama") or {}, new.get("ollama") or {}
    out = []
    if a.get("lib_dir") != b.get("lib_dir"):
        out.append(_change("lib-dir", "ollama.lib_dir", a.get("lib_dir"), b.get("lib_dir"),
                           f"Ollama now reads {b.get('lib_dir')} instead of {a.get('lib_dir')}"))
    for key in ("binary", "binary_as_found"):
        if a.get(key) != b.get(key):
            out.append(_change("binary", f"ollama.{key}", a.get(key), b.get(key),
                               f"the Ollama binary changed: {a.get(key)} -> {b.get(key)}"))
    if a.get("version") != b.get("version") or a.get("era") != b.get("era"):
        out.append(_change("version", "ollama.version", a.get("version"), b.get("version"),
                           f"Ollama {a.get('version')} (era {a.get('era')}) -> {b.get('version')} (era {b.get('era')})"
                           + (": the scanner's rules changed" if a.get("era") != b.get("era") else "")))
    ba, bb = old.get("binary") or {}, new.get("binary") or {}
    if ba and bb and ba != bb and not out:
        out.append(_change("identity", "ollama binary file", ba.get("elf"), bb.get("elf"),
                           "the Ollama binary file was replaced"))
    return out


def _diff_env(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[Change]:
    out = []
    for which in ("configured", "running"):
        a = (old.get("env") or {}).get(which) or {}
        b = (new.get("env") or {}).get(which) or {}
        if (old.get("env") or {}).get(which) is None or (new.get("env") or {}).get(which) is None:
            continue
        for name in sorted(set(a) | set(b)):
            if a.get(name) == b.get(name):
                continue
            kind = "env" if name in diagnose.GPU_VARS or name.startswith(("OLLAMA_", "CUDA_", "LD_", "NVIDIA_")) else "env-other"
            text = (f"{which} environment: {name} " +
                    ("added = " + repr(b[name]) if name not in a else
                     "removed (was " + repr(a[name]) + ")" if name not in b else
                     f"{a[name]!r} -> {b[name]!r}"))
            out.append(_change(kind, f"env.{which}.{name}", a.get(name), b.get(name), text))
    return out


def _moves(a: Mapping[str, Any], b: Mapping[str, Any]) -> Tuple[List[Change], set]:
    """Folders and files that went away at one path and came back at another: one change each."""
    gone = [p for p in a if (b.get(p) or {}).get("kind", "missing") == "missing"]
    new = [p for p in b if p not in a]
    out: List[Change] = []
    used: set = set()
    for d in sorted(p for p in gone if a[p].get("kind") == "dir"):
        kids = {q[len(d):] for q in a if q.startswith(d + "/")}
        for n in sorted(p for p in new if b[p].get("kind") == "dir" and p not in used):
            if posixpath.basename(n) == posixpath.basename(d) and kids == {q[len(n):] for q in b if q.startswith(n + "/")}:
                out.append(_change("moved", d, d, n, f"{d}/ moved to {n}/"))
                used.update([d, n] + [d + k for k in kids] + [n + k for k in kids])
                break
    for p in sorted(p for p in gone if p not in used and a[p].get("elf")):
        for n in sorted(q for q in new if q not in used and b[q].get("kind") == "file"):
            if b[n].get("elf") == a[p].get("elf") and b[n].get("size") == a[p].get("size"):
                out.append(_change("moved", p, p, n, f"{p} moved to {n}"))
                used.update([p, n])
                break
    return out, used


def _diff_tree(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[Change]:
    out, moved = _moves(a, b)
    for path in sorted(set(a) | set(b)):
        if path in moved:
            continue
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        if y is None or y.get("kind") == "missing":
            out.append(_change("missing", path, x, None, f"{path} is gone (was a {x.get('kind')})"))
        elif x is None:
            out.append(_change("new", path, None, y, f"{path} is new ({_describe(y)})"))
        elif x.get("kind") == "link" and y.get("kind") == "link":
            if x.get("target") != y.get("target"):
                out.append(_change("link-target", path, x.get("target"), y.get("target"),
                                   f"{path} now points to {y.get('target')} (was {x.get('target')})"
                                   + ("" if y.get("status") == "ok" else f", which is {y.get('status')}")))
            elif x.get("status") != y.get("status"):
                # same target, now broken: the consequence of a change elsewhere
                out.append(_change("link-consequence", path, x.get("status"), y.get("status"),
                                   f"{path} -> {y.get('target')} is now {y.get('status')}"))
            else:
                out += _content(path, x, y)
        elif x.get("kind") != y.get("kind"):
            kind = "link-broken" if y.get("kind") == "link" and y.get("status") != "ok" else "became-link"
            out.append(_change(kind, path, x.get("kind"), y.get("kind"),
                               f"{path} was a {x.get('kind')}, now {_describe(y)}"))
        else:
            out += _content(path, x, y)
    return out


def _describe(e: Mapping[str, Any]) -> str:
    if e.get("kind") == "link":
        return f"a link to {e.get('target')}" + ("" if e.get("status") == "ok" else f" ({e.get('status')})")
    return f"a {e.get('kind')}"


def _content(path: str, x: Mapping[str, Any], y: Mapping[str, Any]) -> List[Change]:
    if x.get("elf") != y.get("elf"):
        return [_change("identity", path, x.get("elf"), y.get("elf"),
                        f"{path}: its ELF headers or dynamic section changed (a different build)")]
    if x.get("size") != y.get("size"):
        return [_change("size", path, x.get("size"), y.get("size"), f"{path}: size {x.get('size')} -> {y.get('size')}")]
    if x.get("mtime") != y.get("mtime"):
        return [_change("mtime", path, x.get("mtime"), y.get("mtime"), f"{path}: modified time changed")]
    return []


def _diff_ldcache(a: Mapping[str, List[str]], b: Mapping[str, List[str]]) -> List[Change]:
    out = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) == b.get(name):
            continue
        kind = "ldcache-driver" if name.startswith(("libcuda.", "libnvidia-ml.", "libcudart", "libcublas")) else "ldcache"
        if name not in b:
            text = f"ld.so.cache no longer has {name} (was {', '.join(a[name])})"
        elif name not in a:
            text = f"ld.so.cache now has {name} -> {', '.join(b[name])}"
        else:
            text = f"ld.so.cache: {name} {', '.join(a[name])} -> {', '.join(b[name])}"
        out.append(_change(kind, f"ld.so.cache:{name}", a.get(name), b.get(name), text))
    return out


def _diff_list(kind: str, label: str, a: Sequence[str], b: Sequence[str]) -> List[Change]:
    gone = [x for x in a if x not in b]
    added = [x for x in b if x not in a]
    if not gone and not added:
        return []
    text = label + ": " + ", ".join([f"+{x}" for x in added] + [f"-{x}" for x in gone])
    return [_change(kind, label + " " + " ".join(added + gone), list(a), list(b), text)]


def _diff_device(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[Change]:
    out = []
    ga, gb = a.get("gpus") or {}, b.get("gpus") or {}
    for slot in sorted(set(ga) | set(gb)):
        if slot not in gb:
            out.append(_change("device-gone", f"pci {slot}", ga[slot], None, f"the GPU at {slot} ({ga[slot].get('id')}) is gone"))
        elif slot not in ga:
            out.append(_change("new", f"pci {slot}", None, gb[slot], f"a new GPU at {slot}"))
        elif ga[slot].get("driver") != gb[slot].get("driver"):
            out.append(_change("driver", f"pci {slot}", ga[slot].get("driver"), gb[slot].get("driver"),
                               f"the GPU at {slot} is bound to {gb[slot].get('driver')} (was {ga[slot].get('driver')})"))
    na, nb = a.get("nodes") or {}, b.get("nodes") or {}
    for path in sorted(set(na) | set(nb)):
        x, y = na.get(path) or {}, nb.get(path) or {}
        if x != y:
            what = ("is gone" if x.get("exists") and not y.get("exists") else
                    f"mode {x.get('mode')} {x.get('owner')}:{x.get('group')} -> {y.get('mode')} {y.get('owner')}:{y.get('group')}")
            out.append(_change("nodes", path, x, y, f"{path} {what}"))
    if a.get("driver_version") != b.get("driver_version"):
        out.append(_change("driver", "driver version", a.get("driver_version"), b.get("driver_version"),
                           f"driver version {a.get('driver_version')} -> {b.get('driver_version')}"))
    ma, mb = a.get("modules") or {}, b.get("modules") or {}
    for m in sorted(set(ma) | set(mb)):
        if ma.get(m) != mb.get(m):
            out.append(_change("driver", f"module {m}", ma.get(m), mb.get(m),
                               f"kernel module {m}: loaded {ma.get(m)} -> {mb.get(m)}"))
    return out


def _diff_shims(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[Change]:
    out = []
    for path in sorted(set(a) & set(b)):
        x, y = a[path], b[path]
        if "exports" not in x or "exports" not in y:
            continue
        if x.get("soname") != y.get("soname"):
            out.append(_change("soname", path, x.get("soname"), y.get("soname"),
                               f"{path}: SONAME {x.get('soname')} -> {y.get('soname')}"))
        if x.get("elf_class") != y.get("elf_class") or x.get("machine") != y.get("machine"):
            out.append(_change("elf-class", path, x.get("elf_class"), y.get("elf_class"),
                               f"{path}: ELF class/machine {x.get('elf_class')}/{x.get('machine')} -> "
                               f"{y.get('elf_class')}/{y.get('machine')}"))
        lost = sorted(set(x.get("exports") or []) - set(y.get("exports") or []))
        if lost:
            out.append(_change("exports", path, len(x.get("exports") or []), len(y.get("exports") or []),
                               f"{path} no longer exports {', '.join(lost[:8])}" + (" …" if len(lost) > 8 else "")))
    return out


def _diff_backends(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[Change]:
    out = []
    for d in sorted(set(a) | set(b)):
        if a.get(d) != b.get(d):
            out.append(_change("backend", f"backend {d}", a.get(d), b.get(d),
                               f"backend folder {d}: {_verdict(a.get(d))} -> {_verdict(b.get(d))}"))
    return out


def _verdict(v: Optional[Mapping[str, Any]]) -> str:
    if not v:
        return "absent"
    return "would load" if v.get("would_load") else ("probed, fails" if v.get("probed") else "not probed")


def _diff_outcome(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[Change]:
    out = []
    la, lb = old.get("log") or {}, new.get("log") or {}
    if la.get("library") != lb.get("library") or la.get("gpu_used") != lb.get("gpu_used"):
        out.append(_change("log", "log verdict", la, lb,
                           f"the log's verdict: library={la.get('library')} -> library={lb.get('library')}"))
    fa, fb = set(old.get("findings") or []), set(new.get("findings") or [])
    if fb - fa:
        out.append(_change("findings", "findings", sorted(fa), sorted(fb), "new findings: " + ", ".join(sorted(fb - fa))))
    return out


# --------------------------------------------------------------------------------------
# Files


def snapshot_dir(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    base = env.get("VGPU_TUI_SNAPSHOTS")
    if base:
        return base
    state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "vgpu-tui", "snapshots")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def snapshot_path(name: str, folder: Optional[str] = None) -> str:
    """A NAME (kept in the snapshot folder) or a path to a .json file."""
    if "/" in name or name.endswith(".json"):
        return os.path.abspath(name)
    if not _NAME.match(name):
        raise ToolError(f"snapshot name {name!r}: use letters, digits, '.', '_' or '-' (or give a path ending in .json)")
    return os.path.join(folder or snapshot_dir(), name + ".json")


def save(snap: Mapping[str, Any], name: str, folder: Optional[str] = None) -> str:
    path = snapshot_path(name, folder)
    # A path is the user's own file: only a .json name, and never over a file that is not a
    # snapshot (`snapshot save ../../etc/passwd` must not clobber anything).
    if ("/" in name or name.endswith(".json")) and not path.endswith(".json"):
        raise ToolError(f"snapshot save {name}: a path must end in .json (or give a plain NAME)")
    if os.path.lexists(path):
        try:
            with open(path, "r", encoding="utf-8") as fh:
                ours = json.load(fh).get("snapshot") == FORMAT
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours or os.path.islink(path) or not os.path.isfile(path):
            raise ToolError(f"{path} exists and is not a vgpu-tui snapshot; not overwritten")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(snap, fh, indent=1, sort_keys=True, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def load(name: str, folder: Optional[str] = None) -> Dict[str, Any]:
    path = snapshot_path(name, folder)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ToolError(f"no snapshot {name!r} ({path})")
    except (OSError, ValueError) as exc:
        raise ToolError(f"snapshot {path} cannot be read: {exc}")
    if not isinstance(data, dict) or data.get("snapshot") != FORMAT:
        raise ToolError(f"{path} is not a vgpu-tui snapshot (format {FORMAT})")
    return data


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    name: str
    path: str
    time: str
    root: str


def list_snapshots(folder: Optional[str] = None) -> List[SnapshotInfo]:
    """Saved snapshots, newest first (for the TUI's "compare with…")."""
    folder = folder or snapshot_dir()
    out = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not entry.endswith(".json"):
            continue
        path = os.path.join(folder, entry)
        try:
            with open(path, "r", encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("snapshot") == FORMAT:
            out.append(SnapshotInfo(entry[:-5], path, str(data.get("time", "")), str(data.get("root", ""))))
    return sorted(out, key=lambda s: (s.time, s.name), reverse=True)


def take(host: Host, name: str = "", options: Any = None) -> Dict[str, Any]:
    """Build a report (static: no load probe) and capture it."""
    from probes import report as rep
    opts = options or rep.ReportOptions(no_probe=True)
    return capture(rep.build_report(host, opts), name)


def compare_with(name: str, host: Host, options: Any = None, folder: Optional[str] = None) -> List[Change]:
    """What differs between the saved snapshot `name` and this host now (builds a report)."""
    return diff(load(name, folder), take(host, "now", options))


def diff_report(name: str, report: Any, folder: Optional[str] = None) -> List[Change]:
    """What differs between the saved snapshot `name` and a report already built (the TUI's
    "compare with…" on the findings pane: no second scan)."""
    return diff(load(name, folder), capture(report, "now"))
