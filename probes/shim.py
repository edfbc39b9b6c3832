"""The shim check: a driver library's exports against what Ollama's CUDA path needs.

Symbol sets are package data (probes/data/symbols/required.json, from
../shared/data/symbols; probes/data/real-driver/*.nm, `nm -D` of the real 580.159.04
driver). Tiers (../shared/reference/shim-symbols.md §3, §6):

* fatal         `libcuda_required_minimal`: without one, libggml-cuda.so fails to load
                (its 11 direct imports), cuBLAS fails (its dlsym set) or cudart fails;
* conditional   `cuGetProcAddress_v2`: cudart falls back to looking names up one by one;
                fatal only when those names are missing too;
* degrading     the detected era's own look-ups (discovery, free memory, NVML);
* informational what cudart may request through cuGetProcAddress (tolerated when absent).

`driver_libraries(host, install, scan)` says which libcuda.so.1 / libnvidia-ml.so.1 the
runner would load (probes.loader, LD_PRELOAD and /etc/ld.so.preload included) and checks
each one; a preloaded interposer (HAMi-core style) that exports driver functions is shown.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import posixpath
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from probes import eras
from probes.elf import ElfInfo, read_elf
from probes.facts import Finding, Fix
from probes.host import Host

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SONAMES = {"libcuda": "libcuda.so.1", "nvml": "libnvidia-ml.so.1"}
REAL_DRIVER_VERSION = "580.159.04"
CUDART_FALLBACK = ("cuInit", "cuDriverGetVersion", "cuGetExportTable")
# Who breaks when a fatal name is missing (the required.json list it comes from).
FATAL_WHY = (
    ("libcuda_ggml_direct", "libggml-cuda.so imports it: dlopen(RTLD_NOW) of the CUDA backend fails, "
                            "silently in Ollama 0.5.8–0.29: CPU only"),
    ("libcuda_cudart_fallback_elf_without_getprocaddress",
     "cudart needs it: cudaGetDeviceCount fails (insufficient driver)"),
    ("libcuda_cublas13_dlsym", "cuBLAS/cuBLASLt dlsym() it: cublasCreate fails and ggml aborts at the "
                               "first matrix multiply"),
)


@functools.lru_cache(maxsize=1)
def required() -> Dict[str, Any]:
    with open(os.path.join(DATA, "symbols", "required.json"), encoding="utf-8") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=4)
def real_driver_exports(kind: str) -> Tuple[str, ...]:
    """The names the real 580 driver's library exports (`nm -D --defined-only`)."""
    name = SONAMES[kind] + ".nm"
    out: List[str] = []
    with open(os.path.join(DATA, "real-driver", name), encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and parts[1] not in ("U", "w", "v"):
                out.append(parts[2].split("@")[0])
    return tuple(sorted(set(out)))


@dataclasses.dataclass(frozen=True)
class MissingSymbol:
    name: str
    tier: str  # "fatal" | "conditional" | "degrading" | "informational"
    why: str
    in_real_driver: bool


@dataclasses.dataclass(frozen=True)
class ShimCheck:
    path: str
    kind: str  # "libcuda" | "nvml"
    against: str  # what it was checked against ("libcuda", "nvml", "0.24.0")
    soname: Optional[str]
    expected_soname: str
    elf_class: Optional[int]
    machine: Optional[str]
    needed: Tuple[str, ...]
    exported: int  # names usable by an unversioned consumer
    hidden: Tuple[str, ...]  # names exported only under a hidden version (name@V): not bound
    version_definitions: Tuple[str, ...]
    missing: Tuple[str, ...]  # required names it lacks (fatal, conditional, degrading), the contract's list
    missing_detail: Tuple[MissingSymbol, ...]  # every tier, informational included, with what each breaks
    real_driver_exports: int
    missing_vs_real: int  # how many names the real 580 driver exports that this library lacks
    extra_vs_real: int  # how many names it exports that the real driver does not
    missing_vs_real_names: Tuple[str, ...] = ()
    extra_vs_real_names: Tuple[str, ...] = ()
    findings: Tuple[Finding, ...] = ()
    error: Optional[str] = None

    def tier(self, tier: str) -> Tuple[str, ...]:
        return tuple(m.name for m in self.missing_detail if m.tier == tier)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.tier("fatal") and not any(
            f.severity == "error" for f in self.findings)


# -- tiers ---------------------------------------------------------------------------------
def _kind_of(against: str, info: Optional[ElfInfo]) -> str:
    a = (against or "").lower()
    if a in ("nvml", "libnvidia-ml", "libnvidia-ml.so.1"):
        return "nvml"
    if a in ("libcuda", "libcuda.so.1", "cuda"):
        return "libcuda"
    name = (info.soname or posixpath.basename(info.path)) if info else ""
    return "nvml" if "nvidia-ml" in name else "libcuda"


def tiers(kind: str, version: Optional[str]) -> List[Tuple[str, str, str]]:
    """(name, tier, why) for every required name, most severe tier first, each name once."""
    req = required()
    out: Dict[str, Tuple[str, str]] = {}
    era_key = eras.rule("symbol_era", version) if version else None
    era_lists = req["eras"].get(era_key, {}) if era_key else {}
    era_name = f"Ollama {version}" if version else "Ollama"
    if kind == "libcuda":
        for n, why in req.get("libcuda_conditional", {}).items():
            out.setdefault(n, ("conditional", why))
        for n in req.get("libcuda_required_minimal", ()):
            why = next((w for key, w in FATAL_WHY if n in req.get(key, ())),
                       "measured fatal on an H200 (libcuda_required_minimal)")
            out.setdefault(n, ("fatal", why))
        if version:
            own = era_lists.get("libcuda", ())
            legacy = eras.parse_version(version) is not None and eras.parse_version(version) <= (0, 12, 3)
            for n in own:
                out.setdefault(n, ("degrading", f"{era_name} looks it up "
                                   + ("for GPU discovery: a missing one makes discovery skip this library"
                                      if legacy else "(discovery / device properties)")))
        else:
            for n in req.get("libcuda_ollama_current", ()):
                out.setdefault(n, ("degrading", "Ollama v0.30+ native probe: PCI id, compute capability and "
                                                "driver version are lost"))
            for n in req.get("libcuda_ollama_legacy", ()):
                out.setdefault(n, ("degrading", "Ollama ≤ v0.12.3 discovery (gpu_info_nvcuda.c) needs it"))
        for n in req.get("libcuda_cudart_requests", ()):
            out.setdefault(n, ("informational", "cudart may request it through cuGetProcAddress; tolerated "
                                                "when it is never called"))
    else:
        names = era_lists.get("nvml") if version else None
        if names is None:
            names = list(req.get("nvml_ollama_current", ())) + list(req.get("nvml_ollama_legacy", ()))
        for n in names:
            out.setdefault(n, ("degrading", f"{era_name} looks it up for free VRAM / driver version: without it "
                                            "Ollama falls back (cudaMemGetInfo, no driver check)"))
    order = {"fatal": 0, "conditional": 1, "degrading": 2, "informational": 3}
    return sorted(((n, t, w) for n, (t, w) in out.items()), key=lambda x: (order[x[1]], x[0]))


def _usable_exports(info: ElfInfo) -> Tuple[set, Tuple[str, ...]]:
    """(names an unversioned consumer binds, names only under a hidden version)."""
    usable, hidden = set(), set()
    for s in info.exports:
        if s.default_version or s.version is None:
            usable.add(s.name)
        else:
            hidden.add(s.name)
    return usable, tuple(sorted(hidden - usable))


def check_exports(elf_info: ElfInfo, against: str = "libcuda", version: Optional[str] = None) -> ShimCheck:
    """Check one library's exports. `against`: "libcuda", "nvml" or an Ollama version."""
    if eras.parse_version(against or ""):
        version = against.lstrip("v")
    kind = _kind_of(against, elf_info)
    expected = SONAMES[kind]
    path = elf_info.path
    if not elf_info.is_elf:
        f = Finding("shim-not-elf", "shim-incomplete", "error", f"{path} is not a loadable ELF library",
                    elf_info.error or "not an ELF file", (path,))
        return ShimCheck(path, kind, against, None, expected, None, None, (), 0, (), (), (), (), 0, 0, 0,
                         findings=(f,), error=elf_info.error or "not an ELF file")
    usable, hidden = _usable_exports(elf_info)
    missing: List[MissingSymbol] = []
    real = set(real_driver_exports(kind))
    for name, tier, why in tiers(kind, version):
        if name not in usable:
            if name in hidden:
                why = f"exported only under a hidden version ({name}@...), so consumers cannot bind it; " + why
            missing.append(MissingSymbol(name, tier, why, name in real))
    # cuGetProcAddress_v2 is fatal when cudart's fallback names are missing too.
    if any(m.name == "cuGetProcAddress_v2" for m in missing) and any(n not in usable for n in CUDART_FALLBACK):
        missing = [dataclasses.replace(m, tier="fatal", why="no cuGetProcAddress_v2 and no fallback names "
                                       "(cuInit/cuDriverGetVersion/cuGetExportTable): cudart cannot start")
                   if m.name == "cuGetProcAddress_v2" else m for m in missing]
    findings = _findings(elf_info, kind, expected, version, missing, hidden, usable, real)
    return ShimCheck(
        path=path, kind=kind, against=against, soname=elf_info.soname, expected_soname=expected,
        elf_class=elf_info.elf_class, machine=elf_info.machine, needed=elf_info.needed,
        exported=len(usable), hidden=hidden, version_definitions=elf_info.version_definitions,
        missing=tuple(m.name for m in missing if m.tier != "informational"),
        missing_detail=tuple(missing), real_driver_exports=len(real),
        missing_vs_real=len(real - usable), extra_vs_real=len(usable - real),
        missing_vs_real_names=tuple(sorted(real - usable)), extra_vs_real_names=tuple(sorted(usable - real)),
        findings=tuple(findings))


def _findings(info: ElfInfo, kind: str, expected: str, version: Optional[str], missing: Sequence[MissingSymbol],
              hidden: Sequence[str], usable: set, real: set) -> List[Finding]:
    path = info.path
    out: List[Finding] = []
    if info.elf_class != 64 or (info.machine and info.machine != "x86_64" and info.machine != "aarch64"):
        out.append(Finding(
            f"shim-wrong-class-{kind}", "shim-incomplete", "error",
            f"{path} is a {info.elf_class}-bit {info.machine} library",
            "The runner is a 64-bit process: the loader skips this file as the wrong ELF class and keeps "
            f"searching for {expected}.", (info.summary(),)))
    if info.soname != expected:
        out.append(Finding(
            f"shim-wrong-soname-{kind}", "shim-incomplete", "error",
            f"{path} has SONAME {info.soname or '(none)'}, not {expected}",
            "ldconfig indexes a library by its SONAME, so the loader cache has no "
            f"{expected} entry for it, and a second dlopen(\"{expected}\") does not match it.",
            (f"SONAME: {info.soname}",),
            Fix("manual", {"library": path}, f"relink the shim with -Wl,-soname,{expected}")))
    bad = [n for n in info.needed if n.startswith(("libcuda.so", "libcudart.so"))]
    if bad:
        out.append(Finding(f"shim-self-dependency-{kind}", "shim-incomplete", "warning",
                           f"{path} itself needs {', '.join(bad)}",
                           "A driver shim must not depend on libcuda or libcudart: it may load itself or a "
                           "second driver.", tuple(f"NEEDED {n}" for n in bad)))
    if hidden:
        out.append(Finding(f"shim-hidden-versions-{kind}", "shim-incomplete", "error",
                           f"{len(hidden)} functions of {path} are exported only under a hidden version",
                           "A non-default version (name@V) does not bind for unversioned consumers such as "
                           "libggml-cuda.so; the real driver exports everything unversioned.",
                           tuple(hidden[:20])))
    elif info.version_definitions:
        out.append(Finding(f"shim-version-definitions-{kind}", "shim-incomplete", "info",
                           f"{path} defines symbol versions", "The real driver has no .gnu.version_d; "
                           "default versions (name@@V) still bind.", tuple(info.version_definitions[:10])))
    fatal = [m for m in missing if m.tier == "fatal"]
    if fatal:
        out.append(Finding(
            f"shim-missing-fatal-{kind}", "shim-incomplete", "error",
            f"{path} lacks {len(fatal)} function{'s' if len(fatal) > 1 else ''} the CUDA backend cannot do without",
            "; ".join(sorted({m.why for m in fatal})),
            tuple(m.name for m in fatal[:40]),
            Fix("manual", {"library": path, "missing": [m.name for m in fatal]},
                "add these exports to the shim (forward them to the real driver)")))
    cond = [m for m in missing if m.tier == "conditional"]
    if cond:
        out.append(Finding(f"shim-missing-conditional-{kind}", "shim-incomplete", "warning",
                           f"{path} lacks {', '.join(m.name for m in cond)}",
                           cond[0].why, tuple(m.name for m in cond)))
    deg = [m for m in missing if m.tier == "degrading"]
    if deg:
        legacy = version is not None and (eras.parse_version(version) or (0, 99, 0)) <= (0, 12, 3)
        out.append(Finding(f"shim-missing-degrading-{kind}", "shim-incomplete",
                           "error" if legacy and kind == "libcuda" else "warning",
                           f"{path} lacks {len(deg)} function{'s' if len(deg) > 1 else ''} "
                           f"{'Ollama ' + version if version else 'Ollama'} looks up",
                           deg[0].why, tuple(m.name for m in deg)))
    return out


# -- which driver libraries the runner gets ----------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Interposer:
    path: str
    source: str  # "LD_PRELOAD" | "/etc/ld.so.preload"
    found: bool
    driver_symbols: int  # cu*/nvml* functions it defines (they win over the driver's)
    soname: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class DriverLibrary:
    soname: str
    kind: str
    path: Optional[str]
    realpath: Optional[str]
    via: Optional[str]
    tried: Tuple[str, ...]
    error: Optional[str]
    env: Mapping[str, str]  # the runner environment it was resolved in
    unresolved_deps: Tuple[str, ...] = ()
    check: Optional[ShimCheck] = None
    note: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class DriverLibraries:
    libraries: Tuple[DriverLibrary, ...]
    interposers: Tuple[Interposer, ...]
    findings: Tuple[Finding, ...] = ()

    def get(self, kind: str) -> Optional[DriverLibrary]:
        for lib in self.libraries:
            if lib.kind == kind:
                return lib
        return None


def _runner_env(install, scan) -> Dict[str, str]:
    """The environment of the runner that would open libggml-cuda.so (else the first one)."""
    if scan is not None:
        for p in scan.probes:
            if any(f.backend == "cuda" and f.opened for f in p.files):
                env = dict(install.server_env() if install is not None else {})
                env.update(p.env)
                return env
        if scan.probes:
            env = dict(install.server_env() if install is not None else {})
            env.update(scan.probes[0].env)
            return env
    env = dict(install.server_env() if install is not None else {})
    lib = getattr(install, "lib_dir", None)
    if lib:
        inherited = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = lib + (":" + inherited if inherited else "")
    return env


def _interposers(host: Host, env: Mapping[str, str]) -> List[Interposer]:
    from probes.loader import find_library, preload_names

    out: List[Interposer] = []
    for name, source in preload_names(host, env):
        res = find_library(host, name, env)
        if not res.found:
            out.append(Interposer(name, source, False, 0))
            continue
        info = read_elf(host, res.found)
        n = sum(1 for s in info.exports if re.match(r"^(cu[A-Z]|nvml[A-Z])", s.name))
        out.append(Interposer(res.found, source, True, n, info.soname))
    return out


def driver_libraries(host: Host, install=None, scan=None, version: Optional[str] = None) -> DriverLibraries:
    """Which libcuda.so.1 and libnvidia-ml.so.1 Ollama's runner would load, and their checks."""
    from probes.loader import find_library, resolve_tree

    env = _runner_env(install, scan)
    version = version or (getattr(install, "version", None) if install is not None else None)
    inter = _interposers(host, env)
    libs: List[DriverLibrary] = []
    findings: List[Finding] = []
    for kind, soname in (("libcuda", "libcuda.so.1"), ("nvml", "libnvidia-ml.so.1")):
        note = None
        pre = next((i for i in inter if i.found and i.soname == soname), None)
        if pre is not None:
            path, via, tried, error, real = pre.path, "preload", (), None, host.resolve(pre.path).final
            note = f"preloaded through {pre.source}: every dlopen(\"{soname}\") gets it"
        else:
            if kind == "nvml" and host.exists("/usr/lib/wsl/lib/libnvidia-ml.so.1"):
                note = "mem_nvml.cpp tries /usr/lib/wsl/lib/libnvidia-ml.so.1 first"
            res = find_library(host, soname, env)
            path, via, tried, error, real = res.found, res.via, res.tried, res.error, res.realpath
        check = None
        unresolved: Tuple[str, ...] = ()
        if path:
            info = read_elf(host, path)
            check = check_exports(info, kind, version)
            tree = resolve_tree(host, path, env, preload=False)
            unresolved = tuple(n.name for n in tree.unresolved() if n.name not in _RUNTIME)
            findings.extend(check.findings)
            if unresolved:
                findings.append(Finding(
                    f"{kind}-deps-missing", "shim-incomplete", "error",
                    f"{path} needs {', '.join(unresolved)}, which the loader cannot find",
                    f"dlopen of {soname} fails, and with it libggml-cuda.so (RTLD_NOW).",
                    tuple(f"NEEDED {n}" for n in unresolved)))
        else:
            cand = _candidate(host, soname, env, tried)
            if cand:
                check = check_exports(read_elf(host, cand), kind, version)
                note = f"not loadable as {soname}; the library meant to be it is {cand}"
                findings.extend(check.findings)
            cat = "driver-lib-not-found"
            findings.append(Finding(
                f"{kind}-not-found", cat, "error" if kind == "libcuda" else "warning",
                f"{soname} cannot be found in the runner's environment",
                f"With LD_LIBRARY_PATH={env.get('LD_LIBRARY_PATH', '')}, the loader cache and the default "
                f"folders, the loader finds no {soname}"
                + (": libggml-cuda.so needs it, so the CUDA backend cannot load." if kind == "libcuda"
                   else ": Ollama reads free VRAM through cudart instead."),
                tuple(f"tried {t}" for t in tried[:12])))
        libs.append(DriverLibrary(soname, kind, path, real, via, tuple(tried), error,
                                  {k: env[k] for k in ("LD_LIBRARY_PATH", "LD_PRELOAD") if k in env},
                                  unresolved, check, note))
    for i in inter:
        if not i.found:
            findings.append(Finding("preload-missing", "preload-broken", "warning",
                                    f"{i.source} names {i.path}, which cannot be loaded",
                                    "ld.so prints an error for every process and goes on without it; if it "
                                    "was meant to intercept the driver, it does not.", (f"{i.source}: {i.path}",)))
        elif i.driver_symbols:
            findings.append(Finding("driver-interposer", "shim-incomplete", "info",
                                    f"{i.path} ({i.source}) defines {i.driver_symbols} driver functions",
                                    "Preloaded first, its definitions win over the libcuda.so.1 the loader finds.",
                                    (i.path,)))
    return DriverLibraries(tuple(libs), tuple(inter), tuple(findings))


def _candidate(host: Host, soname: str, env: Mapping[str, str], tried: Sequence[str]) -> Optional[str]:
    """A file the operator probably meant as `soname`: one the loader skipped (wrong class),
    one the cache lists under another SONAME, or a file of that name in a search folder."""
    from probes.ldcache import read_ld_cache

    for t in tried:
        if posixpath.basename(t) == soname and host.isfile(t):
            return t
    stem = soname.split(".so")[0] + ".so"
    for e in read_ld_cache(host).entries:
        if e.soname.startswith(stem) and host.isfile(e.path):
            return e.path
    return None


_RUNTIME = ("linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2",
            "libpthread.so.0", "librt.so.1")


def exports_report(host: Host, path: str, against: Optional[str] = None) -> Dict[str, Any]:
    """The contract's `exports` JSON object for one library (with --against: the check)."""
    from probes.facts import to_plain

    info = read_elf(host, path)
    out: Dict[str, Any] = {
        "path": path, "soname": info.soname, "elf_class": info.elf_class, "machine": info.machine,
        "needed": list(info.needed), "exports": to_plain(list(info.exports)),
        "imports": to_plain(list(info.imports)), "against": against, "missing": [], "findings": [],
    }
    if not info.is_elf:
        out["findings"] = to_plain([Finding("not-elf", "shim-incomplete", "error", f"{path} is not an ELF file",
                                            info.error or "")])
        return out
    if against:
        check = check_exports(info, against)
        out["missing"] = list(check.missing)
        out["missing_tiers"] = to_plain(list(check.missing_detail))
        out["check"] = {k: v for k, v in to_plain(check).items() if k not in ("missing", "missing_detail", "findings")}
        out["findings"] = to_plain(list(check.findings))
    return out
