"""Where glibc's `ld.so` finds each DT_NEEDED, by which rule, and every path it tried.

The model follows glibc's `_dl_map_object` / `open_path` / `open_verify` (elf/dl-load.c):

1. A name with a `/` is opened as it is (`absolute`, after `$ORIGIN`-style expansion).
2. An object already loaded whose name or SONAME matches is reused (`already-loaded`).
3. Only if the requesting object has no DT_RUNPATH: the DT_RPATH of the requester, then of
   the object that loaded it, and so on up to the main program (`rpath`). An object with
   DT_RUNPATH has no DT_RPATH at all as far as the loader is concerned.
4. `LD_LIBRARY_PATH` (`:` or `;` separated; `$ORIGIN` is the main program's) (`ld_library_path`).
5. The requester's own DT_RUNPATH, never inherited (`runpath`).
6. `/etc/ld.so.cache`, entries of this machine's kind only; with DF_1_NODEFLIB on the
   requester, entries in the default folders are refused (`ld.so.cache`).
7. The default folders, unless the requester has DF_1_NODEFLIB (`default`).

Every folder of steps 3-5 and 7 is first searched in its `glibc-hwcaps/<level>/`
subfolders that the CPU supports (x86-64-v4..v2 from the host's /proc/cpuinfo; glibc >= 2.33),
then, before glibc 2.37, in the legacy power set of `tls/`, the platform (`x86_64`,
`haswell`, `xeon_phi`) and the hwcap names (`x86_64`, `avx512_1`), in glibc's order
(elf/dl-hwcaps.c). The glibc version is the root libc.so.6's highest `GLIBC_2.N` version
definition (`LoaderEnv.glibc`); unknown (no libc in the root) counts as a current glibc.
Within one process (`resolve_tree`) a subfolder found missing is not tried again, and an
RPATH/RUNPATH list none of whose folders exists is dropped, as open_path does.
`$ORIGIN` is the folder of the path the object was *found* at (a symlinked folder is not
resolved); `$LIB` and `$PLATFORM` follow the distribution's layout (tables below).
For each candidate file, as `open_verify` does: a missing file, a dangling link or an
unreadable file is skipped; a file of the wrong ELF class or machine is skipped ("wrong
class", like libtree); a symlink loop ends that rule's list; a file that exists but is not
a loadable ELF (too short, a folder, invalid header, wrong byte order or OS ABI) stops the
whole load with glibc's message. `LD_PRELOAD` (`:` or space separated) and then
`/etc/ld.so.preload` are loaded before the main program's dependencies.
"""
from __future__ import annotations

import dataclasses
import os
import stat as stat_mod
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from probes.elf import ElfInfo, read_elf
from probes.facts import Finding
from probes.ldcache import LdCache, accepted_flags_for, read_ld_cache

VIA = ("rpath", "ld_library_path", "runpath", "ld.so.cache", "default", "absolute", "already-loaded")

# e_machine -> (multiarch triplet, $PLATFORM, Fedora-style lib dir) for 64/32-bit kinds.
PLATFORMS: Dict[Tuple[int, int], Tuple[str, str, str]] = {
    (62, 64): ("x86_64-linux-gnu", "x86_64", "lib64"),
    (62, 32): ("x86_64-linux-gnux32", "x86_64", "libx32"),
    (3, 32): ("i386-linux-gnu", "i686", "lib"),
    (183, 64): ("aarch64-linux-gnu", "aarch64", "lib64"),
    (40, 32): ("arm-linux-gnueabihf", "v7l", "lib"),
    (21, 64): ("powerpc64le-linux-gnu", "power9", "lib64"),
    (22, 64): ("s390x-linux-gnu", "z900", "lib64"),
    (243, 64): ("riscv64-linux-gnu", "riscv64", "lib64"),
}
DEFAULT_KIND = (62, 64)
# The dynamic loader itself is always loaded; when the main object names no interpreter
# (a library given to `ldd`), it is the system's default one for the kind.
DEFAULT_INTERPRETERS = {
    (62, 64): "/lib64/ld-linux-x86-64.so.2", (3, 32): "/lib/ld-linux.so.2",
    (183, 64): "/lib/ld-linux-aarch64.so.1", (62, 32): "/libx32/ld-linux-x32.so.2",
    (40, 32): "/lib/ld-linux-armhf.so.3", (21, 64): "/lib64/ld64.so.2",
}

# glibc-hwcaps levels of x86-64 (best first) and the /proc/cpuinfo flags each one needs.
X86_64_HWCAPS = (
    ("x86-64-v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
    ("x86-64-v3", ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")),
    ("x86-64-v2", ("cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3")),
)

# Which per-folder subfolders each glibc era searches: (first version, glibc-hwcaps/,
# legacy power set, x86 hwcap names and Intel platforms in that set).
GLIBC_ERAS = (
    ((0, 0), False, True, False),   # tls/ and the kernel's platform (x86_64/) only
    ((2, 26), False, True, True),   # + hwcap x86_64/avx512_1, platform haswell/xeon_phi
    ((2, 33), True, True, True),    # glibc-hwcaps/ searched before the legacy set
    ((2, 37), True, False, False),  # legacy set removed
)
# x86-64 legacy hwcap names in bit order (HWCAP_IMPORTANT): (name, CPU vendor or None,
# /proc/cpuinfo flags needed, flags that must be absent) — sysdeps/x86/cpu-features.c.
X86_64_LEGACY_HWCAPS = (
    ("x86_64", None, (), ()),
    ("avx512_1", "GenuineIntel", ("avx512cd", "avx512bw", "avx512dq", "avx512vl"), ("avx512er",)),
)
# The legacy platform: the first match, else the kernel's AT_PLATFORM (`x86_64`).
X86_64_LEGACY_PLATFORMS = (
    ("xeon_phi", "GenuineIntel", ("avx512cd", "avx512er", "avx512pf")),
    ("haswell", "GenuineIntel", ("avx2", "bmi1", "bmi2", "abm", "movbe", "popcnt")),
)
# The library whose version definitions date the root's glibc (looked for in the default folders).
LIBC_NAME = "libc.so.6"

# glibc's messages for a file that stops the load (open_verify's "lose" path).
FATAL_MESSAGES = {
    "short": "file too short",
    "dir": "cannot read file data: Error 21",  # EISDIR; ld.so has no strerror table
    "header": "invalid ELF header",
    "byteorder": "ELF file data encoding not little-endian",
    "osabi": "ELF file OS ABI invalid",
    "type": "only ET_DYN and ET_EXEC can be loaded",
}


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One candidate path: what the loader made of it."""

    path: str
    via: str
    outcome: str  # "found", "no such file", "wrong class", "wrong machine", "unreadable", "loop", "fatal: ...",
    #              "refused (NODEFLIB)", or "wrong class (cache entry is for ...)" (not in `tried`)


@dataclasses.dataclass(frozen=True)
class Resolution:
    """Where one name was found (or why not), by which rule, with every path tried."""

    name: str
    found: Optional[str]
    via: Optional[str]
    tried: Tuple[str, ...] = ()        # the files opened, in order (LD_DEBUG=libs "trying file=")
    attempts: Tuple[Attempt, ...] = dataclasses.field(default=(), metadata={"json": False})
    error: Optional[str] = None        # glibc's message when the load stops or finds nothing
    realpath: Optional[str] = None     # where `found` really leads inside the root
    skipped: Tuple[str, ...] = ()      # candidates skipped for class/machine/readability
    elf: Optional[ElfInfo] = dataclasses.field(default=None, metadata={"json": False})

    @property
    def ok(self) -> bool:
        return self.found is not None and self.error is None


@dataclasses.dataclass(frozen=True)
class ResolveNode:
    """One object of the dependency tree, as the loader would map it."""

    name: str
    path: Optional[str]
    via: Optional[str]
    realpath: Optional[str] = None
    tried: Tuple[str, ...] = ()
    error: Optional[str] = None
    already_loaded: bool = False
    preload: bool = False
    soname: Optional[str] = None
    elf_class: Optional[int] = None
    machine: Optional[str] = None
    rpath: Tuple[str, ...] = ()
    runpath: Tuple[str, ...] = ()
    children: Tuple["ResolveNode", ...] = ()
    skipped: Tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.path is not None and self.error is None

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def unresolved(self) -> List["ResolveNode"]:
        return [n for n in self.walk() if not n.found and not n.already_loaded]


# --- the loader's view of one host ------------------------------------------------------

class LoaderEnv:
    """What one search needs about the host: cache, default folders, hwcaps, DSTs."""

    def __init__(self, host, env: Optional[Mapping[str, str]] = None, kind: Tuple[int, int] = DEFAULT_KIND,
                 *, remember_dirs: bool = False):
        self.host = host
        self.env = dict(host.env if env is None else env)
        self.kind = kind if kind in PLATFORMS else DEFAULT_KIND
        triplet, self.platform, fedora_lib = PLATFORMS[self.kind]
        self.debian = host.isdir(f"/usr/lib/{triplet}") or host.isdir(f"/lib/{triplet}")
        self.lib = f"lib/{triplet}" if self.debian else fedora_lib
        if self.debian:
            self.system_dirs = (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib")
        elif fedora_lib != "lib":
            self.system_dirs = (f"/{fedora_lib}", f"/usr/{fedora_lib}")
        else:
            self.system_dirs = ("/lib", "/usr/lib")
        self._elf: Dict[str, ElfInfo] = {}
        self.glibc = glibc_version(host, self.system_dirs)
        era = era_for(self.glibc)
        vendor, flags = self._cpu()
        x86_64 = self.kind == (62, 64)
        self.hwcaps = tuple(name for name, need in X86_64_HWCAPS
                            if flags and all(f in flags for f in need)) if x86_64 and era[1] else ()
        self.legacy = legacy_subdirs(vendor, flags, era[3]) if x86_64 and era[2] else ()
        self._cache: Optional[LdCache] = None
        # One process's memory of open_path: subfolder -> exists, and the lists dropped.
        self.remember_dirs = remember_dirs
        self.dir_exists: Dict[Tuple[str, int], bool] = {}
        self.dead_lists: set = set()

    def _cpu(self) -> Tuple[str, frozenset]:
        text = self.host.read_text("/proc/cpuinfo", limit=1 << 20) or ""
        vendor, flags = "", None
        for line in text.splitlines():
            if line.startswith("vendor_id") and not vendor:
                vendor = line.split(":", 1)[-1].strip()
            elif line.startswith("flags"):
                flags = frozenset(line.split(":", 1)[-1].split())
                break
        return vendor, flags or frozenset()

    @property
    def cache(self) -> LdCache:
        if self._cache is None:
            self._cache = read_ld_cache(self.host)
        return self._cache

    def elf(self, path: str) -> ElfInfo:
        info = self._elf.get(path)
        if info is None:
            info = self._elf[path] = read_elf(self.host, path, symbols=False)
        return info

    # $ORIGIN, $LIB, $PLATFORM (and the ${...} forms), as expand_dynamic_string_token.
    def expand(self, text: str, origin: Optional[str]) -> Optional[str]:
        if "$" not in text:
            return text
        out = text
        for name, value in (("ORIGIN", origin), ("LIB", self.lib), ("PLATFORM", self.platform)):
            for token in ("${%s}" % name, "$" + name):
                if token in out:
                    if value is None:
                        return None  # glibc drops a path whose $ORIGIN is unknown
                    out = out.replace(token, value)
        return out

    def split_dirs(self, entries: Sequence[str], origin: Optional[str]) -> List[str]:
        """A search list as fillin_rpath builds it: DSTs expanded, trailing '/' cut, no repeats."""
        out: List[str] = []
        for raw in entries:
            d = self.expand(raw, origin)
            if d is None:
                continue
            if d == "":
                d = "."
            if not d.startswith("/"):
                if not self.host.live:
                    continue  # relative to the process's cwd: unknowable for another root
                d = os.path.join(os.getcwd(), d)
            d = d.rstrip("/") or "/"
            if d not in out:
                out.append(d)
        return out

    def ld_library_path(self, origin: Optional[str]) -> List[str]:
        value = self.env.get("LD_LIBRARY_PATH")
        if not value:
            return []
        return self.split_dirs(value.replace(";", ":").split(":"), origin)

    def with_hwcaps(self, folder: str) -> List[str]:
        """The folder's subfolders in the order ld.so tries them, the folder itself last."""
        base = folder.rstrip("/")
        return ([f"{base}/glibc-hwcaps/{h}" for h in self.hwcaps]
                + [f"{base}/{sub}" for sub in self.legacy] + [folder])

    def check(self, path: str) -> Tuple[str, Optional[ElfInfo]]:
        """open_verify: 'found', a skip reason, 'loop'/'error' (end the rule), or 'fatal: msg'."""
        host = self.host
        r = host.resolve(path)
        if r.status in ("dangling", "not-dir"):
            return "no such file", None
        if r.status == "loop":
            return "loop", None
        if r.status != "ok":
            return "unreadable" if (r.error or "").lower().startswith("permission") else f"error: {r.error}", None
        st = host.lstat(r.final)
        if st is not None and stat_mod.S_ISDIR(st.st_mode):
            return "fatal: " + FATAL_MESSAGES["dir"], None
        real = host.path(r.final)
        if not os.access(real, os.R_OK):
            return "unreadable", None
        info = self.elf(path)
        if not info.is_elf:
            if info.error and "permission" in info.error:
                return "unreadable", None
            size = info.size if info.size is not None else (st.st_size if st else 0)
            return "fatal: " + FATAL_MESSAGES["short" if size < 64 else "header"], info
        if info.elf_class != self.kind[1]:
            return "wrong class", info
        if info.byte_order != "little":
            return "fatal: " + FATAL_MESSAGES["byteorder"], info
        if info.machine_code != self.kind[0]:
            return "wrong machine", info
        if info.osabi not in ("SYSV", "GNU"):
            return "fatal: " + FATAL_MESSAGES["osabi"], info
        if info.type not in ("DYN", "EXEC"):
            return "fatal: " + FATAL_MESSAGES["type"], info
        return "found", info


def era_for(version: Optional[Tuple[int, int]]) -> Tuple[Tuple[int, int], bool, bool, bool]:
    """The GLIBC_ERAS row of a glibc version; unknown counts as the newest."""
    if version is None:
        return GLIBC_ERAS[-1]
    return [row for row in GLIBC_ERAS if version >= row[0]][-1]


def legacy_subdirs(vendor: str, flags, x86_names: bool = True) -> Tuple[str, ...]:
    """The x86-64 legacy subfolders, best first, without the folder itself (dl-hwcaps.c).

    The parts are the hwcap names (bit order), the platform, then `tls`; entry m of the
    power set (m from all bits down to 1) joins the parts whose bit is set, last part first.
    Before glibc 2.26 (`x86_names` false) there are no hwcap names and the platform is the
    kernel's.
    """
    def match(v, need, absent=()):
        return (v is None or v == vendor) and all(f in flags for f in need) and not any(f in flags for f in absent)

    parts = [name for name, v, need, absent in X86_64_LEGACY_HWCAPS if x86_names and match(v, need, absent)]
    parts.append(next((name for name, v, need in X86_64_LEGACY_PLATFORMS if x86_names and match(v, need)), "x86_64"))
    parts.append("tls")
    n = len(parts)
    return tuple("/".join(parts[i] for i in reversed(range(n)) if m >> i & 1)
                 for m in range((1 << n) - 1, 0, -1))


def glibc_version(host, system_dirs: Sequence[str]) -> Optional[Tuple[int, int]]:
    """The root's glibc as (2, N): the highest GLIBC_2.N version its libc.so.6 defines."""
    for d in system_dirs:
        path = f"{d}/{LIBC_NAME}"
        if not host.exists(path):
            continue
        info = read_elf(host, path, symbols=True)  # version definitions come with the symbols
        best = None
        for name in info.version_definitions:
            parts = name[len("GLIBC_"):].split(".") if name.startswith("GLIBC_") else []
            if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]):
                v = (int(parts[0]), int(parts[1]))
                best = v if best is None or v > best else best
        if best is not None:
            return best
    return None


def _origin(obj: Optional[ElfInfo]) -> Optional[str]:
    if obj is None or not obj.path:
        return None
    return os.path.dirname(obj.path) or "/"


def object_kind(obj: Optional[ElfInfo]) -> Tuple[int, int]:
    """(e_machine, class) of an object, the key of the tables above; x86-64 when unknown."""
    if obj is not None and obj.is_elf and obj.machine_code is not None and obj.elf_class:
        return (obj.machine_code, obj.elf_class)
    return DEFAULT_KIND


# --- one lookup ---------------------------------------------------------------------------

def find_library(host, soname: str, env: Optional[Mapping[str, str]] = None,
                 requester: Optional[ElfInfo] = None, loaded: Optional[Mapping[str, str]] = None,
                 *, chain: Sequence[ElfInfo] = (), main: Optional[ElfInfo] = None,
                 lenv: Optional[LoaderEnv] = None) -> Resolution:
    """Where the loader finds `soname` when `requester` asks for it.

    `loaded` maps names (request names and SONAMEs) of objects already loaded to their path.
    `chain` lists the objects that loaded the requester, nearest first (their DT_RPATH is
    searched after the requester's); `main` is the main program (its $ORIGIN is used in
    LD_LIBRARY_PATH, its RPATH searched last). Both default to the requester itself.
    """
    main = main if main is not None else (chain[-1] if chain else requester)
    if lenv is None:
        lenv = LoaderEnv(host, env, object_kind(main or requester))
    attempts: List[Attempt] = []
    skipped: List[str] = []

    def done(found, via, error=None, info=None):
        real = None
        if found is not None:
            r = host.resolve(found)
            real = r.final if r.ok else None
        # ld.so prints "trying file=" for a cache hit even when NODEFLIB then refuses it.
        opened = tuple(a.path for a in attempts if not a.outcome.startswith("wrong class (cache"))
        return Resolution(soname, found, via, opened, tuple(attempts), error,
                          real, tuple(skipped), info)

    # 1. a path
    if "/" in soname:
        path = lenv.expand(soname, _origin(requester))
        if path is None:
            return done(None, None, f"{soname}: cannot expand $ORIGIN")
        if not path.startswith("/"):
            if not host.live:
                return done(None, None, f"{soname}: a relative path depends on the working folder")
            path = os.path.join(os.getcwd(), path)
        outcome, info = lenv.check(path)
        attempts.append(Attempt(path, "absolute", outcome))
        if outcome == "found":
            return done(path, "absolute", None, info)
        if outcome.startswith("fatal: "):
            return done(None, None, f"{path}: {outcome[7:]}")
        return done(None, None, f"{soname}: cannot open shared object file: No such file or directory"
                    if outcome == "no such file" else f"{soname}: {outcome}")

    # 2. already loaded
    if loaded and soname in loaded:
        return done(loaded[soname], "already-loaded")

    def search(folders: Sequence[str], via: str, owner: Optional[str] = None):
        """open_path over one list; (path, info) found, ('fatal', msg), or None.

        `owner` names an object's RPATH/RUNPATH list, which open_path drops for later
        lookups once none of its folders exists (LD_LIBRARY_PATH and the defaults stay)."""
        key = (owner, via)
        if owner is not None and key in lenv.dead_lists:
            return None
        remember = lenv.remember_dirs
        any_dir = False
        for folder in folders:
            for i, d in enumerate(lenv.with_hwcaps(folder)):
                slot = (folder, i)  # ld.so keeps one status per (folder, capability string)
                if remember and lenv.dir_exists.get(slot) is False:
                    continue  # known missing: ld.so does not even try it
                cand = f"{d}/{soname}" if d != "/" else "/" + soname
                outcome, info = lenv.check(cand)
                attempts.append(Attempt(cand, via, outcome))
                if remember and slot not in lenv.dir_exists:
                    lenv.dir_exists[slot] = outcome == "found" or lenv.host.isdir(d)
                any_dir |= lenv.dir_exists.get(slot, True)
                if outcome == "found":
                    return cand, info
                if outcome.startswith("fatal: "):
                    return "fatal", f"{cand}: {outcome[7:]}"
                if outcome in ("wrong class", "wrong machine", "unreadable"):
                    skipped.append(f"{cand} ({outcome})")
                if outcome == "loop" or outcome.startswith("error"):
                    return None  # open_path gives up on this list (errno other than ENOENT/EACCES)
        if remember and owner is not None and not any_dir:
            lenv.dead_lists.add(key)
        return None

    req = requester if requester is not None else main
    origin_main = _origin(main)
    # 3. RPATH of the requester and the objects above it, unless the requester has RUNPATH
    if req is None or not req.runpath:
        seen_main = False
        for obj in [req] + [c for c in chain if c is not req]:
            if obj is None:
                continue
            if obj.rpath and not obj.runpath:
                hit = search(lenv.split_dirs(obj.rpath, _origin(obj)), "rpath", obj.path)
                if hit:
                    return _hit(done, hit, "rpath")
            seen_main |= obj is main
        if not seen_main and main is not None and main.rpath and not main.runpath:
            hit = search(lenv.split_dirs(main.rpath, origin_main), "rpath", main.path)
            if hit:
                return _hit(done, hit, "rpath")
    # 4. LD_LIBRARY_PATH
    hit = search(lenv.ld_library_path(origin_main), "ld_library_path")
    if hit:
        return _hit(done, hit, "ld_library_path")
    # 5. the requester's own RUNPATH
    if req is not None and req.runpath:
        hit = search(lenv.split_dirs(req.runpath, _origin(req)), "runpath", req.path)
        if hit:
            return _hit(done, hit, "runpath")
    nodeflib = bool(req is not None and req.nodeflib)
    # 6. the loader cache
    cache = lenv.cache
    if cache.exists and not cache.error:
        accepted = accepted_flags_for(main if main is not None else req)
        entry = cache.lookup(soname, accepted)
        if entry is None and accepted is not None:
            other = cache.lookup(soname)
            if other is not None:  # an entry of another kind (e.g. a 32-bit library): never matched
                why = f"cache entry is for ({other.kind}{',' + other.arch if other.arch else ''})"
                attempts.append(Attempt(other.path, "ld.so.cache", f"wrong class ({why})"))
                skipped.append(f"{other.path} (wrong class: {why})")
        if entry is not None:
            if nodeflib and os.path.dirname(entry.path) in lenv.system_dirs:
                attempts.append(Attempt(entry.path, "ld.so.cache", "refused (NODEFLIB)"))
            else:
                outcome, info = lenv.check(entry.path)
                attempts.append(Attempt(entry.path, "ld.so.cache", outcome))
                if outcome == "found":
                    return done(entry.path, "ld.so.cache", None, info)
                if outcome.startswith("fatal: "):
                    return done(None, None, f"{entry.path}: {outcome[7:]}")
    # 7. the default folders
    if not nodeflib:
        hit = search(lenv.system_dirs, "default")
        if hit:
            return _hit(done, hit, "default")
    return done(None, None, f"{soname}: cannot open shared object file: No such file or directory")


def _hit(done, hit, via):
    if hit[0] == "fatal":
        return done(None, None, hit[1])
    return done(hit[0], via, None, hit[1])


# --- the whole tree ------------------------------------------------------------------------

def preload_names(host, env: Mapping[str, str]) -> List[Tuple[str, str]]:
    """[(name, source)] of LD_PRELOAD then /etc/ld.so.preload, as rtld reads them."""
    out: List[Tuple[str, str]] = []
    for name in (env.get("LD_PRELOAD") or "").replace(":", " ").split():
        out.append((name, "LD_PRELOAD"))
    text = host.read_text("/etc/ld.so.preload", limit=1 << 20)
    if text:
        for line in text.splitlines():
            for name in line.split("#", 1)[0].replace(":", " ").replace("\t", " ").split():
                out.append((name, "/etc/ld.so.preload"))
    return out


def resolve_tree(host, path: str, env: Optional[Mapping[str, str]] = None, *, preload: bool = True,
                 max_objects: int = 2000) -> ResolveNode:
    """The dependency tree of `path` as the loader maps it: breadth-first, each object once.

    `path` is the main program (as `ldd path` makes it). Objects met again appear as
    leaves with `already_loaded` (and `via` "already-loaded").
    """
    env = dict(host.env if env is None else env)
    root = read_elf(host, path, symbols=False)
    lenv = LoaderEnv(host, env, object_kind(root), remember_dirs=True)  # one process
    if not root.is_elf or root.error:
        return ResolveNode(os.path.basename(path), path, None, error=root.error or "not an ELF file")
    loaded: Dict[str, str] = {}
    files: Dict[str, str] = {}

    def register(name: str, found: str, info: Optional[ElfInfo]):
        loaded.setdefault(name, found)
        if info is not None and info.soname:
            loaded.setdefault(info.soname, found)
        r = host.resolve(found)
        if r.ok:
            files.setdefault(r.final, found)

    register(os.path.basename(path), path, root)
    loaded.setdefault(path, path)
    interp = root.interpreter or DEFAULT_INTERPRETERS.get(object_kind(root))
    if interp and host.exists(interp):
        interp_info = read_elf(host, interp, symbols=False)
        register(os.path.basename(interp), interp, interp_info)
    # Nodes are built bottom-up after a breadth-first walk; keep mutable records first.
    root_rec = dict(name=os.path.basename(path), res=None, info=root, chain=(), kids=[], preload=False, dup=False)
    queue: List[dict] = []
    pre_recs = []
    if preload:
        for name, source in preload_names(host, env):
            res = find_library(host, name, env, root, loaded, chain=(root,), main=root, lenv=lenv)
            rec = dict(name=name, res=res, info=res.elf, chain=(root,), kids=[], preload=True,
                       dup=res.via == "already-loaded", source=source)
            pre_recs.append(rec)
            if res.found and res.via != "already-loaded":
                register(name, res.found, res.elf)
                queue.append(rec)
    queue.insert(0, root_rec)
    count = 0
    while queue and count < max_objects:
        rec = queue.pop(0)
        info = rec["info"]
        if info is None or not info.is_elf:
            continue
        chain = (info,) + rec["chain"]
        for name in info.needed:
            count += 1
            res = find_library(host, name, env, info, loaded, chain=chain, main=root, lenv=lenv)
            dup = res.via == "already-loaded"
            if res.found and not dup:
                if res.realpath in files:
                    dup = True  # the same file under another name: glibc reuses the object
            kid = dict(name=name, res=res, info=res.elf, chain=chain, kids=[], preload=False, dup=dup)
            rec["kids"].append(kid)
            if res.found and not dup:
                register(name, res.found, res.elf)
                queue.append(kid)
            elif res.found and dup:
                loaded.setdefault(name, res.found)

    def build(rec) -> ResolveNode:
        res: Optional[Resolution] = rec["res"]
        info: Optional[ElfInfo] = rec["info"]
        kids = tuple(build(k) for k in rec["kids"])
        if res is None:
            return ResolveNode(rec["name"], path, None, realpath=_real(host, path), soname=info.soname,
                               elf_class=info.elf_class, machine=info.machine, rpath=info.rpath,
                               runpath=info.runpath, children=kids)
        return ResolveNode(
            rec["name"], res.found, res.via, res.realpath, res.tried, res.error,
            already_loaded=rec["dup"], preload=rec["preload"],
            soname=info.soname if info else None, elf_class=info.elf_class if info else None,
            machine=info.machine if info else None, rpath=info.rpath if info else (),
            runpath=info.runpath if info else (), children=() if rec["dup"] else kids,
            skipped=res.skipped)

    root_node = build(root_rec)
    pre = tuple(build(r) for r in pre_recs)
    return dataclasses.replace(root_node, children=pre + root_node.children)


def _real(host, path: str) -> Optional[str]:
    r = host.resolve(path)
    return r.final if r.ok else None


def direct_needed(host, path: str, env: Optional[Mapping[str, str]] = None, *, preload: bool = True) -> Tuple[ElfInfo, List[Resolution]]:
    """(the object, one Resolution per DT_NEEDED) — what `resolve` shows at the top."""
    env = dict(host.env if env is None else env)
    tree = resolve_tree(host, path, env, preload=preload)
    root = read_elf(host, path, symbols=False)
    out: List[Resolution] = []
    for node in tree.children:
        if node.preload:
            continue
        out.append(Resolution(node.name, node.path if node.error is None else None,
                              node.via if node.error is None else None, node.tried, (), node.error,
                              node.realpath, node.skipped))
    return root, out


def resolve_findings(tree: ResolveNode) -> List[Finding]:
    """Findings for what would not load: missing or broken dependencies and preloads."""
    out: List[Finding] = []
    for node in tree.walk():
        if node is tree or node.found or node.already_loaded:
            continue
        if node.preload:
            out.append(Finding(
                "preload-missing", "preload-broken", "warning",
                f"A preloaded library cannot be loaded: {node.name}",
                "The loader prints an error for it and goes on without it.",
                (node.error or "not found",) + tuple(f"tried {t}" for t in node.tried[:10])))
            continue
        category = "driver-lib-not-found" if node.name.startswith(("libcuda.so", "libnvidia-ml.so")) else "backend-lib-missing"
        out.append(Finding(
            f"unresolved-{node.name}", category, "error",
            f"{node.name} cannot be found by the loader",
            node.error or "not found",
            tuple(f"tried {t}" for t in node.tried[:20]) + tuple(f"skipped {s}" for s in node.skipped[:5])))
    return out
