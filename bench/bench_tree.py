"""Benchmark: `vgpu-tui tree --json --exports` on a realistic Ollama tree, cold and warm,
next to `readelf -dW --dyn-syms` over the same files in the same run.

The tree is built from the real NVIDIA libraries published as Python wheels
(nvidia-cuda-runtime-cu12, nvidia-cublas-cu12: ~850 MB of ELF, libcublasLt.so.12 alone
~750 MB) beside small gcc-built ggml files, under bench/.work/ (git-ignored; the wheels
are downloaded there with pip and never committed).

    .venv/bin/python bench/bench_tree.py            # download (once), build, measure

Targets (issue 3): all exports of the whole tree in < 0.5 s of work cold and < 0.05 s
warm, the whole command < 1 s, < 150 MB of memory.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, ".work")
WHEELS = os.path.join(WORK, "wheels")
ROOT = os.path.join(WORK, "root")
LIBDIR = "/usr/local/lib/ollama"
sys.path.insert(0, REPO)

GGML = {  # small stand-ins for the ggml files Ollama ships beside the CUDA libraries
    "libggml-base.so": ("int ggml_init(void){return 0;} int ggml_backend_load(void){return 0;}", [], "libggml-base.so"),
    "libggml-cpu-x64.so": ("extern int ggml_init(void); int ggml_backend_init(void){return ggml_init();}", ["ggml-base"], None),
    "libggml-cpu-haswell.so": ("extern int ggml_init(void); int ggml_backend_init(void){return ggml_init();}", ["ggml-base"], None),
    "libggml-cpu-skylakex.so": ("extern int ggml_init(void); int ggml_backend_init(void){return ggml_init();}", ["ggml-base"], None),
    "libggml-cpu-alderlake.so": ("extern int ggml_init(void); int ggml_backend_init(void){return ggml_init();}", ["ggml-base"], None),
}


def download() -> None:
    if glob.glob(os.path.join(WHEELS, "nvidia_cublas_cu12-*.whl")) and glob.glob(os.path.join(WHEELS, "nvidia_cuda_runtime_cu12-*.whl")):
        return
    os.makedirs(WHEELS, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "nvidia-cuda-runtime-cu12", "nvidia-cublas-cu12", "-d", WHEELS], check=True)


def build() -> list:
    """The tree under ROOT; returns the real ELF files in it (for readelf)."""
    lib = ROOT + LIBDIR
    cuda = os.path.join(lib, "cuda_v12")
    stamp = os.path.join(ROOT, ".built")
    if not os.path.exists(stamp):
        shutil.rmtree(ROOT, ignore_errors=True)
        os.makedirs(cuda)
        for whl in glob.glob(os.path.join(WHEELS, "*.whl")):
            with zipfile.ZipFile(whl) as z:
                for name in z.namelist():
                    base = os.path.basename(name)
                    if name.endswith(".so.12") and "/lib/" in name:
                        ver = whl.split("-")[1]
                        real = f"{base}.{ver}"
                        with z.open(name) as src, open(os.path.join(cuda, real), "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        os.symlink(real, os.path.join(cuda, base))
        gcc = shutil.which("gcc")
        if gcc is None:
            raise SystemExit("gcc is needed to build the small ggml libraries")
        tmp = tempfile.mkdtemp()
        for name, (src, libs, soname) in GGML.items():
            c = os.path.join(tmp, name + ".c")
            open(c, "w").write(src + "\n")
            argv = [gcc, "-shared", "-fPIC", "-o", os.path.join(lib, name), c, f"-L{lib}"] + [f"-l{l}" for l in libs]
            argv += ["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN"] + ([f"-Wl,-soname,{soname}"] if soname else [])
            subprocess.run(argv, check=True)
        os.symlink("libggml-base.so", os.path.join(lib, "libggml-base.so.0"))
        c = os.path.join(tmp, "cuda.c")
        open(c, "w").write("extern int cudaGetDeviceCount(int*); extern int cublasCreate_v2(void*);"
                           "extern int cublasLtCreate(void*); extern int ggml_init(void);"
                           "int ggml_backend_init(void){int n; return cudaGetDeviceCount(&n)+cublasCreate_v2(0)+cublasLtCreate(0)+ggml_init();}\n")
        subprocess.run([gcc, "-shared", "-fPIC", "-o", os.path.join(cuda, "libggml-cuda.so"), c, f"-L{cuda}", f"-L{lib}",
                        "-l:libcudart.so.12", "-l:libcublas.so.12", "-l:libcublasLt.so.12", "-lggml-base",
                        "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN:$ORIGIN/.."], check=True)
        shutil.rmtree(tmp)
        open(stamp, "w").close()
    files = []
    for dirpath, _dirs, names in os.walk(lib):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                files.append(p)
    return sorted(files)


def drop_page_cache(files) -> None:
    """Ask the kernel to forget the files' pages (no root needed), for a truly cold read."""
    for p in files:
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except OSError:
            pass


def readelf_time(files) -> float:
    t = time.perf_counter()
    for p in files:
        subprocess.run(["readelf", "-dW", "--dyn-syms", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, %(repo)r)
t0 = time.perf_counter()
from probes.host import Host
from probes.libtree import scan_tree
t1 = time.perf_counter()
tree = scan_tree(Host(%(root)r, {}), %(libdir)r, {}, exports=True)
t2 = time.perf_counter()
tree2 = scan_tree(Host(%(root)r, {}), %(libdir)r, {}, exports=True)
t3 = time.perf_counter()
n = sum(len(x.elf.exports or ()) for x in tree.walk() if x.elf is not None and x.elf.is_elf)
print(json.dumps({"import": t1 - t0, "scan": t2 - t1, "scan_again": t3 - t2, "exports": n,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COMMAND = r"""
import resource, runpy, sys, time
sys.argv = ["vgpu-tui", "tree", %(libdir)r, "--root", %(root)r, "--json", "--exports", "--clean-env"]
sys.path.insert(0, %(repo)r)
try:
    runpy.run_module("tui", run_name="__main__")
except SystemExit:
    pass
finally:
    sys.stderr.write("MAXRSS %%f\n" %% (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""


def child(code: str, cache: str) -> dict:
    env = dict(os.environ, VGPU_TUI_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", code % {"repo": REPO, "root": ROOT, "libdir": LIBDIR}],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def command(cache: str):
    env = dict(os.environ, VGPU_TUI_CACHE_DIR=cache)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COMMAND % {"repo": REPO, "root": ROOT, "libdir": LIBDIR}],
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    rss = float(next(l.split()[1] for l in out.stderr.splitlines() if l.startswith("MAXRSS")))
    return wall, rss, len(out.stdout)


def main() -> None:
    download()
    files = build()
    size = sum(os.path.getsize(p) for p in files)
    print(f"tree: {ROOT}{LIBDIR}: {len(files)} files, {size / 1e6:.0f} MB of ELF")
    cache = tempfile.mkdtemp(prefix="vgpu-bench-cache-")
    try:
        drop_page_cache(files)
        cold_pc = child(CHILD, cache)                       # empty ELF cache, page cache dropped
        shutil.rmtree(cache)
        os.makedirs(cache)
        cold = child(CHILD, cache)                          # empty ELF cache, page cache warm
        warm = child(CHILD, cache)                          # a second start: the disk cache
        shutil.rmtree(cache)
        os.makedirs(cache)
        cmd_cold = command(cache)
        cmd_warm = command(cache)
        re_cold = readelf_time(files)
        re_warm = readelf_time(files)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    rows = [
        ("exports in the tree", f"{cold['exports']}", ""),
        ("scan_tree, cold (page cache dropped)", f"{cold_pc['scan']:.3f} s", "< 0.5 s"),
        ("scan_tree, cold (no ELF cache)", f"{cold['scan']:.3f} s", "< 0.5 s"),
        ("scan_tree, warm (same process)", f"{cold['scan_again']:.4f} s", "< 0.05 s"),
        ("scan_tree, warm (new process, disk cache)", f"{warm['scan']:.4f} s", "< 0.05 s"),
        ("tree --json --exports, whole command, cold", f"{cmd_cold[0]:.3f} s, {cmd_cold[1]:.0f} MB", "< 1 s, < 150 MB"),
        ("tree --json --exports, whole command, warm", f"{cmd_warm[0]:.3f} s, {cmd_warm[1]:.0f} MB", "< 1 s, < 150 MB"),
        ("baseline: readelf -dW --dyn-syms, each file", f"{re_cold:.3f} s (again {re_warm:.3f} s)", ""),
        ("JSON size", f"{cmd_warm[2] / 1e6:.1f} MB", ""),
    ]
    w = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name.ljust(w)}  {value:<24} {target}")


if __name__ == "__main__":
    main()
