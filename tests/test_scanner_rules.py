"""Era C discovery rules beyond the corpus layouts (ollama-discovery.md §2.2; v0.24.0
discover/runner.go): the Vulkan opt-in, symlinked and dangling folders, and the "" probe
that OLLAMA_LLM_LIBRARY never filters."""
from __future__ import annotations

import os
import shutil

from probes.ollama import find_install
from probes.sandbox.builder import add_library, build_vm, symlink
from probes.scanner import analyze

LIB = "/usr/local/lib/ollama"


def scan(vm, **env):
    inst = find_install(vm.host)
    e = dict(inst.env)
    e.update(env)
    return analyze(vm.host, inst, env=e)


def test_vulkan_is_opt_in(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    add_library(vm, "libggml-cuda.so", LIB + "/vulkan/libggml-vulkan.so")
    rep = scan(vm)
    v = rep.backend(LIB + "/vulkan")
    assert not v.probed and "OLLAMA_VULKAN" in v.reason
    rep = scan(vm, OLLAMA_VULKAN="1")
    assert rep.backend(LIB + "/vulkan").probed and len(rep.probes) == 2


def test_symlinked_folder_counts_dangling_does_not(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    os.rename(vm.real(LIB + "/cuda_v12"), vm.real("/opt/cuda_v12"))
    symlink(vm, LIB + "/cuda_v12", "/opt/cuda_v12")
    symlink(vm, LIB + "/cuda_v13", "/opt/missing")
    rep = scan(vm)
    assert rep.lib_dirs == (LIB + "/cuda_v12",)
    assert rep.backend(LIB + "/cuda_v12").would_load
    assert "dangling" in rep.backend(LIB + "/cuda_v13").reason


def test_empty_libdir_probe_is_never_filtered(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    shutil.rmtree(vm.real(LIB + "/cuda_v12"))
    rep = scan(vm, OLLAMA_LLM_LIBRARY="cuda_v12")
    assert rep.runner_started and [list(p.dirs) for p in rep.probes] == [[LIB]]


def test_llm_library_quotes_trimmed_and_match(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    rep = scan(vm, OLLAMA_LLM_LIBRARY=" 'cuda_v12' ")
    assert rep.backend(LIB + "/cuda_v12").would_load


def test_unreadable_runtime_for_the_service_user(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    os.chmod(vm.real(LIB + "/cuda_v12/libcudart.so.12.8.90"), 0o600)
    os.chown(vm.real(LIB + "/cuda_v12/libcudart.so.12.8.90"), 0, 0) if os.getuid() == 0 else None
    st = os.stat(vm.real(LIB + "/cuda_v12/libcudart.so.12.8.90"))
    if st.st_uid == 998:  # the sandbox's ollama uid: the owner may read it
        return
    v = scan(vm).backend(LIB + "/cuda_v12")
    assert not v.would_load and "Permission denied" in v.reason and "user ollama" in v.reason


def test_skipped_folder_says_what_would_happen(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("llm-library-no-match",))
    v = scan(vm).backend(LIB + "/cuda_v12")
    assert not v.probed and v.if_probed is not None and v.if_probed.ok
    vm2 = build_vm(str(tmp_path / "vm2"), faults=("llm-library-no-match", "cublas-missing"))
    v = scan(vm2).backend(LIB + "/cuda_v12")
    assert not v.if_probed.ok and "libcublas.so.12" in v.if_probed.error


def test_every_finding_id_is_documented_for_the_diagnosis():
    """probes.diagnose dedupes by id: every id the scanner can emit is listed in its docstring
    with the category it is emitted under."""
    import re
    from pathlib import Path

    import probes.scanner as sc

    src = Path(sc.__file__).read_text()
    emitted = re.findall(r'Finding\(\s*\(?"([a-z0-9-]+)"(?:\s+if\s+\w+\s+else\s+"([a-z0-9-]+)")?', src)
    ids = {i for pair in emitted for i in pair if i}
    assert "llm-library-no-match" in ids and "llama-server-missing" in ids
    doc = sc.__doc__
    for i in ids:
        assert re.search(rf"^\s+{re.escape(i)}\s+[a-z-]+\s+(error|warning|info)\b", doc, re.M), i
