"""Era B (v0.5.8–v0.12.3) of the scanner model, sub-range by sub-range (ollama-discovery.md
§1.3, §2.1; read from llm/server.go NewLlamaServer at v0.5.8, v0.6.7, v0.6.8, v0.11.5,
discover/gpu.go FindGPULibs/initCudaHandles, discover/cuda_common.go cudaVariant and
ml/backend/ggml/ggml/src/ggml.go OnceLoad)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from probes.ollama import find_install
from probes.sandbox.builder import add_library, build_vm, write_file
from probes.scanner import analyze

LIB = "/usr/local/lib/ollama"
CUDA = LIB + "/cuda_v12"
DRIVER_DIR = "/usr/lib/x86_64-linux-gnu"


def vm_b(tmp_path, faults=(), name="vm"):
    """A sandbox whose libcuda is where era B's globs look (the driver's folder)."""
    vm = build_vm(str(tmp_path / name), faults=faults)
    add_library(vm, "libcuda.so.1", DRIVER_DIR + "/libcuda.so.580.159.04")
    os.symlink("libcuda.so.580.159.04", vm.real(DRIVER_DIR + "/libcuda.so.1"))
    return vm


def scan(vm, version, **env):
    inst = find_install(vm.host, {"assume_version": version})
    e = dict(inst.env)
    kw = {k: env.pop(k) for k in ("compute", "cuda_driver_api") if k in env}
    e.update(env)
    return analyze(vm.host, inst, env=e, **kw)


def ld(rep):
    return rep.probes[0].env["LD_LIBRARY_PATH"].split(":")


# -- the model runner's environment, by sub-version ---------------------------------------------
def test_v0_6_0_no_ollama_library_path_and_inherited_before_the_folder(tmp_path):
    rep = scan(vm_b(tmp_path), "0.6.0", LD_LIBRARY_PATH="/opt/x")
    assert ld(rep) == [CUDA, "/opt/x", CUDA, LIB]  # DependencyPath, inherited, compatible[0], LibOllamaPath
    assert "OLLAMA_LIBRARY_PATH" not in rep.probes[0].env
    assert rep.predicted_library == "cuda"


def test_v0_6_7_sets_ollama_library_path(tmp_path):
    rep = scan(vm_b(tmp_path), "0.6.7", LD_LIBRARY_PATH="/opt/x")
    assert ld(rep) == [CUDA, "/opt/x", CUDA, LIB]
    assert rep.probes[0].env["OLLAMA_LIBRARY_PATH"] == f"{LIB}:{CUDA}"
    assert rep.probes[0].searched == (LIB, CUDA)


def test_v0_6_8_puts_ollama_paths_first(tmp_path):
    rep = scan(vm_b(tmp_path), "0.9.6", LD_LIBRARY_PATH="/opt/x")
    assert ld(rep) == [CUDA, CUDA, LIB, "/opt/x", LIB]
    rep = scan(vm_b(tmp_path, name="vm2"), "0.12.3")
    # Driver 580 gives variant v13 and there is no cuda_v13: no DependencyPath; nothing inherited.
    assert ld(rep) == [CUDA, LIB, LIB]


def test_v0_5_8_searches_every_ld_library_path_entry_v0_5_9_only_lib_ollama(tmp_path):
    vm = vm_b(tmp_path)
    rep = scan(vm, "0.5.8", LD_LIBRARY_PATH="/opt/x")
    assert "/opt/x" in rep.probes[0].searched and not rep.probes[0].skipped
    rep = scan(vm, "0.5.9", LD_LIBRARY_PATH="/opt/x")
    assert "/opt/x" not in rep.probes[0].searched
    assert ("/opt/x", "skipping path which is not part of ollama") in rep.probes[0].skipped


# -- which folder the runner gets --------------------------------------------------------------
@pytest.mark.parametrize("name,used", [("cuda_v12", True), ("cuda_v12.4", True), ("cuda_custom", True),
                                        ("cuda12", False), ("nvidia", False)])
def test_folder_name_family_rule(tmp_path, name, used):
    vm = vm_b(tmp_path)
    if name != "cuda_v12":
        os.rename(vm.real(CUDA), vm.real(f"{LIB}/{name}"))
    rep = scan(vm, "0.9.6")
    v = rep.backend(f"{LIB}/{name}")
    assert v.would_load is used and (rep.predicted_library == "cuda") is used
    if not used:
        assert "never chosen" in v.reason


def test_two_family_folders_without_exact_match_is_random(tmp_path):
    vm = vm_b(tmp_path)
    os.rename(vm.real(CUDA), vm.real(LIB + "/cuda_a"))
    shutil.copytree(vm.real(LIB + "/cuda_a"), vm.real(LIB + "/cuda_b"), symlinks=True)
    rep = scan(vm, "0.9.6")
    assert any("random" in n for n in rep.notes)
    assert "random" in rep.backend(LIB + "/cuda_b").reason


def test_llm_library_names_an_existing_entry(tmp_path):
    vm = vm_b(tmp_path)
    shutil.copytree(vm.real(CUDA), vm.real(LIB + "/cuda_mine"), symlinks=True)
    rep = scan(vm, "0.9.6", OLLAMA_LLM_LIBRARY="cuda_mine")
    assert rep.backend(LIB + "/cuda_mine").would_load and not rep.backend(CUDA).probed
    assert ld(rep)[:2] == [CUDA, LIB + "/cuda_mine"]  # DependencyPath still comes first
    assert any("using requested gpu library" in n for n in rep.notes)


# -- cudaVariant --------------------------------------------------------------------------------
def set_driver(vm, version):
    write_file(vm, "/proc/driver/nvidia/version",
               f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build\n")
    write_file(vm, "/sys/module/nvidia/version", version + "\n")


def test_variant_v13_without_a_cuda_v13_folder_falls_to_the_family(tmp_path):
    vm = vm_b(tmp_path)  # driver 580 -> CUDA 13.0
    rep = scan(vm, "0.11.11")
    assert any("cudaVariant = v13" in n for n in rep.notes)
    assert ld(rep)[0] == CUDA and rep.predicted_library == "cuda"  # no DependencyPath; family match
    assert any("cudaVariant = v12" in n for n in scan(vm, "0.12.0", compute=(7, 0)).notes)
    assert any("cudaVariant = v12" in n for n in scan(vm, "0.11.10").notes)


def test_old_driver_gives_v11(tmp_path):
    vm = vm_b(tmp_path)
    set_driver(vm, "470.256.02")
    rep = scan(vm, "0.9.6")
    assert any("cudaVariant = v11" in n for n in rep.notes)
    assert rep.predicted_library == "cuda"  # no cuda_v11: the cuda family gives cuda_v12
    assert any("cudaVariant = v11" in n for n in scan(vm, "0.5.8", cuda_driver_api=12000).notes)


def test_unknown_driver_says_assumed(tmp_path):
    vm = vm_b(tmp_path)
    os.unlink(vm.real("/proc/driver/nvidia/version"))
    os.unlink(vm.real("/sys/module/nvidia/version"))
    assert any("cudaVariant = v13 (assumed" in n for n in scan(vm, "0.12.3").notes)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_cudart_discovery_leaves_driver_version_zero(tmp_path):
    """No libcuda where the globs look: discovery falls back to a system libcudart (found by
    CudartGlobs after the bundled one fails), which reports no driver version: variant v11."""
    names = ("cudaSetDevice", "cudaDeviceSynchronize", "cudaDeviceReset", "cudaMemGetInfo",
             "cudaGetDeviceCount", "cudaDeviceGetAttribute", "cudaDriverGetVersion", "cudaGetDeviceProperties")
    src = tmp_path / "cudart.c"
    src.write_text("".join(f"int {n}(void){{return 0;}}\n" for n in names))
    vm = build_vm(str(tmp_path / "vm"))  # the shim is known only to ld.so.cache
    out = vm.real("/usr/local/cuda/lib64/libcudart.so.12")
    os.makedirs(os.path.dirname(out))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", out, str(src), "-Wl,-soname,libcudart.so.12"], check=True)
    rep = scan(vm, "0.9.6")
    assert any("uses /usr/local/cuda/lib64/libcudart.so.12" in n for n in rep.notes)
    assert any("cudaVariant = v11" in n for n in rep.notes)
    assert rep.predicted_library == "cuda"
    assert any("cudaVariant = v12" in n for n in scan(vm, "0.12.0").notes)


def test_no_libcuda_finding(tmp_path):
    rep = scan(build_vm(str(tmp_path / "vm")), "0.9.6")
    f = next(f for f in rep.findings if f.id == "cgo-discovery-no-libcuda")
    assert f.category == "driver-lib-not-found" and f.severity == "error" and rep.predicted_library == "cpu"


def test_compute_below_5_is_too_old(tmp_path):
    vm = vm_b(tmp_path)
    rep = scan(vm, "0.9.6", compute=(3, 7))
    assert rep.predicted_library == "cpu" and any("CUDA GPU is too old" in n for n in rep.notes)
    assert scan(vm, "0.9.6", compute=(5, 0)).predicted_library == "cuda"
    too_old = scan(vm, "0.9.6", compute=(3, 7))
    assert "compute capability is below" in too_old.backend(CUDA).reason
    assert not any(f.id == "cgo-discovery-no-libcuda" for f in too_old.findings)
