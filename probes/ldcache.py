"""`/etc/ld.so.cache`: read it (both formats), judge whether it is stale, write one.

The loader consults the binary cache, never `ld.so.conf`; `ldconfig` builds the cache from
the conf. So a library in a conf folder that the cache lacks (the conf was edited, or the
library copied in, after `ldconfig` last ran) is invisible to the loader: `check_cache`
says so. `write_ld_cache` writes the current format so a sandbox root gets a real cache
without root; `ldconfig -p -C FILE` reads it back (the tests check that).

Layouts (glibc sysdeps/generic/dl-cache.h):
  old "ld.so-1.7.0":          magic[11] pad nlibs:u32 {flags:i32 key:u32 value:u32}*nlibs,
                              strings relative to the end of the entries; the new format
                              may follow, 8-byte aligned.
  new "glibc-ld.so.cache1.1": magic[20] nlibs:u32 len_strings:u32 flags:u8 pad[3]
                              extension_offset:u32 unused[3]:u32 (48 bytes), then
                              {flags:i32 key:u32 value:u32 osversion:u32 hwcap:u64}*nlibs;
                              string offsets relative to the new header.
Entries are sorted in descending `_dl_cache_libcmp` order (digits compare as numbers):
the loader binary-searches them.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
import struct
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from probes.facts import Finding, Fix

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
NEW_HEADER = struct.Struct("<20sIIB3sI12s")
NEW_ENTRY = struct.Struct("<iIIIQ")
OLD_ENTRY = struct.Struct("<iII")
EXT_MAGIC = 0xEAA42174
EXT_TAG_GENERATOR, EXT_TAG_HWCAPS = 0, 1
HWCAP_EXTENSION = 1 << 62
ENDIAN_LITTLE = 2

# flags & 0xff: the library kind; flags & 0xff00: what the loader requires (ldconfig -p names).
FLAG_KINDS = {0x00: "libc4", 0x01: "ELF", 0x02: "libc5", 0x03: "libc6"}
FLAG_REQUIRED = {
    0x0000: None, 0x0100: "64bit", 0x0300: "x86-64", 0x0400: "64bit", 0x0500: "64bit",
    0x0600: "N32", 0x0700: "64bit", 0x0800: "x32", 0x0900: "hard-float", 0x0A00: "AArch64",
    0x0B00: "soft-float", 0x0C00: "nan2008", 0x0D00: "N32,nan2008", 0x0E00: "64bit,nan2008",
    0x0F00: "soft-float", 0x1000: "double-float", 0x1100: "soft-float", 0x1200: "double-float",
}
# (e_machine, class) -> the cache flags this machine's loader accepts (_dl_cache_check_flags).
ACCEPTED_FLAGS: Dict[Tuple[int, int], Tuple[int, ...]] = {
    (62, 64): (0x0303,),          # x86_64
    (62, 32): (0x0803,),          # x32
    (3, 32): (0x0001, 0x0003),    # i386
    (183, 64): (0x0A03,),         # aarch64
    (40, 32): (0x0903, 0x0B03, 0x0003),  # arm hard/soft float
    (21, 64): (0x0503,),          # ppc64
    (22, 64): (0x0403,), (43, 64): (0x0103,),
    (243, 64): (0x1003, 0x0F03),  # riscv64
    (258, 64): (0x1203, 0x1103),  # loongarch64
}
# The flags `write_ld_cache` gives an entry by default: this machine's own kind.
DEFAULT_FLAGS = 0x0303


@dataclasses.dataclass(frozen=True)
class LdCacheEntry:
    soname: str
    path: str
    flags: int = DEFAULT_FLAGS
    osversion: int = 0
    hwcap: int = 0
    hwcaps_subdir: Optional[str] = None  # "x86-64-v3" for an entry of a glibc-hwcaps folder

    @property
    def kind(self) -> str:
        return FLAG_KINDS.get(self.flags & 0xFF, "unknown")

    @property
    def arch(self) -> Optional[str]:
        return FLAG_REQUIRED.get(self.flags & 0xFF00, f"{self.flags & 0xff00:#x}")

    def ldconfig_line(self) -> str:
        """The line `ldconfig -p` prints for this entry."""
        desc = self.kind + ("," + self.arch if self.arch else "")
        if self.hwcaps_subdir:
            desc += f', hwcap: "{self.hwcaps_subdir}"'
        elif self.hwcap:
            desc += f", hwcap: {self.hwcap:#018x}"
        if self.osversion:
            v = self.osversion
            desc += f", OS ABI: {['Linux', 'Hurd', 'Solaris', 'FreeBSD', 'kNetBSD', 'Syllable'][min(v >> 24, 5)]} {(v >> 16) & 0xff}.{(v >> 8) & 0xff}.{v & 0xff}"
        return f"\t{self.soname} ({desc}) => {self.path}"


@dataclasses.dataclass(frozen=True)
class LdCache:
    path: str
    exists: bool
    error: Optional[str] = None
    format: Optional[str] = None  # "new", "old", "old+new"
    entries: Tuple[LdCacheEntry, ...] = ()
    generator: Optional[str] = None
    mtime: Optional[float] = None

    def lookup(self, soname: str, accepted_flags: Optional[Sequence[int]] = None) -> Optional[LdCacheEntry]:
        """The entry the loader would use for `soname` (first compatible, plain before hwcaps)."""
        best = None
        for e in self.entries:
            if e.soname != soname:
                continue
            if accepted_flags is not None and e.flags not in accepted_flags:
                continue
            if e.hwcaps_subdir is None and not e.hwcap:
                return e
            if best is None:
                best = e
        return best

    def by_soname(self) -> Dict[str, List[LdCacheEntry]]:
        out: Dict[str, List[LdCacheEntry]] = {}
        for e in self.entries:
            out.setdefault(e.soname, []).append(e)
        return out


def accepted_flags_for(elf_info) -> Optional[Tuple[int, ...]]:
    """The cache flags the loader of this object's kind accepts (None: unknown, accept any)."""
    if elf_info is None or not getattr(elf_info, "is_elf", False):
        return ACCEPTED_FLAGS[(62, 64)]
    return ACCEPTED_FLAGS.get((elf_info.machine_code, elf_info.elf_class))


# --- reading ------------------------------------------------------------------------------

def read_ld_cache(host, path: str = "/etc/ld.so.cache") -> LdCache:
    """The cache of the inspected system; never raises (a broken cache comes back as error)."""
    st = host.stat(path)
    if st is None:
        return LdCache(path, False, "no loader cache" if not host.islink(path) else "dangling symlink")
    data = host.read_bytes(path, limit=256 * 1024 * 1024)
    if data is None:
        return LdCache(path, True, "cannot be read", mtime=st.st_mtime)
    try:
        fmt, entries, gen = parse_ld_cache(data)
    except ValueError as exc:
        return LdCache(path, True, str(exc), mtime=st.st_mtime)
    return LdCache(path, True, None, fmt, tuple(entries), gen, st.st_mtime)


def _cstr(data: bytes, off: int) -> str:
    if off >= len(data):
        raise ValueError(f"corrupt loader cache: string offset {off} beyond the file")
    end = data.find(b"\0", off)
    if end < 0:
        raise ValueError("corrupt loader cache: unterminated string")
    return data[off:end].decode("utf-8", "surrogateescape")


def parse_ld_cache(data: bytes) -> Tuple[str, List[LdCacheEntry], Optional[str]]:
    """(format, entries, generator) of a cache image; ValueError with a clear text if corrupt."""
    if data.startswith(NEW_MAGIC):
        entries, gen = _parse_new(data, 0)
        return "new", entries, gen
    if data.startswith(OLD_MAGIC):
        if len(data) < 16:
            raise ValueError("truncated loader cache (old format header)")
        (nlibs,) = struct.unpack_from("<I", data, 12)
        end = 16 + nlibs * OLD_ENTRY.size
        if nlibs > len(data) or end > len(data):
            raise ValueError(f"truncated loader cache ({nlibs} old-format entries do not fit)")
        new_off = (end + 7) & ~7
        if data[new_off:new_off + len(NEW_MAGIC)] == NEW_MAGIC:
            entries, gen = _parse_new(data, new_off)
            return "old+new", entries, gen
        entries = []
        for i in range(nlibs):
            flags, key, value = OLD_ENTRY.unpack_from(data, 16 + i * OLD_ENTRY.size)
            entries.append(LdCacheEntry(_cstr(data, end + key), _cstr(data, end + value), flags))
        return "old", entries, None
    raise ValueError("not a loader cache (unknown magic)")


def _parse_new(data: bytes, base: int) -> Tuple[List[LdCacheEntry], Optional[str]]:
    if len(data) < base + NEW_HEADER.size:
        raise ValueError("truncated loader cache (header)")
    _magic, nlibs, _len_strings, _flags, _pad, ext_off, _unused = NEW_HEADER.unpack_from(data, base)
    first = base + NEW_HEADER.size
    if nlibs > len(data) or first + nlibs * NEW_ENTRY.size > len(data):
        raise ValueError(f"truncated loader cache ({nlibs} entries do not fit in {len(data)} bytes)")
    gen, hwcaps = _extensions(data, base, ext_off)
    entries = []
    for i in range(nlibs):
        flags, key, value, osv, hwcap = NEW_ENTRY.unpack_from(data, first + i * NEW_ENTRY.size)
        sub = None
        if hwcap & HWCAP_EXTENSION:
            idx = hwcap & 0xFFFFFFFF
            sub = hwcaps[idx] if idx < len(hwcaps) else f"#{idx}"
        entries.append(LdCacheEntry(_cstr(data, base + key), _cstr(data, base + value), flags, osv, hwcap, sub))
    return entries, gen


def _extensions(data: bytes, base: int, ext_off: int) -> Tuple[Optional[str], List[str]]:
    """The generator string and the glibc-hwcaps subfolder names, when present."""
    if not ext_off or ext_off + 8 > len(data):
        return None, []
    magic, count = struct.unpack_from("<II", data, ext_off)
    if magic != EXT_MAGIC:
        return None, []
    gen, hwcaps = None, []
    for i in range(min(count, 64)):
        so = ext_off + 8 + i * 16
        if so + 16 > len(data):
            break
        tag, _flags, off, size = struct.unpack_from("<IIII", data, so)
        if off + size > len(data):
            continue
        if tag == EXT_TAG_GENERATOR:
            gen = data[off:off + size].decode("utf-8", "replace")
        elif tag == EXT_TAG_HWCAPS:
            for j in range(size // 4):
                (soff,) = struct.unpack_from("<I", data, off + 4 * j)
                try:
                    hwcaps.append(_cstr(data, base + soff))
                except ValueError:
                    hwcaps.append(f"#{j}")
    return gen, hwcaps


# --- writing ---------------------------------------------------------------------------------

def libcmp(a: str, b: str) -> int:
    """glibc's _dl_cache_libcmp: runs of digits compare as numbers."""
    i = j = 0
    while i < len(a):
        ca = a[i]
        if ca.isdigit() and ca.isascii():
            if j < len(b) and b[j].isdigit() and b[j].isascii():
                si = i
                while i < len(a) and a[i].isdigit() and a[i].isascii():
                    i += 1
                sj = j
                while j < len(b) and b[j].isdigit() and b[j].isascii():
                    j += 1
                va, vb = int(a[si:i]), int(b[sj:j])
                if va != vb:
                    return va - vb
                continue
            return 1
        if j < len(b) and b[j].isdigit() and b[j].isascii():
            return -1
        cb = b[j] if j < len(b) else "\0"
        if ca != cb:
            return ord(ca) - ord(cb)
        i += 1
        j += 1
    return 0 - (ord(b[j]) if j < len(b) else 0)


def write_ld_cache(entries: Iterable, path: str, generator: str = "vgpu-tui sandbox builder") -> None:
    """Write a new-format cache at `path` (a file of this machine), atomically.

    `entries` are LdCacheEntry or (soname, path[, flags]) tuples; paths are as the inspected
    system sees them (the loader there reads them).
    """
    items: List[LdCacheEntry] = []
    for e in entries:
        if not isinstance(e, LdCacheEntry):
            e = LdCacheEntry(*e)
        items.append(e)

    def order(x: LdCacheEntry, y: LdCacheEntry) -> int:
        r = libcmp(x.soname, y.soname)
        if r == 0:
            r = y.flags - x.flags
        return -r  # descending, as ldconfig writes and the loader's binary search expects

    items.sort(key=functools.cmp_to_key(order))
    strings = bytearray()
    offsets: Dict[str, int] = {}
    start = NEW_HEADER.size + len(items) * NEW_ENTRY.size

    def intern(s: str) -> int:
        if s not in offsets:
            offsets[s] = start + len(strings)
            strings.extend(s.encode("utf-8", "surrogateescape") + b"\0")
        return offsets[s]

    body = bytearray()
    for e in items:
        body += NEW_ENTRY.pack(e.flags, intern(e.soname), intern(e.path), e.osversion, e.hwcap & ~HWCAP_EXTENSION)
    ext_off = (start + len(strings) + 7) & ~7
    gen = generator.encode()
    gen_off = ext_off + 8 + 16
    ext = struct.pack("<II", EXT_MAGIC, 1) + struct.pack("<IIII", EXT_TAG_GENERATOR, 0, gen_off, len(gen)) + gen
    header = NEW_HEADER.pack(NEW_MAGIC, len(items), len(strings), ENDIAN_LITTLE, b"\0" * 3, ext_off, b"\0" * 12)
    blob = header + bytes(body) + bytes(strings)
    blob += b"\0" * (ext_off - len(blob)) + ext
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ld.so.cache.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- staleness --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ConfFolder:
    path: str
    conf_file: str            # the conf file that names it
    exists: bool
    libraries: Tuple[str, ...] = ()  # SONAMEs (or file names) of libraries there
    missing_from_cache: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CacheCheck:
    cache: LdCache
    conf_files: Tuple[str, ...]
    folders: Tuple[ConfFolder, ...]
    newer_conf: Tuple[str, ...]   # conf files modified after the cache was written
    stale: bool
    findings: Tuple[Finding, ...] = ()


def read_conf(host, path: str = "/etc/ld.so.conf", _depth: int = 0) -> Tuple[List[str], List[Tuple[str, str]]]:
    """(conf files read, [(folder, conf file naming it)]) with `include` globs followed."""
    files: List[str] = []
    folders: List[Tuple[str, str]] = []
    text = host.read_text(path)
    if text is None or _depth > 8:
        return files, folders
    files.append(path)
    base = os.path.dirname(path)
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8] in (" ", "\t"):
            for pattern in line[8:].split():
                if not pattern.startswith("/"):
                    pattern = base + "/" + pattern
                for inc in _glob(host, pattern):
                    f2, d2 = read_conf(host, inc, _depth + 1)
                    files += f2
                    folders += d2
        elif line.startswith("hwcap"):
            continue
        else:
            for folder in line.replace(",", " ").split():
                folder = folder.split("=", 1)[0]  # old "dir=TYPE" syntax
                if folder.startswith("/"):
                    folders.append((folder.rstrip("/") or "/", path))
    return files, folders


def _glob(host, pattern: str) -> List[str]:
    folder, pat = os.path.split(pattern)
    if not any(c in pat for c in "*?["):
        return [pattern] if host.exists(pattern) else []
    return [folder + "/" + n for n in host.listdir(folder) if fnmatch.fnmatchcase(n, pat)]


def check_cache(host, cache_path: str = "/etc/ld.so.cache", conf_path: str = "/etc/ld.so.conf") -> CacheCheck:
    """Whether the cache still describes what ld.so.conf's folders hold."""
    from probes.elf import read_elf

    cache = read_ld_cache(host, cache_path)
    conf_files, conf_folders = read_conf(host, conf_path)
    known = {}
    for e in cache.entries:
        known.setdefault(e.soname, []).append(e.path)
    newer = []
    if cache.mtime is not None:
        for f in conf_files:
            st = host.stat(f)
            if st is not None and st.st_mtime > cache.mtime:
                newer.append(f)
    seen = set()
    folders = []
    for folder, conf in conf_folders:
        if folder in seen:
            continue
        seen.add(folder)
        if not host.isdir(folder):
            folders.append(ConfFolder(folder, conf, False))
            continue
        libs, missing = [], []
        for name in host.listdir(folder):
            if not (name.startswith("lib") and ".so" in name):
                continue
            p = folder + "/" + name
            if name in known and any(os.path.dirname(x) == folder for x in known[name]):
                libs.append(name)
                continue
            info = read_elf(host, p, symbols=False)
            if not info.is_elf or info.error or info.type != "DYN":
                continue
            soname = info.soname or name
            libs.append(soname)
            if soname not in known:
                missing.append(soname)
        folders.append(ConfFolder(folder, conf, True, tuple(sorted(set(libs))), tuple(sorted(set(missing)))))
    findings = []
    if not cache.exists or cache.error:
        findings.append(Finding(
            "ldcache-unreadable", "driver-lib-not-found", "warning",
            f"The loader cache {cache_path} is {'missing' if not cache.exists else 'unreadable'}",
            f"{cache.error or 'missing'}: the loader finds only libraries on explicit paths and in the default folders.",
            (f"{cache_path}: {cache.error}",), Fix("ldconfig", {}, "vgpu-tui fix ldconfig")))
    missing_all = [(f.path, m) for f in folders for m in f.missing_from_cache]
    if missing_all:
        evidence = tuple(f"{d}/{m} is in a folder of {next(x.conf_file for x in folders if x.path == d)} but not in {cache_path}"
                         for d, m in missing_all[:20])
        findings.append(Finding(
            "ldcache-stale", "driver-lib-not-found", "warning",
            f"The loader cache is stale: {len(missing_all)} librar{'y' if len(missing_all) == 1 else 'ies'} of the configured folders are not in it",
            "The loader reads only the binary cache, not ld.so.conf; libraries added after the last `ldconfig` are invisible to it.",
            evidence, Fix("ldconfig", {}, "vgpu-tui fix ldconfig")))
    elif newer:
        findings.append(Finding(
            "ldcache-older-than-conf", "driver-lib-not-found", "info",
            "The loader cache is older than its configuration",
            "A conf file changed after the cache was built; its folders' libraries are all in the cache nonetheless.",
            tuple(f"{f} is newer than {cache_path}" for f in newer)))
    stale = bool(missing_all) or bool(newer)
    return CacheCheck(cache, tuple(conf_files), tuple(folders), tuple(newer), stale, tuple(findings))
