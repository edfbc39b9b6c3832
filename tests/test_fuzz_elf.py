"""Bad input: a mutation fuzzer over real libraries (thousands of cases, zero exceptions,
each problem a clear error value) and the odd files a real system has."""
from __future__ import annotations

import os
import random
import shutil
import struct
import sys
import tempfile

import pytest

from probes.elf import ElfInfo, parse_bytes, read_elf, read_elf_real
from probes.host import Host

CASES_PER_FILE = 700


def seeds():
    """A few small real libraries of different shapes (glibc, zlib, a Python extension)."""
    picks = []
    for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libdl.so.2",
              "/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libutil.so.1"):
        if os.path.exists(p):
            picks.append(os.path.realpath(p))
    dyn = os.path.join(os.path.dirname(os.__file__), "lib-dynload")
    if os.path.isdir(dyn):
        picks += sorted(os.path.join(dyn, n) for n in os.listdir(dyn) if n.startswith(("_struct", "math")))[:2]
    return [p for p in picks if os.path.getsize(p) < 400_000][:5]


def mutations(data: bytes, rng: random.Random):
    """Bit flips, field smashes and truncations, aimed at the headers and tables we read."""
    n = len(data)
    cls64 = data[4] == 2
    e_shoff = struct.unpack_from("<Q" if cls64 else "<I", data, 0x28 if cls64 else 0x20)[0]
    hot = [(0, 64), (64, min(n, 4096)), (max(0, e_shoff - 64), n)]
    for _ in range(CASES_PER_FILE):
        b = bytearray(data)
        kind = rng.randrange(5)
        if kind == 0:                                   # flip bits in a hot region
            lo, hi = rng.choice(hot)
            for _ in range(rng.randint(1, 8)):
                if hi > lo:
                    b[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
        elif kind == 1:                                 # smash a 2/4/8-byte field with an extreme value
            lo, hi = rng.choice(hot)
            size = rng.choice((2, 4, 8))
            off = rng.randrange(lo, max(lo + 1, hi - size))
            val = rng.choice((0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2 ** 63 - 1, 2 ** 64 - 1, n, n + 1))
            b[off:off + size] = (val & (2 ** (8 * size) - 1)).to_bytes(size, "little")
        elif kind == 2:                                 # truncate
            del b[rng.randrange(0, n):]
        elif kind == 3:                                 # random bytes anywhere
            for _ in range(rng.randint(1, 32)):
                b[rng.randrange(n)] = rng.randrange(256)
        else:                                           # the ELF header fields one by one
            off = rng.randrange(4, 64)
            b[off] = rng.randrange(256)
        yield bytes(b)


def test_mutation_fuzzer_thousands_of_cases_no_exception():
    files = seeds()
    if not files:
        pytest.skip("no small real libraries found")
    rng = random.Random(20261129)
    total = errors = 0
    for path in files:
        data = open(path, "rb").read()
        for case in mutations(data, rng):
            info = parse_bytes(case, path)   # must never raise
            total += 1
            assert isinstance(info, ElfInfo)
            if info.error is not None:
                errors += 1
                assert isinstance(info.error, str) and info.error and "\n" not in info.error
    assert total >= 2000
    assert errors > total // 20  # the fuzzer really breaks things, and each break is reported


def test_mutated_files_on_disk_through_the_cached_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPU_TUI_CACHE_DIR", str(tmp_path / "cache"))
    files = seeds()
    if not files:
        pytest.skip("no small real libraries found")
    rng = random.Random(7)
    data = open(files[0], "rb").read()
    for i, case in zip(range(60), mutations(data, rng)):
        p = tmp_path / f"m{i}.so"
        p.write_bytes(case)
        info = read_elf_real(str(p))
        again = read_elf_real(str(p))       # from the cache: the same answer
        assert (info.error, info.exports) == (again.error, again.exports)


def test_odd_files_are_clear_errors(tmp_path):
    (tmp_path / "libx.so").mkdir()
    assert read_elf_real(str(tmp_path / "libx.so")).error == "is a directory"
    assert read_elf_real(str(tmp_path / "nope.so")).error == "no such file or directory"
    (tmp_path / "empty.so").write_bytes(b"")
    assert read_elf_real(str(tmp_path / "empty.so")).error.startswith("not an ELF file")
    (tmp_path / "trunc.so").write_bytes(b"\x7fELF\x02\x01\x01")
    info = read_elf_real(str(tmp_path / "trunc.so"))
    assert info.is_elf and "truncated" in info.error
    os.mkfifo(tmp_path / "fifo.so")
    assert "FIFO" in read_elf_real(str(tmp_path / "fifo.so")).error
    assert "character device" in read_elf_real("/dev/null").error
    for proc in ("/proc/self/status", "/proc/self/maps", "/proc/cpuinfo"):
        if os.path.exists(proc):
            assert read_elf_real(proc).error == "not an ELF file (empty)" or read_elf_real(proc).error == "not an ELF file"
    exe = read_elf_real("/proc/self/exe")
    assert exe.is_elf and exe.error is None  # a link of /proc to a real ELF is fine


def test_a_10_gb_sparse_file_is_not_read_whole(tmp_path):
    p = tmp_path / "libhuge.so"
    with open(p, "wb") as fh:
        fh.truncate(10 * 1024 ** 3)
    info = read_elf_real(str(p))
    assert info.error == "not an ELF file" and info.size == 10 * 1024 ** 3
    # An ELF header that claims tables 10 GB out: an error, not a 10 GB read.
    real = seeds()
    if real:
        head = bytearray(open(real[0], "rb").read(64))
        head[0x20:0x28] = (20 * 1024 ** 3).to_bytes(8, "little")   # e_phoff: 20 GB out
        with open(p, "r+b") as fh:
            fh.write(bytes(head))
        info = read_elf_real(str(p), cache=False)
        assert info.is_elf and "truncated: program headers" in info.error


def test_unreadable_file(tmp_path):
    """A file the user may not read (as root: checked with the effective uid of `nobody`)."""
    folder = tempfile.mkdtemp(prefix="vgpu-unreadable-")
    try:
        os.chmod(folder, 0o755)
        p = os.path.join(folder, "libsecret.so")
        with open(p, "wb") as fh:
            fh.write(b"\x7fELF" + b"\0" * 60)
        os.chmod(p, 0)
        if os.geteuid() != 0:
            assert read_elf_real(p, cache=False).error == "permission denied"
            return
        os.setegid(65534)
        os.seteuid(65534)
        try:
            error = read_elf_real(p, cache=False).error
        finally:
            os.seteuid(0)
            os.setegid(0)
        assert error == "permission denied"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_names_that_are_not_utf8_and_links_that_go_nowhere(tmp_path):
    src = seeds()
    if not src:
        pytest.skip("no small real libraries found")
    raw = os.fsencode(str(tmp_path)) + b"/lib\xff\xfe.so"
    with open(raw, "wb") as fh:
        fh.write(open(src[0], "rb").read())
    host = Host(str(tmp_path))
    name = os.fsdecode(b"/lib\xff\xfe.so")
    info = read_elf(host, name)
    assert info.is_elf and info.error is None and info.path == name
    os.symlink("missing.so", tmp_path / "dangling.so")
    assert "does not exist" in read_elf(host, "/dangling.so").error
    os.symlink("loop.so", tmp_path / "loop.so")
    assert "loop" in read_elf(host, "/loop.so").error


def test_tree_and_resolver_survive_a_folder_of_mutated_libraries(tmp_path):
    """Broken libraries beside each other: the tree lists them all and the resolver answers."""
    from probes.libtree import scan_tree
    from probes.loader import resolve_tree

    files = seeds()
    if not files:
        pytest.skip("no small real libraries found")
    rng = random.Random(11)
    data = open(files[0], "rb").read()
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, case in zip(range(150), mutations(data, rng)):
        (lib / f"libm{i}.so").write_bytes(case)
    host = Host(str(tmp_path), {})
    tree = scan_tree(host, "/lib", {"LD_LIBRARY_PATH": "/lib"}, exports=True)
    assert len(tree.children) == 150
    for n in tree.children[:60]:
        resolve_tree(host, n.path, {"LD_LIBRARY_PATH": "/lib"})
