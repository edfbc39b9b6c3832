"""The load probe: what the loader and the driver really say, recovered in a child process.

Ollama 0.5-0.24 discards the `dlerror` of a failed `libggml-cuda.so` and never logs a
failing cuInit at INFO. This module runs probes/loadprobe_child.py (never dlopen in the
tool's own process) once per stage, in its own process group, with the environment
Ollama's discovery runner would have:

  driver   libcuda.so.1 (RTLD_NOW): the file actually mapped, cuInit, driver version,
           device count, each device's name, compute capability, UUID, memory, PCI id
  nvml     libnvidia-ml.so.1: init, driver version, count, and whether it accepts the
           CUDA UUIDs (Ollama 0.12.6-0.24 asks NVML for memory by that UUID)
  backend  libggml-base.so then each libggml-cuda.so (RTLD_NOW|RTLD_LOCAL, like ggml's
           loader): the exact dlerror, then ggml_backend_init and its device count

A crash (its signal), a hang (the child is killed after `timeout` seconds) and a non-zero
CUresult (named from probes/data/cuda-results.json) are results, never tool failures.

Under --root/--demo the inspected paths are mapped to files of this machine: every folder
of LD_LIBRARY_PATH becomes a temporary folder of links resolved inside the root (so an
absolute symlink such as lib/ollama/libcuda.so.1 -> /opt/vgpu/lib/libcuda.so.1 leads where
it would inside the VM), but the loader cache and default folders are this machine's.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pwd
import grp
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from probes.facts import Finding
from probes.host import Host

DEFAULT_TIMEOUT = 20.0
RESULTS_FILE = os.path.join(os.path.dirname(__file__), "data", "cuda-results.json")
OUTPUT_TAIL = 4000  # characters of the libraries' own output kept per stage
# Environment variables that would break the child interpreter itself; the loader ignores them.
PYTHON_VARS = ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONNOUSERSITE")
# The C runtime the child shares with the inspected system's libraries under --root.
SYSTEM_LIBS = ("libc.so", "libc-", "libm.so", "libm-", "libdl.", "libpthread.", "librt.", "ld-linux",
               "libstdc++.", "libgcc_s.", "libutil.", "libresolv.", "libz.so")
# Variables of the runner's environment that change what the driver shows (quoted as evidence).
CUDA_ENV_VARS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "LD_PRELOAD",
                 "GGML_CUDA_INIT", "OLLAMA_LLM_LIBRARY")
MIN_DRIVER_API = {"cuda_v12": 12000, "cuda_v13": 13000}  # cudart's minimum cuDriverGetVersion


@dataclasses.dataclass(frozen=True)
class CudaDevice:
    index: int
    name: Optional[str]
    compute: Optional[str]
    uuid: Optional[str]
    total_memory: Optional[int]
    pci_bus_id: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Call:
    """One driver call: its symbol, result code and the code's name."""

    symbol: str
    result: Optional[int]
    result_name: Optional[str]
    missing: bool = False


@dataclasses.dataclass(frozen=True)
class LibcudaResult:
    path: Optional[str]  # the file the loader mapped (inspected path under --root)
    loaded: bool
    error: Optional[str]
    init_result: Optional[int]
    driver_version: Optional[int]
    device_count: Optional[int]
    devices: Tuple[CudaDevice, ...]
    requested: str = "libcuda.so.1"
    real_path: Optional[str] = None
    init_result_name: Optional[str] = None
    calls: Tuple[Call, ...] = ()
    new_mappings: Tuple[str, ...] = ()  # libraries that came in with it


@dataclasses.dataclass(frozen=True)
class NvmlDevice:
    index: int
    name: Optional[str]
    uuid: Optional[str]
    total_memory: Optional[int]


@dataclasses.dataclass(frozen=True)
class NvmlResult:
    path: Optional[str]
    loaded: bool
    error: Optional[str]
    init_result: Optional[int]
    device_count: Optional[int]
    driver_version: Optional[str]
    requested: str = "libnvidia-ml.so.1"
    real_path: Optional[str] = None
    init_result_name: Optional[str] = None
    devices: Tuple[NvmlDevice, ...] = ()
    uuid_lookup: Tuple[Tuple[str, Optional[int], Optional[str]], ...] = ()  # (uuid, result, name)


@dataclasses.dataclass(frozen=True)
class LibLoad:
    path: Optional[str]
    loaded: bool
    error: Optional[str]


@dataclasses.dataclass(frozen=True)
class BackendResult:
    path: str
    loaded: bool
    error: Optional[str]
    base: Optional[LibLoad] = None
    ld_library_path: Optional[str] = None
    init_exported: Optional[bool] = None
    devices: Optional[int] = None  # devices ggml_backend_init registered
    crashed: bool = False
    signal: Optional[str] = None
    timed_out: bool = False


@dataclasses.dataclass(frozen=True)
class Stage:
    """How one child process ended."""

    name: str
    exit_code: Optional[int]
    signal: Optional[str]
    timed_out: bool
    last_step: Optional[str]  # the step it was in when it crashed or hung
    elapsed_s: float
    output: str  # the libraries' own stdout/stderr (tail)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    libcuda: LibcudaResult
    nvml: NvmlResult
    backends: Tuple[BackendResult, ...]
    crashed: bool
    signal: Optional[str]
    timed_out: bool
    findings: Tuple[Finding, ...]
    stages: Tuple[Stage, ...] = ()
    cuda_env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # CUDA-relevant variables given
    run_as: Optional[str] = None  # the user the children ran as
    euid: int = 0
    notes: Tuple[str, ...] = ()


# -------------------------------------------------------------------- result names
_RESULTS: Optional[dict] = None


def _results() -> dict:
    global _RESULTS
    if _RESULTS is None:
        with open(RESULTS_FILE, encoding="utf-8") as fh:
            _RESULTS = json.load(fh)
    return _RESULTS


def cuda_result_name(code: Optional[int]) -> Optional[str]:
    if code is None:
        return None
    entry = _results()["cuda"].get(str(code))
    return entry["name"] if entry else f"CUresult {code} (unknown)"


def cuda_result_meaning(code: Optional[int]) -> Optional[str]:
    entry = _results()["cuda"].get(str(code)) if code is not None else None
    return entry.get("meaning") if entry else None


def nvml_result_name(code: Optional[int]) -> Optional[str]:
    if code is None:
        return None
    entry = _results()["nvml"].get(str(code))
    return entry["name"] if entry else f"nvmlReturn_t {code} (unknown)"


# ------------------------------------------------------------------ environment
class _PathMap:
    """Maps the inspected system's library paths to files of this machine (--root/--demo)."""

    def __init__(self, host: Host):
        self.host = host
        self.tmp: Optional[str] = None
        self.farms: Dict[str, str] = {}  # farm folder -> inspected folder
        self.cache_links: Dict[str, str] = {}  # link of the cache folder -> the entry's path

    def __enter__(self) -> "_PathMap":
        return self

    def __exit__(self, *exc) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def file(self, inspected: str) -> str:
        if self.host.root == "/" or not inspected.startswith("/"):
            return inspected
        return self.host.real_path(inspected) or self.host.path(inspected)

    def folder(self, inspected: str) -> str:
        """A folder of links standing for `inspected`, each resolved inside the root."""
        if self.host.root == "/" or not inspected.startswith("/"):
            return inspected
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="vgpu-probe-")
        farm = os.path.join(self.tmp, str(len(self.farms)))
        os.mkdir(farm)
        self.farms[farm] = inspected.rstrip("/") or "/"
        for name in self.host.listdir(inspected):
            target = self.host.real_path(f"{inspected.rstrip('/')}/{name}")
            if target:
                os.symlink(target, os.path.join(farm, name))
        return farm

    def cache_folder(self) -> Optional[str]:
        """The root's /etc/ld.so.cache as a folder of links (soname -> the entry's file)."""
        if "cache" in self.__dict__:
            return self.__dict__["cache"]
        self.__dict__["cache"] = None
        try:
            from probes.ldcache import read_ld_cache  # the loader issue's cache reader
            cache = read_ld_cache(self.host)
        except Exception:  # noqa: BLE001 - without it, only the note below is said
            return None
        if not cache.entries:
            return None
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="vgpu-probe-")
        farm = os.path.join(self.tmp, "ld.so.cache")
        os.mkdir(farm)
        for e in cache.entries:  # first x86-64 entry of each soname, as the loader picks
            link = os.path.join(farm, e.soname)
            if e.flags == 0x0303 and not e.hwcap and not e.hwcaps_subdir and not os.path.lexists(link):
                target = self.host.real_path(e.path)
                if target and "/" not in e.soname:
                    os.symlink(target, link)
                    self.cache_links[link] = e.path
        self.__dict__["cache"] = farm
        return farm

    def env(self, env: Mapping[str, str]) -> Dict[str, str]:
        out = dict(env)
        for var in ("LD_LIBRARY_PATH",):
            if out.get(var):
                out[var] = ":".join(self.folder(p) if p else p for p in out[var].split(":"))
        if self.host.root != "/":
            cache = self.cache_folder()
            if cache:  # searched after the runner's path, as the root's cache would be
                out["LD_LIBRARY_PATH"] = ":".join(x for x in (out.get("LD_LIBRARY_PATH"), cache) if x)
        if out.get("LD_PRELOAD"):
            out["LD_PRELOAD"] = " ".join(self.file(p) for p in out["LD_PRELOAD"].replace(":", " ").split())
        return out

    def leaks(self, loaded: Optional[dict]) -> List[str]:
        """Libraries a load under --root took from THIS machine (outside the root): in the VM
        the loader would not have found them. The C runtime itself is allowed."""
        if not loaded or self.host.root == "/":
            return []
        # objects as the loader found them (link-map names); the real files when unknown
        found = list(loaded.get("new_objects") or []) or (
            [loaded.get("real_path")] + list(loaded.get("new_mappings") or []))
        return [p for p in dict.fromkeys(found) if p and p.startswith("/")
                and not p.startswith(self.host.root + "/")
                and not (self.tmp and p.startswith(self.tmp + "/"))
                and not os.path.basename(p).startswith(SYSTEM_LIBS)]

    def back(self, real: Optional[str]) -> Optional[str]:
        """A path of this machine as the inspected system would name it."""
        if real is None or self.host.root == "/":
            return real
        if real in self.cache_links:  # found through the root's cache: name the entry's path
            return self.cache_links[real]
        for farm, inspected in self.farms.items():
            if real == farm or real.startswith(farm + "/"):
                return inspected + real[len(farm):]
        try:
            return self.host.inspected(real)
        except ValueError:
            return real + " (this machine)"

    def text(self, message: Optional[str]) -> Optional[str]:
        if message is None or self.host.root == "/":
            return message
        for link, entry in self.cache_links.items():
            message = message.replace(link, entry)
        for farm, inspected in self.farms.items():
            message = message.replace(farm, inspected)
        return message.replace(self.host.root + "/", "/")


def _package_parent() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child_env(env: Mapping[str, str]) -> Dict[str, str]:
    out = {k: v for k, v in env.items() if k not in PYTHON_VARS}
    parent = _package_parent()
    out["PYTHONPATH"] = parent  # the child imports only the standard library and itself
    out["PYTHONDONTWRITEBYTECODE"] = "1"
    out.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return out


# ------------------------------------------------------------------ one child
@dataclasses.dataclass
class _Run:
    records: List[dict]
    stage: Stage

    def done(self, step: str) -> Optional[dict]:
        for r in self.records:
            if r.get("step") == step and r.get("status") == "done":
                return r.get("data") or {}
        return None

    def done_prefix(self, prefix: str) -> List[dict]:
        return [r.get("data") or {} for r in self.records
                if r.get("status") == "done" and str(r.get("step", "")).startswith(prefix)]


def _run_child(name: str, request: dict, env: Mapping[str, str], timeout: float,
               python: str) -> _Run:
    fd, out_path = tempfile.mkstemp(prefix="vgpu-probe-", suffix=".jsonl")
    os.close(fd)
    if request.get("as_user"):
        os.chown(out_path, int(request["as_user"]["uid"]), -1)
    request = dict(request, out=out_path, stage=name.split(":")[0])
    start = time.monotonic()
    timed_out = False
    try:
        proc = subprocess.Popen(
            [python, "-m", "probes.loadprobe_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=_child_env(env), cwd="/", start_new_session=True)
    except OSError as exc:
        os.unlink(out_path)
        return _Run([], Stage(name, None, None, False, "start", 0.0, f"cannot start the child: {exc}"))
    try:
        output, _ = proc.communicate(json.dumps(request).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        output, _ = proc.communicate()
    elapsed = time.monotonic() - start
    records = []
    try:
        with open(out_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
    finally:
        os.unlink(out_path)
    open_steps = [r["step"] for r in records if r.get("status") == "start"
                  and not any(d.get("step") == r["step"] and d.get("status") == "done" for d in records)]
    rc = proc.returncode
    sig = None
    if rc is not None and rc < 0 and not timed_out:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = f"signal {-rc}"
    text = (output or b"").decode("utf-8", "replace")[-OUTPUT_TAIL:]
    last = open_steps[-1] if open_steps else (records[-1]["step"] if records else None)
    return _Run(records, Stage(name, rc, sig, timed_out, last, round(elapsed, 3), text))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


# ------------------------------------------------------------------ stages
def _call(data: Optional[dict]) -> Optional[Call]:
    if data is None:
        return None
    return Call(data.get("symbol", "?"), data.get("result"), cuda_result_name(data.get("result")),
                bool(data.get("missing")))


def _interrupted(run: _Run) -> Optional[str]:
    st = run.stage
    if st.timed_out:
        return f"hung in {st.last_step} (killed after {st.elapsed_s:g} s)"
    if st.signal:
        return f"crashed with {st.signal} in {st.last_step}"
    if st.exit_code not in (0, None) and run.done("end") is None:
        return f"the child exited with status {st.exit_code} in {st.last_step}"
    return None


def _libcuda(run: _Run, pm: _PathMap, requested: str) -> LibcudaResult:
    load = run.done("libcuda:dlopen")
    broke = _interrupted(run)
    if load is None or not load.get("loaded"):
        err = pm.text(load.get("error")) if load else (broke or "the probe did not run")
        return LibcudaResult(None, False, err, None, None, None, (), requested)
    if pm.leaks(load):
        return LibcudaResult(None, False, _leak_text(requested, pm.leaks(load)), None, None, None, (), requested)
    init = run.done("cuInit")
    calls = [c for c in (_call(init), _call(run.done("cuDriverGetVersion")), _call(run.done("cuDeviceGetCount"))) if c]
    ver = run.done("cuDriverGetVersion") or {}
    cnt = run.done("cuDeviceGetCount") or {}
    devices = tuple(CudaDevice(d.get("index", i), d.get("name"), d.get("compute"), d.get("uuid"),
                               d.get("total_memory"), d.get("pci_bus_id"))
                    for i, d in enumerate(run.done_prefix("device")))
    error = broke
    if error is None:
        missing = [c.symbol for c in calls if c.missing]
        bad = [c for c in calls if not c.missing and c.result not in (0, None)]
        if init is None:
            error = "cuInit was not reached"
        elif missing:
            error = "; ".join(pm.text((run.done(s) or {}).get("error")) or f"missing {s}" for s in missing)
        elif bad:
            error = f"{bad[0].symbol} returned {bad[0].result_name} ({bad[0].result})"
    return LibcudaResult(
        path=pm.back(load.get("mapped")), loaded=True, error=error,
        init_result=init.get("result") if init else None,
        driver_version=ver.get("value"), device_count=cnt.get("value"), devices=devices,
        requested=requested, real_path=pm.back(load.get("real_path")),
        init_result_name=cuda_result_name(init.get("result")) if init else None,
        calls=tuple(calls), new_mappings=tuple(pm.back(p) or p for p in load.get("new_mappings", [])))


def _nvml(run: _Run, pm: _PathMap, requested: str) -> NvmlResult:
    load = run.done("nvml:dlopen")
    broke = _interrupted(run)
    if load is None or not load.get("loaded"):
        err = pm.text(load.get("error")) if load else (broke or "the probe did not run")
        return NvmlResult(None, False, err, None, None, None, requested)
    if pm.leaks(load):
        return NvmlResult(None, False, _leak_text(requested, pm.leaks(load)), None, None, None, requested)
    init = run.done("nvmlInit_v2") or {}
    ver = run.done("nvmlSystemGetDriverVersion") or {}
    cnt = run.done("nvmlDeviceGetCount_v2") or {}
    error = broke
    if error is None and init.get("missing"):
        error = pm.text(init.get("error"))
    elif error is None and init.get("result") not in (0, None):
        error = f"nvmlInit_v2 returned {nvml_result_name(init['result'])} ({init['result']})"
    devices = tuple(NvmlDevice(d.get("index", i), d.get("name"), d.get("uuid"), d.get("total_memory"))
                    for i, d in enumerate(run.done_prefix("nvml-device")))
    lookups = tuple((d.get("uuid"), d.get("result"), "missing symbol" if d.get("missing") else nvml_result_name(d.get("result")))
                    for d in run.done_prefix("nvml-uuid:"))
    return NvmlResult(
        path=pm.back(load.get("mapped")), loaded=True, error=error, init_result=init.get("result"),
        device_count=cnt.get("value"), driver_version=ver.get("value"), requested=requested,
        real_path=pm.back(load.get("real_path")), init_result_name=nvml_result_name(init.get("result")),
        devices=devices, uuid_lookup=lookups)


def _backend(path: str, run: _Run, pm: _PathMap, ld_path: Optional[str]) -> BackendResult:
    base = run.done("base:dlopen")
    lib = run.done("backend:dlopen")
    syms = run.done("backend:symbols") or {}
    init = run.done("backend:init")
    broke = _interrupted(run)
    error = None
    leaked = pm.leaks(base) + pm.leaks(lib)
    if lib is None:
        error = broke or "the probe did not reach it"
    elif not lib.get("loaded"):
        error = pm.text(lib.get("error"))
    elif leaked:
        error = _leak_text(path, leaked)
        lib = dict(lib, loaded=False)
    elif broke:
        error = broke
    base_load = LibLoad(pm.back(base.get("mapped")) or base.get("name"), bool(base.get("loaded")),
                        pm.text(base.get("error"))) if base else None
    return BackendResult(
        path=path, loaded=bool(lib and lib.get("loaded")), error=error, base=base_load,
        ld_library_path=ld_path, init_exported=syms.get("ggml_backend_init") if syms else None,
        devices=init.get("devices") if init and not leaked else None,
        crashed=bool(run.stage.signal), signal=run.stage.signal, timed_out=run.stage.timed_out)


def _leak_text(what: str, leaked: Sequence[str]) -> str:
    """The loader's message the VM would give, for a library only this machine supplied."""
    name = os.path.basename(leaked[0])
    return (f"{name}: cannot open shared object file: No such file or directory (predicted for {what} "
            f"in the VM: no {name} inside the inspected root; only this machine has {', '.join(leaked)})")


def _base_for(host: Host, env: Mapping[str, str]) -> str:
    """The libggml-base.so the runner would have: the first on its LD_LIBRARY_PATH."""
    for folder in (env.get("LD_LIBRARY_PATH") or "").split(":"):
        if folder and host.exists(f"{folder.rstrip('/')}/libggml-base.so"):
            return f"{folder.rstrip('/')}/libggml-base.so"
    return "libggml-base.so"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _user_spec(name: str) -> dict:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        from probes.errors import ToolError
        raise ToolError(f"--as-user {name}: no such user on this machine")
    groups = sorted({pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem})
    return {"name": name, "uid": pw.pw_uid, "gid": pw.pw_gid, "groups": groups}


# ---------------------------------------------------------------------- public
def run_probe(host: Host, *, libcuda_env: Mapping[str, str],
              backends: Sequence[Tuple[str, Mapping[str, str]]] = (),
              timeout: float = DEFAULT_TIMEOUT, as_user: Optional[str] = None,
              service_user: Optional[str] = "ollama", init_backends: bool = True,
              libcuda: str = "libcuda.so.1", nvml: str = "libnvidia-ml.so.1",
              python: Optional[str] = None) -> ProbeResult:
    """Load the driver libraries and each backend in child processes; see the module doc."""
    python = python or sys.executable
    notes: List[str] = []
    spec = None
    if as_user:
        if not host.live:
            from probes.errors import ToolError
            raise ToolError("--as-user only works on this machine (not with --root/--demo)")
        spec = _user_spec(as_user)
    euid = os.geteuid()
    stages: List[Stage] = []
    with _PathMap(host) as pm:
        base_req = {"as_user": spec}
        drv = _run_child("driver", dict(base_req, libcuda=pm.file(libcuda) if "/" in libcuda else libcuda),
                         pm.env(libcuda_env), timeout, python)
        stages.append(drv.stage)
        lc = _libcuda(drv, pm, libcuda)
        uuids = [d.uuid for d in lc.devices if d.uuid]
        nv_run = _run_child("nvml", dict(base_req, nvml=pm.file(nvml) if "/" in nvml else nvml, uuids=uuids),
                            pm.env(libcuda_env), timeout, python)
        stages.append(nv_run.stage)
        nv = _nvml(nv_run, pm, nvml)
        results = []
        for path, env in backends:
            req = dict(base_req, backend=pm.file(path), base=_mapped_base(host, pm, env), init=init_backends)
            run = _run_child(f"backend:{path}", req, pm.env(env), timeout, python)
            stages.append(run.stage)
            results.append(_backend(path, run, pm, env.get("LD_LIBRARY_PATH")))
    if not host.live:
        notes.append("--root/--demo: the libraries are the inspected tree's files (LD_LIBRARY_PATH folders "
                     "and the root's /etc/ld.so.cache stood in for by folders of links resolved inside "
                     "the root), but this machine's own loader cache, default folders and system "
                     "libraries (libc, libstdc++) come after them: a library found only there is this "
                     "machine's, not the VM's")
    if spec is None and not host.live:
        # Under --root the service user lives in the image, not here: --as-user cannot apply.
        if service_user and service_user != _user_name(euid):
            notes.append(f"run as {_user_name(euid)} on this machine: whether {service_user} may open the "
                         f"image's device nodes is judged from their mode bits by `vgpu-tui device`")
    elif spec is None and euid == 0 and service_user and service_user != "root":
        notes.append(f"run as root, while the service runs as {service_user}: root may open device nodes "
                     f"and read files that {service_user} cannot, so a success here does not prove the "
                     f"service's runners succeed (run with --as-user {service_user} to check)")
    elif spec is not None:
        notes.append(f"the children ran as {spec['name']} (uid {spec['uid']}, groups {spec['groups']})")
    elif service_user and service_user != _user_name(euid):
        notes.append(f"run as {_user_name(euid)}, while the service runs as {service_user}: device-node and "
                     f"file permissions may differ (as root, --as-user {service_user} checks them)")
    crashed = [s for s in stages if s.signal]
    hung = [s for s in stages if s.timed_out]
    cuda_env = {k: libcuda_env[k] for k in CUDA_ENV_VARS if k in libcuda_env}
    result = ProbeResult(lc, nv, tuple(results), bool(crashed), crashed[0].signal if crashed else None,
                         bool(hung), (), tuple(stages), cuda_env, spec["name"] if spec else None, euid,
                         tuple(notes))
    return dataclasses.replace(result, findings=findings(result))


def _mapped_base(host: Host, pm: _PathMap, env: Mapping[str, str]) -> str:
    base = _base_for(host, env)
    return pm.file(base) if base.startswith("/") else base


# -------------------------------------------------------------------- findings
def findings(r: ProbeResult) -> Tuple[Finding, ...]:
    out: List[Finding] = []
    stage = {s.name: s for s in r.stages}
    lc = r.libcuda
    env_evidence = tuple(f"{k}={v!r} in the runner's environment" for k, v in r.cuda_env.items()
                         if k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_PRELOAD"))
    drv = stage.get("driver")
    if drv and (drv.signal or drv.timed_out):
        out.append(_interruption("libcuda", lc.requested, drv))
    elif not lc.loaded:
        err = lc.error or ""
        wrong = any(k in err for k in ("wrong ELF class", "invalid ELF header", "undefined symbol", "version `"))
        out.append(Finding(
            "probe-libcuda-not-loaded", "shim-incomplete" if wrong else "driver-lib-not-found", "error",
            f"dlopen({lc.requested}) fails in the runner's environment",
            "The CUDA backend links libcuda.so.1; without it libggml-cuda.so cannot load and Ollama "
            "falls back to the CPU without a word.", (f"dlerror: {err}",)))
    else:
        if lc.init_result not in (0, None):
            meaning = cuda_result_meaning(lc.init_result)
            out.append(Finding(
                "probe-cuinit-failed", "cuda-init-failed", "error",
                f"cuInit returns {lc.init_result_name} ({lc.init_result})",
                (meaning + ". " if meaning else "") + "libcuda.so.1 loads, but the driver cannot start CUDA.",
                (f"loaded {lc.path}" + (f" -> {lc.real_path}" if lc.real_path and lc.real_path != lc.path else ""),
                 f"cuInit(0) = {lc.init_result}") + env_evidence))
        elif any(c.missing for c in lc.calls):
            out.append(Finding(
                "probe-libcuda-missing-symbols", "shim-incomplete", "error",
                f"{lc.path} lacks driver functions discovery calls", lc.error or "",
                tuple(f"missing {c.symbol}" for c in lc.calls if c.missing)))
        elif lc.device_count == 0:
            out.append(Finding(
                "probe-no-cuda-devices", "cuda-init-failed", "error", "cuInit succeeds but reports 0 devices",
                "The driver (or shim) enumerates no device: CUDA_VISIBLE_DEVICES, device permissions, "
                "or a shim not connected to its backend.", (f"cuDeviceGetCount = 0 ({lc.path})",) + env_evidence))
        elif lc.error:
            out.append(Finding("probe-cuda-call-failed", "cuda-init-failed", "error",
                               "A CUDA driver call failed during enumeration", lc.error, (lc.error,)))
        if lc.driver_version is not None and lc.driver_version < MIN_DRIVER_API["cuda_v12"]:
            out.append(Finding(
                "probe-driver-api-too-old", "driver-too-old", "error",
                f"The driver reports CUDA {lc.driver_version // 1000}.{lc.driver_version % 1000 // 10}",
                "Ollama's cuda_v12 backend needs a driver API of at least 12.0 (cuda_v13: 13.0); "
                "cudart then reports an insufficient driver.", (f"cuDriverGetVersion = {lc.driver_version}",)))
    nv = r.nvml
    nst = stage.get("nvml")
    if nst and (nst.signal or nst.timed_out):
        out.append(_interruption("nvml", nv.requested, nst))
    elif not nv.loaded:
        out.append(Finding(
            "probe-nvml-not-loaded", "driver-lib-not-found", "warning",
            f"dlopen({nv.requested}) fails in the runner's environment",
            "Ollama 0.12.6-0.24 reads free VRAM through NVML and falls back to cudaMemGetInfo; "
            "0.30+ needs it to check the driver version.", (f"dlerror: {nv.error}",)))
    elif nv.error:
        out.append(Finding("probe-nvml-init-failed", "shim-incomplete", "warning", "NVML does not initialise",
                           nv.error, (nv.error,)))
    else:
        for uuid, code, name in nv.uuid_lookup:
            if code != 0:
                out.append(Finding(
                    "probe-nvml-uuid-rejected", "shim-incomplete", "warning",
                    f"NVML does not accept the CUDA UUID {uuid}",
                    "Ollama 0.12.6-0.24 looks the GPU up in NVML by this UUID for its memory; it then "
                    "falls back to cudaMemGetInfo.", (f"nvmlDeviceGetHandleByUUID({uuid}) = {name}",)))
    for b in r.backends:
        if b.crashed or b.timed_out:
            out.append(_interruption("backend", b.path, stage.get(f"backend:{b.path}")))
        elif b.base is not None and not b.base.loaded:
            out.append(Finding(
                "probe-ggml-base-not-loaded", "backend-lib-missing", "error",
                "libggml-base.so does not load in the runner's environment", b.base.error or "",
                (f"dlerror: {b.base.error}",)))
        elif not b.loaded:
            err = b.error or ""
            shim = "undefined symbol: cu" in err
            out.append(Finding(
                "probe-ggml-cuda-not-loaded", "shim-incomplete" if shim else "backend-lib-missing", "error",
                f"{b.path} does not load (the error ggml discards)",
                "ggml dlopen()s it with RTLD_NOW|RTLD_LOCAL; Ollama 0.5-0.24 logs nothing about this failure.",
                (f"dlerror: {err}", f"LD_LIBRARY_PATH={b.ld_library_path or ''}")))
        elif b.devices == 0:
            out.append(Finding(
                "probe-ggml-cuda-no-devices", "cuda-init-failed", "error",
                f"{b.path} loads but registers 0 devices",
                "ggml_cuda_init failed inside the backend (cudart could not use the driver): Ollama "
                "then reports initial_count=0.", ("ggml_backend_reg_dev_count = 0",)))
    return tuple(out)


def _interruption(what: str, path: str, st: Optional[Stage]) -> Finding:
    if st is not None and st.timed_out:
        return Finding(
            f"probe-{what}-hang", "discovery-timeout", "error", f"Loading {path} hangs",
            f"The probe was killed after {st.elapsed_s:g} s while in {st.last_step}. Ollama's discovery gives "
            "up after 30 s per runner (era C), then uses the CPU.", (f"last step: {st.last_step}",))
    sig = st.signal if st else "?"
    return Finding(
        f"probe-{what}-crash", "runner-crash", "error", f"Loading {path} crashes the process ({sig})",
        f"The probe process died with {sig} in {st.last_step if st else '?'}; Ollama's runner would die "
        "the same way during discovery.",
        (f"signal {sig} in {st.last_step if st else '?'}",) + ((st.output.strip().splitlines()[-1],)
                                                                if st and st.output.strip() else ()))
