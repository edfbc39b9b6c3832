"""Era A (v0.1.34–v0.5.7), the reduced model (ollama-discovery.md §1.2, §2.1; read from
gpu/gpu.go and discover/gpu.go FindGPULibs at v0.1.34, v0.3.6, v0.3.7, v0.5.2,
runners/common.go ServersForGpu/GetAvailableServers at v0.5.7, probes/cpu.py AVX_GPU_GATE)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from probes.ollama import find_install
from probes.sandbox.builder import CPU_FLAGS, add_library, build_vm, write_file
from probes.scanner import analyze

LIB = "/usr/local/lib/ollama"
RUNNERS = LIB + "/runners"


def vm_a(tmp_path, system_libcuda=True, runners=("cuda_v12_avx", "cpu_avx2")):
    vm = build_vm(str(tmp_path / "vm"))
    if system_libcuda:
        add_library(vm, "libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04")
    for r in runners:
        add_library(vm, "ollama", f"{RUNNERS}/{r}/ollama_llama_server")
    return vm


def no_avx(vm):
    flags = " ".join(f for f in CPU_FLAGS.split() if not f.startswith("avx"))
    write_file(vm, "/proc/cpuinfo", f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: QEMU Virtual CPU\n"
                                    f"flags\t\t: {flags}\n\n")


def scan(vm, version):
    return analyze(vm.host, find_install(vm.host, {"assume_version": version}))


def test_v0_5_7_runs_the_cuda_runner_of_the_variant(tmp_path):
    rep = scan(vm_a(tmp_path), "0.5.7")
    assert rep.era == "A" and rep.predicted_library == "cuda"
    v = rep.backend(RUNNERS + "/cuda_v12_avx")
    assert v.probed and v.would_load and "its libraries resolve" in v.reason
    assert any("cudaVariant = v12" in n for n in rep.notes)


def test_v0_5_7_avx_runner_needs_avx(tmp_path):
    vm = vm_a(tmp_path)
    no_avx(vm)
    rep = scan(vm, "0.5.7")
    assert rep.predicted_library == "cpu"
    assert "CPU lacks AVX" in rep.backend(RUNNERS + "/cuda_v12_avx").reason


def test_avx_gate_up_to_v0_5_1(tmp_path):
    vm = vm_a(tmp_path)
    no_avx(vm)
    rep = scan(vm, "0.5.1")
    assert rep.predicted_library == "cpu"
    f = next(f for f in rep.findings if f.id == "avx-gate-disables-gpu")
    assert f.category == "cpu-lacks-avx" and "minimum vector extensions" in " ".join(f.evidence)


def test_bundled_folder_searched_first_only_from_v0_3_7(tmp_path):
    vm = vm_a(tmp_path, system_libcuda=False)
    add_library(vm, "libcuda.so.1", LIB + "/libcuda.so.1")  # the operator's link in lib/ollama
    assert scan(vm, "0.3.6").predicted_library == "cpu"
    rep = scan(vm, "0.3.7")
    assert any(f"uses {LIB}/libcuda.so.1" in n for n in rep.notes)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_runner_with_missing_library_falls_back_to_cpu(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.c").write_text("int a(void){return 0;}\n")
    (src / "m.c").write_text("int a(void); int main(void){return a();}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(src / "libfakeblas.so.1"), str(src / "a.c"),
                    "-Wl,-soname,libfakeblas.so.1"], check=True)
    subprocess.run(["gcc", "-o", str(src / "r"), str(src / "m.c"), "-L", str(src), "-l:libfakeblas.so.1"], check=True)
    vm = vm_a(tmp_path)
    shutil.copy(src / "r", vm.real(RUNNERS + "/cuda_v12_avx/ollama_llama_server"))
    rep = scan(vm, "0.5.7")
    assert rep.predicted_library == "cpu"
    assert "libfakeblas.so.1 is not found" in rep.backend(RUNNERS + "/cuda_v12_avx").reason
    shutil.copy(src / "libfakeblas.so.1", vm.real(RUNNERS + "/cuda_v12_avx/libfakeblas.so.1"))
    assert scan(vm, "0.5.7").predicted_library == "cuda"  # the runner's own folder is on its path
