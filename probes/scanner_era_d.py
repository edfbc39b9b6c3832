"""Era D (v0.30.0+) pieces of the scanner model that do not depend on ggml's loader:
where Ollama finds `llama-server`, whether it can start it, the environment it gives it
(LD_LIBRARY_PATH, GGML_BACKEND_PATH), and `filterOldCUDADriver` (reference §2.3; read from
llm/llama_binary.go, llm/llama_server.go, discover/llama_server.go, discover/cuda_compat.go,
discover/native_probe_linux.go of v0.30.0, v0.30.11 and v0.33.0-rc2).

Every version-dependent value (candidates, the GGML_BACKEND_PATH pattern, the driver checks)
is a rule of probes.eras; this module only evaluates them.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from probes import eras
from probes.host import Host

# discover/llama_server.go: cudaRuntimeSORegex / cudaRuntimeDirRegex.
CUDART_SO = re.compile(r"^libcudart\.so\.(\d+)(?:\.(\d+))?")
CUDA_DIR = re.compile(r"^cuda_v(\d+)$")
# discover/native_probe_linux.go probeNVIDIADriverMajorLinux: what NVML must export.
NVML_DRIVER_SYMBOLS = ("nvmlInit_v2", "nvmlShutdown", "nvmlSystemGetDriverVersion")
NVML_NAMES = ("libnvidia-ml.so.1", "libnvidia-ml.so")
# llm/llama_binary.go llamaCppBuildOutputRank: these build outputs sort first.
PREFERRED_BUILDS = ("llama-server-darwin", "llama-server-cuda", "llama-server-rocm")


@dataclasses.dataclass(frozen=True)
class LlamaServer:
    """FindLlamaServer's answer and whether exec() of it would work for the service user."""

    path: Optional[str]  # the first candidate os.Stat accepts; None = "binary not found"
    checked: Tuple[str, ...]  # every candidate, in order (Ollama's error lists them)
    start_error: Optional[str] = None  # why exec/ld.so would fail; None = it starts
    own_dir: Optional[str] = None  # filepath.Dir(path): first LD_LIBRARY_PATH entry
    scan_dir: Optional[str] = None  # /proc/self/exe's folder: where ggml scans backends

    @property
    def error(self) -> Optional[str]:
        """The probe's error as Ollama words it (None when llama-server starts)."""
        if self.path is None:
            return f"llama-server binary not found (checked: {', '.join(self.checked)})"
        return self.start_error


@dataclasses.dataclass(frozen=True)
class DriverFilter:
    """filterOldCUDADriver for one probe (applies only to a folder named cuda_v12)."""

    applies: bool
    runtime: Optional[Tuple[int, int]] = None  # CUDA runtime (major, minor) Ollama reads
    runtime_source: Optional[str] = None
    driver: Optional[int] = None  # NVIDIA driver major as NVML would report it
    driver_source: str = ""
    dropped: bool = False  # every CUDA device of this probe is dropped
    maybe_dropped: Optional[str] = None  # dropped only if a run-time fact (compute capability) holds
    log: Optional[str] = None  # the WARN line Ollama writes
    reason: str = ""


def _user_can_exec(host: Host, path: str, ids) -> Optional[str]:
    st = host.stat(path)
    if st is None:
        return "cannot stat"
    if (st.st_mode & 0o170000) == 0o040000:
        return "it is a folder"
    mode = st.st_mode
    if ids is None:
        return None if mode & 0o111 else f"mode {mode & 0o777:04o}: no execute bit"
    uid, gids, user = ids
    if uid == 0:
        return None if mode & 0o111 else f"mode {mode & 0o777:04o}: no execute bit"
    from probes.scanner import mode_allows  # one judge of mode bits for both modules

    if mode_allows(st, uid, gids, 0o1):
        return None
    return f"mode {mode & 0o777:04o}: not executable by user {user}"


def llama_server_candidates(host: Host, version: Optional[str], lib_dir: str, exe_dir: str, cwd: str,
                            arch: str = "amd64") -> List[str]:
    """llm/llama_binary.go llamaCppBinaryCandidates on Linux (filepath.Clean'ed, deduplicated)."""
    out: List[str] = []
    for tpl in eras.rule("llama_server_candidates", version) or ():
        if "{lib}" in tpl and not lib_dir or "{exe}" in tpl and not exe_dir:
            continue
        p = posixpath.normpath(tpl.format(lib=lib_dir, exe=exe_dir, cwd=cwd or "/", arch=arch))
        if "*" in p:
            base, _, tail = p.partition("/llama-server-*/")
            found = [f"{base}/{n}/{tail}" for n in host.listdir(base)
                     if n.startswith("llama-server-") and host.isdir(f"{base}/{n}/bin")]
            found.sort(key=lambda x: (0 if any(k in x for k in PREFERRED_BUILDS) else 1, x))
            paths: Iterable[str] = found
        else:
            paths = (p,)
        for q in paths:
            if q not in out:
                out.append(q)
    return out


def find_llama_server(host: Host, version: Optional[str], lib_dir: str, exe_dir: str, cwd: str,
                      ids=None, arch: str = "amd64") -> LlamaServer:
    """FindLlamaServer (os.Stat of each candidate), then what exec() would say for the service user:
    permission denied (no execute bit / a folder), exec format error (not an ELF of this machine),
    (start_error adds ld.so's verdict, which depends on each probe's LD_LIBRARY_PATH)."""
    from probes.elf import read_elf

    checked = llama_server_candidates(host, version, lib_dir, exe_dir, cwd, arch)
    path = next((c for c in checked if host.exists(c)), None)
    if path is None:
        return LlamaServer(None, tuple(checked))
    own = posixpath.dirname(path)
    real = host.resolve(path).final if host.resolve(path).ok else path
    server = LlamaServer(path, tuple(checked), None, own, posixpath.dirname(real))
    why = _user_can_exec(host, path, ids)
    if why:
        return dataclasses.replace(server, start_error=f"fork/exec {path}: permission denied ({why})")
    head = host.read_bytes(path, limit=4) if hasattr(host, "read_bytes") else None
    if head is not None and head[:2] == b"#!":
        return server  # a wrapper script: it runs whatever it runs
    info = read_elf(host, path, symbols=False)
    if not info.is_elf:
        return dataclasses.replace(server, start_error=f"fork/exec {path}: exec format error (not an ELF file)")
    if info.machine_code is not None and info.machine_code not in (62, 183) or info.type not in ("EXEC", "DYN"):
        return dataclasses.replace(server, start_error=f"fork/exec {path}: exec format error ({info.summary()})")
    return server


def start_error(host: Host, server: LlamaServer, env: Mapping[str, str], runner_libs: Sequence[str] = ()
                ) -> Optional[str]:
    """ld.so's verdict on starting llama-server with the probe's environment (its DT_NEEDED:
    libggml-base, libllama, ... found through LD_LIBRARY_PATH, its RUNPATH $ORIGIN, the cache)."""
    from probes.elf import read_elf
    from probes.loader import resolve_tree

    if server.error or server.path is None:
        return server.error
    if not read_elf(host, server.path, symbols=False).is_elf:
        return None  # a script
    tree = resolve_tree(host, server.path, env)
    bad = [n.name for n in tree.unresolved() if n.name not in runner_libs]
    if bad:
        return (f"{posixpath.basename(server.path)}: error while loading shared libraries: {bad[0]}: "
                "cannot open shared object file: No such file or directory (exit status 127)")
    return None


def llama_server_env(host: Host, version: Optional[str], server: LlamaServer, lib_dir: str,
                     dirs: Sequence[str], server_env: Mapping[str, str]) -> Tuple[List[str], Optional[str]]:
    """llamaServerLibraryPaths: (LD_LIBRARY_PATH entries, GGML_BACKEND_PATH or None).
    Order: llama-server's own folder, each GPU dir other than LibOllamaPath and that folder
    (the first one that has a backend file names GGML_BACKEND_PATH), then the inherited value."""
    own = server.own_dir or lib_dir
    out: List[str] = []
    backend: Optional[str] = None

    def add(p: str) -> None:
        if p and p not in out:
            out.append(p)

    add(own)
    for d in dirs:
        if d in (lib_dir, own):
            continue
        if backend is None:
            backend = backend_path_for(host, version, d)
        add(d)
    if "LD_LIBRARY_PATH" in server_env:
        for p in server_env["LD_LIBRARY_PATH"].split(":"):
            add(p)
    return out, backend


def backend_path_for(host: Host, version: Optional[str], folder: str) -> Optional[str]:
    """findLlamaServerGPUBackend: the first name in sorted order matching the pattern that does not
    start with an excluded prefix (names only: a dangling link can win)."""
    pattern = eras.rule("ggml_backend_path_pattern", version) or "libggml-*.so*"
    excluded = eras.rule("ggml_backend_path_excluded", version) or ()
    if not host.isdir(folder):
        return None
    for name in sorted(host.listdir(folder)):
        if fnmatch.fnmatchcase(name, pattern) and not name.lower().startswith(tuple(excluded)):
            return f"{folder.rstrip('/')}/{name}"
    return None


def cuda_runtime_version(host: Host, dirs: Sequence[str]) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """cudaRuntimeVersion: the highest libcudart.so.MAJOR[.MINOR] name in the dirs, or cuda_vN (N.0)."""
    best: Optional[Tuple[int, int]] = None
    source = None
    for d in dirs:
        for name in host.listdir(d) if d and host.isdir(d) else ():
            m = CUDART_SO.match(name)
            if m:
                v = (int(m.group(1)), int(m.group(2) or 0))
                if best is None or v > best:
                    best, source = v, f"{d}/{name}"
        m = CUDA_DIR.match(posixpath.basename(d or ""))
        if m and (best is None or (int(m.group(1)), 0) > best):
            best, source = (int(m.group(1)), 0), f"the folder name {posixpath.basename(d)}"
    return best, source


def nvidia_driver_major(host: Host, env: Mapping[str, str], given: Optional[int] = None
                        ) -> Tuple[Optional[int], str]:
    """What `ollama gpu-discover` would put in NVIDIADriverMajor: NVML (libnvidia-ml.so.1, else
    libnvidia-ml.so, found in the probe's environment) must export nvmlInit_v2, nvmlShutdown and
    nvmlSystemGetDriverVersion; the value itself is a run-time answer, taken from `given` (the
    load probe's NVML answer) or /proc/driver/nvidia/version (what the real NVML reports)."""
    from probes.elf import read_elf
    from probes.loader import find_library

    found = None
    for name in NVML_NAMES:
        res = find_library(host, name, env)
        if res.found:
            found = res.found
            break
    if found is None:
        return None, "libnvidia-ml.so.1 is not found in llama-server's environment (no NVML)"
    info = read_elf(host, found)
    usable = {s.name for s in info.exports if s.default_version or s.version is None}
    lacking = [n for n in NVML_DRIVER_SYMBOLS if n not in usable]
    if lacking:
        return None, f"{found} lacks {lacking[0]} (NVML gives no driver version)"
    if given:
        return int(given), f"NVML via the load probe ({found})"
    from probes.device import driver_info

    d = driver_info(host)
    if d.version:
        try:
            return int(d.version.split(".")[0]), f"{d.source} ({d.version}), as NVML ({found}) reports it"
        except ValueError:
            pass
    return None, (f"NVML ({found}) answers only at run time (no /proc/driver/nvidia/version to read "
                  "the driver version from)")


def cuda_driver_filter(host: Host, version: Optional[str], dirs: Sequence[str], env: Mapping[str, str],
                       driver_major: Optional[int] = None, compute: Optional[Tuple[int, int]] = None
                       ) -> DriverFilter:
    """filterOldCUDADriver for a probe whose CUDA backend loads (one device assumed)."""
    spec = eras.rule("cuda_driver_filter", version)
    if not spec or not dirs or posixpath.basename(dirs[-1]) != spec["dir"]:
        return DriverFilter(False)
    cc_major = compute[0] if compute else None
    runtime, rsrc = cuda_runtime_version(host, dirs)
    if spec["needs"] == "old-compute" and cc_major is not None and not (0 < cc_major < 7):
        return DriverFilter(False, runtime, rsrc, reason="only GPUs of compute capability below 7.0 are checked")
    driver, dsrc = nvidia_driver_major(host, env, driver_major)
    base = DriverFilter(True, runtime, rsrc, driver, dsrc)
    cc_text = f"{compute[0]}.{compute[1]}" if compute else "unknown"
    if driver is None:
        if spec["needs"] == "old-compute" and cc_major is None:
            return dataclasses.replace(base, reason=(
                f"driver version unknown ({dsrc}): devices kept; a GPU of compute capability below 7.0 "
                f"gets WARN \"{spec['unknown']}\""))
        return dataclasses.replace(base, log=spec["unknown"],
                                   reason=f"driver version unknown ({dsrc}): devices kept, with WARN \"{spec['unknown']}\"")
    rt = f"CUDA {runtime[0]}.{runtime[1]} runtime ({rsrc})" if runtime else "no CUDA runtime version found"
    for check in spec["checks"]:
        if "runtime_major" in check and (runtime is None or runtime[0] != check["runtime_major"]
                                         or runtime[1] < check["runtime_minor_min"]):
            continue
        if driver >= check["driver_below"]:
            continue
        why = (f"NVIDIA driver {driver} ({dsrc}) is below {check['driver_below']}, which the {rt} "
               f"needs" if "runtime_major" in check else f"NVIDIA driver {driver} ({dsrc}) is below {check['driver_below']}")
        log = f"NVIDIA driver too old driver={driver} required_driver=\"{check['required']}\""
        if "cc_major_below" in check:
            if cc_major is None:
                return dataclasses.replace(base, maybe_dropped=(
                    f"{why} for GPUs of compute capability below {check['cc_major_below']}.0 (this GPU's: unknown)"),
                    reason=f"{why} for GPUs of compute capability below {check['cc_major_below']}.0; "
                           "this GPU's compute capability is a run-time fact")
            if not (0 < cc_major < check["cc_major_below"]):
                continue
            why += f" for compute capability {cc_text}"
        return dataclasses.replace(base, dropped=True, log=log, reason=f"filterOldCUDADriver drops the device: {why}")
    return dataclasses.replace(base, reason=f"NVIDIA driver {driver} passes ({rt})")
