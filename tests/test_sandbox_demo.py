"""The demo VM is the user's situation: symlinks at the top, the shim outside the cache,
a shim missing a few harmless exports, and OLLAMA_LLM_LIBRARY=cuda planted — CPU in the
log; unsetting it and relaunching the simulator gives library=CUDA."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from probes.sandbox import libbuild
from probes.sandbox.demo import build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(str(tmp_path_factory.mktemp("demo")))


def read(root, p):
    with open(os.path.join(root, p.lstrip("/")), encoding="utf-8") as fh:
        return fh.read()


def test_demo_is_labelled_simulated(demo):
    data = json.loads(read(demo, "/.vgpu-sandbox/sandbox.json"))
    assert data["kind"] == "demo" and data["simulated"] is True and data["planted"] == "llm-library-no-match"


def test_demo_has_the_operators_top_level_symlinks(demo):
    lib = os.path.join(demo, "usr/local/lib/ollama")
    assert os.readlink(os.path.join(lib, "libggml-cuda.so")) == "cuda_v12/libggml-cuda.so"
    assert os.readlink(os.path.join(lib, "libcuda.so.1")) == "/opt/vgpu/lib/libcuda.so.1"
    assert os.readlink(os.path.join(lib, "libnvidia-ml.so.1")) == "/opt/vgpu/lib/libnvidia-ml.so.1"


@pytest.mark.skipif(shutil.which("ldconfig") is None, reason="ldconfig not installed")
def test_demo_shim_is_not_in_the_loader_cache(demo):
    out = subprocess.run(["ldconfig", "-p", "-C", os.path.join(demo, "etc/ld.so.cache")],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert "libcuda.so.1" not in out and "libc.so.6" in out


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm not installed")
def test_demo_shim_lacks_a_few_non_fatal_exports(demo):
    out = subprocess.run(["nm", "-D", "--defined-only", os.path.join(demo, "opt/vgpu/lib/libcuda.so.1")],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    names = {l.split()[-1] for l in out.splitlines()}
    assert not names & set(libbuild.DEMO_OMIT)
    assert {"cuMemCreate", "cuGetProcAddress_v2", "cuInit", "cuDeviceGetAttribute"} <= names


def test_demo_log_already_shows_the_failed_start(demo):
    log = read(demo, "/var/log/ollama/ollama.log")
    assert re.match(r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d vgpu-demo ollama\[\d+\]: time=", log)
    assert "skipping available library at user's request\" requested=cuda libDir=/usr/local/lib/ollama/cuda_v12" in log
    assert "initial_count=0" in log and "library=cpu" in log and "library=CUDA" not in log
    assert "starting runner" not in log  # no discovery runner at all


def test_build_demo_reuses_an_existing_demo(demo):
    before = os.stat(os.path.join(demo, "var/log/ollama/ollama.log")).st_mtime_ns
    assert build_demo(demo) == demo
    assert os.stat(os.path.join(demo, "var/log/ollama/ollama.log")).st_mtime_ns == before


def test_demo_in_a_busy_folder_goes_to_a_subfolder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    root = build_demo(str(tmp_path))
    assert root == str(tmp_path / "vgpu-demo") and (tmp_path / "notes.txt").read_text() == "mine"


def test_unsetting_the_override_and_relaunching_gives_cuda(tmp_path):
    root = build_demo(str(tmp_path / "d"))
    override = os.path.join(root, "etc/systemd/system/ollama.service.d/override.conf")
    text = open(override).read()
    open(override, "w").write("".join(l for l in text.splitlines(True) if "OLLAMA_LLM_LIBRARY" not in l))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    r = subprocess.run([sys.executable, "-m", "probes.sandbox.simulator", "serve", "--root", root], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 0, r.stderr
    log = read(root, "/var/log/ollama/ollama.log")
    last = log[log.rindex("msg=\"server config\""):]
    assert "library=CUDA compute=9.0" in last and "description=VGPU-STUB" in last
    assert "initial_count=2" in last  # the backend loads through the top-level link and cuda_v12/
    assert b"OLLAMA_LLM_LIBRARY" not in open(os.path.join(root, ".vgpu-sandbox/run/ollama.environ"), "rb").read()
