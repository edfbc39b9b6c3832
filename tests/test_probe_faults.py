"""Run-time faults of the shim: the files of the VM all look right, but the sandbox's real
gcc-built stub libcuda.so.1 reads its behaviour file (/opt/vgpu/etc/stub.conf) at cuInit and
fails the way broken shims do: an error code, a hang, a SIGSEGV, an old driver API, a compute
capability cuda_v12 is not compiled for, zero memory. `vgpu-tui report --root VM --json` WITH
the load probe (which runs that shim in a child process) must name the right category, and the
log the simulated Ollama 0.24.0 writes, read by probes.logs, must agree.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from probes import logs
from probes.sandbox import builder, simulator

ROOT = Path(__file__).resolve().parents[1]

RUNTIME_FAULTS = ("shim-cuinit-fails", "shim-cuinit-hangs", "shim-cuinit-crashes", "shim-old-driver-api",
                  "shim-unsupported-compute", "shim-zero-memory")
# The lines Ollama 0.24.0 writes for each (reference §2.2, §3.3, §8), at OLLAMA_DEBUG=2.
TRACE_LINES = {
    "shim-cuinit-fails": ("ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected",
                          "initial_count=0"),
    "shim-cuinit-hangs": ('msg="failure during GPU discovery"', 'error="failed to finish discovery before timeout"',
                          "initial_count=0"),
    "shim-cuinit-crashes": ("SIGSEGV: segmentation violation", 'msg="runner exited"', "initial_count=0"),
    "shim-old-driver-api": ("failed to initialize CUDA: CUDA driver version is insufficient for CUDA runtime version",
                            "initial_count=0"),
    "shim-unsupported-compute": ("initial_count=1", "compute capability 8.7",
                                 "ggml was not compiled with support for this arch",
                                 "filtering device which didn't fully initialize"),
    "shim-zero-memory": ('library=CUDA', 'total="0 B"', 'total_vram="0 B"'),
}


def _report(root, timeout="3"):
    proc = subprocess.run([sys.executable, "-m", "tui", "report", "--root", str(root), "--json",
                           "--timeout", timeout], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _errors(obj):
    return [(x["category"], x["id"]) for x in obj["findings"] if x["severity"] == "error"]


@pytest.mark.parametrize("fault", RUNTIME_FAULTS)
def test_runtime_fault_is_named_by_the_report_with_the_probe(tmp_path, fault):
    vm = builder.build_vm(str(tmp_path / "vm"), faults=(fault,), simulate=True)
    rc, obj = _report(vm.root)
    errs = _errors(obj)
    assert rc == 1 and obj["verdict"]["gpu_ready"] is False, obj["verdict"]
    assert builder.FAULTS[fault].category in {c for c, _ in errs}, errs
    # one cause, not a second wrong one next to it
    assert {c for c, _ in errs} == {builder.FAULTS[fault].category}, errs
    assert obj["probe"] is not None  # the load probe ran the real shim


@pytest.mark.parametrize("fault", RUNTIME_FAULTS)
def test_simulated_log_of_a_runtime_fault_reads_like_0_24(tmp_path, fault):
    vm = builder.build_vm(str(tmp_path / "vm"), faults=(fault,))
    text = simulator.serve(vm.root, seed=5, env_override=dict(builder.service_env(vm), OLLAMA_DEBUG="2"))
    for line in TRACE_LINES[fault]:
        assert line in text, (line, text[-3000:])
    parsed = logs.parse_text(text)
    if fault == "shim-zero-memory":  # listed, with nothing to put a layer in
        assert parsed.library == "cuda"
        assert any(d.total in ("0 B", "0") for d in parsed.devices), parsed.devices
    else:
        assert parsed.library == "cpu" and parsed.gpu_used is False


def test_hang_waits_the_discovery_deadline_at_info(tmp_path):
    """At the service's default level the hang is the one line a user sees besides library=cpu."""
    vm = builder.build_vm(str(tmp_path / "vm"), faults=("shim-cuinit-hangs",))
    text = simulator.serve(vm.root, seed=1)
    line = next(x for x in text.splitlines() if "failure during GPU discovery" in x)
    assert "level=INFO" in line and "cuda_v12]" in line
    assert logs.parse_text(text).library == "cpu"


def test_healthy_vm_with_the_probe_has_no_error(tmp_path):
    vm = builder.build_vm(str(tmp_path / "vm"), simulate=True)
    rc, obj = _report(vm.root)
    assert _errors(obj) == [] and rc == 0
    assert obj["verdict"]["gpu_ready"] is True
    assert obj["probe"]["libcuda"]["init_result"] == 0
    assert obj["probe"]["libcuda"]["devices"][0]["compute"] == "9.0"


def test_behaviour_file_is_read_next_to_the_shim_real_folder(tmp_path):
    """The stub resolves ../etc/stub.conf from the file the loader mapped, links followed."""
    vm = builder.build_vm(str(tmp_path / "vm"), faults=("shim-cuinit-fails",))
    rc, obj = _report(vm.root)
    assert obj["probe"]["libcuda"]["init_result"] == 100
    assert obj["probe"]["libcuda"]["init_result_name"] == "CUDA_ERROR_NO_DEVICE"
