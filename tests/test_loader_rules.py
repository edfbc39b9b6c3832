"""Each rule of glibc's search, on small gcc-built libraries, checked against the real loader
(`ldd`, which runs ld.so --list) as well as against the answer we expect."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from probes.elf import read_elf_real
from probes.host import Host
from probes.loader import LoaderEnv, find_library, resolve_tree

GCC = shutil.which("gcc")
LDD = shutil.which("ldd")
pytestmark = pytest.mark.skipif(GCC is None or LDD is None, reason="gcc and ldd are needed")
HOST = Host("/", {}, live=True)


def cc(out: Path, src: str, *flags: str, soname: str = None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    c = out.with_name(out.name.replace(".", "_") + ".c")
    c.write_text(src)
    argv = [GCC, "-shared", "-fPIC", "-o", str(out), str(c)] + list(flags)
    argv.append(f"-Wl,-soname,{soname or out.name}")
    subprocess.run(argv, check=True, capture_output=True)
    return out


def lib_a(folder: Path, name="liba.so") -> Path:
    return cc(folder / name, "int a(void){return 1;}\n")


def needs_a(out: Path, *flags: str, needs=("a",), libdir=None) -> Path:
    """A library that needs liba.so (linked against the copy in `libdir`)."""
    src = "".join(f"extern int {n}(void);" for n in needs) + "int m(void){return " + "+".join(f"{n}()" for n in needs) + ";}\n"
    links = [f"-l{n}" for n in needs]
    return cc(out, src, f"-L{libdir}", *links, *flags)


def ldd(path: Path, env=None):
    """{name: path or 'not found'} and the error line, as the real loader says."""
    proc = subprocess.run([LDD, str(path)], capture_output=True, text=True, env=dict(env or {}, PATH="/usr/bin:/bin"))
    res = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s+(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$", line)
        if m:
            res[m.group(1)] = m.group(2)
    err = next((l for l in (proc.stdout + proc.stderr).splitlines() if "error while loading" in l), None)
    return res, err


def ours(path: Path, env=None):
    tree = resolve_tree(HOST, str(path), dict(env or {}))
    res = {}
    for c in tree.children:
        res[c.name] = c.path if c.error is None else "not found"
    errors = [c.error for c in tree.walk() if c.error and "No such file" not in c.error]
    return res, (errors[0] if errors else None), tree


def agree(path: Path, env=None):
    """Our direct dependencies equal ldd's; returns our tree for further checks."""
    real, real_err = ldd(path, env)
    mine, my_err, tree = ours(path, env)
    if real_err:
        assert my_err and my_err in real_err, (real_err, my_err)
        return tree
    for name, where in mine.items():
        if name in real:
            assert real[name] == where, (name, real[name], where)
    return tree


def node(tree, name):
    return next(c for c in tree.children if c.name == name)


def test_rpath_beats_ld_library_path_which_beats_runpath(tmp_path):
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    lib_a(d1), lib_a(d2)
    rp = needs_a(tmp_path / "rp/librp.so", "-Wl,--disable-new-dtags", f"-Wl,-rpath,{d1}", libdir=d1)
    ru = needs_a(tmp_path / "ru/libru.so", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{d1}", libdir=d1)
    env = {"LD_LIBRARY_PATH": str(d2)}
    t = agree(rp, env)
    assert (node(t, "liba.so").path, node(t, "liba.so").via) == (f"{d1}/liba.so", "rpath")
    t = agree(ru, env)
    assert (node(t, "liba.so").path, node(t, "liba.so").via) == (f"{d2}/liba.so", "ld_library_path")
    t = agree(ru, {})
    assert (node(t, "liba.so").path, node(t, "liba.so").via) == (f"{d1}/liba.so", "runpath")
    # Every path tried before the hit is listed, hwcaps subfolders first.
    assert node(t, "liba.so").tried[-1] == f"{d1}/liba.so"


def test_rpath_is_inherited_from_the_parent_only_without_runpath(tmp_path):
    d1, mid = tmp_path / "d1", tmp_path / "mid"
    lib_a(d1)
    plain = needs_a(mid / "libmid.so", libdir=d1)                                   # no RPATH, no RUNPATH
    own_runpath = needs_a(mid / "libmidr.so", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{tmp_path}/nowhere", libdir=d1)
    for child, expect in ((plain, f"{d1}/liba.so"), (own_runpath, "not found")):
        name = child.name[3:-3]
        top = cc(tmp_path / f"top-{name}/libtop.so", f"extern int m(void);int t(void){{return m();}}\n",
                 f"-L{mid}", f"-l{name}", "-Wl,--disable-new-dtags", f"-Wl,-rpath,{d1}:{mid}")
        t = agree(top)
        kid = node(t, child.name)
        assert kid.via == "rpath"
        a = next(c for c in kid.children if c.name == "liba.so")
        assert (a.path if a.error is None else "not found") == expect
        if expect != "not found":
            assert a.via == "rpath"  # the parent's RPATH, searched for the child
        real, _ = ldd(top)
        assert real["liba.so"] == expect


def test_origin_is_the_folder_the_object_was_found_in_even_through_a_symlinked_folder(tmp_path):
    store, ollama = tmp_path / "store", tmp_path / "ollama"
    lib_a(store / "deps"), lib_a(ollama / "deps")
    g = needs_a(store / "real/libg.so", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../deps", libdir=store / "deps")
    (ollama / "cuda").symlink_to(store / "real")               # a symlinked folder
    (ollama / "libg-link.so").symlink_to(store / "real/libg.so")  # a symlinked file
    # Through the folder link, $ORIGIN is ollama/cuda; the kernel then resolves cuda/.. to store.
    t = agree(ollama / "cuda/libg.so")
    a = node(t, "liba.so")
    assert a.path == f"{ollama}/cuda/../deps/liba.so" and a.realpath == f"{store}/deps/liba.so"
    # Through the file link, $ORIGIN is the link's folder, not the real file's.
    t = agree(ollama / "libg-link.so")
    a = node(t, "liba.so")
    assert a.path == f"{ollama}/../deps/liba.so" or a.error  # ollama/../deps does not exist here
    real, _ = ldd(ollama / "libg-link.so")
    assert real["liba.so"] == "not found" and a.error
    assert f"{ollama}/../deps/liba.so" in a.tried


def test_nodeflib_refuses_the_cache_and_default_folders(tmp_path):
    m = cc(tmp_path / "libnd.so", "extern int zlibVersion(void);int m(void){return zlibVersion()!=0;}\n",
           "-nostdlib", "-lz", "-Wl,-z,nodefaultlib")
    assert read_elf_real(str(m)).nodeflib
    t = agree(m)
    z = node(t, "libz.so.1")
    assert z.error and list(z.tried) == ld_debug_tried(m, {}, "libz.so.1")  # nothing opened at all
    real, _ = ldd(m)
    assert real["libz.so.1"] == "not found"
    libz = os.path.dirname(os.path.realpath(ldd(tmp_path / "libnd.so", {"LD_LIBRARY_PATH": "/lib/x86_64-linux-gnu"})[0].get("libz.so.1", "/x/y")))
    t = agree(m, {"LD_LIBRARY_PATH": libz})
    assert node(t, "libz.so.1").via == "ld_library_path"


def test_a_missing_dependency_lists_every_path_considered(tmp_path):
    d = tmp_path / "d"
    lib_a(d)
    m = needs_a(tmp_path / "libm.so", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{tmp_path}/r1:{tmp_path}/r2", libdir=d)
    (d / "liba.so").unlink()
    t = agree(m, {"LD_LIBRARY_PATH": f"{tmp_path}/e1"})
    a = node(t, "liba.so")
    assert a.path is None or a.error
    tried = list(a.tried)
    order = [tried.index(f"{tmp_path}/e1/liba.so"), tried.index(f"{tmp_path}/r1/liba.so"), tried.index(f"{tmp_path}/r2/liba.so")]
    assert order == sorted(order)
    assert any(p.endswith("/x86_64-linux-gnu/liba.so") or p in ("/lib/liba.so", "/usr/lib/liba.so") for p in tried)


def _patched(src: Path, dst: Path, *, ei_class=None, machine=None) -> Path:
    data = bytearray(src.read_bytes())
    if ei_class is not None:
        data[4] = ei_class
    if machine is not None:
        data[18:20] = machine.to_bytes(2, "little")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def test_wrong_class_or_machine_on_the_path_is_skipped(tmp_path):
    good = lib_a(tmp_path / "good")
    _patched(good, tmp_path / "c32/liba.so", ei_class=1)      # gcc -m32 does not work here: patch EI_CLASS
    _patched(good, tmp_path / "arm/liba.so", machine=183)     # e_machine = EM_AARCH64
    m = needs_a(tmp_path / "libm.so", libdir=tmp_path / "good")
    env = {"LD_LIBRARY_PATH": f"{tmp_path}/c32:{tmp_path}/arm:{tmp_path}/good"}
    t = agree(m, env)
    a = node(t, "liba.so")
    assert a.path == f"{tmp_path}/good/liba.so" and a.via == "ld_library_path"
    assert f"{tmp_path}/c32/liba.so (wrong class)" in a.skipped
    assert f"{tmp_path}/arm/liba.so (wrong machine)" in a.skipped
    # find_library alone says the same for a requester of this kind.
    r = find_library(HOST, "liba.so", env, read_elf_real(str(m)))
    assert r.found == f"{tmp_path}/good/liba.so" and len(r.skipped) == 2


def test_dangling_symlink_is_skipped_and_a_loop_ends_that_list(tmp_path):
    good = lib_a(tmp_path / "good")
    m = needs_a(tmp_path / "libm.so", libdir=tmp_path / "good")
    (tmp_path / "dang").mkdir()
    (tmp_path / "dang/liba.so").symlink_to(tmp_path / "nowhere/liba.so")
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop/liba.so").symlink_to("liba.so")
    t = agree(m, {"LD_LIBRARY_PATH": f"{tmp_path}/dang:{tmp_path}/good"})
    assert node(t, "liba.so").path == str(good)
    t = agree(m, {"LD_LIBRARY_PATH": f"{tmp_path}/loop:{tmp_path}/good"})
    assert node(t, "liba.so").error  # ELOOP ends the LD_LIBRARY_PATH list, as ldd shows


def test_files_that_stop_the_load_give_glibcs_message(tmp_path):
    lib_a(tmp_path / "good")
    m = needs_a(tmp_path / "libm.so", libdir=tmp_path / "good")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/liba.so").write_bytes(b"")
    (tmp_path / "dir/liba.so").mkdir(parents=True)              # a folder named like a library
    (tmp_path / "text").mkdir()
    (tmp_path / "text/liba.so").write_text("this is not a library at all, but long enough\n" * 3)
    for bad, msg in (("empty", "file too short"), ("dir", "cannot read file data"), ("text", "invalid ELF header")):
        t = agree(m, {"LD_LIBRARY_PATH": f"{tmp_path}/{bad}:{tmp_path}/good"})
        a = node(t, "liba.so")
        assert a.error and msg in a.error and f"{tmp_path}/{bad}/liba.so" in a.error


def test_symbol_versions_from_a_version_script(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    (d / "v.map").write_text("VER_1 { global: a; b; local: *; };\nVER_2 { global: a; } VER_1;\n")
    src = ('int a_old(void){return 1;} int a_new(void){return 2;} int b(void){return 3;}\n'
           '__asm__(".symver a_old,a@VER_1"); __asm__(".symver a_new,a@@VER_2");\n')
    lib = cc(d / "libv.so", src, f"-Wl,--version-script,{d}/v.map")
    info = read_elf_real(str(lib), cache=False)
    got = {(s.name, s.version, s.default_version) for s in info.exports}
    assert {("a", "VER_1", False), ("a", "VER_2", True), ("b", "VER_1", True)} <= got
    out = subprocess.run(["readelf", "--dyn-syms", "-W", str(lib)], capture_output=True, text=True).stdout
    assert " a@VER_1" in out and " a@@VER_2" in out and " b@@VER_1" in out
    # A program linked against it imports the default version, and the real loader binds it.
    main = d / "main"
    (d / "main.c").write_text("extern int a(void); int main(void){return a();}\n")
    subprocess.run([GCC, "-o", str(main), str(d / "main.c"), f"-L{d}", "-lv", f"-Wl,-rpath,{d}"], check=True)
    imp = {(i.name, i.version) for i in read_elf_real(str(main), cache=False).imports}
    assert ("a", "VER_2") in imp
    assert subprocess.run([str(main)]).returncode == 2  # a@@VER_2 returns 2
    assert dict(read_elf_real(str(main), cache=False).version_needs)["libv.so"] == ("VER_2",)


def test_ld_preload_and_etc_ld_so_preload(tmp_path):
    good = lib_a(tmp_path / "good")
    m = needs_a(tmp_path / "libm.so", libdir=tmp_path / "good")
    # LD_PRELOAD loads liba first; the DT_NEEDED then finds it already loaded.
    t = resolve_tree(HOST, str(m), {"LD_PRELOAD": str(good)})
    pre = [c for c in t.children if c.preload]
    assert pre and pre[0].path == str(good)
    assert node(t, "liba.so").via == "already-loaded"
    real, _ = ldd(m, {"LD_PRELOAD": str(good)})
    assert real.get("liba.so", str(good)) == str(good)
    # /etc/ld.so.preload is read inside the root.
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/ld.so.preload").write_text("/opt/missing/libshim.so\n")
    shutil.copy(m, root / "libm.so")
    t = resolve_tree(Host(str(root), {}), "/libm.so", {})
    pre = [c for c in t.children if c.preload]
    assert pre[0].name == "/opt/missing/libshim.so" and pre[0].error


def ld_debug_searches(path: Path, env):
    """{name: [files tried]} for every library the real loader searched (LD_DEBUG=libs of
    `ld.so --list`), in full: glibc-hwcaps and legacy hwcap subfolders included."""
    rtld = next((p for p in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-x86-64.so.2") if os.path.exists(p)), None)
    if rtld is None:
        pytest.skip("no x86-64 ld.so here")
    proc = subprocess.run([rtld, "--list", str(path)], capture_output=True, text=True,
                          env=dict(env, LD_DEBUG="libs"))
    searches, cur = {}, None
    for line in proc.stderr.splitlines():
        text = line.split(":", 1)[-1].strip()
        if text.startswith("find library="):
            cur = searches.setdefault(text[len("find library="):].split(" ")[0], [])
        elif text.startswith("trying file=") and cur is not None:
            cur.append(text[len("trying file="):])
        elif not text.startswith(("search ", "trying ")):
            cur = None
    return searches


def ld_debug_tried(path: Path, env, name: str):
    """The files the real loader tried for `name`, every one of them."""
    return ld_debug_searches(path, env).get(name, [])


def our_searches(tree):
    """{name: tried} of every lookup our model made (the first lookup of each name)."""
    out = {}
    for n in tree.walk():
        if n is not tree and not n.already_loaded and n.via != "already-loaded":
            out.setdefault(n.name, list(n.tried))
    return out


def test_paths_tried_equal_the_real_loaders_search(tmp_path):
    """Our `tried` list, in order, is what LD_DEBUG=libs shows, legacy subfolders included,
    for every library the loader searched (later lookups skip subfolders known missing)."""
    d = tmp_path / "d"
    lib_a(d)
    m = needs_a(tmp_path / "libm.so", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{tmp_path}/r1:{tmp_path}/r2", libdir=d)
    (d / "liba.so").unlink()
    (tmp_path / "e1/tls").mkdir(parents=True)  # an existing legacy subfolder stays on the list
    env = {"LD_LIBRARY_PATH": f"{tmp_path}/e1"}
    real = ld_debug_tried(m, env, "liba.so")
    assert real, "LD_DEBUG printed no search"
    t = resolve_tree(HOST, str(m), env)
    assert list(node(t, "liba.so").tried) == real
    assert f"{tmp_path}/e1/tls/liba.so" in real or not LoaderEnv(HOST, {}).legacy
    # Every other library of the tree (libc.so.6 after liba.so) matches too.
    assert our_searches(t) == ld_debug_searches(m, env)
    # And a hit through RPATH of a parent after a miss in the child's own folders.
    lib_a(d)
    m2 = needs_a(tmp_path / "libm2.so", "-Wl,--disable-new-dtags", f"-Wl,-rpath,{tmp_path}/r3:{d}", libdir=d)
    real = ld_debug_tried(m2, env, "liba.so")
    t = resolve_tree(HOST, str(m2), env)
    assert list(node(t, "liba.so").tried) == real and real[-1] == f"{d}/liba.so"
    assert our_searches(t) == ld_debug_searches(m2, env)


def test_a_library_only_in_a_legacy_subfolder_is_found_before_glibc_2_37(tmp_path):
    lenv = LoaderEnv(HOST, {})
    if not lenv.legacy:
        pytest.skip(f"this machine's glibc {lenv.glibc} searches no legacy subfolders")
    lib_a(tmp_path / "good")
    m = needs_a(tmp_path / "libm.so", libdir=tmp_path / "good")
    for sub in ("x86_64", "tls", lenv.legacy[0]):
        x = tmp_path / ("x-" + sub.replace("/", "-"))
        lib_a(x / sub)
        env = {"LD_LIBRARY_PATH": str(x)}
        real, err = ldd(m, env)
        assert real["liba.so"] == f"{x}/{sub}/liba.so" and not err  # the real loader finds it
        t = agree(m, env)
        a = node(t, "liba.so")
        assert (a.path, a.via) == (f"{x}/{sub}/liba.so", "ld_library_path")
        assert list(a.tried) == ld_debug_tried(m, env, "liba.so")


def fake_libc(root: Path, version: int) -> Path:
    """A root whose libc.so.6 defines GLIBC_2.2.5 .. GLIBC_2.<version> (a gcc-built fake)."""
    d = root / "lib/x86_64-linux-gnu"
    d.mkdir(parents=True, exist_ok=True)
    nodes, prev = [], None
    for v in ["2.2.5"] + [f"2.{n}" for n in range(min(30, version), version + 1)]:
        nodes.append("GLIBC_%s { %s} %s;" % (v, "global: fake_puts; " if prev is None else "", prev or ""))
        prev = f"GLIBC_{v}"
    (d / "libc.map").write_text("\n".join(n.replace(" ;", ";") for n in nodes) + "\n")
    lib = cc(d / "libc.so.6", "int fake_puts(void){return 0;}\n", "-nostdlib",
             f"-Wl,--version-script,{d}/libc.map", soname="libc.so.6")
    (d / "libc.map").unlink()
    (d / "libc_so_6.c").unlink()
    (root / "proc").mkdir(exist_ok=True)
    shutil.copy("/proc/cpuinfo", root / "proc/cpuinfo")
    return lib


@pytest.mark.parametrize("version,glibc_hwcaps,legacy", [(38, True, False), (36, True, True), (32, False, True),
                                                          (17, False, True)])
def test_the_roots_glibc_version_decides_the_subfolders(tmp_path, version, glibc_hwcaps, legacy):
    fake_libc(tmp_path, version)
    out = subprocess.run(["readelf", "-V", "-W", str(tmp_path / "lib/x86_64-linux-gnu/libc.so.6")],
                         capture_output=True, text=True).stdout
    assert f"GLIBC_2.{version}" in out  # the real tool sees the version we planted
    host = Host(str(tmp_path), {})
    lenv = LoaderEnv(host, {})
    assert lenv.glibc == (2, version)
    assert bool(lenv.legacy) == legacy
    assert bool(lenv.hwcaps) == (glibc_hwcaps and bool(LoaderEnv(HOST, {}).hwcaps))
    # A lookup in the root tries exactly the era's subfolders.
    (tmp_path / "opt/app").mkdir(parents=True)
    r = find_library(host, "libnothere.so.1", {"LD_LIBRARY_PATH": "/opt/app"})
    app = [p for p in r.tried if p.startswith("/opt/app/")]
    assert ("/opt/app/tls/libnothere.so.1" in app) == legacy
    assert any("/glibc-hwcaps/" in p for p in app) == bool(lenv.hwcaps)
    assert app[-1] == "/opt/app/libnothere.so.1"


def test_legacy_subfolders_of_other_cpus_and_eras():
    """CPUs this machine is not (fakes of /proc/cpuinfo): the lists glibc prints there."""
    from probes.loader import legacy_subdirs
    haswell = {"avx2", "bmi1", "bmi2", "abm", "movbe", "popcnt"}
    # Ubuntu 18.04 (glibc 2.27) on an Intel Haswell; RHEL 7 (glibc 2.17) on any x86-64.
    assert legacy_subdirs("GenuineIntel", haswell) == (
        "tls/haswell/x86_64", "tls/haswell", "tls/x86_64", "tls", "haswell/x86_64", "haswell", "x86_64")
    assert legacy_subdirs("GenuineIntel", haswell, x86_names=False) == ("tls/x86_64", "tls", "x86_64")
    # An AMD CPU with the same flags keeps the kernel's platform (this machine's list).
    assert legacy_subdirs("AuthenticAMD", haswell) == (
        "tls/x86_64/x86_64", "tls/x86_64", "tls/x86_64", "tls", "x86_64/x86_64", "x86_64", "x86_64")
    # An Intel AVX-512 server adds the avx512_1 hwcap name: 16 combinations, 15 subfolders.
    sub = legacy_subdirs("GenuineIntel", haswell | {"avx512cd", "avx512bw", "avx512dq", "avx512vl"})
    assert len(sub) == 15 and sub[0] == "tls/haswell/avx512_1/x86_64" and sub[-1] == "x86_64"


def test_a_root_without_libc_counts_as_a_current_glibc(tmp_path):
    lenv = LoaderEnv(Host(str(tmp_path), {}), {})
    assert lenv.glibc is None and lenv.legacy == ()


def test_lib_and_platform_tokens_and_glibc_hwcaps_folders(tmp_path):
    lenv_lib = __import__("probes.loader", fromlist=["LoaderEnv"]).LoaderEnv(HOST, {})
    deep = tmp_path / "app" / lenv_lib.lib / lenv_lib.platform
    lib_a(deep)
    m = needs_a(tmp_path / "app/libm.so", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/${LIB}/$PLATFORM", libdir=deep)
    t = agree(m)
    assert node(t, "liba.so").path == f"{tmp_path}/app/{lenv_lib.lib}/{lenv_lib.platform}/liba.so"
    # A copy in a glibc-hwcaps subfolder the CPU supports wins over the folder itself.
    if not lenv_lib.hwcaps:
        pytest.skip("this CPU supports no x86-64-v2+ level (or /proc/cpuinfo is unreadable)")
    level = lenv_lib.hwcaps[-1]
    lib_a(tmp_path / "hw" / "glibc-hwcaps" / level)
    lib_a(tmp_path / "hw")
    t = agree(m, {"LD_LIBRARY_PATH": f"{tmp_path}/hw"})
    assert node(t, "liba.so").path == f"{tmp_path}/hw/glibc-hwcaps/{level}/liba.so"
