"""resolve of hundreds of real libraries gives the path the real loader (`ldd`) gives for
every direct dependency."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from probes.host import Host
from probes.loader import resolve_tree

LDD = shutil.which("ldd")
pytestmark = pytest.mark.skipif(LDD is None, reason="ldd is not installed")
FOLDERS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64")
MAX_FILES = 200


def candidates():
    seen, out = set(), []
    folders = [d for d in FOLDERS if os.path.isdir(d)] + [os.path.dirname(os.__file__) + "/lib-dynload"]
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            p = os.path.join(folder, name)
            if ".so" not in name or not os.path.isfile(p) or os.path.islink(p):
                continue
            real = os.path.realpath(p)
            if real in seen:
                continue
            with open(real, "rb") as fh:
                if fh.read(4) != b"\x7fELF":
                    continue
            seen.add(real)
            out.append(p)
    return out


def ldd(path):
    proc = subprocess.run([LDD, path], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    res = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s+(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$", line)
        if m:
            res[m.group(1)] = m.group(2)
    return res


def test_direct_dependencies_match_ldd_for_hundreds_of_libraries():
    files = candidates()
    step = max(1, len(files) // MAX_FILES)
    files = files[::step][:MAX_FILES]
    assert len(files) >= 100
    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(ldd, files))
    host = Host("/", {}, live=True)
    compared, bad = 0, []
    for path, ref in zip(files, refs):
        tree = resolve_tree(host, path, {})
        for dep in tree.children:
            if dep.name not in ref:
                continue  # ldd lists the interpreter without "=>"
            mine = dep.path if dep.error is None else "not found"
            compared += 1
            if mine != ref[dep.name]:
                bad.append((path, dep.name, ref[dep.name], mine, dep.via))
    assert not bad, bad[:5]
    assert compared >= 200


def test_resolve_json_of_a_real_library_has_the_contract_fields():
    import json
    from pathlib import Path

    libz = next((p for p in candidates() if os.path.basename(p).startswith("libz.so")), None)
    if libz is None:
        pytest.skip("no libz here")
    proc = subprocess.run([sys.executable, "-m", "tui", "resolve", libz, "--json", "--clean-env"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    rc, data = proc.returncode, json.loads(proc.stdout)
    assert rc == 0
    assert set(data) >= {"path", "rpath", "runpath", "needed", "findings"}
    libc = next(n for n in data["needed"] if n["name"] == "libc.so.6")
    assert libc["found"] == ldd(libz)["libc.so.6"]
    assert libc["via"] in ("ld.so.cache", "default") and libc["tried"]


def test_every_search_of_real_libraries_tries_what_ld_debug_shows(tmp_path):
    """For real libraries, each library ld.so searched (the whole tree) was tried at the same
    files in the same order, legacy hwcap subfolders and glibc-hwcaps included, with an
    LD_LIBRARY_PATH folder (holding a tls/ subfolder) in front of the cache."""
    from test_loader_rules import ld_debug_searches, our_searches

    (tmp_path / "e/tls").mkdir(parents=True)
    env = {"LD_LIBRARY_PATH": f"{tmp_path}/e"}
    files = candidates()
    files = files[::max(1, len(files) // 150)][:150]
    host = Host("/", {}, live=True)
    searches, bad = 0, []
    for path in files:
        real = ld_debug_searches(path, env)
        mine = our_searches(resolve_tree(host, path, env))
        searches += len(real)
        if mine != real:
            bad.append((path, {k: (real.get(k), mine.get(k)) for k in set(real) | set(mine) if real.get(k) != mine.get(k)}))
    assert not bad, bad[:2]
    assert len(files) >= 100 and searches >= 300
    print(f"{len(files)} libraries, {searches} searches compared in full")
