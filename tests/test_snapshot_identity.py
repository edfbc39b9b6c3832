"""Snapshots: file identities from ELF headers, and a diff that puts the cause first.

These use the real gcc-built libraries shipped in probes/sandbox/prebuilt and real files in
tmp_path; the sandbox-VM tests (a fault planted after a snapshot) are in
test_snapshot_faults.py.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import snapshot as snap
from probes.host import Host

ROOT = Path(__file__).resolve().parents[1]
PREBUILT = ROOT / "probes" / "sandbox" / "prebuilt"


def _lib(name):
    p = PREBUILT / name
    if not p.exists():
        pytest.skip(f"{p} not shipped yet")
    return p


def test_identity_is_the_same_for_a_copy_and_differs_for_another_build(tmp_path):
    cuda = _lib("libcuda.so.1")
    copy = tmp_path / "copy.so"
    shutil.copy(cuda, copy)
    os.utime(copy, (1, 1))  # a different mtime is not a different library
    assert snap.elf_identity(str(copy)) == snap.elf_identity(str(cuda))
    # the shim built with another SONAME has the same size but a different dynamic section
    other = _lib("libcuda-wrong-soname.so.1")
    assert other.stat().st_size == cuda.stat().st_size
    assert snap.elf_identity(str(other)) != snap.elf_identity(str(cuda))
    assert snap.elf_identity(str(_lib("libcuda-32bit.so.1"))) not in (None, snap.elf_identity(str(cuda)))


def test_identity_of_a_huge_file_reads_only_its_headers(tmp_path):
    src = _lib("libcublasLt.so.12.8.4.1").read_bytes()
    big = tmp_path / "libcublasLt.so.12"
    with open(big, "wb") as fh:
        fh.write(src)
        fh.truncate(8 << 30)  # 8 GiB, sparse: hashing it whole would take many seconds
    start = time.perf_counter()
    ident = snap.elf_identity(str(big))
    assert time.perf_counter() - start < 0.5
    assert ident == snap.elf_identity(str(_lib("libcublasLt.so.12.8.4.1")))


def test_identity_of_garbage_is_none(tmp_path):
    (tmp_path / "text.so").write_text("not an ELF file")
    (tmp_path / "short.so").write_bytes(b"\x7fELF\x02")
    bad = bytearray(_lib("libcuda.so.1").read_bytes()[:64])
    bad[32:40] = (10 ** 12).to_bytes(8, "little")  # program headers far past the end
    (tmp_path / "trunc.so").write_bytes(bytes(bad))
    assert snap.elf_identity(str(tmp_path / "text.so")) is None
    assert snap.elf_identity(str(tmp_path / "short.so")) is None
    assert snap.elf_identity(str(tmp_path / "trunc.so")) is not None  # header hashed, no crash
    assert snap.elf_identity(str(tmp_path / "absent.so")) is None


def _tree(tmp_path):
    root = tmp_path / "root"
    lib = root / "usr/local/lib/ollama"
    (lib / "cuda_v12").mkdir(parents=True)
    shutil.copy(_lib("libggml-cuda.so"), lib / "cuda_v12/libggml-cuda.so")
    shutil.copy(_lib("libcudart.so.12.8.90"), lib / "cuda_v12/libcudart.so.12.8.90")
    os.symlink("libcudart.so.12.8.90", lib / "cuda_v12/libcudart.so.12")
    os.symlink("cuda_v12/libggml-cuda.so", lib / "libggml-cuda.so")
    (lib / "notes.txt").write_text("x")
    return root, Host(str(root))


def test_a_retargeted_link_ranks_above_a_touched_file(tmp_path):
    root, host = _tree(tmp_path)
    lib = "/usr/local/lib/ollama"
    before = {"tree": snap.tree_entries(host, [lib])}
    os.utime(root / "usr/local/lib/ollama/notes.txt", (5, 5))
    os.unlink(root / "usr/local/lib/ollama/cuda_v12/libcudart.so.12")
    os.symlink("/missing/libcudart.so.12", root / "usr/local/lib/ollama/cuda_v12/libcudart.so.12")
    after = {"tree": snap.tree_entries(host, [lib])}
    changes = snap.diff(before, after)
    assert changes[0].key == lib + "/cuda_v12/libcudart.so.12"
    assert changes[0].kind == "link-target" and "dangling" in changes[0].text
    assert changes[-1].key == lib + "/notes.txt" and changes[-1].kind == "mtime"


def test_a_missing_backend_outranks_a_new_file_and_a_new_variable_is_named(tmp_path):
    root, host = _tree(tmp_path)
    lib = "/usr/local/lib/ollama"
    before = {"tree": snap.tree_entries(host, [lib]), "env": {"configured": {"OLLAMA_DEBUG": "1"}, "running": None}}
    os.rename(root / "usr/local/lib/ollama/cuda_v12/libggml-cuda.so", root / "usr/local/lib/ollama/cuda_v12/libggml-cuda.so.1")
    after = {"tree": snap.tree_entries(host, [lib]),
             "env": {"configured": {"OLLAMA_DEBUG": "1", "OLLAMA_LLM_LIBRARY": "cuda"}, "running": None}}
    changes = snap.diff(before, after)
    kinds = [(c.kind, c.key) for c in changes]
    # a rename is one change that names both paths, above the new variable
    assert kinds[0] == ("moved", lib + "/cuda_v12/libggml-cuda.so")
    assert changes[0].text.endswith("moved to " + lib + "/cuda_v12/libggml-cuda.so.1")
    assert ("env", "env.configured.OLLAMA_LLM_LIBRARY") in kinds
    assert not any(k == ("new", lib + "/cuda_v12/libggml-cuda.so.1") for k in kinds)
    # the top-level link into cuda_v12 is now dangling: named, and above the new file
    assert any(c.key == lib + "/libggml-cuda.so" and c.kind == "link-consequence" for c in changes)


def test_identical_snapshots_have_no_changes(tmp_path):
    root, host = _tree(tmp_path)
    s = {"tree": snap.tree_entries(host, ["/usr/local/lib/ollama"])}
    assert snap.diff(s, json.loads(json.dumps(s))) == []


def test_snapshot_files_round_trip_and_bad_names_are_refused(tmp_path):
    folder = str(tmp_path / "snaps")
    data = {"snapshot": snap.FORMAT, "name": "good", "time": "2026-01-01T00:00:00Z", "root": "/"}
    path = snap.save(data, "good", folder)
    assert path == os.path.join(folder, "good.json")
    assert snap.load("good", folder) == data
    assert [s.name for s in snap.list_snapshots(folder)] == ["good"]
    from probes.errors import ToolError
    with pytest.raises(ToolError):
        snap.snapshot_path("bad name!", folder)
    with pytest.raises(ToolError):
        snap.load("absent", folder)
    (tmp_path / "other.json").write_text("{\"x\": 1}")
    with pytest.raises(ToolError, match="not a vgpu-tui snapshot"):
        snap.load(str(tmp_path / "other.json"))


def test_snapshot_cli_refuses_missing_snapshot_with_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tui", "snapshot", "diff", "nothere", "--dir", str(tmp_path),
                          "--root", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no snapshot 'nothere'" in out.stderr
