"""The ELF cache: a second look and a second start cost almost nothing, and a changed file
is never answered from the cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from probes import elfcache
from probes.elf import read_elf_real

GCC = shutil.which("gcc")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPU_TUI_CACHE_DIR", str(tmp_path / "cache"))
    elfcache.clear_memory()
    yield tmp_path / "cache"
    elfcache.clear_memory()


def _libc():
    for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib/libc.so.6"):
        if os.path.exists(p):
            return os.path.realpath(p)
    pytest.skip("no libc.so.6")


def test_disk_cache_gives_the_same_answer_in_a_new_process(cache, tmp_path):
    lib = str(tmp_path / "libc-copy.so.6")
    shutil.copy(_libc(), lib)
    first = read_elf_real(lib)
    files = os.listdir(cache / f"elf-v{elfcache.FORMAT}")
    assert len(files) == 1
    code = ("import sys, json; sys.path.insert(0, %r); from probes.elf import read_elf_real; from probes import elfcache;"
            "i = read_elf_real(%r); print(json.dumps([elfcache.stats['disk_hits'], len(i.exports), i.soname, "
            "[list(s) for s in i.exports[:50]]]))") % (os.getcwd(), lib)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, VGPU_TUI_CACHE_DIR=str(cache)))
    import json
    hits, n, soname, some = json.loads(out.stdout)
    assert hits == 1 and n == len(first.exports) and soname == "libc.so.6"
    assert [tuple(s) for s in some] == [tuple(s) for s in first.exports[:50]]


def test_memory_hit_is_fast_and_a_changed_file_is_read_again(cache, tmp_path):
    lib = tmp_path / "libz-copy.so"
    src = "/lib/x86_64-linux-gnu/libz.so.1"
    if not os.path.exists(src):
        pytest.skip("no libz")
    shutil.copy(src, lib)
    a = read_elf_real(str(lib))
    t = time.perf_counter()
    for _ in range(100):
        b = read_elf_real(str(lib))
    assert (time.perf_counter() - t) / 100 < 0.002
    assert b.exports == a.exports
    shutil.copy(_libc(), lib)            # same path, other content: new size/mtime/ctime
    c = read_elf_real(str(lib))
    assert c.soname == "libc.so.6" and c.exports != a.exports


def test_corrupt_cache_entry_is_ignored(cache, tmp_path):
    lib = str(tmp_path / "libc-copy.so.6")
    shutil.copy(_libc(), lib)
    read_elf_real(lib)
    folder = cache / f"elf-v{elfcache.FORMAT}"
    for name in os.listdir(folder):
        (folder / name).write_text("{not json")
    elfcache.clear_memory()
    assert read_elf_real(lib).soname == "libc.so.6"


def test_no_disk_cache_when_disabled(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("VGPU_TUI_NO_DISK_CACHE", "1")
    lib = str(tmp_path / "libc-copy.so.6")
    shutil.copy(_libc(), lib)
    read_elf_real(lib)
    assert not cache.exists()


@pytest.mark.skipif(GCC is None, reason="gcc is needed")
def test_non_utf8_symbol_names_survive_the_disk_cache(cache, tmp_path):
    c = tmp_path / "s.c"
    c.write_text('int f(void) __asm__("f\\xff\\xfeweird"); int f(void){return 1;}\n')
    lib = tmp_path / "libweird.so"
    subprocess.run([GCC, "-shared", "-fPIC", "-o", str(lib), str(c)], check=True, capture_output=True)
    a = read_elf_real(str(lib))
    elfcache.clear_memory()
    b = read_elf_real(str(lib))
    assert elfcache.stats["disk_hits"] >= 1
    assert a.exports == b.exports and any("\udcff" in s.name for s in b.exports)
