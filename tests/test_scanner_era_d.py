"""Era D (v0.30+) of the scanner model on sandbox trees (--assume-version): the llama-server
lookup and start (ollama-discovery.md §2.3, §8 #19), GGML_BACKEND_PATH (first name in sorted
order), filterOldCUDADriver (v0.30.0–v0.30.10 and v0.30.11+ rules, §8 #10), Vulkan on by
default, the JetPack fallback of v0.31.2. Read from Ollama's llm/llama_binary.go,
llm/llama_server.go, discover/runner.go and discover/cuda_compat.go at those tags."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from probes import scanner
from probes.ollama import find_install
from probes.sandbox.builder import add_library, build_vm, remove, symlink, write_file
from probes.scanner import analyze

LIB = "/usr/local/lib/ollama"
CUDA = LIB + "/cuda_v12"


def vm_d(tmp_path, faults=(), server=True, name="vm"):
    vm = build_vm(str(tmp_path / name), faults=faults)
    if server:
        add_library(vm, "ollama", LIB + "/llama-server")  # an ELF executable; Ollama only stats it
    return vm


def scan(vm, version="0.32.0", **env):
    inst = find_install(vm.host, {"assume_version": version})
    e = dict(inst.env)
    e.update(env)
    kw = {k: e.pop(k) for k in ("driver_major", "compute") if k in e}
    return analyze(vm.host, inst, env=e, **kw)


def ids(rep):
    return {f.id for f in rep.findings}


def set_driver(vm, version):
    write_file(vm, "/proc/driver/nvidia/version",
               f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build\n")
    write_file(vm, "/sys/module/nvidia/version", version + "\n")


# -- llama-server ------------------------------------------------------------------------------
def test_llama_server_missing_lists_every_candidate(tmp_path):
    rep = scan(vm_d(tmp_path, server=False))
    assert rep.predicted_library == "cpu" and "llama-server-missing" in ids(rep)
    reason = rep.backend(CUDA).reason
    assert "llama-server binary not found (checked: /usr/local/lib/ollama/llama-server, " in reason
    assert "/usr/local/bin/build/lib/ollama/llama-server" in reason  # the exe's build/ layout is checked too
    assert not rep.backend(CUDA).would_load


def test_llama_server_not_executable(tmp_path):
    vm = vm_d(tmp_path)
    os.chmod(vm.real(LIB + "/llama-server"), 0o644)
    rep = scan(vm)
    assert rep.predicted_library == "cpu" and "llama-server-cannot-start" in ids(rep)
    assert "permission denied" in rep.backend(CUDA).reason


def test_llama_server_folder_is_not_executable(tmp_path):
    vm = vm_d(tmp_path, server=False)
    os.makedirs(vm.real(LIB + "/llama-server"))  # os.Stat accepts it; exec does not
    rep = scan(vm)
    assert "llama-server-cannot-start" in ids(rep) and "it is a folder" in rep.backend(CUDA).reason


def test_llama_server_in_a_later_candidate_leads_ld_library_path(tmp_path):
    vm = vm_d(tmp_path, server=False)
    add_library(vm, "ollama", "/usr/local/bin/build/lib/ollama/llama-server")
    rep = scan(vm)
    p = rep.probes[0]
    assert p.env["LD_LIBRARY_PATH"].split(":")[:2] == ["/usr/local/bin/build/lib/ollama", CUDA]
    assert LIB not in p.env["LD_LIBRARY_PATH"].split(":")  # LibOllamaPath itself is skipped as a GPU dir
    assert p.searched == ("/usr/local/bin/build/lib/ollama",)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_llama_server_unresolved_needed_matches_real_ld_so(tmp_path):
    """A llama-server whose DT_NEEDED is missing: the model's error is what ld.so really prints."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "foo.c").write_text("int foo(void){return 0;}\n")
    (src / "main.c").write_text("int foo(void); int main(void){return foo();}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(src / "libllamafake.so"), str(src / "foo.c"),
                    "-Wl,-soname,libllamafake.so"], check=True)
    subprocess.run(["gcc", "-o", str(src / "llama-server"), str(src / "main.c"), "-L", str(src),
                    "-lllamafake"], check=True)
    vm = vm_d(tmp_path, server=False)
    shutil.copy(src / "llama-server", vm.real(LIB + "/llama-server"))
    rep = scan(vm)
    reason = rep.backend(CUDA).reason
    assert "error while loading shared libraries: libllamafake.so" in reason
    real = subprocess.run([vm.real(LIB + "/llama-server")], capture_output=True, text=True,
                          env={"LD_LIBRARY_PATH": vm.real(LIB)})
    assert real.returncode == 127 and "libllamafake.so: cannot open shared object file" in real.stderr
    # With the library beside it (LD_LIBRARY_PATH starts with llama-server's folder) it starts.
    shutil.copy(src / "libllamafake.so", vm.real(LIB + "/libllamafake.so"))
    again = scan(vm).backend(CUDA)
    assert again.would_load, again.reason


# -- GGML_BACKEND_PATH ------------------------------------------------------------------------------
def test_versioned_backend_name_loads_in_era_d_not_in_era_c(tmp_path):
    vm = vm_d(tmp_path, faults=("ggml-cuda-versioned-name",))
    rep_c = scan(vm, version="0.24.0")
    assert rep_c.predicted_library == "cpu"
    rep_d = scan(vm)
    assert rep_d.probes[0].env["GGML_BACKEND_PATH"] == CUDA + "/libggml-cuda.so.1"
    assert rep_d.predicted_library == "cuda" and rep_d.backend(CUDA).would_load


def test_backend_path_is_first_in_sorted_order(tmp_path):
    vm = vm_d(tmp_path)
    write_file(vm, CUDA + "/libggml-cuda-old.so", "not an ELF\n")  # '-' sorts before '.'
    rep = scan(vm)
    assert rep.probes[0].env["GGML_BACKEND_PATH"] == CUDA + "/libggml-cuda-old.so"
    v = rep.backend(CUDA)
    assert not v.would_load and "load_backend: failed to load" in " ".join(f.note for f in v.files)
    assert rep.predicted_library == "cpu"


def test_no_backend_path_for_libollamapath_alone(tmp_path):
    vm = vm_d(tmp_path, faults=("flat-layout",))
    rep = scan(vm)
    assert [list(p.dirs) for p in rep.probes] == [[LIB]]
    assert "GGML_BACKEND_PATH" not in rep.probes[0].env
    assert rep.predicted_library == "cuda"  # the base-name fallback in llama-server's own folder


# -- filterOldCUDADriver ------------------------------------------------------------------------------
def test_driver_580_passes(tmp_path):
    rep = scan(vm_d(tmp_path))  # the sandbox's /proc/driver/nvidia/version says 580.159.04
    f = rep.probes[0].driver_filter
    assert f.applies and f.driver == 580 and f.runtime == (12, 8) and not f.dropped
    assert rep.predicted_library == "cuda"


def test_driver_535_with_cuda_12_8_runtime_is_dropped_from_v0_30_11(tmp_path):
    vm = vm_d(tmp_path)
    set_driver(vm, "535.183.01")
    rep = scan(vm, version="0.30.11")
    assert rep.predicted_library == "cpu" and rep.gpu_backend_loads == 0
    assert "cuda-driver-too-old" in ids(rep)
    v = rep.backend(CUDA)
    assert not v.would_load and "below 550" in v.reason and "CUDA 12.8 runtime" in v.reason
    f = next(x for x in rep.findings if x.id == "cuda-driver-too-old")
    assert any('required_driver="550 or newer"' in e for e in f.evidence)


def test_runtime_without_minor_is_not_filtered(tmp_path):
    vm = vm_d(tmp_path)
    set_driver(vm, "535.183.01")
    for n in os.listdir(vm.real(CUDA)):
        if n.startswith("libcudart.so.12."):
            os.rename(vm.real(f"{CUDA}/{n}"), vm.real(f"{CUDA}/libcudart.so.12.real"))
    remove(vm, CUDA + "/libcudart.so.12")
    symlink(vm, CUDA + "/libcudart.so.12", "libcudart.so.12.real")
    rep = scan(vm, version="0.30.11")
    # "libcudart.so.12.real" matches libcudart.so.12 without a numeric minor: runtime 12.0.
    assert rep.probes[0].driver_filter.runtime == (12, 0)
    assert rep.predicted_library == "cuda"


def test_cuda_v13_folder_has_no_driver_filter(tmp_path):
    vm = vm_d(tmp_path)
    set_driver(vm, "535.183.01")
    os.rename(vm.real(CUDA), vm.real(LIB + "/cuda_v13"))
    rep = scan(vm, version="0.30.11")
    assert rep.predicted_library == "cuda" and not rep.probes[0].driver_filter.applies


def test_v0_30_0_filter_only_for_old_compute(tmp_path):
    vm = vm_d(tmp_path)
    set_driver(vm, "535.183.01")
    assert scan(vm, version="0.30.5").predicted_library == "cuda"  # compute unknown: kept, said so
    assert "compute capability" in scan(vm, version="0.30.5").backend(CUDA).reason
    assert scan(vm, version="0.30.5", compute=(9, 0)).predicted_library == "cuda"
    rep = scan(vm, version="0.30.5", compute=(6, 1))
    assert rep.predicted_library == "cpu" and "below 570" in rep.backend(CUDA).reason


def test_driver_unknown_keeps_devices_with_the_warning(tmp_path):
    vm = vm_d(tmp_path)
    remove(vm, "/proc/driver/nvidia/version")
    remove(vm, "/sys/module/nvidia/version")
    rep = scan(vm, version="0.30.11")
    f = rep.probes[0].driver_filter
    assert f.driver is None and not f.dropped and f.log == "could not verify NVIDIA driver compatibility for CUDA"
    assert rep.predicted_library == "cuda" and "cuda-driver-unverified" in ids(rep)
    # The load probe's NVML answer, when the caller has it, decides instead.
    assert scan(vm, version="0.30.11", driver_major=545).predicted_library == "cpu"


def test_no_nvml_means_driver_unknown_even_with_proc_version(tmp_path):
    vm = vm_d(tmp_path)
    set_driver(vm, "535.183.01")
    for d in ("/opt/vgpu/lib", LIB):
        for n in os.listdir(vm.real(d)):
            if n.startswith("libnvidia-ml"):
                os.unlink(vm.real(f"{d}/{n}"))
    rep = scan(vm, version="0.30.11")
    f = rep.probes[0].driver_filter
    assert f.driver is None and "no NVML" in f.driver_source
    assert rep.predicted_library == "cuda"


# -- folder filters ------------------------------------------------------------------------------
@pytest.mark.parametrize("value,probed", [(None, True), ("0", False), ("false", False), ("1", True),
                                          ("yes", True)])  # ParseBool error -> true
def test_vulkan_on_by_default(tmp_path, value, probed):
    vm = vm_d(tmp_path)
    add_library(vm, "libggml-cuda.so", LIB + "/vulkan/libggml-vulkan.so")
    rep = scan(vm, **({"OLLAMA_VULKAN": value} if value is not None else {}))
    assert rep.backend(LIB + "/vulkan").probed is probed


def test_jetpack_fallback_from_v0_31_2(tmp_path, monkeypatch):
    # Fake: an arm64 Jetson cannot exist here; cuda_jetpack is what it would detect.
    monkeypatch.setattr(scanner, "cuda_jetpack", lambda host, env, arm64: "jetpack6")
    vm = vm_d(tmp_path)
    rep = scan(vm, version="0.31.1")
    assert not rep.backend(CUDA).probed and "jetpack6" in rep.backend(CUDA).reason
    rep = scan(vm, version="0.31.2")
    assert rep.backend(CUDA).would_load and any("falls back" in n for n in rep.notes)


def test_igpu_notes(tmp_path):
    vm = vm_d(tmp_path)
    add_library(vm, "libggml-cuda.so", LIB + "/vulkan/libggml-vulkan.so")
    assert any("dropping integrated GPU" in n for n in scan(vm).notes)
    rep = scan(vm, OLLAMA_IGPU_ENABLE="0")
    assert any("CUDA ones (Jetson) included" in n for n in rep.notes)
    assert not any("integrated" in n for n in scan(vm, version="0.24.0", OLLAMA_VULKAN="1").notes)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_vulkan_wins_when_cuda_fails(tmp_path):
    """§8 #21: CUDA's backend cannot load (libcublas missing) and a working Vulkan backend
    (a gcc-built stand-in exporting ggml_backend_init) is probed by default."""
    src = tmp_path / "vk.c"
    src.write_text("void *ggml_backend_init(void){return 0;}\n")
    vm = vm_d(tmp_path, faults=("cublas-missing",))
    out = vm.real(LIB + "/vulkan/libggml-vulkan.so")
    os.makedirs(os.path.dirname(out))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", out, str(src)], check=True)
    rep = scan(vm)
    assert rep.predicted_library == "vulkan" and "vulkan-instead-of-cuda" in ids(rep)
    f = next(x for x in rep.findings if x.id == "vulkan-instead-of-cuda")
    assert f.fix.command == "vgpu-tui fix env OLLAMA_VULKAN=0"
    assert any("libcublas.so.12" in e for e in f.evidence)
    assert scan(vm, OLLAMA_VULKAN="0").predicted_library == "cpu"
