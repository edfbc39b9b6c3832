"""The scanner model for eras B and D on the same sandbox tree (--assume-version)."""
from __future__ import annotations

import os

from probes.ollama import find_install
from probes.sandbox.builder import add_library, build_vm, write_dropin
from probes.scanner import analyze

LIB = "/usr/local/lib/ollama"


def with_system_libcuda(vm):
    """A driver-style libcuda in /usr/lib/x86_64-linux-gnu, where era B's globs look."""
    add_library(vm, "libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04")
    os.symlink("libcuda.so.580.159.04", vm.real("/usr/lib/x86_64-linux-gnu/libcuda.so.1"))
    return vm


def test_era_b_discovery_globs_not_the_cache(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))  # the shim is in /opt/vgpu/lib, known only to ld.so.cache
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.9.6"}))
    assert rep.predicted_library == "cpu"
    assert "not used: discovery in the server found no usable libcuda" in rep.backend(LIB + "/cuda_v12").reason
    with_system_libcuda(vm)
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.9.6"}))
    assert rep.predicted_library == "cuda"
    assert any("/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04" in n for n in rep.notes)  # links followed


def test_era_b_model_runner(tmp_path):
    vm = with_system_libcuda(build_vm(str(tmp_path / "vm")))
    write_dropin(vm, "override.conf", {"OLLAMA_LLM_LIBRARY": "cuda"})
    inst = find_install(vm.host, {"assume_version": "0.9.6"})
    rep = analyze(vm.host, inst)
    # Era B ignores an OLLAMA_LLM_LIBRARY that names no folder and still runs cuda_v12.
    assert rep.era == "B" and rep.predicted_library == "cuda"
    assert rep.probes[0].kind == "model-runner"
    assert rep.probes[0].env["LD_LIBRARY_PATH"].startswith(LIB + "/cuda_v12:")
    assert any("ignored" in n for n in rep.notes)


def test_era_b_runner_before_v067_searches_ld_library_path(tmp_path):
    vm = with_system_libcuda(build_vm(str(tmp_path / "vm")))
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.6.0"}))
    assert rep.probes[0].searched[0] == LIB + "/cuda_v12"  # LD_LIBRARY_PATH order, not OLLAMA_LIBRARY_PATH


def test_era_d_needs_llama_server_and_sets_backend_path(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.31.0"}))
    assert rep.era == "D" and rep.predicted_library == "cpu"
    assert "llama-server binary not found" in rep.backend(LIB + "/cuda_v12").reason
    add_library(vm, "ollama", LIB + "/llama-server")  # any file: Ollama only stats it
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.31.0"}))
    p = rep.probes[0]
    assert p.env["GGML_BACKEND_PATH"] == LIB + "/cuda_v12/libggml-cuda.so"
    assert rep.backend(LIB + "/cuda_v12").would_load and rep.predicted_library == "cuda"


def test_era_a_payload_runners_are_said_to_be_invisible(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.3.0"}))
    assert rep.era == "A" and rep.probes == ()
    assert any("cannot check them statically" in n for n in rep.notes)
