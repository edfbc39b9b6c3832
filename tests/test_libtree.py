"""The library tree: kinds, links as written and where they lead, ELF facts, unresolved
dependencies; odd entries are shown and the walk goes on."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probes.host import Host
from probes.libtree import libraries, scan_tree

ROOT = Path(__file__).resolve().parents[1]

GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is needed to build the libraries")


def cc(out, src, *flags, soname=None):
    out.parent.mkdir(parents=True, exist_ok=True)
    c = out.parent / (out.name + ".c")
    c.write_text(src)
    subprocess.run([GCC, "-shared", "-fPIC", "-o", str(out), str(c), f"-Wl,-soname,{soname or out.name}", *flags],
                   check=True, capture_output=True)


@pytest.fixture()
def root(tmp_path):
    """A --root with an Ollama-like lib folder full of the usual trouble."""
    lib = tmp_path / "usr/local/lib/ollama"
    cc(lib / "cuda_v12/libcudart.so.12.8.90", "int cudaGetDeviceCount(int*c){*c=0;return 0;}\n", soname="libcudart.so.12")
    os.symlink("libcudart.so.12.8.90", lib / "cuda_v12/libcudart.so.12")
    # libggml-cuda.so needs libcublas.so.12, which is then removed (the cublas-missing fault).
    cc(lib / "cuda_v12/libcublas.so.12", "int cublasCreate_v2(void*h){return 0;}\n")
    cc(lib / "cuda_v12/libggml-cuda.so", "extern int cudaGetDeviceCount(int*);extern int cublasCreate_v2(void*);"
       "int g(void){int c;return cudaGetDeviceCount(&c)+cublasCreate_v2(0);}\n",
       f"-L{lib}/cuda_v12", "-l:libcudart.so.12", "-l:libcublas.so.12", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN")
    os.unlink(lib / "cuda_v12/libcublas.so.12")
    os.symlink("cuda_v12/libggml-cuda.so", lib / "libggml-cuda.so")          # inside the tree
    os.symlink("/opt/vgpu/lib/libcuda.so.1", lib / "libcuda.so.1")            # dangling in the root
    os.symlink("../../../../../../../../etc/passwd", lib / "escape.so")      # climbs above the root
    os.symlink("loop.so", lib / "loop.so")
    (lib / "libx.so").mkdir()                                                  # a folder named like a library
    (lib / "notelf.so").write_text("hello\n")
    os.mkfifo(lib / "pipe.so")
    with open(lib / "libhuge.so", "wb") as fh:
        fh.truncate(10 * 1024 ** 3)
    with open(os.fsencode(str(lib)) + b"/lib\xff.so", "wb") as fh:
        fh.write(b"\x7fELF\x02\x01\x01")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return tmp_path


def by_name(tree):
    return {n.name: n for n in tree.walk()}


def test_tree_shows_every_entry_and_its_trouble(root):
    host = Host(str(root), {})
    tree = scan_tree(host, "/usr/local/lib/ollama", {})
    n = by_name(tree)
    assert n["cuda_v12"].kind == "dir"
    link = n["libggml-cuda.so"]
    assert (link.kind, link.link_target, link.resolves_to, link.link_status) == (
        "symlink", "cuda_v12/libggml-cuda.so", "/usr/local/lib/ollama/cuda_v12/libggml-cuda.so", "ok")
    assert not link.leaves_tree and link.elf.soname == "libggml-cuda.so"
    assert n["libcuda.so.1"].link_status == "dangling" and n["libcuda.so.1"].resolves_to == "/opt/vgpu/lib/libcuda.so.1"
    assert n["escape.so"].leaves_root and n["escape.so"].leaves_tree
    assert n["loop.so"].link_status == "loop"
    assert n["libx.so"].kind == "dir"
    assert n["pipe.so"].kind == "fifo"
    assert n["notelf.so"].elf.error.startswith("not an ELF")
    assert n["libhuge.so"].elf.error == "not an ELF file"
    assert any(k.startswith("lib") and k.endswith(".so") and "\udcff" in k for k in n)
    # The backend finds libcudart through $ORIGIN but libcublas nowhere.
    ggml = n["cuda_v12"].children
    real = next(c for c in ggml if c.name == "libggml-cuda.so")
    assert real.unresolved == ("libcublas.so.12",)
    cudart = next(d for d in real.dependencies if d.name == "libcudart.so.12")
    assert cudart.via == "runpath" and cudart.found == "/usr/local/lib/ollama/cuda_v12/libcudart.so.12"
    assert {l.name for l in libraries(tree)} >= {"libggml-cuda.so", "libcudart.so.12", "libcudart.so.12.8.90"}


def run_cli(*argv):
    """The real command line, in a child process (as a user runs it)."""
    proc = subprocess.run([sys.executable, "-m", "tui", *argv], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, NO_COLOR="1"))
    return proc.returncode, proc.stdout


def test_tree_command_text_and_json(root):
    rc, text = run_cli("tree", "/usr/local/lib/ollama", "--root", str(root), "--clean-env")
    assert rc == 1  # the only libggml-cuda.so cannot load (libcublas missing): an error, as in `report`
    assert "libcuda.so.1 -> /opt/vgpu/lib/libcuda.so.1 (dangling)" in text
    assert "loop.so -> loop.so (loop)" in text
    assert "missing: libcublas.so.12" in text
    rc, out = run_cli("tree", "/usr/local/lib/ollama", "--root", str(root), "--json", "--exports", "--clean-env")
    data = json.loads(out)
    assert data["root"] == "/usr/local/lib/ollama"
    ids = {f["id"] for f in data["findings"]}
    assert "dangling-link-libcuda.so.1" in ids and "unresolved-deps-libggml-cuda.so" in ids
    names = json.dumps(data)
    assert "cudaGetDeviceCount" in names  # the exports are in the JSON with --exports


def test_exports_and_resolve_commands_under_root(root):
    rc, out = run_cli("exports", "/usr/local/lib/ollama/cuda_v12/libcudart.so.12", "--root", str(root), "--json")
    data = json.loads(out)
    assert rc == 0 and data["soname"] == "libcudart.so.12"
    assert {"name": "cudaGetDeviceCount", "version": None, "default_version": True, "type": "FUNC", "bind": "GLOBAL"} in data["exports"]
    rc, out = run_cli("resolve", "/usr/local/lib/ollama/libggml-cuda.so", "--root", str(root), "--clean-env")
    assert rc == 1  # libcublas.so.12 cannot be found: an error finding
    assert "libcublas.so.12 not found" in out and "Paths considered in this order:" in out
    # $ORIGIN is the link's folder (lib/ollama), so libcudart is not found through it either.
    assert "libcudart.so.12 not found" in out
    rc, _ = run_cli("exports", "/usr/local/lib/ollama/libx.so", "--root", str(root))
    assert rc == 2
