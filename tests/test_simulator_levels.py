"""The simulated log follows the service's OLLAMA_DEBUG level and journald's short format."""
from __future__ import annotations

import re
import subprocess
import sys

from probes.sandbox import builder, simulator

PREFIX = re.compile(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d vgpu-demo ollama\[\d+\]: ")


def _log(tmp_path, debug=None, faults=()):
    vm = builder.build_vm(str(tmp_path / "vm"), faults=faults)
    if debug is not None:
        builder.write_dropin(vm, "debug.conf", {"OLLAMA_DEBUG": debug})
    return simulator.serve(vm.root, seed=7)


def test_info_by_default(tmp_path):
    lines = _log(tmp_path).splitlines()
    assert all(PREFIX.match(l) for l in lines)
    assert {re.search(r"level=(\w+)", l).group(1) for l in lines} == {"INFO"}
    assert any('msg="Listening on 127.0.0.1:11434 (version 0.24.0)"' in l for l in lines)
    assert "OLLAMA_DEBUG:INFO" in lines[0]


def test_debug_and_trace_levels(tmp_path):
    debug = _log(tmp_path / "1", "1")
    assert "level=DEBUG" in debug and "level=TRACE" not in debug and "OLLAMA_DEBUG:DEBUG " in debug
    assert "load_backend:" not in debug  # the discovery runner's output is discarded below TRACE
    trace = _log(tmp_path / "2", "2")
    assert "level=TRACE" in trace and "OLLAMA_DEBUG:DEBUG-4" in trace
    assert "load_backend: loaded CUDA backend from /usr/local/lib/ollama/cuda_v12/libggml-cuda.so" in trace
    assert "load_backend: loaded CPU backend from /usr/local/lib/ollama/libggml-cpu-haswell.so" in trace
    assert "Device 0: VGPU-STUB, compute capability 9.0, VMM: yes, ID: GPU-" in trace


def test_hidden_devices_warn_and_fall_back(tmp_path):
    log = _log(tmp_path, "2", faults=("visible-devices-hidden",))
    assert 'level=WARN source=runner.go:79 msg="user overrode visible devices" CUDA_VISIBLE_DEVICES=-1' in log
    assert "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected" in log
    assert "library=cpu" in log


def test_the_missing_shim_symbol_is_silent(tmp_path):
    log = _log(tmp_path, "2", faults=("shim-missing-fatal",))
    assert "cuMemCreate" not in log and "loaded CUDA backend" not in log  # 0.24 logs nothing
    assert "initial_count=0" in log


def test_cli_refuses_a_folder_that_is_not_a_sandbox(tmp_path):
    r = subprocess.run([sys.executable, "-m", "probes.sandbox.simulator", "serve", "--root", str(tmp_path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode == 2 and "not a vgpu-tui sandbox" in r.stderr and "Traceback" not in r.stderr
