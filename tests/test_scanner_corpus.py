"""The scanner model against what the real Ollama 0.24.0 did (../shared/corpus/ollama-0.24).

Each corpus layout is rebuilt in a sandbox from the gcc-built libraries of
probes/sandbox/prebuilt, and the model's prediction is compared with the real server's
log (the `subprocess` environment and the `bootstrap discovery took ... OLLAMA_LIBRARY_PATH=[...]`
lines, `initial_count`, `inference compute library=`) and with the README's strace facts
(which files were opened). The facts recorded on the real H200 are rebuilt the same way.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from probes.ollama import find_install
from probes.sandbox.builder import (FAULTS, add_library, build_vm, rebuild_ld_cache, remove, symlink,
                                    write_file)
from probes.scanner import analyze

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus" / "ollama-0.24"
LIB = "/usr/local/lib/ollama"
CUDA = LIB + "/cuda_v12"

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/ollama-0.24 not present")


def corpus_facts(name):
    """(probed OLLAMA_LIBRARY_PATH lists, subprocess env, initial_count, library) of a real log."""
    text = (CORPUS / f"{name}.log").read_text()
    probed = [m.group(1).split() for m in
              re.finditer(r'msg="bootstrap discovery took" duration=\S+ OLLAMA_LIBRARY_PATH="?\[([^\]]*)\]"? '
                          r'extra_envs=map\[\]', text)]
    subs = []
    for m in re.finditer(r"msg=subprocess (.*)$", text, re.M):
        if "GGML_CUDA_INIT" in m.group(1):
            continue  # a validation runner (second pass)
        subs.append(dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv))
    count = int(re.search(r"initial_count=(\d+)", text).group(1))
    lib = re.search(r'msg="inference compute" .*?library=(\S+)', text).group(1)
    return probed, subs, count, lib


def server_env(name):
    """The environment the real server ran with, read back from its `subprocess` line."""
    _, subs, _, _ = corpus_facts(name)
    env = dict(subs[0]) if subs else {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    env.pop("LD_LIBRARY_PATH", None)  # the server set these for the runner
    env.pop("OLLAMA_LIBRARY_PATH", None)
    return env


def sandbox(tmp_path, faults=()):
    vm = build_vm(str(tmp_path / "vm"), faults=faults)
    return vm


def predict(vm, env):
    inst = find_install(vm.host)
    return analyze(vm.host, inst, env=env)


def opened(report, path):
    return [f for p in report.probes for f in p.files if f.path == path and f.opened]


def considered(report, path):
    return [f for p in report.probes for f in p.files if f.path == path]


def check_against_log(report, name):
    probed, subs, count, lib = corpus_facts(name)
    assert [list(p.dirs) for p in report.probes] == probed
    for p, sub in zip(report.probes, subs):
        assert p.env["LD_LIBRARY_PATH"] == sub["LD_LIBRARY_PATH"]
        assert p.env["OLLAMA_LIBRARY_PATH"] == sub["OLLAMA_LIBRARY_PATH"]
    assert report.gpu_backend_loads == count
    assert report.predicted_library == lib.lower()


def make_a(vm):
    shutil.rmtree(vm.real(CUDA))


def make_b(vm):
    remove(vm, CUDA + "/libggml-cuda.so")
    write_file(vm, CUDA + "/libggml-cuda.so", "this is not a shared library, it is a 77-byte text file standing in.\n")


@needs_corpus
def test_a_installed(tmp_path):
    vm = sandbox(tmp_path)
    make_a(vm)
    rep = predict(vm, server_env("a_installed"))
    check_against_log(rep, "a_installed")
    assert rep.lib_dirs == ("",)
    # strace: all 7 CPU variants opened to be scored; no libggml-cuda anywhere
    cpu = [f for f in rep.probes[0].files if f.backend == "cpu" and f.opened]
    assert len(cpu) == 7
    assert rep.backend(LIB).reason.startswith("probed alone")


@needs_corpus
def test_b_fake_cuda_v12(tmp_path):
    vm = sandbox(tmp_path)
    make_b(vm)
    rep = predict(vm, server_env("b_fake_cuda_v12"))
    check_against_log(rep, "b_fake_cuda_v12")
    hits = opened(rep, CUDA + "/libggml-cuda.so")
    assert len(hits) == 1 and not hits[0].load.ok  # opened once, dlopen fails
    assert "invalid ELF header" in hits[0].load.error
    v = rep.backend(CUDA)
    assert v.probed and not v.would_load and "invalid ELF header" in v.reason


@needs_corpus
def test_c_dangling_symlink(tmp_path):
    vm = sandbox(tmp_path, ("ggml-cuda-dangling",))
    rep = predict(vm, server_env("c_dangling_symlink"))
    check_against_log(rep, "c_dangling_symlink")
    assert considered(rep, CUDA + "/libggml-cuda.so") and not opened(rep, CUDA + "/libggml-cuda.so")
    assert "dangling" in rep.backend(CUDA).reason


@needs_corpus
def test_e3_llm_library_cuda_v13_on_b(tmp_path):
    vm = sandbox(tmp_path)
    make_b(vm)
    env = server_env("e3_llm_library_cuda_v13_on_b")
    env["OLLAMA_LLM_LIBRARY"] = "cuda_v13"
    rep = predict(vm, env)
    probed, subs, count, lib = corpus_facts("e3_llm_library_cuda_v13_on_b")
    assert probed == [] and subs == [] and count == 0  # the real server started no runner
    assert not rep.runner_started and rep.probes == () and rep.predicted_library == "cpu"
    v = rep.backend(CUDA)
    assert not v.probed
    assert v.reason == "not probed: OLLAMA_LLM_LIBRARY=cuda_v13 matches no folder, so no runner is started"
    assert any(f.category == "wrong-library-override" for f in rep.findings)


@needs_corpus
def test_f_library_path_somedir(tmp_path):
    vm = sandbox(tmp_path)
    make_a(vm)
    add_library(vm, "libggml-cuda.so", "/opt/extra/somedir/libggml-cuda.so")
    env = server_env("f_library_path_somedir")
    assert env.get("OLLAMA_LIBRARY_PATH") is None
    env["OLLAMA_LIBRARY_PATH"] = "/opt/extra/somedir"
    rep = predict(vm, env)
    check_against_log(rep, "f_library_path_somedir")
    assert "/opt/extra/somedir" not in rep.probes[0].searched
    assert not considered(rep, "/opt/extra/somedir/libggml-cuda.so")
    assert any("has no effect" in n for n in rep.notes)


# --- facts recorded on the real GPU (README "On a real GPU") ------------------------------------
@needs_corpus
def test_h200_gpu_ok(tmp_path):
    """The real success: cuda_v13 probed, one GPU, one validation runner with the same dirs."""
    vm = sandbox(tmp_path)
    os.rename(vm.real(CUDA), vm.real(LIB + "/cuda_v13"))
    text = (CORPUS / "h200_gpu_ok_debug1.log").read_text()
    sub = dict(kv.split("=", 1) for kv in re.search(r"msg=subprocess (.*)$", text, re.M).group(1).split()
               if "=" in kv)
    env = {k: v for k, v in sub.items() if k not in ("LD_LIBRARY_PATH", "OLLAMA_LIBRARY_PATH")}
    rep = predict(vm, env)
    p = rep.probes[0]
    assert p.env["LD_LIBRARY_PATH"] == sub["LD_LIBRARY_PATH"]
    assert p.env["OLLAMA_LIBRARY_PATH"] == sub["OLLAMA_LIBRARY_PATH"]
    assert rep.gpu_backend_loads == int(re.search(r"initial_count=(\d+)", text).group(1)) == 1
    validations = re.findall(r'bootstrap discovery took" duration=\S+ OLLAMA_LIBRARY_PATH="\[([^\]]*)\]" '
                             r'extra_envs="map\[CUDA_VISIBLE_DEVICES:', text)
    assert [list(v) for v in rep.validation_runs] == [v.split() for v in validations]
    assert "libdirs=ollama,cuda_v13" in text and rep.backend(LIB + "/cuda_v13").would_load



def test_top_level_loads_when_deps_resolve(tmp_path):
    vm = sandbox(tmp_path, ("ggml-cuda-top-level-only",))
    rep = predict(vm, {})
    assert not rep.backend(LIB).would_load  # libcudart.so.12 is only in cuda_v12/
    write_file(vm, "/etc/ld.so.conf.d/ollama-cuda.conf", CUDA + "\n")
    rebuild_ld_cache(vm)  # now the system's cache has the runtime, as on the GPU VM
    rep = predict(vm, {})
    assert rep.lib_dirs == ("",) and rep.backend(LIB).would_load
    assert rep.predicted_library == "cuda"


def test_top_level_symlinks_load_twice(tmp_path):
    vm = sandbox(tmp_path, ("top-level-symlinks",))
    rep = predict(vm, {})
    assert rep.gpu_backend_loads == 2  # initial_count=2 for one GPU on the H200
    assert "twice" in rep.backend(LIB).reason and rep.backend(CUDA).would_load


def test_folder_name_does_not_matter(tmp_path):
    vm = sandbox(tmp_path)
    os.rename(vm.real(CUDA), vm.real(LIB + "/cuda"))
    rep = predict(vm, {})
    assert rep.backend(LIB + "/cuda").would_load and rep.predicted_library == "cuda"


def test_missing_bundled_cublas_invisible_with_cache(tmp_path):
    vm = sandbox(tmp_path, ("cublas-missing",))
    assert not predict(vm, {}).backend(CUDA).would_load
    add_library(vm, "libcublas.so.12.8.4.1", "/usr/lib/x86_64-linux-gnu/libcublas.so.12.8.4.1")
    rebuild_ld_cache(vm)
    rep = predict(vm, {})
    assert rep.backend(CUDA).would_load
    assert ("libcublas.so.12", "/usr/lib/x86_64-linux-gnu/libcublas.so.12", "ld.so.cache") in \
        rep.backend(CUDA).dlopen.needed


def test_shim_without_getprocaddress_v2_works(tmp_path):
    vm = sandbox(tmp_path, ("shim-missing-getprocaddress-v2",))
    assert predict(vm, {}).backend(CUDA).would_load


@pytest.mark.parametrize("fault,loads,needle", [
    (None, True, "loads"),
    ("ggml-cuda-top-level-only", False, "libcudart.so.12"),
    ("cublas-missing", False, "libcublas.so.12"),
    ("libcuda-not-on-path", False, "libcuda.so.1"),
    ("ldcache-stale", False, "libcuda.so.1"),
    ("shim-missing-fatal", False, "cuMemCreate"),
    ("shim-wrong-soname", False, "SONAME libcuda.so"),
    ("shim-wrong-class", False, "another kind"),
    ("llm-library-no-match", False, "OLLAMA_LLM_LIBRARY=cuda matches no folder"),
    ("ggml-cuda-versioned-name", False, "exact name libggml-cuda.so"),
    ("ggml-cuda-two-deep", False, "two levels down"),
    ("flat-layout", True, "base-name fallback"),
    ("top-level-symlinks", True, "twice"),
    ("binary-in-usr-bin", False, "no libggml-cuda.so here"),
])
def test_each_fault_explained(tmp_path, fault, loads, needle):
    vm = sandbox(tmp_path, (fault,) if fault else ())
    inst = find_install(vm.host)
    rep = analyze(vm.host, inst)
    assert (rep.predicted_library == "cuda") == loads
    if fault:
        assert FAULTS[fault].works == loads  # the builder's own label agrees
    text = "\n".join(b.reason for b in rep.backends)
    assert needle in text, text
