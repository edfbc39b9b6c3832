"""A snapshot of a healthy sandbox VM, then one planted fault: the diff names it first.

The VM is built by probes.sandbox.builder (real gcc-built libraries, a real loader cache);
the fault is applied with the builder's own FAULTS table, as an operator's mistake would be.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not there yet")

from probes import snapshot as snap  # noqa: E402
from probes.host import Host  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# fault -> words of which the first change must name one (its key or its text)
NAMES = {
    "ggml-cuda-top-level-only": ("cuda_v12/libggml-cuda.so",),
    "ggml-cuda-dangling": ("cuda_v12/libggml-cuda.so",),
    "cublas-missing": ("libcublas.so.12",),
    "libcuda-not-on-path": ("/opt/vgpu/lib", "libcuda.so.1"),
    "ldcache-stale": ("libcuda.so.1",),
    "shim-missing-fatal": ("cuMemCreate",),
    "shim-wrong-soname": ("SONAME",),
    "shim-wrong-class": ("class",),
    "llm-library-no-match": ("OLLAMA_LLM_LIBRARY",),
    "visible-devices-hidden": ("CUDA_VISIBLE_DEVICES",),
    "no-gpu": ("GPU at",),
    "no-device-nodes": ("/dev/nvidia",),
    "device-nodes-no-access": ("/dev/nvidia",),
    "binary-in-usr-bin": ("/usr/bin",),
    "preload-missing": ("ld.so.preload",),
    "ggml-cuda-versioned-name": ("cuda_v12/libggml-cuda.so",),
    "ggml-cuda-two-deep": ("cuda_v12",),
}


def _plant(vm, fault):
    builder.FAULTS[fault].apply(vm)
    builder.set_running_env(vm)  # as build_vm does after its faults: the server record follows


@pytest.mark.parametrize("fault", sorted(NAMES))
def test_the_planted_fault_comes_first_in_the_diff(tmp_path, fault):
    vm = builder.build_vm(str(tmp_path / "vm"))
    before = snap.take(Host(vm.root), "good")
    json.dumps(before)  # plain JSON
    _plant(vm, fault)
    changes = snap.diff(before, snap.take(Host(vm.root), "now"))
    assert changes, f"{fault}: no change seen"
    first = changes[0]
    assert any(w in first.key or w in first.text for w in NAMES[fault]), [c.text for c in changes[:5]]


def test_no_change_no_diff_and_the_cli_saves_and_diffs(tmp_path):
    vm = builder.build_vm(str(tmp_path / "vm"))
    folder = tmp_path / "snaps"
    run = lambda *a: subprocess.run([sys.executable, "-m", "tui", "snapshot", *a, "--root", vm.root,
                                     "--dir", str(folder)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = run("save", "good")
    assert out.returncode == 0, out.stderr
    saved = json.loads((folder / "good.json").read_text())
    assert saved["ollama"]["lib_dir"] == "/usr/local/lib/ollama"
    assert any(p.endswith("/cuda_v12/libggml-cuda.so") and e["elf"] for p, e in saved["tree"].items())
    out = run("diff", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changes"] == []
    _plant(vm, "llm-library-no-match")
    out = run("diff", "good")
    assert out.returncode == 0, out.stderr
    assert "OLLAMA_LLM_LIBRARY" in out.stdout.splitlines()[1]
