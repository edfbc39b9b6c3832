"""The load probe against FAKE driver libraries built with gcc here (no GPU on this machine).

Each fake `libcuda.so.1` takes one path of the probe: it works (one fake device), fails
cuInit with a chosen CUresult, lacks a symbol, crashes (SIGSEGV) or hangs. Fake NVML and
fake `libggml-base.so` / `libggml-cuda.so` cover the other stages. The probe itself, the
loader and the child processes are real.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probes import loadprobe
from probes.host import Host

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the fake libraries")

FAKE_CUDA = r"""
/* FAKE libcuda.so.1 for tests: behaviour chosen with -D at build time. */
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <stddef.h>
#ifndef INIT_RESULT
#define INIT_RESULT 0
#endif
#ifndef DEVICES
#define DEVICES 1
#endif
#ifndef NO_CUINIT
int cuInit(unsigned flags) {
#ifdef CRASH
    volatile int *p = 0; *p = 1;
#endif
#ifdef HANG
    for (;;) pause();
#endif
    return INIT_RESULT;
}
#endif
int cuDriverGetVersion(int *v) { *v = DRIVER_API; return 0; }
int cuDeviceGetCount(int *n) { *n = DEVICES; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return i < DEVICES ? 0 : 101; }
int cuDeviceGetName(char *b, int len, int d) { strncpy(b, "FAKE-GPU", len); return 0; }
int cuDeviceGetAttribute(int *v, int attr, int d) { *v = attr == 75 ? 8 : attr == 76 ? 6 : 0; return 0; }
int cuDeviceGetUuid_v2(unsigned char *u, int d) { for (int i = 0; i < 16; i++) u[i] = 0x10 + i; return 0; }
int cuDeviceTotalMem_v2(size_t *b, int d) { *b = (size_t)24 << 30; return 0; }
int cuDeviceGetPCIBusId(char *b, int len, int d) { strncpy(b, "0000:00:06.0", len); return 0; }
int cuGetErrorName(int e, const char **s) { *s = e == 100 ? "CUDA_ERROR_NO_DEVICE" : "OTHER"; return 0; }
#ifndef NO_MEMCREATE
int cuMemCreate(void *h, size_t s, const void *p, unsigned long long f) { return 0; }
#endif
"""

FAKE_NVML = r"""
/* FAKE libnvidia-ml.so.1 for tests. */
#include <string.h>
typedef struct { unsigned long long total, free, used; } mem_t;
int nvmlInit_v2(void) {
#ifdef NVML_CRASH
    volatile int *p = 0; *p = 1;
#endif
    return 0;
}
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *b, unsigned n) { strncpy(b, "550.54.14", n); return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { *h = (void *)1; return 0; }
int nvmlDeviceGetName(void *h, char *b, unsigned n) { strncpy(b, "FAKE-GPU", n); return 0; }
int nvmlDeviceGetUUID(void *h, char *b, unsigned n) { strncpy(b, ACCEPTED_UUID, n); return 0; }
int nvmlDeviceGetMemoryInfo(void *h, mem_t *m) { m->total = (unsigned long long)24 << 30; m->free = m->total; m->used = 0; return 0; }
int nvmlDeviceGetHandleByUUID(const char *u, void **h) { *h = (void *)1; return strcmp(u, ACCEPTED_UUID) ? 6 : 0; }
"""

FAKE_HANGING_CTOR = r"""
/* FAKE library whose constructor never returns: dlopen itself hangs. */
#include <unistd.h>
__attribute__((constructor)) static void stuck(void) { for (;;) pause(); }
"""

FAKE_BASE = r"""
/* FAKE libggml-base.so: the two registry calls the probe makes. */
#include <stddef.h>
struct reg { size_t devices; const char *name; };
size_t ggml_backend_reg_dev_count(struct reg *r) { return r->devices; }
const char *ggml_backend_reg_name(struct reg *r) { return r->name; }
"""

FAKE_GGML_CUDA = r"""
/* FAKE libggml-cuda.so: links libcuda.so.1 (and imports cuMemCreate, as the real one does). */
#include <stddef.h>
struct reg { size_t devices; const char *name; };
extern int cuInit(unsigned); extern int cuDeviceGetCount(int *);
extern int cuMemCreate(void *, size_t, const void *, unsigned long long);
extern size_t ggml_backend_reg_dev_count(struct reg *);
static struct reg r = {0, "CUDA"};
void *ggml_backend_init(void) {
    int n = 0;
    if (cuInit(0) == 0 && cuDeviceGetCount(&n) == 0) r.devices = (size_t)n;
    return &r;
}
void *unused_keep_imports(void) { cuMemCreate(0, 0, 0, 0); return (void *)ggml_backend_reg_dev_count; }
"""

UUID = "GPU-10111213-1415-1617-1819-1a1b1c1d1e1f"


def _gcc(src: str, out: Path, soname: str, *flags: str, libs=()) -> Path:
    c = out.with_suffix(".c")
    c.write_text(src)
    cmd = ["gcc", "-shared", "-fPIC", "-o", str(out), str(c), f"-Wl,-soname,{soname}", *flags]
    for folder, lib in libs:
        cmd += [f"-L{folder}", f"-l:{lib}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    """Folders each holding one FAKE libcuda.so.1 variant (plus NVML and ggml fakes)."""
    base = tmp_path_factory.mktemp("fakes")
    variants = {
        "ok": (), "nodevice": ("-DINIT_RESULT=100",), "unknown": ("-DINIT_RESULT=999",),
        "zero": ("-DDEVICES=0",), "nosym": ("-DNO_CUINIT",), "crash": ("-DCRASH",), "hang": ("-DHANG",),
        "nomemcreate": ("-DNO_MEMCREATE",), "old": ("-DDRIVER_API=11040",),
    }
    dirs = {}
    for name, flags in variants.items():
        d = base / name
        d.mkdir()
        api = () if any(f.startswith("-DDRIVER_API") for f in flags) else ("-DDRIVER_API=12040",)
        # the real layout: libcuda.so.1 -> libcuda.so.<version>
        _gcc(FAKE_CUDA, d / "libcuda.so.999.1", "libcuda.so.1", *flags, *api)
        os.symlink("libcuda.so.999.1", d / "libcuda.so.1")
        dirs[name] = d
    for name, uuid in (("ok", UUID), ("nodevice", UUID), ("nomemcreate", UUID), ("old", "GPU-other")):
        _gcc(FAKE_NVML, dirs[name] / "libnvidia-ml.so.1", "libnvidia-ml.so.1", f'-DACCEPTED_UUID="{uuid}"')
    _gcc(FAKE_NVML, dirs["zero"] / "libnvidia-ml.so.1", "libnvidia-ml.so.1", f'-DACCEPTED_UUID="{UUID}"',
         "-DNVML_CRASH")
    lib = base / "lib-ollama"
    (lib / "cuda_v12").mkdir(parents=True)
    _gcc(FAKE_BASE, lib / "libggml-base.so", "libggml-base.so")
    _gcc(FAKE_GGML_CUDA, lib / "cuda_v12" / "libggml-cuda.so", "libggml-cuda.so",
         libs=[(lib, "libggml-base.so"), (dirs["ok"], "libcuda.so.999.1")])
    dirs["lib"] = lib
    return dirs


def _env(*folders) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LD_LIBRARY_PATH": ":".join(str(f) for f in folders)}


def _probe(env, backends=(), timeout=10.0, **kw):
    return loadprobe.run_probe(Host.local(), libcuda_env=env, backends=backends, timeout=timeout,
                               service_user=None, **kw)


def _categories(result):
    return {f.category for f in result.findings}


def test_working_fake_driver_is_enumerated_like_ollama_would(fakes):
    r = _probe(_env(fakes["ok"]))
    lc = r.libcuda
    assert lc.loaded and lc.error is None
    assert lc.path == str(fakes["ok"] / "libcuda.so.1")  # the file the loader mapped
    assert lc.real_path == str(fakes["ok"] / "libcuda.so.999.1")
    assert (lc.init_result, lc.init_result_name) == (0, "CUDA_SUCCESS")
    assert lc.driver_version == 12040 and lc.device_count == 1
    d = lc.devices[0]
    assert (d.name, d.compute, d.uuid, d.total_memory, d.pci_bus_id) == (
        "FAKE-GPU", "8.6", UUID, 24 << 30, "0000:00:06.0")
    assert not r.crashed and not r.timed_out and r.signal is None
    assert not [f for f in r.findings if f.severity == "error"]


def test_nvml_reports_driver_and_accepts_the_cuda_uuid(fakes):
    r = _probe(_env(fakes["ok"]))
    nv = r.nvml
    assert nv.loaded and nv.init_result == 0 and nv.init_result_name == "NVML_SUCCESS"
    assert nv.driver_version == "550.54.14" and nv.device_count == 1
    assert nv.devices[0].uuid == UUID
    assert nv.uuid_lookup == ((UUID, 0, "NVML_SUCCESS"),)


def test_nvml_rejecting_the_cuda_uuid_is_a_warning(fakes):
    # the "old" folder's NVML only knows another UUID; its driver API is 11.4
    r = _probe(_env(fakes["old"]))
    assert r.nvml.uuid_lookup[0][2] == "NVML_ERROR_NOT_FOUND"
    ids = {f.id: f for f in r.findings}
    assert ids["probe-nvml-uuid-rejected"].severity == "warning"
    assert ids["probe-driver-api-too-old"].category == "driver-too-old"
    assert "11.4" in ids["probe-driver-api-too-old"].title


@pytest.mark.parametrize("variant,code,name", [
    ("nodevice", 100, "CUDA_ERROR_NO_DEVICE"),
    ("unknown", 999, "CUDA_ERROR_UNKNOWN"),
])
def test_cuinit_failure_is_named_and_a_finding(fakes, variant, code, name):
    r = _probe(_env(fakes[variant]))
    assert r.libcuda.loaded and r.libcuda.init_result == code
    assert r.libcuda.init_result_name == name
    assert r.libcuda.device_count is None  # the probe stops where Ollama's would
    f = next(f for f in r.findings if f.id == "probe-cuinit-failed")
    assert f.category == "cuda-init-failed" and name in f.title
    assert not r.crashed


def test_zero_devices_is_cuda_init_failed(fakes):
    r = _probe(_env(fakes["zero"]))
    assert r.libcuda.init_result == 0 and r.libcuda.device_count == 0
    assert "cuda-init-failed" in _categories(r)


def test_missing_symbol_is_a_shim_finding_with_dlerror(fakes):
    r = _probe(_env(fakes["nosym"]))
    assert r.libcuda.loaded and r.libcuda.init_result is None
    assert "undefined symbol: cuInit" in r.libcuda.error
    f = next(f for f in r.findings if f.id == "probe-libcuda-missing-symbols")
    assert f.category == "shim-incomplete" and "missing cuInit" in f.evidence


def test_crash_in_cuinit_is_a_result_with_the_signal(fakes):
    r = _probe(_env(fakes["crash"]))
    assert r.crashed and r.signal == "SIGSEGV"
    driver = r.stages[0]
    assert driver.signal == "SIGSEGV" and driver.last_step == "cuInit"
    assert "crashed with SIGSEGV in cuInit" in r.libcuda.error
    f = next(f for f in r.findings if f.id == "probe-libcuda-crash")
    assert f.category == "runner-crash"
    # the later stages still ran
    assert [s.name for s in r.stages] == ["driver", "nvml"] and r.stages[1].signal is None


def test_hang_in_cuinit_is_killed_after_the_timeout(fakes):
    r = _probe(_env(fakes["hang"]), timeout=1.0)
    assert r.timed_out and not r.crashed
    assert r.stages[0].timed_out and r.stages[0].last_step == "cuInit"
    assert 1.0 <= r.stages[0].elapsed_s < 6.0
    assert "hung in cuInit" in r.libcuda.error
    assert "discovery-timeout" in _categories(r)


def test_library_not_found_gives_the_loaders_message(fakes, tmp_path):
    # by path: a machine with a real driver would find libcuda.so.1 through its cache
    missing = str(tmp_path / "libcuda.so.1")
    r = _probe(_env(tmp_path), libcuda=missing)
    assert not r.libcuda.loaded
    assert r.libcuda.error == f"{missing}: cannot open shared object file: No such file or directory"
    f = next(f for f in r.findings if f.id == "probe-libcuda-not-loaded")
    assert f.category == "driver-lib-not-found"


def test_backend_loads_and_registers_devices(fakes):
    lib = fakes["lib"]
    env = _env(lib, lib / "cuda_v12", fakes["ok"])
    r = _probe(env, backends=[(str(lib / "cuda_v12" / "libggml-cuda.so"), env)])
    b = r.backends[0]
    assert b.loaded and b.error is None and b.init_exported is True and b.devices == 1
    assert b.base.loaded and b.base.path == str(lib / "libggml-base.so")


def test_backend_undefined_cu_symbol_is_the_exact_dlerror(fakes):
    lib = fakes["lib"]
    env = _env(lib, lib / "cuda_v12", fakes["nomemcreate"])
    r = _probe(env, backends=[(str(lib / "cuda_v12" / "libggml-cuda.so"), env)])
    b = r.backends[0]
    assert not b.loaded
    assert b.error.endswith("undefined symbol: cuMemCreate")
    f = next(f for f in r.findings if f.id == "probe-ggml-cuda-not-loaded")
    assert f.category == "shim-incomplete"


def test_backend_with_zero_devices_and_missing_base(fakes, tmp_path):
    lib = fakes["lib"]
    env = _env(lib, lib / "cuda_v12", fakes["zero"])
    r = _probe(env, backends=[(str(lib / "cuda_v12" / "libggml-cuda.so"), env)])
    assert r.backends[0].loaded and r.backends[0].devices == 0
    assert "probe-ggml-cuda-no-devices" in {f.id for f in r.findings}
    env = _env(tmp_path, fakes["ok"])  # no libggml-base.so on the path
    r = _probe(env, backends=[(str(lib / "cuda_v12" / "libggml-cuda.so"), env)])
    b = r.backends[0]
    assert not b.loaded and "libggml-base.so: cannot open shared object file" in b.error
    assert "probe-ggml-base-not-loaded" in {f.id for f in r.findings}


def test_the_tools_own_process_never_maps_the_fakes(fakes):
    _probe(_env(fakes["ok"]))
    maps = Path("/proc/self/maps").read_text()
    assert str(fakes["ok"]) not in maps


def test_root_note_and_as_user(fakes, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to change user")
    import pwd
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    r = loadprobe.run_probe(Host.local(), libcuda_env=_env(fakes["ok"]), timeout=10, service_user="ollama")
    assert any("run as root" in n and "--as-user ollama" in n for n in r.notes)
    # a folder only root may enter: root loads the driver, the service user would not
    private = tmp_path / "private"
    shutil.copytree(fakes["ok"], private, symlinks=True)
    private.chmod(0o700)
    shim = str(private / "libcuda.so.1")
    as_root = _probe(_env(private), libcuda=shim)
    as_nobody = _probe(_env(private), libcuda=shim, as_user="nobody")
    assert as_root.libcuda.loaded and as_root.libcuda.devices[0].name == "FAKE-GPU"
    assert as_nobody.run_as == "nobody" and not as_nobody.libcuda.loaded
    assert "Permission denied" in as_nobody.libcuda.error


def _sandbox(tmp_path: Path, fakes) -> Path:
    """A --root tree whose lib/ollama/libcuda.so.1 is an ABSOLUTE link into the root."""
    root = tmp_path / "vm"
    (root / ".vgpu-sandbox").mkdir(parents=True)
    (root / ".vgpu-sandbox" / "sandbox.json").write_text(json.dumps({"kind": "test"}))
    shim = root / "opt" / "vgpu" / "lib"
    shim.mkdir(parents=True)
    shutil.copy(fakes["ok"] / "libcuda.so.999.1", shim / "libcuda.so.1")
    lib = root / "usr" / "local" / "lib" / "ollama"
    shutil.copytree(fakes["lib"], lib)
    os.symlink("/opt/vgpu/lib/libcuda.so.1", lib / "libcuda.so.1")
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    (root / "usr" / "local" / "bin" / "ollama").write_bytes(b"\x7fELF fake")
    (root / "usr" / "local" / "bin" / "ollama").chmod(0o755)
    return root


def test_root_paths_are_resolved_inside_the_root(fakes, tmp_path):
    root = _sandbox(tmp_path, fakes)
    host = Host(str(root))
    env = {"LD_LIBRARY_PATH": "/usr/local/lib/ollama:/usr/local/lib/ollama/cuda_v12"}
    r = loadprobe.run_probe(host, libcuda_env=env, timeout=10,
                            backends=[("/usr/local/lib/ollama/cuda_v12/libggml-cuda.so", env)])
    assert r.libcuda.loaded
    assert r.libcuda.path == "/usr/local/lib/ollama/libcuda.so.1"  # named as inside the VM
    assert r.libcuda.real_path == "/opt/vgpu/lib/libcuda.so.1"
    assert r.backends[0].loaded and r.backends[0].devices == 1
    assert any("this machine's own loader cache" in n for n in r.notes)


def test_probe_command_json_and_text(fakes, tmp_path):
    root = _sandbox(tmp_path, fakes)
    out = subprocess.run([sys.executable, "-m", "tui", "probe", "--root", str(root), "--json", "--timeout", "10"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"libcuda", "nvml", "backends", "crashed", "signal", "timed_out", "findings"}
    assert set(data["libcuda"]) >= {"path", "loaded", "error", "init_result", "driver_version",
                                    "device_count", "devices"}
    assert set(data["nvml"]) >= {"path", "loaded", "error", "init_result", "device_count", "driver_version"}
    assert data["libcuda"]["devices"][0]["compute"] == "8.6"
    backend = data["backends"][0]
    assert backend["path"] == "/usr/local/lib/ollama/cuda_v12/libggml-cuda.so" and backend["loaded"]
    text = subprocess.run([sys.executable, "-m", "tui", "probe", "--root", str(root)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "FAKE-GPU" in text.stdout and "compute 8.6" in text.stdout
    bad = subprocess.run([sys.executable, "-m", "tui", "probe", "--root", str(root), "--timeout", "0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_every_cuda_result_has_a_name():
    assert loadprobe.cuda_result_name(100) == "CUDA_ERROR_NO_DEVICE"
    assert loadprobe.cuda_result_name(34) == "CUDA_ERROR_STUB_LIBRARY"
    assert loadprobe.cuda_result_name(12345) == "CUresult 12345 (unknown)"
    assert loadprobe.nvml_result_name(9) == "NVML_ERROR_DRIVER_NOT_LOADED"


def test_root_load_that_needs_this_machines_library_is_not_a_success(fakes, tmp_path):
    """Under --root, a dependency found only outside the root (here through an absolute
    RUNPATH, on a GPU machine through its own ld.so.cache) would be missing in the VM."""
    root = _sandbox(tmp_path, fakes)
    os.unlink(root / "usr/local/lib/ollama/libcuda.so.1")
    lib = root / "usr/local/lib/ollama"
    _gcc(FAKE_GGML_CUDA, lib / "cuda_v12" / "libggml-cuda.so", "libggml-cuda.so",
         f"-Wl,-rpath,{fakes['ok']}", libs=[(lib, "libggml-base.so"), (fakes["ok"], "libcuda.so.999.1")])
    env = {"LD_LIBRARY_PATH": "/usr/local/lib/ollama:/usr/local/lib/ollama/cuda_v12"}
    r = loadprobe.run_probe(Host(str(root)), libcuda_env=env, timeout=10, service_user=None,
                            backends=[("/usr/local/lib/ollama/cuda_v12/libggml-cuda.so", env)])
    b = r.backends[0]
    assert not b.loaded and b.devices is None
    assert b.error.startswith("libcuda.so.1: cannot open shared object file: No such file or directory")
    assert str(fakes["ok"] / "libcuda.so.1") in b.error  # what only this machine had
    assert "probe-ggml-cuda-not-loaded" in {f.id for f in r.findings}


def test_nvml_crash_is_reported_for_nvml_only(fakes):
    r = _probe(_env(fakes["zero"]))  # its NVML segfaults in nvmlInit_v2
    assert r.crashed and r.signal == "SIGSEGV" and r.stages[1].last_step == "nvmlInit_v2"
    assert r.libcuda.loaded and r.libcuda.device_count == 0  # the driver stage is unaffected
    f = next(f for f in r.findings if f.id == "probe-nvml-crash")
    assert f.category == "runner-crash"


def test_backend_hanging_in_dlopen_is_killed(fakes, tmp_path):
    lib = tmp_path / "lib"
    (lib / "cuda_v12").mkdir(parents=True)
    _gcc(FAKE_HANGING_CTOR, lib / "cuda_v12" / "libggml-cuda.so", "libggml-cuda.so")
    env = _env(lib, lib / "cuda_v12", fakes["ok"])
    r = _probe(env, backends=[(str(lib / "cuda_v12" / "libggml-cuda.so"), env)], timeout=1.0)
    b = r.backends[0]
    assert b.timed_out and not b.loaded and "hung in backend:dlopen" in b.error
    assert r.timed_out and r.libcuda.loaded  # the other stages finished normally
    assert "probe-backend-hang" in {f.id for f in r.findings}
