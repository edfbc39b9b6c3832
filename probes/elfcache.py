"""The ELF facts cache: in memory, and on disk in the user's cache folder.

Keyed by (device, inode, size, mtime_ns, ctime_ns) of the file: any rewrite, rename over it
or `touch` changes the key, so a stale entry is never used. On disk one small JSON file per
key under `$VGPU_TUI_CACHE_DIR` or `$XDG_CACHE_HOME/vgpu-tui/elf-v<N>/` (`~/.cache/...`),
written atomically; a corrupt or unreadable entry is ignored and rewritten. Set
`VGPU_TUI_NO_DISK_CACHE=1` to keep it in memory only. Results that took no work to get
(not ELF, errors) are kept in memory only.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Dict, Optional, Tuple

FORMAT = 2  # bump when ElfInfo or the parser's answers change
_MEMORY: Dict[Tuple[int, ...], object] = {}
_LIGHT: Dict[Tuple[int, ...], object] = {}  # parsed without symbol tables (memory only)
_LOCK = threading.Lock()
_SCALARS = ("is_elf", "error", "elf_class", "byte_order", "machine", "machine_code", "machine_name",
            "osabi", "type", "soname", "nodeflib", "interpreter", "has_dynamic", "size")
_TUPLES = ("needed", "rpath", "runpath", "version_definitions")

stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "disk_writes": 0}


def cache_dir() -> Optional[str]:
    """The on-disk cache folder, or None when disabled."""
    if os.environ.get("VGPU_TUI_NO_DISK_CACHE"):
        return None
    base = os.environ.get("VGPU_TUI_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "vgpu-tui")
    return os.path.join(base, f"elf-v{FORMAT}")


def clear_memory() -> None:
    with _LOCK:
        _MEMORY.clear()
        _LIGHT.clear()


def _file_name(key) -> str:
    return "-".join(str(k) for k in key) + ".json"


def get(key, light: bool = False):
    """The cached ElfInfo for this key (memory first, then disk), or None.

    `light`: the caller needs no symbols, so an entry parsed without them will do.
    """
    hit = _MEMORY.get(key)
    if hit is None and light:
        hit = _LIGHT.get(key)
    if hit is not None:
        stats["memory_hits"] += 1
        return hit
    if light:
        return None  # a disk entry carries every symbol; decoding it costs more than parsing
    folder = cache_dir()
    if folder:
        try:
            with open(os.path.join(folder, _file_name(key)), "rb") as fh:
                info = _decode(json.loads(fh.read()))
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            info = None
        if info is not None:
            stats["disk_hits"] += 1
            with _LOCK:
                _MEMORY[key] = info
            return info
    stats["misses"] += 1
    return None


def put_light(key, info) -> None:
    _LIGHT[key] = info


def put(key, info) -> None:
    with _LOCK:
        _MEMORY[key] = info
    folder = cache_dir()
    if not folder or not info.is_elf or info.error:
        return
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
                json.dump(_encode(info), fh, ensure_ascii=True, separators=(",", ":"))
            os.replace(tmp, os.path.join(folder, _file_name(key)))
            stats["disk_writes"] += 1
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        pass  # a read-only home or a full disk: the cache is an optimisation only


def _encode(info) -> dict:
    d = {k: getattr(info, k) for k in _SCALARS}
    for k in _TUPLES:
        d[k] = list(getattr(info, k))
    d["exports"] = [list(s) for s in info.exports]
    d["imports"] = [list(s) for s in info.imports]
    d["version_needs"] = [[f, list(v)] for f, v in info.version_needs]
    d["format"] = FORMAT
    # Surrogate escapes (names that are not UTF-8) survive through ensure_ascii's \\udcXX.
    return d


def _decode(d: dict):
    from probes.elf import ElfImport, ElfInfo, ElfSymbol

    if d.get("format") != FORMAT:
        return None
    kw = {k: d[k] for k in _SCALARS}
    for k in _TUPLES:
        kw[k] = tuple(d[k])
    mk = ElfSymbol._make
    kw["exports"] = tuple(map(mk, d["exports"]))
    kw["imports"] = tuple(map(ElfImport._make, d["imports"]))
    kw["version_needs"] = tuple((f, tuple(v)) for f, v in d["version_needs"])
    return ElfInfo(path="", **kw)
