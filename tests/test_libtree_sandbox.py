"""The tree, the resolver and the cache check on the sandbox builder's broken VMs."""
from __future__ import annotations

import pytest

from probes.host import Host
from probes.ldcache import check_cache, read_ld_cache
from probes.libtree import scan_tree
from probes.loader import resolve_tree

builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not there yet")
LIB = "/usr/local/lib/ollama"
RUNNER_ENV = {"LD_LIBRARY_PATH": f"{LIB}/cuda_v12:{LIB}"}


def vm(tmp_path, *faults):
    v = builder.build_vm(str(tmp_path / "vm"), faults=faults)
    return Host(getattr(v, "root", str(tmp_path / "vm")), {})


def by_path(tree):
    return {n.path: n for n in tree.walk()}


def test_healthy_vm_resolves_everything_and_the_cache_is_current(tmp_path):
    host = vm(tmp_path)
    tree = scan_tree(host, LIB, RUNNER_ENV)
    assert not [n.path for n in tree.walk() if n.unresolved or n.link_status not in (None, "ok")]
    r = resolve_tree(host, f"{LIB}/cuda_v12/libggml-cuda.so", RUNNER_ENV)
    cuda = next(n for n in r.walk() if n.name == "libcuda.so.1")
    assert cuda.found and cuda.via == "ld.so.cache" and cuda.path.startswith("/opt/vgpu/lib/")
    assert not check_cache(host).stale
    assert read_ld_cache(host).generator.startswith("vgpu-tui")


def test_faults_show_up_where_the_user_looks(tmp_path):
    host = vm(tmp_path / "a", "ggml-cuda-dangling")
    n = by_path(scan_tree(host, LIB, RUNNER_ENV))[f"{LIB}/cuda_v12/libggml-cuda.so"]
    assert n.link_status == "dangling"

    host = vm(tmp_path / "b", "cublas-missing")
    n = by_path(scan_tree(host, LIB, RUNNER_ENV))[f"{LIB}/cuda_v12/libggml-cuda.so"]
    assert "libcublas.so.12" in n.unresolved

    host = vm(tmp_path / "c", "shim-wrong-class")
    r = resolve_tree(host, f"{LIB}/cuda_v12/libggml-cuda.so", RUNNER_ENV)
    cuda = next(n for n in r.walk() if n.name == "libcuda.so.1")
    assert cuda.error and any("wrong class" in s for s in cuda.skipped)

    host = vm(tmp_path / "d", "ldcache-stale")
    check = check_cache(host)
    assert check.stale and "ldcache-stale" in {f.id for f in check.findings}
    assert any("libcuda.so.1" in f.missing_from_cache for f in check.folders)
