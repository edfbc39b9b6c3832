"""The simulator's own discovery model and the project's scanner model (probes.scanner) agree
on every sandbox fault: same LibOllamaPath, same runners, same CPU variant, same CUDA backends
loaded, same initial_count. The simulator writes its log from the scanner when it answers."""
from __future__ import annotations

import pytest

from probes.host import Host
from probes.sandbox import discovery as disc
from probes.sandbox import simulator
from probes.sandbox.builder import FAULTS, build_vm

scanner = pytest.importorskip("probes.scanner")


def _summary(d: disc.Discovery):
    return (d.lib_ollama, d.initial_count,
            [(p.dirs, p.scanned, p.cpu, sorted(b.path for b in p.cuda if b.loaded)) for p in d.probes])


@pytest.mark.parametrize("name", [""] + sorted(FAULTS))
def test_scanner_and_simulator_agree(tmp_path, name):
    vm = build_vm(str(tmp_path / "vm"), faults=(name,) if name else ())
    exe, env, user = simulator.service(vm.root)
    host = Host(vm.root)
    assert _summary(disc.discover_with_scanner(host, exe, env, user)) == _summary(disc.discover(host, exe, env, user))


def test_simulator_uses_the_scanner(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    simulator.serve(vm.root)
    assert simulator.MODEL_USED["last"] == "scanner"
