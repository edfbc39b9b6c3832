#!/usr/bin/env bash
# Rebuild the sandbox VM's fake libraries and fake `ollama` (probes/sandbox/prebuilt/) from
# their C sources (probes/sandbox/csrc/) with gcc. Needs gcc with -m32 code generation (for
# the 32-bit shim; no 32-bit libc is needed) and binutils' strip. Usage:
#   scripts/build_demo_libs.sh [OUTDIR]      # default: probes/sandbox/prebuilt
# It first regenerates the generated sources in csrc/ (stubgpu.h, libcuda_stubs.c,
# nvml_stubs.c, buildinfo.h) from data: probes/sandbox/stubgpu.py, the real 580 driver's
# export lists csrc/*.exports, and probes.gobuildinfo.make_blob("0.24.0").
# The demo needs no compiler: the outputs are committed and shipped as package data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m probes.sandbox.libbuild "$@"
