"""probes.shim: a driver library's exports in tiers, and which driver libraries the runner gets.

Checked against real files: the sandbox's gcc-built shims, gcc-built libraries with symbol
versions, `nm -D` for the export counts, and the real 580 driver's export list.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from probes.elf import ElfInfo, ElfSymbol, read_elf
from probes.host import Host
from probes.ollama import find_install
from probes.sandbox.builder import add_library, build_vm, write_file
from probes.sandbox.libbuild import PREBUILT
from probes.scanner import analyze
from probes.shim import check_exports, driver_libraries, exports_report, real_driver_exports, tiers

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def prebuilt(name):
    return read_elf(Host(PREBUILT), "/" + name)


def fake_real_driver(kind):
    """An ElfInfo with exactly the real 580 driver's exports (from its nm -D list)."""
    names = real_driver_exports(kind)
    soname = {"libcuda": "libcuda.so.1", "nvml": "libnvidia-ml.so.1"}[kind]
    return ElfInfo(path=f"/usr/lib/x86_64-linux-gnu/{soname}", is_elf=True, elf_class=64,
                   byte_order="little", machine="x86_64", machine_code=62, type="DYN", soname=soname,
                   exports=tuple(ElfSymbol(n, None, True, "FUNC", "GLOBAL") for n in names))


def test_real_driver_passes_everything():
    for kind in ("libcuda", "nvml"):
        c = check_exports(fake_real_driver(kind), kind)
        assert c.missing == () and c.missing_detail == () and c.findings == () and c.ok
    c = check_exports(fake_real_driver("libcuda"), "0.24.0")
    assert c.ok and c.missing_vs_real == 0 and c.missing_vs_real_names == ()
    assert len(real_driver_exports("libcuda")) == 707 and len(real_driver_exports("nvml")) == 404


def test_tiers_follow_required_json():
    t = {n: tier for n, tier, _ in tiers("libcuda", None)}
    assert t["cuMemCreate"] == "fatal" and t["cuGetProcAddress_v2"] == "conditional"
    assert t["cuCtxCreate_v3"] == "degrading" and t["cuArray3DCreate"] == "informational"
    assert sum(1 for v in t.values() if v == "fatal") == 97
    legacy = {n: w for n, tier, w in tiers("libcuda", "0.9.6") if tier == "degrading"}
    assert "cuCtxCreate_v3" in legacy and "discovery skip" in legacy["cuCtxCreate_v3"]
    assert {n for n, tier, _ in tiers("nvml", "0.24.0")} >= {"nvmlInit_v2", "nvmlDeviceGetMemoryInfo"}


def test_missing_memcreate_is_fatal():
    c = check_exports(prebuilt("libcuda-no-memcreate.so.1"), "libcuda")
    assert c.tier("fatal") == ("cuMemCreate",) and not c.ok
    assert c.missing == ("cuMemCreate",)  # the contract's list of names
    assert "libggml-cuda.so imports it" in c.missing_detail[0].why
    assert any(f.category == "shim-incomplete" and f.severity == "error" for f in c.findings)


def test_missing_getprocaddress_v2_only_warns():
    c = check_exports(prebuilt("libcuda-no-getprocaddress-v2.so.1"), "0.24.0")
    assert c.tier("fatal") == () and c.tier("conditional") == ("cuGetProcAddress_v2",)
    assert c.ok and all(f.severity != "error" for f in c.findings)


def test_wrong_soname_and_class():
    c = check_exports(prebuilt("libcuda-wrong-soname.so.1"), "libcuda")
    assert any(f.id == "shim-wrong-soname-libcuda" for f in c.findings)
    c = check_exports(prebuilt("libcuda-32bit.so.1"), "libcuda")
    assert c.elf_class == 32 and any(f.id == "shim-wrong-class-libcuda" for f in c.findings)


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm not installed")
def test_export_count_matches_nm():
    path = os.path.join(PREBUILT, "libcuda.so.1")
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
    names = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    c = check_exports(read_elf(Host(PREBUILT), "/libcuda.so.1"), "libcuda")
    assert c.exported == len(names)


@needs_gcc
def test_hidden_version_does_not_count(tmp_path):
    src = tmp_path / "v.c"
    src.write_text('int cuInit(int f){return 0;}\nint cuMemCreate_impl(void){return 0;}\n'
                   '__asm__(".symver cuMemCreate_impl,cuMemCreate@CUDA_1");\n')
    vs = tmp_path / "v.map"
    vs.write_text("CUDA_1 { global: cuInit; cuMemCreate; local: *; };\n")
    lib = tmp_path / "libcuda.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", f"-Wl,--version-script={vs}",
                    "-o", str(lib), str(src)], check=True)
    c = check_exports(read_elf(Host(str(tmp_path)), "/libcuda.so.1"), "libcuda")
    assert "cuMemCreate" in c.hidden and "cuMemCreate" in c.tier("fatal")
    assert any(f.id == "shim-hidden-versions-libcuda" for f in c.findings)


def test_driver_libraries_in_sandbox(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    inst = find_install(vm.host)
    d = driver_libraries(vm.host, inst, analyze(vm.host, inst))
    cuda = d.get("libcuda")
    assert cuda.path == "/opt/vgpu/lib/libcuda.so.1" and cuda.via == "ld.so.cache"
    assert cuda.check.ok and d.get("nvml").path == "/opt/vgpu/lib/libnvidia-ml.so.1"


def test_driver_libraries_not_found_still_checks_the_candidate(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("shim-wrong-class",))
    inst = find_install(vm.host)
    d = driver_libraries(vm.host, inst, analyze(vm.host, inst))
    assert d.get("libcuda").path is None
    ids = {f.id for f in d.findings}
    assert {"libcuda-not-found", "shim-wrong-class-libcuda"} <= ids


def test_preloaded_interposer_and_missing_preload(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("preload-missing",))
    add_library(vm, "libcuda.so.1", "/opt/hami/libvgpu.so")
    write_file(vm, "/etc/ld.so.preload", "/opt/hami/libvgpu.so\n/opt/vgpu/lib/libvgpu-intercept.so\n")
    inst = find_install(vm.host)
    d = driver_libraries(vm.host, inst, analyze(vm.host, inst))
    # the preloaded file's SONAME is libcuda.so.1: every dlopen("libcuda.so.1") gets it
    assert d.get("libcuda").path == "/opt/hami/libvgpu.so" and d.get("libcuda").via == "preload"
    assert any(i.driver_symbols > 600 for i in d.interposers)
    assert any(f.category == "preload-broken" for f in d.findings)


def test_exports_report_shape():
    out = exports_report(Host(PREBUILT), "/libcuda-no-memcreate.so.1", "libcuda")
    assert {"path", "soname", "elf_class", "machine", "needed", "exports", "imports", "against",
            "missing", "findings"} <= set(out)
    assert "cuMemCreate" in out["missing"] and out["soname"] == "libcuda.so.1"
