"""`device` and `probe` on the sandbox VMs of probes.sandbox.builder (healthy and with faults).

The sandbox's shim libcuda.so.1 is a small gcc-built FAKE driver (the simulated VGPU-STUB);
the loader, the child processes and the root's ld.so.cache mapping are real.
"""
from __future__ import annotations

import pytest

from probes import device, loadprobe
from probes.host import Host

builder = pytest.importorskip("probes.sandbox.builder")

ENV = {"LD_LIBRARY_PATH": "/usr/local/lib/ollama:/usr/local/lib/ollama/cuda_v12",
       "OLLAMA_LIBRARY_PATH": "/usr/local/lib/ollama:/usr/local/lib/ollama/cuda_v12"}
BACKEND = "/usr/local/lib/ollama/cuda_v12/libggml-cuda.so"


def _vm(tmp_path, *faults):
    vm = builder.build_vm(str(tmp_path / "vm"), faults=faults)
    return Host(getattr(vm, "root", str(tmp_path / "vm")))


def _probe(host):
    return loadprobe.run_probe(host, libcuda_env=ENV, backends=[(BACKEND, ENV)], timeout=15, service_user="ollama")


def test_healthy_vm_finds_the_stub_through_the_roots_cache(tmp_path):
    host = _vm(tmp_path)
    facts = device.collect(host)
    assert [d.name for d in facts.gpus][0].startswith("VGPU-STUB") and not facts.findings
    r = _probe(host)
    assert r.libcuda.path == "/opt/vgpu/lib/libcuda.so.1"  # via the VM's /etc/ld.so.cache
    assert r.libcuda.devices[0].name == "VGPU-STUB" and r.libcuda.devices[0].compute == "9.0"
    assert r.backends[0].loaded and not [f for f in r.findings if f.severity == "error"]


@pytest.mark.parametrize("fault,finding,text", [
    ("shim-missing-fatal", "shim-incomplete", "undefined symbol: cuMemCreate"),
    ("cublas-missing", "backend-lib-missing", "libcublas.so.12: cannot open shared object file"),
    # on a machine with its own NVIDIA driver, that driver's libcuda.so.1 must not count
    ("ldcache-stale", "backend-lib-missing", "libcuda.so.1: cannot open shared object file"),
])
def test_backend_faults_give_the_dlerror_ollama_discards(tmp_path, fault, finding, text):
    r = _probe(_vm(tmp_path, fault))
    b = r.backends[0]
    assert not b.loaded and text in b.error
    assert finding in {f.category for f in r.findings if f.id == "probe-ggml-cuda-not-loaded"}


def test_node_permissions_fault_is_a_device_error(tmp_path):
    facts = device.collect(_vm(tmp_path, "device-nodes-no-access"))
    titles = {f.title for f in facts.findings if f.category == "device-nodes-missing"}
    # one finding for the cause, naming every node CUDA needs (device.py since 1afddb6)
    assert "User ollama cannot open /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia0" in titles
    assert not any("nvidia-uvm-tools" in t for t in titles)  # CUDA does not need it
