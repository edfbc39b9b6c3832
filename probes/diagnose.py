"""From all the facts to findings: small rules, read top to bottom in the order an expert checks.

device -> driver -> driver library & shim -> Ollama's tree & scanner -> environment -> log,
then the cross-checks where two facts disagree. Every rule is a function `rule_x(f) ->
list of Finding` over one `Facts` bundle (what probes.report collected); none reads the
system except through `f.host`, and none knows the sandbox's fault names: each is driven by
what the probes found. A rule that cannot decide (a probe is missing) returns nothing.

Where a probe already judged its own facts (device, shim, log findings) those findings are
kept and merged here by id and category, so a problem is reported once.
"""
from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from probes.facts import Finding, Fix
from probes.host import Host

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
CUDA_BACKEND = "libggml-cuda.so"
DRIVER_SONAMES = ("libcuda.so.1", "libnvidia-ml.so.1")
# Runtime libraries a CUDA backend folder ships (the names before the major version).
RUNTIME_PREFIXES = ("libcudart.so", "libcublas.so", "libcublasLt.so")
# Values of CUDA_VISIBLE_DEVICES (and kin) that hide every device.
HIDING_VALUES = ("", "-1", "none", "void", "nodevfiles")
VISIBLE_VARS = ("CUDA_VISIBLE_DEVICES",)
# Look-alikes the CUDA driver never reads: only the NVIDIA container runtime reads
# NVIDIA_VISIBLE_DEVICES (when it creates a container), and GPU_DEVICE_ORDINAL is AMD's (HIP);
# in Ollama 0.24 it appears only in overrideWarnings and envconfig ("AMD devices").
INERT_VISIBLE_VARS = {
    "NVIDIA_VISIBLE_DEVICES": "only the NVIDIA container runtime reads it, when it creates a container; "
                              "the CUDA driver in this VM ignores it",
    "GPU_DEVICE_ORDINAL": "it selects AMD (HIP) devices; the CUDA backend ignores it",
}
# Variables whose change between the configured and the running environment matters.
GPU_VARS = ("OLLAMA_LLM_LIBRARY", "OLLAMA_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
            "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "LD_PRELOAD", "OLLAMA_VULKAN",
            "GPU_DEVICE_ORDINAL")
# Where a driver library, shim or CUDA runtime may sit when it is not where the runner looks:
# searched deeply (operators' own folders), and one level deep (the system's library folders).
DEEP_DIRS = ("/opt", "/usr/local", "/srv", "/home", "/root")
SYSTEM_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib",
               "/lib", "/usr/lib/wsl/lib", "/usr/local/cuda/lib64", "/usr/local/nvidia/lib64")
SEARCH_DEPTH = 4
# Compute capabilities each bundled CUDA backend is compiled for, Ollama 0.13.0-0.24.x
# (ollama-discovery.md §3.4); under GGML_CUDA_INIT=1 validation the device's must be listed.
COMPILED_ARCHS = {
    "cuda_v12": ("50", "52", "60", "61", "70", "75", "80", "86", "89", "90", "90a", "120"),
    "cuda_v13": ("75", "80", "86", "87", "89", "90", "90a", "100", "103", "110", "120", "121"),
}
SEARCH_LIMIT = 4000  # folder entries looked at per search: bounded on a huge /usr


# --------------------------------------------------------------------------------------
# The facts bundle


@dataclasses.dataclass(frozen=True)
class Facts:
    """Everything the probes learned about one host (any of it may be None when missing)."""

    host: Host
    device: Any = None        # probes.device.DeviceFacts
    install: Any = None       # probes.ollama.OllamaInstall
    scan: Any = None          # probes.scanner.ScanReport (the environment the service will use)
    scan_running: Any = None  # the same model under the running server's environment, if it differs
    scan_unfiltered: Any = None  # the same model without OLLAMA_LLM_LIBRARY (what the filter hides)
    drivers: Any = None       # probes.shim.DriverLibraries: what the runner loads, each checked
    ldcache: Any = None       # probes.ldcache check result
    probe: Any = None         # probes.loadprobe.ProbeResult
    log: Any = None           # probes.logs.LogReport
    service_user: str = "ollama"
    root_option: str = ""     # "--root DIR " for fix commands on a host that is not live


def g(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a fact (dataclass attribute or mapping key), or `default`."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


def _items(obj: Any, name: str) -> List[Any]:
    value = g(obj, name, ())
    return list(value) if isinstance(value, (list, tuple)) else []


# --------------------------------------------------------------------------------------
# Small views over the facts, shared by the rules


def lib_dir(f: Facts) -> Optional[str]:
    return g(f.install, "lib_dir") or g(f.scan, "lib_dir")


def era(f: Facts) -> str:
    return str(g(f.install, "era", "") or g(f.scan, "era", "") or "")


def env_configured(f: Facts) -> Dict[str, str]:
    """The environment the next start of the server gets (probes.ollama: unit + drop-ins)."""
    return dict(g(f.install, "env", {}) or {})


def env_running(f: Facts) -> Optional[Dict[str, str]]:
    """The running server's environment, or None when no server runs (or it is unreadable)."""
    running = g(f.install, "running_env")
    return None if running is None else dict(running)


def env_effective(f: Facts) -> Dict[str, str]:
    """The environment the next start of the service will have (the configured one)."""
    return env_configured(f)


def backends(scan: Any) -> List[Any]:
    return _items(scan, "backends")


def is_cuda_backend(b: Any) -> bool:
    """A backend folder verdict about a CUDA backend (by its name, its files or its dlopen)."""
    if "cuda" in str(g(b, "name", "")).lower():
        return True
    if any(g(x, "backend") == "cuda" for x in _items(b, "files")):
        return True
    return "ggml-cuda" in str(g(g(b, "dlopen"), "path", ""))


def cuda_loads(scan: Any) -> bool:
    """The scanner model predicts a CUDA backend loads in discovery."""
    predicted = g(scan, "predicted_library")
    if predicted is not None:
        return predicted == "cuda"
    return any(g(b, "would_load", False) and is_cuda_backend(b) for b in backends(scan))


def modelled(scan: Any) -> bool:
    """The scanner model applies to this version (not to the era of embedded runners)."""
    return scan is not None and g(scan, "predicted_library") != "unknown"


def failed_loads(f: Facts) -> List[Tuple[Any, Any]]:
    """(verdict, LoadVerdict) of every probed CUDA backend whose dlopen the model says fails."""
    out = []
    for b in backends(f.scan):
        load = g(b, "dlopen")
        if is_cuda_backend(b) and g(b, "probed", False) and load is not None and not g(load, "ok", True):
            out.append((b, load))
    return out


def _fix(f: Facts, kind: str, args: Mapping[str, Any], tail: str) -> Fix:
    prefix = "vgpu-tui " + f.root_option
    if kind == "relaunch":
        return Fix(kind, dict(args), prefix + "relaunch")
    if kind == "manual":
        return Fix(kind, dict(args), "")
    return Fix(kind, dict(args), prefix + "fix " + tail)


def fix_symlink(f: Facts, link: str, target: str, force: bool = False) -> Fix:
    args = {"link": link, "target": target}
    if force:
        args["force"] = True
    return _fix(f, "symlink", args, f"symlink {link} {target}" + (" --force" if force else ""))


def fix_unset(f: Facts, name: str) -> Fix:
    return _fix(f, "unset", {"name": name}, f"unset {name}")


def fix_ldconfig(f: Facts) -> Fix:
    return _fix(f, "ldconfig", {}, "ldconfig")


def fix_relaunch(f: Facts) -> Fix:
    return _fix(f, "relaunch", {}, "")


def fix_manual(f: Facts, *steps: str) -> Fix:
    # a `vgpu-tui ...` step must act on the inspected system too (--root/--demo-dir)
    steps = tuple(s.replace("vgpu-tui ", "vgpu-tui " + f.root_option, 1)
                  if f.root_option and "vgpu-tui " in s and "vgpu-tui --" not in s else s for s in steps)
    return _fix(f, "manual", {"steps": list(steps)}, "")


# --------------------------------------------------------------------------------------
# Searching the inspected system for a file the runner should have found


def find_files(host: Host, roots: Iterable[str], match: Callable[[str], bool],
               depth: int = SEARCH_DEPTH) -> List[str]:
    """Inspected paths of regular files (links followed) whose name matches, breadth first."""
    found: List[str] = []
    seen = set()
    budget = [SEARCH_LIMIT]
    queue = [(r, 0) for r in roots]
    while queue and budget[0] > 0:
        folder, level = queue.pop(0)
        st = host.stat(folder)
        if st is None or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        for name in host.listdir(folder):
            budget[0] -= 1
            path = posixpath.join(folder, name)
            if host.isdir(path):
                if level < depth and not host.islink(path):
                    queue.append((path, level + 1))
            elif match(name) and host.isfile(path):
                found.append(path)
    return found


def search(f: Facts, match: Callable[[str], bool]) -> List[str]:
    """Files of the inspected system that match: Ollama's trees and operators' folders deeply,
    the loader's configured and default folders one level deep."""
    deep = [x for x in [lib_dir(f)] + [str(g(t, "path")) for t in _items(f.install, "other_trees")] if x]
    found = find_files(f.host, deep + list(DEEP_DIRS), match)
    shallow = find_files(f.host, _conf_dirs(f) + list(SYSTEM_DIRS), match, depth=0)
    return list(dict.fromkeys(found + shallow))


def elf_summary(host: Host, path: str) -> Dict[str, Any]:
    """SONAME, class, machine of a file through probes.elf (empty when unreadable)."""
    try:
        from probes import elf
    except ImportError:
        return {}
    try:
        info = elf.read_elf(host, path)
    except Exception:  # noqa: BLE001 - a bad file is a fact, not a failure of the rule
        return {}
    return {
        "soname": g(info, "soname"),
        "elf_class": g(info, "elf_class") or g(info, "bits"),
        "machine": g(info, "machine"),
        "error": g(info, "error"),
    }


def good_driver_candidates(f: Facts, soname: str, exclude: Sequence[str] = ()) -> List[str]:
    """Files on the system that could serve as `soname` (right SONAME, 64-bit), best first."""
    stem = soname.split(".so")[0] + ".so"
    paths = search(f, lambda n: n.startswith(stem))
    good = []
    for p in paths:
        real = f.host.resolve(p).final
        if p in exclude or real in exclude:
            continue
        facts = elf_summary(f.host, p)
        if facts.get("soname") == soname and facts.get("elf_class") in (64, "64", "ELF64"):
            good.append(p)
    # prefer the real file over links to it, and one path per real file
    out, reals = [], set()
    for p in sorted(good, key=lambda p: (f.host.islink(p), len(p))):
        real = f.host.resolve(p).final
        if real not in reals:
            reals.add(real)
            out.append(real)
    return out


# --------------------------------------------------------------------------------------
# 1. Device and 2. driver: probes.device judges PCI, nodes, modules and CPU itself
# (no-device, device-nodes-missing, driver-missing, cpu-lacks-avx); its findings are merged
# first in `diagnose`. Here only what needs another probe: the driver's CUDA version.


def rule_driver_too_old(f: Facts) -> List[Finding]:
    version = g(g(f.probe, "libcuda"), "driver_version")
    if not version:
        return []
    needed = 0
    for b in backends(f.scan):
        name = str(g(b, "name", ""))
        if is_cuda_backend(b) and name.startswith("cuda_v") and name[6:].isdigit():
            needed = max(needed, int(name[6:]) * 1000)
    if not needed or int(version) >= needed:
        return []
    return [Finding(
        "driver-cuda-too-old", "driver-too-old", "error",
        f"The driver reports CUDA {int(version) // 1000}.{int(version) % 1000 // 10}, below the {needed // 1000}.0 the backend needs",
        "cudart refuses an older driver API (cudaErrorInsufficientDriver) and the backend has no device.",
        (f"cuDriverGetVersion = {version}",),
        fix_manual(f, "upgrade the driver, or make the shim's cuDriverGetVersion report at least " + str(needed)),
    )]


def rule_device_reports(f: Facts) -> List[Finding]:
    """What the driver (or shim) says about each device, read by the load probe: compute
    capability outside the backend's compiled list, or no memory."""
    devices = _items(g(f.probe, "libcuda"), "devices")
    folders = [posixpath.basename(str(g(b, "dir"))) for b in backends(f.scan) if g(b, "would_load") and is_cuda_backend(b)]
    archs = [COMPILED_ARCHS[x] for x in folders if x in COMPILED_ARCHS]
    out = []
    for d in devices:
        cc = str(g(d, "compute", "") or "").replace(".", "")
        if cc and archs and not any(cc in a for a in archs) and era(f).upper().startswith("C"):
            out.append(Finding(
                "compute-not-compiled", "unsupported-compute", "error",
                f"{g(d, 'name', 'the GPU')} reports compute capability {g(d, 'compute')}, which "
                f"{' and '.join(folders)} is not compiled for",
                "Discovery validates each device with GGML_CUDA_INIT=1, which aborts the runner unless the compute "
                "capability is exactly one of the compiled architectures; the device is then dropped.",
                (f"cuDeviceGetAttribute: compute {g(d, 'compute')}", f"compiled: {', '.join(archs[0])}"),
                fix_manual(f, "make the shim report a real, supported compute capability (e.g. 8.0, 8.6, 8.9 or 9.0)",
                           "then: vgpu-tui relaunch")))
        if g(d, "total_memory") == 0:
            out.append(Finding(
                "device-zero-memory", "oom-or-vram", "error",
                f"{g(d, 'name', 'the GPU')} reports 0 bytes of memory, so no model layer fits on it",
                "Ollama places layers by the total and free memory the device reports.",
                (f"cuDeviceTotalMem: 0 ({g(d, 'uuid', '')})",),
                fix_manual(f, "make the shim's cuMemGetInfo / cuDeviceTotalMem and NVML's memory info report real values",
                           "then: vgpu-tui relaunch")))
    return out


# --------------------------------------------------------------------------------------
# 3. Driver library & shim


def rule_driver_lib_not_found(f: Facts) -> List[Finding]:
    """A backend's dlopen fails because libcuda.so.1 (or NVML) is not found, or not usable."""
    for b, load in failed_loads(f):
        missing = [m for m in _items(load, "missing_needed") if m in DRIVER_SONAMES]
        if missing:
            return _explain_missing_driver(f, missing[0], load)
    return []


def _explain_missing_driver(f: Facts, soname: str, load: Any) -> List[Finding]:
    """Why the runner's loader finds no usable `soname`, most specific reason first."""
    ld = lib_dir(f)
    what = "libggml-cuda.so links it directly, so its dlopen fails silently"
    hint = str(g(load, "hint", "") or "")
    skipped = tuple(str(x) for x in _items(load, "skipped"))
    tried = (f"dlopen: {g(load, 'error')}",) + ((f"loader: {hint}",) if hint else ()) + \
        tuple(f"skipped: {x}" for x in skipped[:4])
    link = posixpath.join(ld, soname) if ld else "/usr/local/lib/ollama/" + soname
    wrong_kind = [x for x in skipped if "class" in x or "machine" in x] or \
        ([hint] if ("class" in hint or "machine" in hint) else [])
    if wrong_kind:
        bad = _path_in(wrong_kind[0]) or _path_in(hint) or soname
        good = good_driver_candidates(f, soname, exclude=(bad,))
        fix = fix_symlink(f, link, good[0]) if good and ld else fix_manual(
            f, f"rebuild {bad} as a 64-bit x86-64 shared library (gcc -m64 -shared -fPIC -Wl,-soname,{soname})",
            "then: vgpu-tui fix ldconfig && vgpu-tui relaunch")
        return [Finding(
            "shim-wrong-class", "shim-incomplete", "error",
            f"The shim {bad} is not a 64-bit x86-64 library, so the runner's loader skips it and finds no {soname}",
            f"Ollama's runner is a 64-bit x86-64 process; the loader passes over a library of another class "
            f"or machine; {what}.",
            (f"{bad}: wrong ELF class or machine",) + tried, fix)]
    denied = _denied_path(str(g(load, "error", "") or ""))
    if denied and "Permission denied" in str(g(load, "error", "")):
        return [Finding(
            f"{soname.split('.')[0]}-unreadable", "driver-lib-not-found", "error",
            f"{soname} is found, but the user Ollama runs as cannot open it ({denied})",
            f"The runner runs as the service user; the loader's open fails with EACCES; {what}. "
            "A link elsewhere does not help: the file itself must be reachable.",
            tried,
            fix_manual(f, f"chmod a+rx {denied}" if not denied.endswith((".so", ".1")) else f"chmod a+r {denied}",
                       "then: vgpu-tui relaunch"))]
    stale = _stale_cache_dir(f, soname)
    if stale:
        return [Finding(
            "ldcache-stale", "driver-lib-not-found", "error",
            f"{soname} is in {stale}, which ld.so.conf names, but /etc/ld.so.cache was built before it",
            f"The loader reads only the binary cache, not ld.so.conf; the runner finds {soname} nowhere; {what}.",
            (f"{stale}/{soname} exists", f"/etc/ld.so.cache: no entry for {soname}") + tried,
            fix_ldconfig(f))]
    wrong = _wrong_soname_files(f, soname)
    if wrong:
        path, actual = wrong[0]
        return [Finding(
            "shim-wrong-soname", "shim-incomplete", "error",
            f"The shim {path} has SONAME {actual!r}, not {soname!r}, so the loader cache never offers it as {soname}",
            f"ldconfig indexes a library by its SONAME; a runner asking for {soname} finds nothing; {what}. "
            f"A link named {soname} on the runner's library path is found by its file name; rebuilding the "
            f"shim with -Wl,-soname,{soname} fixes it for good.",
            (f"{path}: SONAME {actual}",) + tried,
            fix_symlink(f, link, path))]
    candidates = good_driver_candidates(f, soname)
    if candidates and ld:
        return [Finding(
            f"{soname.split('.')[0]}-not-on-runner-path", "driver-lib-not-found", "error",
            f"{soname} exists at {candidates[0]} but nowhere Ollama's runner looks for it",
            f"The runner searches its LD_LIBRARY_PATH ({ld} and the backend folder), the loader cache and the "
            f"default folders; {what}. A link in {ld} is found first (an Ollama upgrade removes it: "
            f"re-create it after one); registering {posixpath.dirname(candidates[0])} in /etc/ld.so.conf.d and "
            "running ldconfig works as well.",
            (f"{candidates[0]}: SONAME {soname}",) + tried,
            fix_symlink(f, link, candidates[0]))]
    return [Finding(
        f"{soname.split('.')[0]}-missing", "driver-lib-not-found", "error",
        f"No usable {soname} exists on this system",
        f"Neither the NVIDIA driver's user-space library nor a shim providing it is installed; {what}.",
        tried,
        fix_manual(f, f"install the NVIDIA driver's user-space libraries, or the shim providing {soname}",
                   "then: vgpu-tui fix ldconfig && vgpu-tui relaunch"))]


def _path_in(text: str) -> Optional[str]:
    for word in text.replace(",", " ").replace("=>", " ").split():
        if word.startswith("/"):
            return word.rstrip(":;)")
    return None


def rule_nvml(f: Facts) -> List[Finding]:
    """libnvidia-ml.so.1 is not where the runner looks: a warning (0.12.6-0.24 fall back to cudaMemGetInfo)."""
    if not cuda_loads(f.scan) or not era(f).upper().startswith("C"):
        return []
    env = {}
    for b in backends(f.scan):
        if g(b, "would_load") and is_cuda_backend(b):
            env = dict(env_configured(f), **dict(g(b, "env", {}) or {}))
            break
    try:
        from probes.loader import find_library
        found = find_library(f.host, "libnvidia-ml.so.1", env)
    except Exception:  # noqa: BLE001 - no loader model, no judgement
        return []
    if g(found, "found"):
        return []
    ld = lib_dir(f)
    good = good_driver_candidates(f, "libnvidia-ml.so.1")
    return [Finding(
        "nvml-not-on-runner-path", "driver-lib-not-found", "warning",
        "libnvidia-ml.so.1 is not where the runner looks: free VRAM comes from cudaMemGetInfo instead of NVML",
        "Ollama 0.12.6-0.24 asks NVML for free memory and falls back to CUDA when it cannot load it.",
        tuple(f"tried: {t}" for t in _items(found, "tried")[:6]),
        fix_symlink(f, posixpath.join(ld, "libnvidia-ml.so.1"), good[0]) if good and ld else None)]


def _conf_dirs(f: Facts) -> List[str]:
    """The folders ld.so.conf names (probes.ldcache.check_cache read them)."""
    return [str(g(x, "path")) for x in _items(f.ldcache, "folders") if g(x, "path")]


def _stale_cache_dir(f: Facts, soname: str) -> Optional[str]:
    """A folder ld.so.conf names that holds `soname` (by SONAME) while the cache lacks it."""
    for folder in _items(f.ldcache, "folders"):
        if soname in _items(folder, "missing_from_cache"):
            return str(g(folder, "path"))
    return None


def rule_ldcache(f: Facts) -> List[Finding]:
    return [x for x in _items(f.ldcache, "findings") if isinstance(x, Finding)]


def _wrong_soname_files(f: Facts, soname: str) -> List[Tuple[str, str]]:
    """Files named `soname` in the conf folders / lib dir whose SONAME is another name."""
    out = []
    for d in _conf_dirs(f) + [x for x in (lib_dir(f),) if x]:
        p = posixpath.join(d, soname)
        if f.host.exists(p):
            facts = elf_summary(f.host, p)
            actual = facts.get("soname")
            if actual and actual != soname and facts.get("elf_class") in (64, "64", "ELF64"):
                out.append((f.host.resolve(p).final, actual))
    return out


def rule_shim_exports(f: Facts) -> List[Finding]:
    """The libcuda.so.1 a backend binds to lacks names it imports: RTLD_NOW fails on the first."""
    for b, load in failed_loads(f):
        lacking = [str(x) for x in _items(load, "missing_symbols")]
        if not lacking:
            continue
        shim = str(g(load, "libcuda", "") or "the libcuda.so.1 it loads")
        real = f.host.resolve(shim).final if shim.startswith("/") else shim
        good = [c for c in good_driver_candidates(f, "libcuda.so.1", exclude=(shim, real))
                if _exports_all(f, c, lacking)]
        ld = lib_dir(f)
        fix = (fix_symlink(f, posixpath.join(ld, "libcuda.so.1"), good[0]) if good and ld else
               fix_manual(f, f"add the missing exports ({', '.join(lacking[:6])}) to the shim {real} and rebuild it "
                             f"(check: vgpu-tui exports {real} --against libcuda)",
                          "then: vgpu-tui relaunch"))
        return [Finding(
            "shim-missing-exports", "shim-incomplete", "error",
            f"The shim {real} does not export {', '.join(lacking[:4])}{' …' if len(lacking) > 4 else ''}, which "
            f"libggml-cuda.so imports, so its dlopen fails silently",
            "ggml opens the CUDA backend with RTLD_NOW: every driver function it links must be exported by the "
            "libcuda.so.1 the loader binds, or the load fails and Ollama uses the CPU without a word.",
            (f"{g(b, 'dir')}/libggml-cuda.so imports {', '.join(lacking)}",
             f"{real}: does not export {', '.join(lacking)}", f"dlopen: {g(load, 'error')}"),
            fix)]
    return []


def _exports_all(f: Facts, path: str, names: Sequence[str]) -> bool:
    try:
        from probes import elf
        have = {e.name for e in elf.read_elf(f.host, path).exports}
    except Exception:  # noqa: BLE001
        return False
    return all(n in have for n in names)


def rule_shim(f: Facts) -> List[Finding]:
    """probes.shim's checks of the driver libraries the runner loads (tiers, SONAME, class)."""
    out = []
    for finding in _items(f.drivers, "findings"):
        if isinstance(finding, Finding):
            out.append(finding)  # merged with the rules' twins first; fixes added after (finish)
    return out


def _with_fix(f: Facts, finding: Finding, path: str) -> Finding:
    """A shim finding from probes.shim, given a fix when it has none."""
    if not isinstance(finding, Finding) or finding.fix is not None:
        return finding
    if finding.severity != "error":
        return finding
    text = (finding.id + " " + finding.title).lower()
    if "class" in text or "machine" in text:
        wanted = "libnvidia-ml.so.1" if "nvidia-ml" in path else "libcuda.so.1"
        good = good_driver_candidates(f, wanted, exclude=(path, f.host.resolve(path).final))
        ld = lib_dir(f)
        if good and ld:
            fix = fix_symlink(f, posixpath.join(ld, wanted), good[0])
        else:
            fix = fix_manual(f, f"rebuild {path} as a 64-bit x86-64 library (gcc -m64 -shared -fPIC -Wl,-soname,{wanted})",
                             "then: vgpu-tui fix ldconfig && vgpu-tui relaunch")
    else:
        fix = fix_manual(f, f"add the missing exports to the shim {path} (compare: vgpu-tui exports {path} --against libcuda)",
                         "rebuild it, then: vgpu-tui relaunch")
    return dataclasses.replace(finding, fix=fix)


# --------------------------------------------------------------------------------------
# 4. Ollama's tree and the scanner


def rule_lib_dir(f: Facts) -> List[Finding]:
    """Ollama reads another lib/ollama than the one prepared: make the binary the one beside it."""
    ld = lib_dir(f)
    if f.install is None or not g(f.install, "real_binary"):
        return []
    prepared = [str(g(t, "path")) for t in _items(f.install, "other_trees") if g(t, "has_cuda_backend", False)]
    if not prepared or cuda_loads(f.scan) or not modelled(f.scan):
        return []
    binary = str(g(f.install, "binary") or g(f.install, "real_binary"))
    target = prepared[0]
    twin = posixpath.join(posixpath.dirname(posixpath.dirname(target)), "bin", "ollama")
    own = posixpath.normpath(posixpath.join(posixpath.dirname(str(g(f.install, "real_binary"))), "..", "lib", "ollama"))
    if f.host.isfile(twin) and f.host.resolve(binary).final != f.host.resolve(twin).final:
        fix = fix_symlink(f, binary, twin, force=True)
        how = (f" Replacing {binary} by a link to {twin} (or pointing ExecStart at {twin}) makes Ollama read "
               f"{target}: the kernel reports the link's target as the executable.")
    elif f.host.lstat(own) is None:
        fix = fix_symlink(f, own, target)
        how = f" A link {own} -> {target} gives this binary the prepared tree as its own ../lib/ollama."
    else:
        fix = fix_manual(f, f"point the service's ExecStart at the ollama binary installed beside {target}, "
                            f"or put the libraries under {ld}")
        how = ""
    exists = bool(ld) and f.host.isdir(ld)
    return [Finding(
        "lib-dir-other-tree", "lib-dir-not-found", "error",
        f"Ollama reads {ld}, but the prepared tree with the CUDA backend is {target}",
        "LibOllamaPath is <folder of the real binary>/../lib/ollama"
        + ("" if ld == own else f" ({own}), or the binary's own folder when that does not exist")
        + f"; the service runs {binary}, so {target} is never read.{how}",
        (f"binary: {binary} (real: {g(f.install, 'real_binary')})",
         f"LibOllamaPath: {ld}" + ("" if exists else " (missing)"), f"prepared tree: {target}"),
        fix,
    )]


def rule_lib_dir_link(f: Facts) -> List[Finding]:
    """<binary>/../lib/ollama is a broken link (or not a folder): Ollama's os.Stat fails on it,
    so it silently falls back to the binary's own folder, where no CUDA backend is."""
    real = g(f.install, "real_binary") if f.install is not None else None
    if not real or cuda_loads(f.scan):
        return []
    own = posixpath.normpath(posixpath.join(posixpath.dirname(str(real)), "..", "lib", "ollama"))
    r = f.host.resolve(own)
    if f.host.lstat(own) is None or (r.ok and f.host.isdir(own)):
        return []
    what = {"dangling": "a dangling symlink", "loop": "a symlink loop"}.get(r.status, "not a folder")
    target = f.host.readlink(own) if f.host.islink(own) else None
    trees = [str(g(t, "path")) for t in _items(f.install, "other_trees") if g(t, "has_cuda_backend", False)]
    fix = (fix_symlink(f, own, trees[0], force=not f.host.islink(own)) if trees else
           fix_manual(f, f"point {own} at the Ollama library folder: vgpu-tui fix symlink {own} /path/to/lib/ollama"))
    return [Finding(
        "lib-dir-broken-link", "lib-dir-not-found", "error",
        f"{own} is {what}, so Ollama reads {lib_dir(f) or 'another folder'} and finds no CUDA backend",
        "Ollama takes <folder of the real binary>/../lib/ollama only if it exists; otherwise it falls back "
        "to the binary's own folder without a word.",
        ((f"{own} -> {target}" if target else own) + f" ({r.status})", f"LibOllamaPath: {lib_dir(f)}"),
        fix,
    )]


def rule_lib_dir_is_exe_dir(f: Facts) -> List[Finding]:
    """No <binary>/../lib/ollama: Ollama falls back to the binary's own folder, globs its
    subfolders, but the runner skips each one (its path holds no lib/ollama, ggml.go OnceLoad)."""
    real = g(f.install, "real_binary") if f.install is not None else None
    if not real or f.scan is None or cuda_loads(f.scan):
        return []
    exe_dir = posixpath.dirname(str(real))
    own = posixpath.normpath(posixpath.join(exe_dir, "..", "lib", "ollama"))
    skipped = [b for b in backends(f.scan) if is_cuda_backend(b) and "not part of ollama" in str(g(b, "reason", ""))]
    if lib_dir(f) != exe_dir or not skipped or f.host.lstat(own) is not None:
        return []
    return [Finding(
        "lib-dir-is-binary-folder", "lib-dir-not-found", "error",
        f"{own} does not exist, so Ollama uses the binary's folder {exe_dir}, and its runner skips "
        f"{g(skipped[0], 'dir')}",
        "LibOllamaPath falls back to the binary's folder when <binary>/../lib/ollama is missing; discovery "
        "then probes its subfolders, but the runner loads backends only from paths that contain lib/ollama "
        "(or equal the binary's folder), so the CUDA folder is skipped without a word at INFO.",
        (f"binary: {real}", f"LibOllamaPath: {exe_dir} ({own} missing)", f"{g(skipped[0], 'dir')}: {g(skipped[0], 'reason')}"),
        fix_symlink(f, own, exe_dir) if f.host.isdir(posixpath.dirname(own)) else fix_manual(
            f, f"mkdir -p {posixpath.dirname(own)} && ln -s {exe_dir} {own}", "then: vgpu-tui relaunch"),
    )]


def rule_no_ollama(f: Facts) -> List[Finding]:
    """No Ollama binary was found at all: nothing else about Ollama can be judged."""
    if f.install is None or g(f.install, "binary"):
        return []
    return [Finding(
        "ollama-not-found", "lib-dir-not-found", "error",
        "No Ollama binary was found (no ollama.service ExecStart, no running server, none on PATH)",
        "Without the binary its library folder, version and scanner rules are unknown.",
        tuple(str(n) for n in _items(f.install, "notes")[:4]) or ("no ollama.service, no `ollama serve` process, no ollama on PATH",),
        fix_manual(f, "install Ollama (curl -fsSL https://ollama.com/install.sh | sh), or name it: vgpu-tui report --ollama PATH"),
    )]


def rule_scanner(f: Facts) -> List[Finding]:
    """probes.scanner's own findings (e.g. an OLLAMA_LLM_LIBRARY that matches no folder)."""
    return [x for x in _items(f.scan, "findings") if isinstance(x, Finding)]


# Words of the scanner's reason for a CUDA folder -> the category, for a failure no rule above
# explains (first match wins).
REASON_CATEGORIES = (
    (("OLLAMA_LLM_LIBRARY",), "wrong-library-override"),
    # driver words only: "cu" alone matched every path with cuda_v12 in it
    (("libcuda.so", "libnvidia-ml", "is not exported by", "driver"), "driver-lib-not-found"),
    (("glob", "exact name", "levels", "never chosen", "not used"), "backend-lib-not-scanned"),
    ((), "backend-lib-missing"),
)


def scanner_reason(f: Facts) -> List[Finding]:
    """The scanner's own words for why no CUDA folder loads, when no rule explained it."""
    if not modelled(f.scan) or cuda_loads(f.scan):
        return []
    cuda = [b for b in backends(f.scan) if is_cuda_backend(b)]
    if not cuda:
        return []
    b = cuda[0]
    reason = str(g(b, "reason", ""))
    category = next(c for words, c in REASON_CATEGORIES if not words or any(w in reason for w in words))
    return [Finding(
        "scanner-no-cuda", category, "error",
        f"Ollama {g(f.install, 'version', '') or ''} will not load the CUDA backend in {g(b, 'dir')}: {reason}".replace("  ", " "),
        "The scanner model of this Ollama version predicts a CPU-only discovery.",
        tuple(f"{g(x, 'dir')}: {g(x, 'reason')}" for x in backends(f.scan))[:6],
        fix_manual(f, "see the reason above; vgpu-tui tree shows each folder as this Ollama sees it"),
    )]


def rule_install(f: Facts) -> List[Finding]:
    """probes.ollama's own findings (missing binary, missing lib dir, ignored trees)."""
    return [x for x in _items(f.install, "findings") if isinstance(x, Finding)]


def cuda_files(f: Facts) -> List[Tuple[str, int, str]]:
    """(inspected path, depth below lib dir, link status) of every libggml-cuda* in the tree."""
    ld = lib_dir(f)
    if not ld:
        return []
    out = []
    queue = [(ld, 0)]
    while queue:
        folder, level = queue.pop(0)
        for name in f.host.listdir(folder):
            path = posixpath.join(folder, name)
            if name.startswith("libggml-cuda"):
                r = f.host.resolve(path)
                out.append((path, level, r.status if not (r.ok and f.host.isdir(path)) else "dir"))
            elif level < 3 and f.host.isdir(path):
                queue.append((path, level + 1))
    return out


def rule_no_cuda_backend(f: Facts) -> List[Finding]:
    """No libggml-cuda* anywhere in the library folder Ollama reads (a CPU-only or partial copy)."""
    ld = lib_dir(f)
    if not ld or not modelled(f.scan) or cuda_loads(f.scan) or not f.host.isdir(ld) or cuda_files(f):
        return []
    if any(g(t, "has_cuda_backend", False) for t in _items(f.install, "other_trees")):
        return []  # rule_lib_dir: the backend is in the tree Ollama does not read
    if rule_lib_dir_link(f):
        return []  # Ollama fell back to the binary's folder: that link is the problem
    return [Finding(
        "no-cuda-backend", "backend-lib-missing", "error",
        f"{ld} holds no libggml-cuda.so: this Ollama has no CUDA backend to load",
        "The release archive puts the CUDA backend in lib/ollama/cuda_v12 and cuda_v13; a copy without "
        "them (a CPU-only build, a partial copy) runs on the CPU without a word.",
        (f"{ld}: " + (", ".join(sorted(f.host.listdir(ld))[:8]) or "empty"),),
        fix_manual(f, _reextract(f), "then: vgpu-tui relaunch"),
    )]


def rule_backend_placement(f: Facts) -> List[Finding]:
    """A libggml-cuda file exists but where / under a name this Ollama never loads it from."""
    if f.scan is None or cuda_loads(f.scan):
        return []
    ld = lib_dir(f)
    files = cuda_files(f)
    if not ld or not files:
        return []
    exact = [p for p, lvl, st in files if posixpath.basename(p) == CUDA_BACKEND and lvl == 1]
    if exact:
        return []  # a backend folder exists; why it fails is the next rules' question
    for path, level, status in files:
        folder = posixpath.dirname(path)
        name = posixpath.basename(path)
        if status != "ok":
            continue
        if level >= 2:
            sub = folder[len(ld) + 1:]
            link = posixpath.join(ld, posixpath.basename(folder))
            if f.host.lstat(link) is not None:
                link = posixpath.join(ld, "cuda_v12")
            return [Finding(
                "ggml-cuda-too-deep", "backend-lib-not-scanned", "error",
                f"libggml-cuda.so is in {sub}/, {level} levels below {ld}: Ollama only looks one level down",
                f"Discovery globs {ld}/*/*ggml-* (exactly one level), so no runner ever gets {folder}.",
                (f"{path}", f"glob {ld}/*/*ggml-*: no CUDA folder"),
                fix_symlink(f, link, folder),
            )]
        if name != CUDA_BACKEND and name.startswith("libggml-cuda"):
            return [Finding(
                "ggml-cuda-misnamed", "backend-lib-not-scanned", "error",
                f"The CUDA backend is named {name}; ggml only loads a file named exactly {CUDA_BACKEND}",
                "ggml's loader takes libggml-cuda-<variant>.so files (scored, CUDA has no score) or the exact "
                "base name libggml-cuda.so; a version suffix such as .so.1 is never opened.",
                (path,),
                fix_symlink(f, posixpath.join(folder, CUDA_BACKEND), name),
            )]
        if level == 0 and name == CUDA_BACKEND:
            home = _runtime_folder(f)
            top = next((b for b in backends(f.scan) if g(b, "dir") == ld), None)
            # only when the top-level copy fails for want of what that folder holds
            lacking = set(_missing_needed(top)) & set(_runtime_names(f, home)) if home and top is not None else set()
            if home and lacking:
                return [Finding(
                    "ggml-cuda-top-level-only", "backend-lib-not-scanned", "error",
                    f"libggml-cuda.so sits only at the top of {ld}; no backend folder holds it, so the "
                    f"runner loads it without {home}/ on its path and its CUDA runtime libraries do not resolve",
                    f"Discovery probes one folder per {ld}/*/*ggml-* match; {home}/ has no libggml-* file so it is "
                    "never on the runner's LD_LIBRARY_PATH, and the dlopen of the top-level library fails silently.",
                    (path, f"{home}/ holds " + ", ".join(_runtime_names(f, home)),
                     f"glob {ld}/*/*ggml-*: no match"),
                    fix_symlink(f, posixpath.join(home, CUDA_BACKEND), path),
                )]
    return []


def rule_loads_twice(f: Facts) -> List[Finding]:
    """Top-level links into an intact backend folder: the backend loads twice (works; a note)."""
    count = int(g(f.scan, "gpu_backend_loads", 0) or 0)
    loading = [str(g(b, "dir")) for b in backends(f.scan) if g(b, "would_load") and is_cuda_backend(b)]
    if count < 2 or len(loading) < 2:
        return []
    return [Finding(
        "backend-loads-twice", "backend-lib-not-scanned", "info",
        f"libggml-cuda.so loads twice ({' and '.join(loading)}): Ollama drops the duplicate GPU; not a fault",
        "Links at the top of lib/ollama to an intact backend folder make each runner load the backend from "
        "both places (initial_count counts the GPU twice). Ollama 0.24 keeps one; the links can stay.",
        tuple(f"{d}: would load" for d in loading),
        None,
    )]


def _runtime_names(f: Facts, folder: str) -> List[str]:
    return [n for n in f.host.listdir(folder) if n.startswith(RUNTIME_PREFIXES)]


def _runtime_folder(f: Facts) -> Optional[str]:
    ld = lib_dir(f)
    for name in f.host.listdir(ld) if ld else []:
        p = posixpath.join(ld, name)
        if f.host.isdir(p) and any(n.startswith("libcudart.so") for n in f.host.listdir(p)):
            return p
    return None


def rule_backend_folder(f: Facts) -> List[Finding]:
    """A probed CUDA backend folder whose libggml-cuda.so is dangling or misses a dependency."""
    if f.scan is None or cuda_loads(f.scan):
        return []
    ld = lib_dir(f)
    placed = bool(rule_backend_placement(f))
    out = []
    for b in backends(f.scan):
        if not is_cuda_backend(b) or not g(b, "probed", False) or g(b, "would_load", False):
            continue
        folder = str(g(b, "dir", ""))
        if folder == ld and placed:
            continue  # the top-level copy fails because it is in the wrong place: said above
        path = posixpath.join(folder, CUDA_BACKEND)
        r = f.host.resolve(path)
        if f.host.islink(path) and not r.ok:
            out.append(_dangling(f, b, path, r))
            continue
        missing = [m for m in _missing_needed(b) if m not in DRIVER_SONAMES]
        if missing:
            out.append(_missing_dep(f, b, folder, missing))
        elif g(g(b, "dlopen"), "error") and not _missing_needed(b) and not _missing_symbols(b):
            load = g(b, "dlopen")
            denied = _denied_path(str(g(load, "error")))
            out.append(Finding(
                "ggml-cuda-unloadable", "backend-lib-missing", "error",
                f"{path} cannot be loaded: {g(load, 'error')}",
                "ggml's loader discards the dlopen error; the folder is probed but no CUDA backend registers.",
                (f"dlopen: {g(load, 'error')}", str(g(b, "reason", ""))),
                fix_manual(f, f"chmod a+r {denied}" if denied and denied.endswith(".so") else
                           f"chmod a+rx {denied}" if denied else _reextract(f), "then: vgpu-tui relaunch"),
            ))
    return out


def rule_runner_aborts(f: Facts) -> List[Finding]:
    """A symlink loop in a folder ggml scans: libstdc++'s is_regular_file() throws on ELOOP and
    nothing catches it, so every runner that scans that folder aborts (std::terminate)."""
    if f.scan is None or cuda_loads(f.scan) or g(f.scan, "era") == "D":
        return []
    for p in _items(f.scan, "probes"):
        abort = next((x for x in _items(p, "files") if g(x, "role") == "abort"), None)
        if abort is None:
            continue
        link = str(g(abort, "path"))
        top = posixpath.dirname(link) == lib_dir(f)
        return [Finding(
            "runner-aborts-link-loop", "runner-crash", "error",
            f"{link} is a symlink loop: every Ollama runner that scans {posixpath.dirname(link)} aborts",
            "ggml's backend scan stats every entry of the folder; libstdc++ throws on 'Too many levels of "
            "symbolic links' and nothing catches it, so the runner dies (SIGABRT) before it reports a device"
            + (" — the model runner scans this folder too, so even CPU inference fails." if top else "."),
            (f"{link} -> {f.host.readlink(link)} (loop)", str(g(p, "failure", ""))),
            _fix(f, "symlink", {"link": link, "remove": True}, f"symlink {link} --remove"),
        )]
    return []


def _denied_path(text: str) -> Optional[str]:
    """The path the scanner names as not readable/searchable by the service user."""
    m = re.search(r"\((/[^():]+): mode \d{4}", text)
    return m.group(1) if m else None


def rule_backend_unreadable(f: Facts) -> List[Finding]:
    """A CUDA backend folder the service user cannot open: Go's glob skips it without a word."""
    if f.scan is None or cuda_loads(f.scan):
        return []
    out = []
    for b in backends(f.scan):
        reason = str(g(b, "reason", ""))
        if g(b, "probed", False) or "cannot open this folder" not in reason:
            continue
        folder = str(g(b, "dir", ""))
        blocked = _denied_path(reason) or folder
        out.append(Finding(
            "backend-folder-unreadable", "backend-lib-missing", "error",
            f"{folder} cannot be opened by the user Ollama runs as: its CUDA backend is never found",
            "The server globs lib/ollama/*/*ggml-* as the service user; a folder it cannot list is "
            "skipped silently, so no runner probes it and discovery ends on the CPU.",
            (reason,),
            fix_manual(f, f"chmod a+rx {blocked}" + (f" (and a+r on the files in {folder})" if blocked == folder else ""),
                       "then: vgpu-tui relaunch"),
        ))
    return out


def _missing_needed(b: Any) -> List[str]:
    return [str(x) for x in _items(g(b, "dlopen"), "missing_needed")]


def _missing_symbols(b: Any) -> List[str]:
    return [str(x) for x in _items(g(b, "dlopen"), "missing_symbols")]


def _dangling(f: Facts, b: Any, path: str, r: Any) -> Finding:
    target = f.host.readlink(path)
    others = [p for p in search(f, lambda n: n == CUDA_BACKEND) if not f.host.islink(p) and p != path]
    fix = (fix_symlink(f, path, others[0]) if others else
           fix_manual(f, f"remove the link and restore the backend: rm {path}; {_reextract(f)}",
                      "then: vgpu-tui relaunch"))
    return Finding(
        "ggml-cuda-dangling", "backend-lib-missing", "error",
        f"{path} is a symlink to {target}, which does not exist",
        "The glob still makes its folder a backend folder, but ggml's existence check follows the link, "
        "finds nothing, and skips it without a word.",
        (f"{path} -> {target} (dangling: {r.final})",) + ((f"a real copy: {others[0]}",) if others else ()),
        fix,
    )


# The release archive's name: .tar.zst since v0.14.0 (install.sh), .tgz before.
ZSTD_ARCHIVES_SINCE = (0, 14, 0)
RELEASE_URL = "https://github.com/ollama/ollama/releases/download/v{version}/ollama-linux-{arch}.{ext}"


def _reextract(f: Facts) -> str:
    """The command that restores THIS version's release lib/ollama under this install's prefix
    (ollama.com/download is always the newest release, not the one installed)."""
    from probes.eras import parse_version
    ld = lib_dir(f) or "/usr/local/lib/ollama"
    prefix = posixpath.dirname(posixpath.dirname(ld)) or "/"
    version = str(g(f.install, "version", "") or "").lstrip("v")
    v = parse_version(version)
    binary = g(f.install, "binary", None)
    arch = "arm64" if binary and elf_summary(f.host, binary).get("machine") in ("AArch64", "aarch64") else "amd64"
    if v is None:
        return (f"re-extract the Ollama release you installed (https://github.com/ollama/ollama/releases, "
                f"ollama-linux-{arch}) into {prefix}")
    zstd = v >= ZSTD_ARCHIVES_SINCE
    url = RELEASE_URL.format(version=".".join(map(str, v)), arch=arch, ext="tar.zst" if zstd else "tgz")
    unpack = f"sudo tar -C {prefix} --zstd -xf -" if zstd else f"sudo tar -C {prefix} -xzf -"
    return f"re-extract the Ollama {version} release: curl -fsSL {url} | {unpack}"


def _missing_dep(f: Facts, b: Any, folder: str, missing: List[str]) -> Finding:
    name = missing[0]
    copies = [c for c in search(f, lambda n: n == name) if not c.startswith(folder + "/")
              and elf_summary(f.host, c).get("elf_class") in (64, "64", "ELF64")]
    fix = (fix_symlink(f, posixpath.join(folder, name), copies[0]) if copies else
           fix_manual(f, f"restore {name} in {folder}/: {_reextract(f)}", "then: vgpu-tui relaunch"))
    return Finding(
        f"backend-needs-{name.split('.so')[0].replace('lib', '', 1)}", "backend-lib-missing", "error",
        f"{folder}/libggml-cuda.so needs {name}, which the runner's loader cannot find",
        "ggml opens the backend with RTLD_NOW: one missing DT_NEEDED and the dlopen fails silently.",
        tuple(f"{folder}/libggml-cuda.so NEEDED {n}: not found" for n in missing) + (str(g(b, "reason", "")),),
        fix,
    )


# --------------------------------------------------------------------------------------
# 5. Environment


def rule_llm_library(f: Facts) -> List[Finding]:
    env = env_effective(f)
    value = env.get("OLLAMA_LLM_LIBRARY")
    # Eras C/D filter discovery by it; era B ignores a value that names no folder.
    if not value or not modelled(f.scan) or not era(f).upper().startswith(("C", "D")):
        return []
    ld = lib_dir(f) or "lib/ollama"
    folders = sorted({posixpath.basename(str(g(b, "dir", ""))) for b in backends(f.scan)
                      if g(b, "dir") and g(b, "dir") != lib_dir(f)})
    matching = [b for b in backends(f.scan) if posixpath.basename(str(g(b, "dir", ""))) == value]
    if value.startswith("mlx_"):
        return []
    # With no backend subfolder, the lone lib/ollama probe is never filtered (v0.24.0
    # discover/runner.go filters only dir != ""): some folder is still probed.
    if not matching and any(g(b, "probed", False) for b in backends(f.scan)):
        return []
    if not matching:
        return [Finding(
            "llm-library-no-match", "wrong-library-override", "error",
            f"OLLAMA_LLM_LIBRARY={value} matches no folder in {ld}, so discovery skips every folder, no runner "
            f"starts and libggml-cuda.so is never opened",
            "Ollama 0.12.4+ probes only the folder whose name equals OLLAMA_LLM_LIBRARY; with no match it logs "
            "initial_count=0 and runs on the CPU.",
            (f"service environment: OLLAMA_LLM_LIBRARY={value}", f"folders: {', '.join(folders) or 'none'}"),
            fix_unset(f, "OLLAMA_LLM_LIBRARY"),
        )]
    if any(g(b, "would_load", False) for b in matching) or not cuda_loads(_unfiltered(f)):
        return []
    good = [posixpath.basename(str(g(b, "dir"))) for b in backends(_unfiltered(f)) if g(b, "would_load") and is_cuda_backend(b)]
    return [Finding(
        "llm-library-wrong-folder", "wrong-library-override", "error",
        f"OLLAMA_LLM_LIBRARY={value} selects a folder whose backend does not load, and filters out "
        f"{good[0] if good else 'the one that does'}",
        "Only the named folder is probed.",
        (f"OLLAMA_LLM_LIBRARY={value}",),
        fix_unset(f, "OLLAMA_LLM_LIBRARY"),
    )]


def _unfiltered(f: Facts) -> Any:
    return f.scan_unfiltered if f.scan_unfiltered is not None else f.scan


def rule_library_path(f: Facts) -> List[Finding]:
    value = env_effective(f).get("OLLAMA_LIBRARY_PATH")
    if not value or not era(f).upper().startswith("C"):
        return []
    return [Finding(
        "library-path-ignored", "wrong-library-override", "info",
        f"OLLAMA_LIBRARY_PATH={value} is set, but this Ollama overwrites it for its runners",
        "The server sets OLLAMA_LIBRARY_PATH itself for every discovery and model runner.",
        (f"OLLAMA_LIBRARY_PATH={value}",),
        fix_unset(f, "OLLAMA_LIBRARY_PATH"),
    )]


def rule_visible_devices(f: Facts) -> List[Finding]:
    """CUDA_VISIBLE_DEVICES (or kin) hides every GPU: -1, empty, none, or only indexes past the last GPU."""
    env = env_effective(f)
    gpus = [p for p in _items(f.device, "pci") if g(p, "gpu", False)]
    out = []
    for name in VISIBLE_VARS:
        if name not in env:
            continue
        value = env[name].strip()
        items = [x.strip() for x in value.split(",") if x.strip()]
        numeric = items and all(x.lstrip("-").isdigit() for x in items)
        past_end = bool(numeric and gpus and all(int(x) >= len(gpus) for x in items))
        stops = _cuda_visible_stops(value, len(gpus), _gpu_uuids(f)) if name == "CUDA_VISIBLE_DEVICES" else None
        if value.lower() in HIDING_VALUES or (numeric and int(items[0]) < 0) or past_end or stops:
            why = (f"only index(es) {value}, but the system has {len(gpus)} GPU(s) (index 0"
                   f"{'-' + str(len(gpus) - 1) if len(gpus) > 1 else ''})" if past_end else
                   f"starts with {stops!r}, which names no GPU of this system; CUDA reads the list in order "
                   "and stops at the first entry that names no device" if stops else "hides every device")
            out.append(Finding(
                "visible-devices-hidden", "visible-devices-env", "error",
                f"{name}={value!r} in the service environment hides every GPU",
                f"The driver (or the shim) then reports zero devices: the value {why}. Discovery finds no GPU.",
                (f"service environment: {name}={value}",),
                fix_unset(f, name),
            ))
    for name, why in INERT_VISIBLE_VARS.items():
        value = env.get(name)
        if value is not None and (value.strip().lower() in HIDING_VALUES or value.strip().startswith("-")):
            out.append(Finding(
                "visible-devices-inert", "visible-devices-env", "info",
                f"{name}={value!r} in the service environment does not hide the NVIDIA GPU",
                f"{why}. It is harmless here, but misleading.",
                (f"service environment: {name}={value}",),
                fix_unset(f, name),
            ))
    return out


def _gpu_uuids(f: Facts) -> List[str]:
    """GPU-<uuid> of each GPU the driver lists (/proc/driver/nvidia/gpus/*/information)."""
    return [str(g(x, "uuid")) for x in _items(g(f.device, "driver"), "gpus") if g(x, "uuid")]


def _cuda_visible_stops(value: str, n_gpus: int, uuids: Sequence[str]) -> Optional[str]:
    """The first entry of CUDA_VISIBLE_DEVICES when it names no device, so none stays visible
    (the driver parses the list in order and stops at the first invalid entry); else None.
    Only decided from what is known: an index needs the GPU count, a GPU- UUID the driver's UUIDs."""
    first = value.split(",")[0].strip()
    if not first:
        return None  # empty: HIDING_VALUES says so
    if first.lstrip("-").isdigit():
        return first if int(first) < 0 or (n_gpus and int(first) >= n_gpus) else None
    if first.upper().startswith("GPU-"):
        known = [u.lower() for u in uuids]
        return first if known and not any(u.startswith(first.lower()) for u in known) else None
    if first.upper().startswith("MIG-"):
        return None
    return first


def rule_preload(f: Facts) -> List[Finding]:
    out = []
    text = f.host.read_text("/etc/ld.so.preload")
    for line_no, raw in enumerate((text or "").splitlines(), 1):
        for item in raw.split("#", 1)[0].replace(":", " ").split():
            if item.startswith("/") and not f.host.exists(item):
                out.append(Finding(
                    "preload-missing", "preload-broken", "error",
                    f"/etc/ld.so.preload names {item}, which does not exist",
                    "Every process, the runner included, starts with a loader error; an interception library "
                    "meant to be preloaded is not in place.",
                    (f"/etc/ld.so.preload:{line_no}: {raw.strip()}", f"{item}: missing"),
                    fix_manual(f, f"remove the line {raw.strip()!r} from /etc/ld.so.preload (or restore {item})",
                               "then: vgpu-tui relaunch"),
                ))
    for item in env_effective(f).get("LD_PRELOAD", "").replace(":", " ").split():
        if "/" in item and not f.host.exists(item):
            out.append(Finding(
                "ld-preload-missing", "preload-broken", "error",
                f"LD_PRELOAD in the service environment names {item}, which does not exist",
                "The loader reports an error in every Ollama process and the interception library is not loaded.",
                (f"LD_PRELOAD={env_effective(f).get('LD_PRELOAD')}",),
                fix_unset(f, "LD_PRELOAD"),
            ))
    return out


def rule_env_not_applied(f: Facts) -> List[Finding]:
    """The unit's environment changed since the server started (a drop-in not yet applied)."""
    running = env_running(f)
    if running is None:
        return []
    configured = env_configured(f)
    changed = [n for n in GPU_VARS if configured.get(n) != running.get(n)]
    if not changed:
        return []
    sources = {str(g(d, "name")): g(d, "source") for d in _items(f.install, "env_differences")}
    evidence = tuple(f"{n}: the unit{' (' + str(sources[n]) + ')' if sources.get(n) else ''} says "
                     f"{configured.get(n, '(unset)')!r}, the running server has {running.get(n, '(unset)')!r}"
                     for n in changed)
    broken_now = f.scan_running is not None and not cuda_loads(f.scan_running)
    fixed_next = cuda_loads(f.scan)
    sev = "error" if fixed_next and (broken_now or _log_says_cpu(f)) else "warning"
    names = ", ".join(changed)
    return [Finding(
        "env-not-applied", _category_of_var(changed[0]), sev,
        f"The running Ollama predates its service environment: {names} "
        + ("differs" if len(changed) == 1 else "differ")
        + (" — a restart gives the GPU" if fixed_next else ""),
        "systemd applies a drop-in only when the service is restarted; the server still runs with the "
        "environment it was started with.",
        evidence,
        fix_relaunch(f),
    )]


def _category_of_var(name: str) -> str:
    return {
        "OLLAMA_LLM_LIBRARY": "wrong-library-override", "OLLAMA_LIBRARY_PATH": "wrong-library-override",
        "CUDA_VISIBLE_DEVICES": "visible-devices-env", "NVIDIA_VISIBLE_DEVICES": "visible-devices-env",
        "GPU_DEVICE_ORDINAL": "visible-devices-env", "LD_PRELOAD": "preload-broken",
    }.get(name, "driver-lib-not-found")


# --------------------------------------------------------------------------------------
# 6. Log, probe, and where the facts disagree


# Failures only running the shim shows (the files all look right): the load probe's word on these wins.
RUNTIME_CATEGORIES = ("discovery-timeout", "runner-crash", "cuda-init-failed", "driver-too-old",
                      "unsupported-compute", "oom-or-vram")


def _probe_runtime(f: Facts) -> List[Finding]:
    return [x for x in _probe_findings(f) if x.severity == "error" and x.category in RUNTIME_CATEGORIES]


def _log_says_cpu(f: Facts) -> bool:
    lib = g(f.log, "library")
    used = g(f.log, "gpu_used")
    return lib == "cpu" or used is False


def rule_scanner_vs_log(f: Facts) -> List[Finding]:
    """The scanner and the log disagree: that itself is a finding (see `diagnose`)."""
    if f.scan is None or f.log is None or g(f.log, "library") is None:
        return []
    loads = cuda_loads(f.scan)
    if loads and _log_says_cpu(f):
        # What the load probe saw the real shim do at run time (cuInit's error, a hang, a
        # crash) names the cause better than the log, which for all of them says only "cpu".
        witnessed = _probe_runtime(f)
        runtime = [x for x in _log_findings(f) if x.severity == "error"]
        category = (witnessed or runtime)[0].category if witnessed or runtime else "cuda-init-failed"
        return [Finding(
            "scanner-loads-log-cpu", category, "error",
            f"The files and environment let the CUDA backend load, yet the last log says library={g(f.log, 'library')}",
            "Either the log predates the last change (relaunch to see), or the backend loads and CUDA then "
            "finds no usable device (cuInit or device enumeration fails in the driver or shim).",
            ("scanner: " + "; ".join(f"{g(b, 'dir')}: would load" for b in backends(f.scan) if g(b, "would_load")),
             f"log: library={g(f.log, 'library')} gpu_used={g(f.log, 'gpu_used')}")
            + tuple("log: " + x.title for x in runtime[:3]),
            fix_relaunch(f),
        )]
    if not loads and g(f.log, "library") == "cuda" and g(f.log, "gpu_used") is not False:
        return [Finding(
            "log-cuda-scanner-not", "backend-lib-missing", "warning",
            "The last log says the GPU was used, but with the files as they are now the CUDA backend would not load",
            "Something changed since that log was written; the next restart will run on the CPU.",
            (f"log: library={g(f.log, 'library')}",),
            fix_relaunch(f),
        )]
    return []


def rule_scanner_vs_probe(f: Facts) -> List[Finding]:
    """On this machine the load probe really dlopens each backend: where it and the model differ, say so."""
    if f.probe is None or f.scan is None or not f.host.live:
        return []
    verdicts = {posixpath.join(str(g(b, "dir")), CUDA_BACKEND): b for b in backends(f.scan) if is_cuda_backend(b)}
    out = []
    for r in _items(f.probe, "backends"):
        b = verdicts.get(str(g(r, "path")))
        if b is None or not g(b, "probed", False):
            continue
        if g(b, "would_load", False) and not g(r, "loaded", False):
            out.append(Finding(
                "probe-backend-fails", "backend-lib-missing", "error",
                f"{g(r, 'path')} should load, but the real loader refuses it: {g(r, 'error')}",
                "The load probe dlopened it with RTLD_NOW in the runner's environment, as ggml does.",
                (f"probe: {g(r, 'error')}", f"model: {g(b, 'reason')}"),
                fix_manual(f, f"reproduce: LD_LIBRARY_PATH={g(r, 'ld_library_path', '')} ldd {g(r, 'path')}",
                           "restore what the error names, then: vgpu-tui relaunch")))
        elif not g(b, "would_load", False) and g(r, "loaded", False):
            out.append(Finding(
                "probe-backend-loads", "backend-lib-missing", "warning",
                f"The model says {g(r, 'path')} fails, but the load probe loaded it",
                "The real loader found something the model did not (a preload, an hwcaps folder, a cache entry).",
                (f"model: {g(b, 'reason')}", "probe: loaded"),
                None))
    return out


def _log_findings(f: Facts) -> List[Finding]:
    return [x for x in _items(f.log, "findings") if isinstance(x, Finding)]


def _probe_findings(f: Facts) -> List[Finding]:
    return [x for x in _items(f.probe, "findings") if isinstance(x, Finding)]


# --------------------------------------------------------------------------------------
# The rules, in the order an expert checks, and the merge


RULES: Tuple[Callable[[Facts], List[Finding]], ...] = (
    rule_driver_too_old, rule_device_reports,
    rule_driver_lib_not_found, rule_ldcache, rule_shim_exports, rule_shim, rule_nvml,
    rule_no_ollama, rule_lib_dir, rule_lib_dir_link, rule_lib_dir_is_exe_dir, rule_install, rule_no_cuda_backend, rule_backend_placement, rule_backend_folder, rule_backend_unreadable, rule_runner_aborts, rule_loads_twice,
    rule_llm_library, rule_library_path, rule_visible_devices, rule_preload, rule_env_not_applied,
    rule_scanner,  # the scanner's own findings last: a rule's twin (with its evidence) is kept
)


def diagnose(facts: Facts, notes: Optional[List[str]] = None) -> List[Finding]:
    """Every rule's findings in checking order, then what the load probe and the log add.

    The static facts (files, environment, devices) explain; the probe and the log witness.
    A witness's finding of a category already explained becomes evidence of that finding;
    one of a new category is kept, as a warning when a static error already explains the
    CPU fallback (the log of a broken start says little more than "CPU").
    """
    found: List[Finding] = list(_device_findings(facts))
    for rule in RULES:
        found.extend(_run(rule, facts, notes))
    found = merge(found)
    if not any(x.severity == "error" for x in found):
        found += _run(scanner_reason, facts, notes)
    disagreement = _run(rule_scanner_vs_log, facts, notes) + _run(rule_scanner_vs_probe, facts, notes)
    explained = any(x.severity == "error" for x in found)
    for witness in disagreement:
        found = fold(found, witness, demote=explained)
    # A run-time failure the probe saw explains the log's "no GPU" as well as a static error would.
    log_explained = explained or bool(_probe_runtime(facts) and any(x.severity == "error" for x in found))
    for witness in _log_findings(facts):
        found = fold(found, witness, demote=log_explained)
    for witness in _probe_findings(facts):
        # Under --root the probe's loader uses this machine's cache and default folders, so
        # what it could not find there is a hint about the inspected system, not a fact.
        found = fold(found, witness, demote=explained or not facts.host.live)
    return finish(facts, found)


def _run(rule: Callable[[Facts], List[Finding]], facts: Facts, notes: Optional[List[str]]) -> List[Finding]:
    try:
        return list(rule(facts))
    except Exception as exc:  # noqa: BLE001 - one broken rule must not hide the others
        if notes is not None:
            notes.append(f"rule {rule.__name__} failed: {type(exc).__name__}: {exc}")
        return []


def fold(found: List[Finding], witness: Finding, demote: bool) -> List[Finding]:
    """Add a probe's or log's finding: as evidence of a twin, or as a finding of its own."""
    for i, x in enumerate(found):
        if x.id == witness.id or x.category == witness.category:
            evidence = tuple(dict.fromkeys(x.evidence + witness.evidence))[:16]
            fix = x.fix if x.fix is not None else witness.fix
            found[i] = dataclasses.replace(x, evidence=evidence, fix=fix)
            return found
    if demote and witness.severity == "error":
        witness = dataclasses.replace(witness, severity="warning")
    return found + [witness]


def _device_findings(f: Facts) -> List[Finding]:
    return [x for x in _items(f.device, "findings") if isinstance(x, Finding)]


def merge(findings: Sequence[Finding]) -> List[Finding]:
    """One finding per id; a probe's finding and a rule's on the same subject become one.

    Two findings are twins when their ids match, or when their categories are related, they
    name the same thing (a path or library), and at most one has a fix the tool can apply.
    The twin with the better fix is kept, with the evidence of both and the worse severity.
    """
    out: List[Finding] = []
    for new in findings:
        twin = next((i for i, old in enumerate(out) if old.id == new.id), None)
        if twin is None:
            twin = next((i for i, old in enumerate(out) if _related(old, new) and _same_subject(old, new)
                         and not (_applicable(old) and _applicable(new))), None)
        if twin is None:
            out.append(new)
            continue
        old = out[twin]
        keep, other = (old, new) if _rank(old) <= _rank(new) else (new, old)
        severity = min(old.severity, new.severity, key=SEVERITY_ORDER.get)
        evidence = tuple(dict.fromkeys(keep.evidence + other.evidence))[:16]
        out[twin] = dataclasses.replace(keep, severity=severity, evidence=evidence)
    return out


def _applicable(x: Finding) -> bool:
    return x.fix is not None and x.fix.kind != "manual"


def _rank(x: Finding) -> Tuple[int, int]:
    """Which of two twins to keep: an applicable fix, then a manual one, then the more severe."""
    quality = 0 if _applicable(x) else (1 if x.fix is not None else 2)
    return (quality, SEVERITY_ORDER[x.severity])


# Categories that name one problem from two sides (a shim the loader skips is also "not found").
FAMILIES = ({"driver-lib-not-found", "shim-incomplete"}, {"backend-lib-missing", "backend-lib-not-scanned"})


def _related(a: Finding, b: Finding) -> bool:
    return a.category == b.category or any(a.category in fam and b.category in fam for fam in FAMILIES)


def _subjects(x: Finding) -> set:
    words = [w.strip("'\"`,.;:()[]") for w in " ".join((x.title,) + tuple(x.evidence)).split()]
    out = {w for w in words if ("/" in w and len(w) > 1) or "=" in w
           or (w.startswith(("lib", "cu", "nvml")) and len(w) > 4)}
    # a driver library is one thing wherever it is found (a link to the shim, the shim itself)
    return out | {posixpath.basename(w) for w in out if posixpath.basename(w) in DRIVER_SONAMES}


def _same_subject(a: Finding, b: Finding) -> bool:
    """Findings about the same thing: one names a path, variable or library the other names."""
    return bool(_subjects(a) & _subjects(b))


def _on_this_system(f: Facts, x: Finding) -> Finding:
    """A probe's `vgpu-tui ...` command, pointed at the inspected system (--root/--demo-dir)."""
    cmd = x.fix.command if x.fix is not None else ""
    if not f.root_option or not cmd.startswith("vgpu-tui ") or cmd.startswith("vgpu-tui " + f.root_option):
        return x
    fixed = "vgpu-tui " + f.root_option + cmd[len("vgpu-tui "):]
    return dataclasses.replace(x, fix=dataclasses.replace(x.fix, command=fixed))


def finish(f: Facts, findings: List[Finding]) -> List[Finding]:
    """Give an error that still has no fix the generic one for its kind."""
    out = []
    for x in findings:
        if x.severity == "error" and x.fix is None and x.category == "shim-incomplete":
            x = _with_fix(f, x, _path_in(x.title) or "")
        elif x.fix is None and x.category == "driver-lib-not-found":
            names = [n for n in DRIVER_SONAMES if n in x.title]
            good = good_driver_candidates(f, names[0]) if names else []
            if good and lib_dir(f):
                x = dataclasses.replace(x, fix=fix_symlink(f, posixpath.join(lib_dir(f), names[0]), good[0]))
        x = _wrapper_env_fix(f, x)
        out.append(_on_this_system(f, x))
    return out


def _wrapper_env_fix(f: Facts, x: Finding) -> Finding:
    """A variable set by an `env` wrapper in ExecStart= outlives any drop-in (env runs last):
    the fix is to edit that ExecStart= line, not to unset or set it in a drop-in."""
    if x.fix is None or x.fix.kind not in ("unset", "env"):
        return x
    name = str(x.fix.args.get("name", ""))
    cmd = next(iter(g(g(f.install, "service"), "exec_start", ()) or ()), None)
    pairs = dict(g(cmd, "wrapper_env", ()) or ())
    if name not in pairs:
        return x
    return dataclasses.replace(x, evidence=tuple(x.evidence) + (
        f"{g(cmd, 'source')}:{g(cmd, 'line')}: ExecStart={g(cmd, 'raw')}",), fix=fix_manual(
        f, f"edit {g(cmd, 'source')}: remove {name}={pairs[name]} from ExecStart= (an env wrapper sets it "
           "after systemd's Environment=, so a drop-in cannot undo it)",
        "then: systemctl daemon-reload && vgpu-tui relaunch"))


def errors(findings: Iterable[Finding]) -> List[Finding]:
    return [x for x in findings if x.severity == "error"]
