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
