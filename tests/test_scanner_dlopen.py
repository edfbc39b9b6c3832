"""The scanner's dlopen verdicts against the real loader: dlopen(RTLD_NOW) in a child process.

The sandbox's libraries are real gcc-built ELF files, so glibc itself can judge them. The
child gets the LD_LIBRARY_PATH the model gives the runner (as paths of this machine), plus
the shim's folder at the end standing in for the sandbox's ld.so.cache entry (this machine's
own cache has no libcuda/libcudart/libcublas, checked below).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from probes.ollama import find_install
from probes.sandbox.builder import build_vm
from probes.scanner import analyze

CUDA = "/usr/local/lib/ollama/cuda_v12"
CHILD = r"""
import ctypes, os, sys
try:
    ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW | os.RTLD_LOCAL)
    print("OK")
except OSError as e:
    print("ERR", e)
"""


def real_dlopen(path, ld_path):
    env = dict(os.environ, LD_LIBRARY_PATH=ld_path)
    out = subprocess.run([sys.executable, "-c", CHILD, path], env=env, capture_output=True, text=True,
                         timeout=30).stdout.strip()
    return out


@pytest.fixture(scope="module")
def clean_cache():
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    if any(n in out for n in ("libcuda.so.1 ", "libcudart.so.12 ", "libcublas.so.12 ")):
        pytest.skip("this machine's loader cache has CUDA libraries: the comparison would be unfair")


@pytest.mark.parametrize("fault,missing", [
    (None, None),
    ("cublas-missing", "libcublas.so.12"),
    ("shim-missing-fatal", "cuMemCreate"),
    ("ggml-cuda-top-level-only", "libcudart.so.12"),
])
def test_verdict_matches_glibc(tmp_path, clean_cache, fault, missing):
    vm = build_vm(str(tmp_path / "vm"), faults=(fault,) if fault else ())
    rep = analyze(vm.host, find_install(vm.host))
    files = [f for p in rep.probes for f in p.files if f.backend == "cuda" and f.opened]
    assert files, "the model opens a libggml-cuda.so"
    f = files[0]
    probe = next(p for p in rep.probes if f in p.files)
    ld = ":".join(vm.real(d) for d in probe.env["LD_LIBRARY_PATH"].split(":")) + ":" + vm.real("/opt/vgpu/lib")
    out = real_dlopen(vm.real(f.path), ld)
    assert out.startswith("OK") == f.load.ok, (out, f.load)
    if missing:
        assert missing in out and missing in f.load.error
