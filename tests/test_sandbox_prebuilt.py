"""The fake libraries shipped in probes/sandbox/prebuilt/: real ELF files that the real
loader, readelf and nm treat like the real Ollama / CUDA / shim libraries."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from probes.sandbox import libbuild
from probes.sandbox.stubgpu import STUB_GPU

P = libbuild.PREBUILT
needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) not installed")


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout


def dynamic(path: str):
    """(class, machine, SONAME, NEEDED, defined dynamic symbols) as readelf reports them."""
    hdr = readelf("-h", path)
    klass = [l.split(":", 1)[1].strip() for l in hdr.splitlines() if "Class:" in l][0]
    machine = [l.split(":", 1)[1].strip() for l in hdr.splitlines() if "Machine:" in l][0]
    dyn = readelf("-d", path)
    soname = [l.split("[")[1].rstrip("]") for l in dyn.splitlines() if "(SONAME)" in l]
    needed = [l.split("[")[1].rstrip("]") for l in dyn.splitlines() if "(NEEDED)" in l]
    syms = set()
    for line in readelf("--dyn-syms", path).splitlines():
        f = line.split()
        if len(f) >= 8 and f[0].rstrip(":").isdigit() and f[6] != "UND" and f[4] in ("GLOBAL", "WEAK"):
            syms.add(f[7])
    return klass, machine, soname, needed, syms


def exports(path: str):
    return {s.split("@")[0] for s in dynamic(path)[4]}


def real_driver_exports():
    return set(libbuild.read_exports(os.path.join(libbuild.CSRC, "libcuda.exports")))


@needs_readelf
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_prebuilt_is_up_to_date_with_csrc(tmp_path):
    """Rebuilding from csrc/ gives the same dynamic sections and exports as prebuilt/."""
    csrc = tmp_path / "csrc"
    shutil.copytree(libbuild.CSRC, csrc)
    names = libbuild.build(str(tmp_path / "out"), csrc=str(csrc))
    for name in names:
        assert dynamic(str(tmp_path / "out" / name)) == dynamic(os.path.join(P, name)), name
    # the generated sources in the repository are the ones the data gives
    for gen in ("libcuda_stubs.c", "nvml_stubs.c", "stubgpu.h", "buildinfo.h"):
        assert (csrc / gen).read_text() == open(os.path.join(libbuild.CSRC, gen)).read(), gen


@needs_readelf
def test_real_names_sonames_and_needed():
    assert dynamic(os.path.join(P, libbuild.GGML_BASE_FILE))[2] == ["libggml-base.so.0"]
    for v in libbuild.CPU_VARIANTS:
        _, _, soname, needed, syms = dynamic(os.path.join(P, f"libggml-cpu-{v}.so"))
        assert needed[0] == "libggml-base.so.0"
        assert {"ggml_backend_init", "ggml_backend_score"} <= syms
    _, machine, soname, needed, syms = dynamic(os.path.join(P, "libggml-cuda.so"))
    assert needed[:5] == ["libggml-base.so.0", "libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12", "libcuda.so.1"]
    assert "ggml_backend_init" in syms and "ggml_backend_score" not in syms
    assert dynamic(os.path.join(P, libbuild.CUBLAS_FILE))[3][0] == "libcublasLt.so.12"
    assert any(s.endswith("@@libcudart.so.12") for s in dynamic(os.path.join(P, libbuild.CUDART_FILE))[4])
    assert dynamic(os.path.join(P, "libnvidia-ml.so.1"))[2] == ["libnvidia-ml.so.1"]


@needs_readelf
def test_libggml_cuda_imports_the_driver_functions_ggml_calls_directly():
    und = set()
    for line in readelf("--dyn-syms", os.path.join(P, "libggml-cuda.so")).splitlines():
        f = line.split()
        if len(f) >= 8 and f[6] == "UND" and f[7].startswith("cu") and not f[7].startswith(("cuda", "cublas")):
            und.add(f[7])
    import json
    from pathlib import Path
    req = Path(__file__).resolve().parents[2] / "shared" / "data" / "symbols" / "required.json"
    direct = set(json.loads(req.read_text())["libcuda_ggml_direct"]) if req.is_file() else und
    assert und == direct and "cuMemCreate" in und


@needs_readelf
def test_shim_variants_differ_only_where_the_faults_say():
    full = real_driver_exports()
    assert exports(os.path.join(P, "libcuda.so.1")) == full
    assert exports(os.path.join(P, "libcuda-demo.so.1")) == full - set(libbuild.DEMO_OMIT)
    assert exports(os.path.join(P, "libcuda-no-memcreate.so.1")) == full - {"cuMemCreate"}
    assert exports(os.path.join(P, "libcuda-no-getprocaddress-v2.so.1")) == full - {"cuGetProcAddress_v2"}
    assert dynamic(os.path.join(P, "libcuda-wrong-soname.so.1"))[2] == ["libcuda.so"]
    klass, machine, soname, needed, _ = dynamic(os.path.join(P, "libcuda-32bit.so.1"))
    assert (klass, machine, soname, needed) == ("ELF32", "Intel 80386", ["libcuda.so.1"], ["libc.so.6"])


LOAD = textwrap.dedent("""
    import ctypes, sys
    try:
        lib = ctypes.CDLL(sys.argv[1])  # RTLD_NOW, as ggml's loader
    except OSError as e:
        print("ERROR", e); sys.exit(0)
    if hasattr(lib, "ggml_backend_cuda_get_device_count"):
        print("DEVICES", lib.ggml_backend_cuda_get_device_count())
    else:
        n = ctypes.c_int(-1); name = ctypes.create_string_buffer(64)
        rc = lib.cuInit(0); lib.cuDeviceGetCount(ctypes.byref(n)); lib.cuDeviceGetName(name, 64, 0)
        print("INIT", rc, n.value, name.value.decode())
""")


def _load(tmp_path, shim: str, target: str, env=None):
    d = tmp_path / "lib"
    d.mkdir(exist_ok=True)
    for src, dst in ((shim, "libcuda.so.1"), ("libggml-cuda.so", "libggml-cuda.so"),
                     (libbuild.GGML_BASE_FILE, "libggml-base.so.0"), (libbuild.CUDART_FILE, "libcudart.so.12"),
                     (libbuild.CUBLAS_FILE, "libcublas.so.12"), (libbuild.CUBLASLT_FILE, "libcublasLt.so.12")):
        shutil.copyfile(os.path.join(P, src), d / dst)
    e = dict(os.environ, LD_LIBRARY_PATH=str(d))
    e.pop("CUDA_VISIBLE_DEVICES", None)
    e.update(env or {})
    out = subprocess.run([sys.executable, "-c", LOAD, str(d / target)], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    return out.stdout.strip()


def test_the_real_loader_loads_the_backend_with_a_complete_shim(tmp_path):
    assert _load(tmp_path, "libcuda.so.1", "libggml-cuda.so") == "DEVICES 1"
    assert _load(tmp_path, "libcuda-demo.so.1", "libggml-cuda.so") == "DEVICES 1"
    assert _load(tmp_path, "libcuda-no-getprocaddress-v2.so.1", "libggml-cuda.so") == "DEVICES 1"


def test_the_real_loader_refuses_the_backend_with_a_broken_shim(tmp_path):
    assert "undefined symbol: cuMemCreate" in _load(tmp_path, "libcuda-no-memcreate.so.1", "libggml-cuda.so")
    assert "wrong ELF class: ELFCLASS32" in _load(tmp_path, "libcuda-32bit.so.1", "libggml-cuda.so")


def test_the_stub_driver_reports_one_simulated_gpu_and_honours_visible_devices(tmp_path):
    assert _load(tmp_path, "libcuda.so.1", "libcuda.so.1") == f"INIT 0 1 {STUB_GPU['name']}"
    assert _load(tmp_path, "libcuda.so.1", "libggml-cuda.so", {"CUDA_VISIBLE_DEVICES": "-1"}) == "DEVICES 0"
    assert _load(tmp_path, "libcuda.so.1", "libggml-cuda.so", {"CUDA_VISIBLE_DEVICES": STUB_GPU["uuid"]}) == "DEVICES 1"


def test_fake_ollama_says_it_is_a_stand_in_and_records_version_0_24_0():
    out = subprocess.run([os.path.join(P, "ollama")], stdout=subprocess.PIPE, universal_newlines=True).stdout
    assert "simulator stand-in" in out and "not a real Ollama" in out
    from probes.gobuildinfo import read_buildinfo_stream
    with open(os.path.join(P, "ollama"), "rb") as fh:
        assert read_buildinfo_stream(fh).ollama_version == "0.24.0"


def test_prebuilt_is_small():
    total = sum(os.path.getsize(os.path.join(P, n)) for n in os.listdir(P))
    assert total < 2 * 1024 * 1024
