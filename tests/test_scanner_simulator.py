"""The scanner model beside the sandbox simulator's own, independently written model of
Ollama 0.24.0 discovery (probes/sandbox/discovery.py): for every named sandbox fault, both
must probe the same folder sets and load the same CUDA backends. A disagreement means one
of the two misreads the reference; the corpus tests say which.
"""
from __future__ import annotations

import pytest

from probes.ollama import find_install
from probes.sandbox.builder import FAULTS, build_vm
from probes.scanner import analyze

discovery = pytest.importorskip("probes.sandbox.discovery")


@pytest.mark.parametrize("fault", [None] + sorted(f for f in FAULTS if f != "dropin-not-applied"))
def test_agrees_with_simulator(tmp_path, fault):
    vm = build_vm(str(tmp_path / "vm"), faults=(fault,) if fault else ())
    inst = find_install(vm.host)
    env = dict(inst.env)
    ours = analyze(vm.host, inst, env=env)
    theirs = discovery.discover(vm.host, inst.binary, env)
    assert sorted(tuple(p.dirs) for p in ours.probes) == sorted(tuple(p.dirs) for p in theirs.probes)
    our_loads = sorted(x for p in ours.probes for b, x in p.loaded if b == "cuda")
    their_loads = sorted(b.path for p in theirs.probes for b in p.cuda if b.loaded)
    assert our_loads == their_loads
    our_opened = sorted(f.path for p in ours.probes for f in p.files if f.backend == "cuda" and f.opened)
    their_opened = sorted(b.path for p in theirs.probes for b in p.cuda)
    assert our_opened == their_opened


@pytest.mark.parametrize("value", ["cuda", "cuda_v12", " 'cuda_v12' "])
def test_no_subfolder_probe_is_never_filtered_by_llm_library(tmp_path, value):
    """v0.24.0 discover/runner.go filters only real folders: with every backend flat in
    lib/ollama (no subfolder matches the glob) the lone "" probe runs whatever
    OLLAMA_LLM_LIBRARY says, and the flat libggml-cuda.so loads. Both models must say so."""
    vm = build_vm(str(tmp_path / "vm"), faults=("flat-layout",))
    inst = find_install(vm.host)
    env = dict(inst.env, OLLAMA_LLM_LIBRARY=value)
    theirs = discovery.discover(vm.host, inst.binary, env)
    ours = analyze(vm.host, inst, env=env)
    assert [p.dirs for p in theirs.probes] == [(inst.lib_dir,)] and theirs.skipped == ()
    assert [p.dirs for p in ours.probes] == [(inst.lib_dir,)]
    assert theirs.initial_count == 1 and ours.predicted_library == "cuda"
