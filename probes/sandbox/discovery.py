"""What Ollama 0.24.0 (Era C, reference §1-§3) does at start on a sandbox root: the simulator's
own small model of discovery, used to decide which log to write.

It reads the sandbox through probes.host.Host only, and models:
* LibOllamaPath from the executable (§1.2: <exeDir>/../lib/ollama, build/ variants, else exeDir);
* the discovery glob `LibOllamaPath/*/*ggml-*` and the OLLAMA_LLM_LIBRARY / Vulkan filters (§2.2);
* per probe runner: ggml's backend scan of each OLLAMA_LIBRARY_PATH entry (§3.2: exact
  `libggml-cuda.so`, `libggml-cpu-*.so` variants scored from /proc/cpuinfo), and glibc's
  dlopen(RTLD_NOW) of the CUDA backend: DT_NEEDED searched in LD_LIBRARY_PATH, the sandbox's
  ld.so.cache, then the default folders, ELF class checked, undefined symbols bound;
* whether the (stub) driver then sees a device: GPU on the PCI bus bound to nvidia, device
  nodes the service user may open, CUDA_VISIBLE_DEVICES, and the compute capability in the
  backend's compiled architectures.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from probes.host import Host
from probes.sandbox.stubgpu import STUB_GPU

GGML_SCAN_ORDER = ("cuda", "cpu")  # the names of ggml's fixed list that a Linux tarball has
DEFAULT_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
SYSTEM_SONAMES = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "ld-linux-x86-64.so.2")
CUDA_V12_ARCHS = (500, 520, 600, 610, 700, 750, 800, 860, 890, 900, 1200)
# ggml's CPU feature bits (cpu-feats.cpp) and the /proc/cpuinfo flag of each.
CPU_FEATURES = (
    ("SSE42", "sse4_2", 4), ("AVX", "avx", 16), ("F16C", "f16c", 2), ("FMA", "fma", 1), ("BMI2", "bmi2", 8),
    ("AVX2", "avx2", 32), ("AVX_VNNI", "avx_vnni", 64), ("AVX512", "avx512f", 128),
    ("AVX512_VBMI", "avx512vbmi", 256), ("AVX512_VNNI", "avx512_vnni", 1024),
)


@dataclasses.dataclass(frozen=True)
class BackendLoad:
    path: str                 # the inspected path ggml tried
    loaded: bool
    error: Optional[str]      # dlerror()-like text (never logged by Ollama 0.24)
    devices: int = 0
    init_error: Optional[str] = None  # ggml_cuda_init: failed to initialize CUDA: ...
    nvml: bool = False        # libnvidia-ml.so.1 loadable (memory from NVML)
    real: str = ""            # the file it resolves to: a second path to it reuses the handle
    stub: Tuple[Tuple[str, str], ...] = ()  # the shim's behaviour file (stub.conf), as read
    outcome: str = "ok"       # the runner's fate at cuInit: "ok", "hang" or "crash"

    @property
    def gpu(self) -> Dict[str, object]:
        """The device as this backend's runner sees it (STUB_GPU + the behaviour file)."""
        return device_facts(dict(self.stub))


@dataclasses.dataclass(frozen=True)
class Probe:
    """One discovery runner: its OLLAMA_LIBRARY_PATH and what ggml loaded in it."""

    dirs: Tuple[str, ...]
    libdir: str               # the lib dir probed ("" = LibOllamaPath alone)
    scanned: Tuple[str, ...]  # OLLAMA_LIBRARY_PATH entries ggml scanned
    cpu: Optional[str]        # the CPU variant loaded
    cuda: Tuple[BackendLoad, ...]

    @property
    def devices(self) -> int:
        return sum(b.devices for b in self.cuda if b.loaded)


@dataclasses.dataclass(frozen=True)
class Discovery:
    exe: str
    lib_ollama: str
    glob_dirs: Tuple[str, ...]
    skipped: Tuple[Tuple[str, str], ...]      # (reason, dir): "user" or "vulkan"
    probes: Tuple[Probe, ...]
    visible_overrides: Tuple[Tuple[str, str], ...]
    preload_errors: Tuple[str, ...]
    compute_supported: bool

    @property
    def gpu_facts(self) -> Dict[str, object]:
        """The device as the first loaded CUDA backend reports it."""
        for p in self.probes:
            for b in p.cuda:
                if b.loaded:
                    return b.gpu
        return dict(STUB_GPU)

    @property
    def initial_count(self) -> int:
        return sum(p.devices for p in self.probes)

    @property
    def gpu(self) -> bool:
        return self.initial_count > 0 and self.compute_supported


# --- small readers ----------------------------------------------------------------------------

def _exists(host: Host, p: str) -> bool:
    return host.resolve(p).ok


def lib_ollama_path(host: Host, exe: str, cwd: str = "/") -> str:
    exe_dir = os.path.dirname(exe)
    for cand in (os.path.normpath(exe_dir + "/../lib/ollama"), exe_dir + "/build/lib/ollama",
                 os.path.normpath(cwd + "/build/lib/ollama")):
        if _exists(host, cand):
            return cand
    return exe_dir


def glob_lib_dirs(host: Host, lib: str) -> List[str]:
    """Go's filepath.Glob(lib + "/*/*ggml-*"): folders (symlinks followed) holding a name
    with "ggml-" in it (dangling links count: names only)."""
    out = []
    for d in sorted(host.listdir(lib)):
        sub = f"{lib}/{d}"
        if not host.isdir(sub):
            continue
        if any("ggml-" in n for n in host.listdir(sub)):
            out.append(sub)
    return out


def cpu_flags(host: Host) -> Set[str]:
    text = host.read_text("/proc/cpuinfo") or ""
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return set(m.group(1).split()) if m else set()


def cpu_variant_features(name: str) -> Tuple[str, ...]:
    from probes.sandbox.libbuild import CPU_VARIANTS
    return CPU_VARIANTS.get(name, ())


def cpu_score(variant: str, flags: Set[str]) -> int:
    bits = {f: (flag, bit) for f, flag, bit in CPU_FEATURES}
    score = 1
    for feat in cpu_variant_features(variant):
        flag, bit = bits[feat]
        if flag not in flags:
            return 0
        score += bit
    return score


# --- the loader ----------------------------------------------------------------------------------

class Loader:
    """glibc's search for one dlopen() in a runner: LD_LIBRARY_PATH, cache, default folders."""

    def __init__(self, host: Host, ld_library_path: Sequence[str]):
        from probes.ldcache import read_ld_cache
        self.host = host
        self.path = [p for p in ld_library_path if p]
        self.cache = read_ld_cache(host, "/etc/ld.so.cache")

    def _elf(self, p: str):
        from probes.elf import read_elf
        return read_elf(self.host, p)

    def _ok64(self, info) -> bool:
        return info.is_elf and info.elf_class == 64 and info.machine_code == 62 and info.type == "DYN"

    def find(self, name: str) -> Tuple[Optional[str], str]:
        """(inspected path, "") or (None, error) for a DT_NEEDED / dlopen name."""
        wrong_class = False
        if "/" in name:
            cands = [name]
        else:
            cands = [f"{d}/{name}" for d in self.path]
        for c in cands:
            if not self.host.isfile(c):
                continue
            info = self._elf(c)
            if self._ok64(info):
                return c, ""
            wrong_class = wrong_class or info.is_elf
        if "/" not in name:
            entry = self.cache.lookup(name, (0x0303,)) if self.cache.exists else None
            if entry is not None and self.host.isfile(entry.path) and self._ok64(self._elf(entry.path)):
                return entry.path, ""
            for d in DEFAULT_LIB_DIRS:
                c = f"{d}/{name}"
                if self.host.isfile(c):
                    info = self._elf(c)
                    if self._ok64(info):
                        return c, ""
                    wrong_class = wrong_class or info.is_elf
        if wrong_class:
            return None, f"{name}: wrong ELF class: ELFCLASS32"
        return None, f"{name}: cannot open shared object file: No such file or directory"

    def dlopen(self, path: str) -> Tuple[bool, Optional[str], Dict[str, str]]:
        """(ok, dlerror, {soname: path}) for dlopen(path, RTLD_NOW)."""
        first, err = self.find(path)
        if first is None:
            return False, err, {}
        loaded: Dict[str, str] = {}
        infos = {}
        queue = [(path, first)]
        while queue:
            name, p = queue.pop(0)
            info = self._elf(p)
            key = info.soname or name
            if key in loaded:
                continue
            loaded[key] = p
            infos[key] = info
            for need in info.needed:
                if need in loaded or need in SYSTEM_SONAMES:  # already mapped in every runner
                    continue
                found, err = self.find(need)
                if found is None:
                    return False, err, loaded
                queue.append((need, found))
        exported: Set[Tuple[str, Optional[str]]] = set()
        for info in infos.values():
            for s in info.exports:
                exported.add((s.name, None))
                if s.version:
                    exported.add((s.name, s.version))
        for key, info in infos.items():
            for imp in info.imports:
                if imp.bind == "WEAK" or (imp.version or "").startswith("GLIBC"):
                    continue
                if (imp.name, imp.version) not in exported:
                    return False, f"{loaded[key]}: undefined symbol: {imp.name}", loaded
        return True, None, loaded


# --- the device ----------------------------------------------------------------------------------

def _devnodes(host: Host) -> Dict[str, dict]:
    text = host.read_text("/.vgpu-sandbox/devnodes.json") or "{}"
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data.get("nodes", data) if isinstance(data, dict) else {}


def _user_groups(host: Host, user: str) -> Tuple[Optional[int], Set[str]]:
    uid = None
    primary = None
    for line in (host.read_text("/etc/passwd") or "").splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[0] == user:
            uid, primary = int(f[2]), f[3]
    groups: Set[str] = set()
    for line in (host.read_text("/etc/group") or "").splitlines():
        f = line.split(":")
        if len(f) >= 4 and (f[2] == primary or user in f[3].split(",")):
            groups.add(f[0])
    return uid, groups


def node_usable(host: Host, path: str, user: str) -> bool:
    if not host.exists(path):
        return False
    info = _devnodes(host).get(path)
    if info is None:
        return True
    uid, groups = _user_groups(host, user)
    if uid == 0:
        return True
    mode = int(str(info.get("mode", "0666")), 8)
    if info.get("owner") == user:
        bits = mode >> 6
    elif info.get("group") in groups:
        bits = mode >> 3
    else:
        bits = mode
    return bits & 6 == 6


def gpu_on_bus(host: Host) -> bool:
    for slot in host.listdir("/sys/bus/pci/devices"):
        base = f"/sys/bus/pci/devices/{slot}"
        vendor = (host.read_text(base + "/vendor") or "").strip().lower()
        klass = (host.read_text(base + "/class") or "").strip().lower()
        driver = host.readlink(base + "/driver") or ""
        if vendor == "0x10de" and klass.startswith("0x03") and driver.endswith("/nvidia"):
            return True
    return False


def visible(env: Mapping[str, str]) -> bool:
    v = env.get("CUDA_VISIBLE_DEVICES")
    if v is None:
        return True
    first = v.split(",")[0]
    return first == "0" or (len(first) >= 5 and STUB_GPU["uuid"].startswith(first))


def cuda_init_error(host: Host, env: Mapping[str, str], user: str) -> Optional[str]:
    """Why cuInit / cudaGetDeviceCount would fail for the stub GPU (None: one device)."""
    if not visible(env):
        return "no CUDA-capable device is detected"
    if not (gpu_on_bus(host) and host.isdir("/sys/module/nvidia")):
        return "no CUDA-capable device is detected"
    if not all(node_usable(host, p, user) for p in ("/dev/nvidiactl", "/dev/nvidia0")):
        return "no CUDA-capable device is detected"
    return None


# --- the shim's behaviour file (csrc/libcuda.c reads the same file at cuInit) ----------------------

STUB_CONF_ENV = "VGPU_STUB_CONF"
STUB_CONF_REL = "../etc/stub.conf"   # next to the folder the loader mapped libcuda.so.1 from
# cuInit's result -> the string cudart gives for it (ggml_cuda_init: failed to initialize CUDA: ...)
CUDA_INIT_ERRORS = {100: "no CUDA-capable device is detected", 999: "unknown error",
                    3: "initialization error", 101: "invalid device ordinal"}
INSUFFICIENT_DRIVER = "CUDA driver version is insufficient for CUDA runtime version"
CUDART_MAJOR_API = 12000          # the bundled cudart 12.8 needs a driver API of at least 12.0


def stub_conf(host: Host, env: Mapping[str, str], libcuda: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """The key=value pairs of the behaviour file the stub would read (empty: healthy)."""
    real = host.resolve(libcuda).final if libcuda else None  # the stub follows links (realpath)
    path = env.get(STUB_CONF_ENV) or (
        os.path.normpath(os.path.dirname(real) + "/" + STUB_CONF_REL) if real else "")
    out = []
    for line in (host.read_text(path) or "").splitlines() if path else ():
        k, eq, v = line.partition("=")
        if eq and not k.startswith("#"):
            out.append((k.strip(), v.strip()))
    return tuple(out)


def device_facts(conf: Mapping[str, str]) -> Dict[str, object]:
    """STUB_GPU as the stub reports it under a behaviour file."""
    g: Dict[str, object] = dict(STUB_GPU)
    if conf.get("compute"):
        major, _, minor = conf["compute"].partition(".")
        g["compute_major"], g["compute_minor"] = int(major), int(minor or 0)
    if conf.get("memory") is not None and conf.get("memory") != "":
        g["total_memory"] = int(conf["memory"])
        g["free_memory"] = min(int(g["free_memory"]), int(conf["memory"]))
    if conf.get("driver_version"):
        g["cuda_driver_api"] = int(conf["driver_version"])
    return g


def runtime_outcome(conf: Mapping[str, str]) -> Tuple[str, Optional[str]]:
    """(fate of the runner, cudaGetDeviceCount's error) for a stub behaviour file."""
    init = conf.get("cuinit", "")
    if init in ("hang", "crash"):
        return init, None
    g = device_facts(conf)
    if int(g["cuda_driver_api"]) < CUDART_MAJOR_API:
        return "ok", INSUFFICIENT_DRIVER
    if init and init != "0":
        try:
            return "ok", CUDA_INIT_ERRORS.get(int(init), "initialization error")
        except ValueError:
            return "ok", None
    return "ok", None


def compute_compiled(g: Mapping[str, object]) -> bool:
    return int(g["compute_major"]) * 100 + int(g["compute_minor"]) * 10 in CUDA_V12_ARCHS


def _cuda_backend(host: Host, env: Mapping[str, str], user: str, loader: "Loader", path: str) -> BackendLoad:
    """A CUDA backend that loaded: what its runner's cuInit on the stub gives."""
    conf = stub_conf(host, env, loader.find("libcuda.so.1")[0])
    init = cuda_init_error(host, env, user)
    fate, err = runtime_outcome(dict(conf))
    init = init or err
    nvml = loader.find("libnvidia-ml.so.1")[0] is not None
    devices = 0 if (init or fate != "ok") else 1
    return BackendLoad(path, True, None, devices, init, nvml, host.resolve(path).final, conf, fate)


# --- discovery -----------------------------------------------------------------------------------

def preload_errors(host: Host, env: Mapping[str, str]) -> List[str]:
    out = []
    for name in (env.get("LD_PRELOAD") or "").replace(":", " ").split():
        if not host.isfile(name):
            out.append(f"ERROR: ld.so: object '{name}' from LD_PRELOAD cannot be preloaded "
                       "(cannot open shared object file): ignored.")
    for name in (host.read_text("/etc/ld.so.preload") or "").split():
        if not host.isfile(name):
            out.append(f"ERROR: ld.so: object '{name}' from /etc/ld.so.preload cannot be preloaded "
                       "(cannot open shared object file): ignored.")
    return out


def run_probe(host: Host, exe: str, dirs: Sequence[str], libdir: str, env: Mapping[str, str],
              user: str) -> Probe:
    inherited = [p for p in (env.get("LD_LIBRARY_PATH") or "").split(":") if p]
    loader = Loader(host, list(dirs) + inherited)
    flags = cpu_flags(host)
    exe_dir = os.path.dirname(exe)
    scanned, cuda, cpu = [], [], None
    best = 0
    for d in dict.fromkeys(dirs):
        if d != exe_dir and "lib/ollama" not in d:
            continue
        scanned.append(d)
        names = sorted(host.listdir(d))
        for backend in GGML_SCAN_ORDER:
            if backend == "cpu":
                for n in names:
                    if n.startswith("libggml-cpu-") and n.endswith(".so") and host.isfile(f"{d}/{n}"):
                        ok, _, _ = loader.dlopen(f"{d}/{n}")
                        s = cpu_score(n[len("libggml-cpu-"):-3], flags) if ok else 0
                        if s > best:
                            best, cpu = s, f"{d}/{n}"
                continue
            p = f"{d}/libggml-cuda.so"
            if not host.isfile(p):  # fs::exists follows symlinks: a dangling link is never opened
                continue
            ok, err, loaded = loader.dlopen(p)
            if not ok:
                cuda.append(BackendLoad(p, False, err))
                continue
            cuda.append(_cuda_backend(host, env, user, loader, p))
    return Probe(tuple(dirs), libdir, tuple(scanned), cpu, tuple(cuda))


def discover(host: Host, exe: str, env: Mapping[str, str], user: str = "ollama") -> Discovery:
    """What Ollama 0.24.0's first and second discovery passes find on this root."""
    exe = host.resolve(exe).final  # /proc/self/exe is already resolved
    lib = lib_ollama_path(host, exe)
    glob_dirs = glob_lib_dirs(host, lib)
    # envconfig.Var trims spaces then quotes; envconfig.Bool is strconv.ParseBool (unparsable: true).
    requested = (env.get("OLLAMA_LLM_LIBRARY") or "").strip().strip("\"'")
    vulkan_raw = (env.get("OLLAMA_VULKAN") or "").strip().strip("\"'")
    vulkan = bool(vulkan_raw) and vulkan_raw not in ("0", "f", "F", "false", "FALSE", "False")
    skipped: List[Tuple[str, str]] = []
    probes: List[Probe] = []
    lib_dirs = glob_dirs or [""]
    for d in lib_dirs:
        # discover/runner.go (v0.24.0) filters only real folders: the "" probe (LibOllamaPath
        # alone, when no subfolder matched the glob) always runs, whatever OLLAMA_LLM_LIBRARY says.
        base = os.path.basename(d) if d else ""
        if d and requested and base != requested and not requested.startswith("mlx_"):
            skipped.append(("user", d))
            continue
        if d and "vulkan" in base and not vulkan:
            skipped.append(("vulkan", d))
            continue
        dirs = [lib, d] if d else [lib]
        probes.append(run_probe(host, exe, dirs, d, env, user))
    overrides = tuple((k, env[k]) for k in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                                             "GGML_VK_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
                                             "HSA_OVERRIDE_GFX_VERSION") if env.get(k))
    d = Discovery(exe, lib, tuple(glob_dirs), tuple(skipped), tuple(probes), overrides,
                  tuple(preload_errors(host, env)), True)
    return dataclasses.replace(d, compute_supported=compute_compiled(d.gpu_facts))


# --- the project's scanner model -----------------------------------------------------------------

def discover_with_scanner(host: Host, exe: str, env: Mapping[str, str], user: str = "ollama") -> Discovery:
    """The same Discovery, with the probed folders and the backends that load taken from the
    project's scanner model (probes.scanner.analyze); the device side (cuInit on the stub GPU)
    and the log-only facts stay this module's. Raises when the scanner is unavailable or does
    not model this install as era C."""
    from probes import ollama, scanner

    own = discover(host, exe, env, user)
    install = ollama.find_install(host)
    rep = scanner.analyze(host, install, env=dict(env))
    if rep.era != "C" or not rep.lib_dir:
        raise ValueError(f"the scanner models this install as era {rep.era}")
    probes: List[Probe] = []
    for p in rep.probes:
        ld = [x for x in p.env.get("LD_LIBRARY_PATH", "").split(":") if x]
        loader = Loader(host, ld)
        cpu = None
        cuda: List[BackendLoad] = []
        for backend, path in p.loaded:
            if backend == "cpu":
                cpu = path
            elif backend == "cuda":
                cuda.append(_cuda_backend(host, env, user, loader, path))
        for f in p.files:  # CUDA backends ggml opened and dlopen refused (never logged by 0.24)
            if f.backend == "cuda" and f.opened and f.load is not None and not f.load.ok:
                cuda.append(BackendLoad(f.path, False, f.load.error))
        libdir = p.dirs[1] if len(p.dirs) > 1 else ""
        probes.append(Probe(tuple(p.dirs), libdir, tuple(p.searched), cpu, tuple(cuda)))
    probed = {p.libdir or "" for p in probes}
    skipped = tuple(s for s in own.skipped if s[1] not in probed)
    d = dataclasses.replace(own, lib_ollama=rep.lib_dir, probes=tuple(probes), skipped=skipped)
    return dataclasses.replace(d, compute_supported=compute_compiled(d.gpu_facts))
