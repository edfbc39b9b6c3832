"""exports of hundreds of real libraries equal what `readelf --dyn-syms -W` lists, file by file.

The files: every shared library in the system library folders and the Python installation
(distinct real files, ELF, below 40 MB so readelf stays quick); a stable sample of at most
MAX_FILES of them keeps the test to a few seconds. The slow variant checks all of them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from probes.elf import read_elf_real, readelf_style

READELF = shutil.which("readelf")
pytestmark = pytest.mark.skipif(READELF is None, reason="readelf (binutils) is not installed")
MAX_FILES = 300
SYSTEM_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
ROW = re.compile(r"^\s*\d+:\s+[0-9a-f]+\s+(?:0x[0-9a-f]+|\d+)\s+(\S+)\s+(<OS specific>: \d+|\S+)\s+"
                 r"(DEFAULT|PROTECTED|HIDDEN|INTERNAL)(?:\s+\[[^\]]*\])?\s+(\S+)\s?(.*)$")
BINDS = {"<OS specific>: 10": "UNIQUE", "UNIQUE": "UNIQUE"}
TYPES = {"<OS specific>: 10": "IFUNC"}


def library_files():
    seen, out = set(), []
    folders = [d for d in SYSTEM_DIRS if os.path.isdir(d)]
    folders += [os.path.join(sys.base_prefix, "lib"), os.path.dirname(os.__file__)]
    for folder in folders:
        for dirpath, dirnames, names in os.walk(folder):
            if dirpath.count("/") - folder.count("/") > 3:
                dirnames[:] = []
            for name in names:
                if ".so" not in name:
                    continue
                p = os.path.join(dirpath, name)
                try:
                    real = os.path.realpath(p)
                    st = os.stat(real)
                except OSError:
                    continue
                if real in seen or not os.path.isfile(real) or st.st_size > 40 * 1024 * 1024:
                    continue
                with open(real, "rb") as fh:
                    if fh.read(4) != b"\x7fELF":
                        continue
                seen.add(real)
                out.append(real)
    return sorted(out)


def readelf_exports(path):
    out = subprocess.run([READELF, "--dyn-syms", "-W", path], capture_output=True,
                         text=True, errors="surrogateescape", env={"LC_ALL": "C"}).stdout
    rows, in_dynsym = [], False
    for line in out.splitlines():
        if line.startswith("Symbol table"):
            in_dynsym = "'.dynsym'" in line
            continue
        m = ROW.match(line) if in_dynsym else None
        if not m:
            continue
        typ, bind, _vis, ndx, name = m.groups()
        if ndx == "UND" or bind == "LOCAL" or not name:
            continue
        name = re.sub(r" \(\d+\)$", "", name)
        rows.append((name, TYPES.get(typ, typ), BINDS.get(bind, bind)))
    return rows


def mine(path):
    info = read_elf_real(path, cache=False)
    assert info.is_elf and info.error is None, (path, info.error)
    return [(readelf_style(s), s.type, s.bind) for s in info.exports]


def _compare(files):
    assert len(files) >= 100, "expected hundreds of libraries on this machine"
    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(readelf_exports, files))
    bad = []
    total = 0
    for path, ref in zip(files, refs):
        got = mine(path)
        total += len(got)
        if [r[0] for r in got] != [r[0] for r in ref]:
            bad.append((path, len(got), len(ref)))
            continue
        for g, r in zip(got, ref):
            if (g[1], g[2]) != (r[1], r[2]):
                bad.append((path, g, r))
                break
    assert not bad, bad[:5]
    assert total > 10000


def sample():
    files = library_files()
    step = max(1, len(files) // MAX_FILES)
    return files[::step][:MAX_FILES]


def test_exports_equal_readelf_for_hundreds_of_real_libraries():
    _compare(sample())


@pytest.mark.slow
def test_exports_equal_readelf_for_every_library():
    _compare(library_files())


def test_version_names_and_hidden_versions_of_libc():
    libc = next((p for p in library_files() if os.path.basename(p) == "libc.so.6"), None)
    if libc is None:
        pytest.skip("no glibc libc.so.6 here")
    info = read_elf_real(libc, cache=False)
    by = {(s.name, s.version): s for s in info.exports}
    # memcpy has a default @@GLIBC_2.14 and a hidden compat @GLIBC_2.2.5 on x86_64.
    assert by[("memcpy", "GLIBC_2.14")].default_version is True
    assert by[("memcpy", "GLIBC_2.2.5")].default_version is False
    assert info.soname == "libc.so.6" and info.machine == "x86_64" and info.elf_class == 64
    assert "GLIBC_2.2.5" in info.version_definitions


def test_header_facts_equal_readelf_dynamic_section():
    files = sample()[:40]
    for path in files:
        info = read_elf_real(path, cache=False)
        out = subprocess.run([READELF, "-dW", path], capture_output=True, text=True, errors="surrogateescape").stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
        soname = re.findall(r"\(SONAME\)\s+Library soname: \[(.*)\]", out)
        runpath = re.findall(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", out)
        assert list(info.needed) == needed, path
        assert info.soname == (soname[0] if soname else None), path
        assert list(info.runpath) == (runpath[0].split(":") if runpath else []), path


def test_exports_command_json_equals_readelf():
    """The command a user runs (`vgpu-tui exports LIB --json`) on a few of them, end to end."""
    import json

    files = sample()[::60][:3]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in files:
        proc = subprocess.run([sys.executable, "-m", "tui", "exports", path, "--json"], capture_output=True,
                              text=True, cwd=root)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        got = [(e["name"] if e["version"] is None else f"{e['name']}{'@@' if e['default_version'] else '@'}{e['version']}",
                e["type"], e["bind"]) for e in data["exports"]]
        ref = readelf_exports(path)
        # Names that are not UTF-8 come back as U+FFFD in JSON; none of these have any.
        assert got == ref, path
