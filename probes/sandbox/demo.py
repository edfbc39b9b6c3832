"""The built-in demo VM (`vgpu-tui --demo`): the user's own situation, simulated.

The operator "put all the symlinks in place" at the top of /usr/local/lib/ollama
(libggml-cuda.so and the CUDA runtime to cuda_v12/, libcuda.so.1 and libnvidia-ml.so.1 to the
shim in /opt/vgpu/lib), the shim is not in the loader cache (found only through that
top-level libcuda.so.1 link) and lacks a few non-fatal interop exports — and yet Ollama
never opens libggml-cuda.so: `initial_count=0`, `library=cpu`. The root cause planted is
`llm-library-no-match`: a drop-in sets OLLAMA_LLM_LIBRARY=cuda, which no backend folder is
named, so Ollama 0.24 starts no discovery runner at all. Unset it and relaunch the
simulator: the backend loads (twice, through the top-level link and cuda_v12/) and the log
says library=CUDA.
"""
from __future__ import annotations

import json
import os

from probes.sandbox import builder, simulator

DEMO_FAULTS = ("libcuda-not-on-path", "top-level-symlinks", "llm-library-no-match")
PLANTED = "llm-library-no-match"
DEMO_SUBDIR = "vgpu-demo"


def _is_demo(root: str) -> bool:
    try:
        with open(os.path.join(root, ".vgpu-sandbox", "sandbox.json"), encoding="utf-8") as fh:
            return json.load(fh).get("kind") == "demo"
    except (OSError, ValueError):
        return False


def build_demo(dir: str) -> str:
    """Build the demo VM in `dir` (or reuse the one there); returns its root folder.

    An empty or absent `dir` becomes the root; a folder holding other things gets the demo
    in `dir/vgpu-demo`.
    """
    target = os.path.abspath(dir)
    if _is_demo(target):
        return target
    if os.path.isdir(target) and os.listdir(target):
        target = os.path.join(target, DEMO_SUBDIR)
        if _is_demo(target):
            return target
        if os.path.isdir(target) and os.listdir(target):
            raise ValueError(f"{target}: exists and is not a vgpu-tui demo VM")
    vm = builder.build_vm(target, faults=DEMO_FAULTS, kind="demo")
    # The shim the operator installed: a real export list minus a few interop names.
    builder.install_shim(vm, "libcuda-demo.so.1")
    # ... and the operator's extra links, so the runner's loader finds the shim anyway.
    builder.symlink(vm, f"{vm.lib_dir}/libcuda.so.1", f"{vm.shim_dir}/libcuda.so.1")
    builder.symlink(vm, f"{vm.lib_dir}/libnvidia-ml.so.1", f"{vm.shim_dir}/libnvidia-ml.so.1")
    # While investigating, the operator turned on debug logging in the same drop-in.
    builder.write_dropin(vm, "override.conf", {"OLLAMA_DEBUG": "1", "OLLAMA_LLM_LIBRARY": "cuda"})
    with open(vm.real(f"{vm.state_dir}/sandbox.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    data.update({"planted": PLANTED, "shim": "libcuda-demo.so.1 (lacks " + ", ".join(
        __import__("probes.sandbox.libbuild", fromlist=["DEMO_OMIT"]).DEMO_OMIT) + ")"})
    builder.write_file(vm, f"{vm.state_dir}/sandbox.json", json.dumps(data, indent=1) + "\n")
    simulator.serve(vm.root)  # the failed start the operator is looking at
    return vm.root
