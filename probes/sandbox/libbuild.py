"""Build the sandbox's fake libraries and fake `ollama` from csrc/ with gcc.

Used by scripts/build_demo_libs.sh (which rebuilds probes/sandbox/prebuilt/) and by the
tests (which rebuild into a temporary folder and compare with prebuilt/). Run time never
needs it: the builder copies prebuilt/.

Two steps:
* `generate(csrc)` writes the generated sources from data: `stubgpu.h` (stubgpu.py),
  `libcuda_stubs.c` / `nvml_stubs.c` (one stub per name of the real 580 driver's export
  lists `libcuda.exports` / `nvml.exports`, minus the functions written by hand) and
  `buildinfo.h` (probes.gobuildinfo.make_blob("0.24.0")).
* `build(out)` compiles every entry of TARGETS, in order (later ones link earlier ones).

The 32-bit shim is built with `gcc -m32 -nostdlib` against an empty 32-bit `libc.so.6`
made on the spot (no 32-bit libc is installed here, and the stub calls nothing from it), so
it is a genuine ELFCLASS32/EM_386 shared object with DT_NEEDED libc.so.6 like a real one.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from probes.sandbox.stubgpu import c_header

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
PREBUILT = os.path.join(HERE, "prebuilt")
OLLAMA_VERSION = "0.24.0"

# Interop entry points a compute-only shim plausibly leaves out. None is in any required
# set of ../shared/data/symbols/required.json (cudart tolerates NOT_FOUND for them), so the
# demo shim lacking them still works: "missing a few non-fatal exports".
DEMO_OMIT = (
    "cuEGLApiInit",
    "cuGLGetDevices_v2",
    "cuGraphicsGLRegisterBuffer",
    "cuGraphicsGLRegisterImage",
    "cuVDPAUGetDevice",
)

CPU_VARIANTS: Dict[str, Tuple[str, ...]] = {
    # ggml's x86 CPU variants and the features each is built for (ggml-cpu CMake).
    "x64": (),
    "sse42": ("SSE42",),
    "sandybridge": ("SSE42", "AVX"),
    "haswell": ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2"),
    "skylakex": ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2", "AVX512"),
    "icelake": ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"),
    "alderlake": ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2", "AVX_VNNI"),
}

# Real file names of the bundled CUDA 12.8 runtime (the tarball's cuda_v12/ has them plus
# the SONAME symlinks).
CUDART_FILE = "libcudart.so.12.8.90"
CUBLAS_FILE = "libcublas.so.12.8.4.1"
CUBLASLT_FILE = "libcublasLt.so.12.8.4.1"
GGML_BASE_FILE = "libggml-base.so.0.0.0"
LIBC32_STUB = ".libc32/libc.so.6"  # build-time only, never shipped


@dataclasses.dataclass(frozen=True)
class Target:
    """One output of prebuilt/: sources, SONAME, libraries it links (outputs built before)."""

    out: str
    sources: Tuple[str, ...]
    soname: Optional[str] = None
    links: Tuple[str, ...] = ()
    defines: Tuple[str, ...] = ()
    version_script: Optional[str] = None
    m32: bool = False
    executable: bool = False


def _shim(out: str, soname: str = "libcuda.so.1", omit: Sequence[str] = (), m32: bool = False) -> Target:
    defines = tuple("OMIT_" + n for n in omit) + (("NO_LIBC",) if m32 else ())
    return Target(out, ("libcuda.c", "libcuda_stubs.c"), soname, defines=defines, m32=m32)


TARGETS: Tuple[Target, ...] = (
    Target(GGML_BASE_FILE, ("ggml_base.c",), "libggml-base.so.0"),
    *(Target(f"libggml-cpu-{v}.so", ("ggml_cpu.c",), None, (GGML_BASE_FILE,),
             (f'VARIANT="{v}"',) + tuple("USE_" + f for f in feats))
      for v, feats in CPU_VARIANTS.items()),
    Target(CUBLASLT_FILE, ("cublaslt.c",), "libcublasLt.so.12", version_script="libcublasLt.so.12.map"),
    Target(CUBLAS_FILE, ("cublas.c",), "libcublas.so.12", (CUBLASLT_FILE,),
           version_script="libcublas.so.12.map"),
    Target(CUDART_FILE, ("cudart.c",), "libcudart.so.12", version_script="libcudart.so.12.map"),
    _shim("libcuda.so.1"),
    _shim("libcuda-demo.so.1", omit=DEMO_OMIT),
    _shim("libcuda-no-memcreate.so.1", omit=("cuMemCreate",)),
    _shim("libcuda-no-getprocaddress-v2.so.1", omit=("cuGetProcAddress_v2",)),
    _shim("libcuda-wrong-soname.so.1", soname="libcuda.so"),
    _shim("libcuda-32bit.so.1", m32=True),
    Target("libnvidia-ml.so.1", ("nvml.c", "nvml_stubs.c"), "libnvidia-ml.so.1"),
    # NEEDED order as the real library: ggml-base, cudart, cublas, cublasLt, the driver.
    Target("libggml-cuda.so", ("ggml_cuda.c",), None,
           (GGML_BASE_FILE, CUDART_FILE, CUBLAS_FILE, CUBLASLT_FILE, "libcuda.so.1")),
    Target("ollama", ("ollama_main.c",), executable=True),
)

_HAND_WRITTEN = re.compile(r"^EXPORT\s+[\w ]+?\**\s*\b(\w+)\s*\(", re.M)


def read_exports(path: str) -> List[str]:
    with open(path, encoding="utf-8") as fh:
        return [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]


def hand_written(c_file: str) -> List[str]:
    with open(c_file, encoding="utf-8") as fh:
        return _HAND_WRITTEN.findall(fh.read())


def _stub_file(exports: List[str], hand: List[str], ret_type: str, ret: str, table: bool) -> str:
    own = set(hand)
    lines = ["/* Generated by probes/sandbox/libbuild.py from the real driver's export list: one",
             " * stub per name not written by hand. Do not edit; run scripts/build_demo_libs.sh. */",
             '#include "common.h"']
    if table:
        lines.append('#include "procs.h"')
    for name in exports:
        if name in own:
            continue
        lines += [f"#ifndef OMIT_{name}", f"EXPORT {ret_type} {name}(void) {{ return {ret}; }}", "#endif"]
    if table:
        lines += [f"extern void {n}(void);" for n in exports if n in own]
        lines.append("const struct proc vgpu_procs[] = {")
        for name in exports:
            lines += [f"#ifndef OMIT_{name}", f'    {{"{name}", (void *){name}}},', "#endif"]
        lines += ["    {0, 0}", "};"]
    return "\n".join(lines) + "\n"


def generate(csrc: str = CSRC) -> None:
    """(Re)write the generated C sources in `csrc` from the data tables."""
    from probes.gobuildinfo import make_blob  # helper B's writer of the Go build-info blob

    _write(os.path.join(csrc, "stubgpu.h"), c_header())
    cuda = read_exports(os.path.join(csrc, "libcuda.exports"))
    _write(os.path.join(csrc, "libcuda_stubs.c"),
           _stub_file(cuda, hand_written(os.path.join(csrc, "libcuda.c")), "int", "801", True))
    nvml = read_exports(os.path.join(csrc, "nvml.exports"))
    _write(os.path.join(csrc, "nvml_stubs.c"),
           _stub_file(nvml, hand_written(os.path.join(csrc, "nvml.c")), "int", "3", False))
    blob = make_blob(OLLAMA_VERSION)
    _write(os.path.join(csrc, "buildinfo.h"), "\n".join([
        "/* Generated by probes/sandbox/libbuild.py: probes.gobuildinfo.make_blob(%r). */" % OLLAMA_VERSION,
        '#define GO_VERSION_STRING "%s"' % OLLAMA_VERSION,
        "#define GO_BUILDINFO_BYTES { %s }" % ", ".join(str(b) for b in blob),
        "",
    ]))


def _write(path: str, text: str) -> None:
    old = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    if old != text:  # keep mtimes stable when nothing changed
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def commands(t: Target, out: str, csrc: str = CSRC, cc: str = "gcc") -> List[List[str]]:
    """The gcc (and strip) command lines that produce one target."""
    argv = [cc, "-O1", "-g0", "-fPIC", "-fvisibility=hidden", "-Wall", "-I", csrc]
    argv += ["-D" + d for d in t.defines]
    if t.m32:  # linked against an empty 32-bit libc.so.6 stand-in: DT_NEEDED libc.so.6 as usual
        argv += ["-m32", "-nostdlib", "-Wl,--no-as-needed", os.path.join(out, LIBC32_STUB)]
    if t.executable:
        argv += ["-fvisibility=default"]
    else:
        argv += ["-shared"]
    if t.soname:
        argv += [f"-Wl,-soname,{t.soname}"]
    if t.version_script:
        argv += [f"-Wl,--version-script={os.path.join(csrc, t.version_script)}"]
    argv += [os.path.join(csrc, s) for s in t.sources]
    if t.links:
        argv += ["-Wl,--no-as-needed"] + [os.path.join(out, lib) for lib in t.links]
    argv += ["-o", os.path.join(out, t.out)]
    return [argv, ["strip", "--strip-unneeded", os.path.join(out, t.out)]]


def build(out: str, csrc: str = CSRC, regenerate: bool = True, cc: str = "gcc") -> List[str]:
    """Build every target into `out`; returns the file names written."""
    if regenerate:
        generate(csrc)
    os.makedirs(os.path.join(out, os.path.dirname(LIBC32_STUB)), exist_ok=True)
    stub_c = os.path.join(out, os.path.dirname(LIBC32_STUB), "empty.c")
    with open(stub_c, "w", encoding="utf-8") as fh:
        fh.write("/* an empty 32-bit libc.so.6 to link the 32-bit shim against */\n")
    subprocess.run([cc, "-m32", "-shared", "-nostdlib", "-Wl,-soname,libc.so.6", stub_c, "-o",
                    os.path.join(out, LIBC32_STUB)], check=True)
    written = []
    for t in TARGETS:
        for argv in commands(t, out, csrc, cc):
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}\n{proc.stderr}")
        written.append(t.out)
    return written


def main(argv: Sequence[str]) -> int:
    out = argv[0] if argv else PREBUILT
    if shutil.which("gcc") is None:
        print("gcc is needed to rebuild the sandbox libraries", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="vgpu-libbuild-")
    try:
        names = build(tmp)
        os.makedirs(out, exist_ok=True)
        for n in names:  # replace atomically, so a failed build leaves prebuilt/ intact
            shutil.copy2(os.path.join(tmp, n), os.path.join(out, n + ".new"))
            os.replace(os.path.join(out, n + ".new"), os.path.join(out, n))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for n in names:
        print(f"{os.path.getsize(os.path.join(out, n)):8d}  {os.path.join(out, n)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
