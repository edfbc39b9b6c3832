"""The scanner model for eras B and D on the same sandbox tree (--assume-version)."""
from __future__ import annotations

from probes.ollama import find_install
from probes.sandbox.builder import add_library, build_vm, write_dropin
from probes.scanner import analyze

LIB = "/usr/local/lib/ollama"


def test_era_b_model_runner(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    write_dropin(vm, "override.conf", {"OLLAMA_LLM_LIBRARY": "cuda"})
    inst = find_install(vm.host, {"assume_version": "0.9.6"})
    rep = analyze(vm.host, inst)
    # Era B ignores an OLLAMA_LLM_LIBRARY that names no folder and still runs cuda_v12.
    assert rep.era == "B" and rep.predicted_library == "cuda"
    assert rep.probes[0].kind == "model-runner"
    assert rep.probes[0].env["LD_LIBRARY_PATH"].startswith(LIB + "/cuda_v12:")
    assert any("ignored" in n for n in rep.notes)


def test_era_b_runner_before_v067_searches_ld_library_path(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
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


def test_era_a_not_modelled(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    rep = analyze(vm.host, find_install(vm.host, {"assume_version": "0.3.0"}))
    assert rep.era == "A" and rep.probes == () and rep.notes
