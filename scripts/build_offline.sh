#!/usr/bin/env bash
# Build what a VM without a package registry needs, into dist/:
#   dist/wheelhouse/      vgpu-tui and every dependency as wheels:
#                         pip install --no-index --find-links wheelhouse vgpu-tui
#   dist/vgpu-tui.pyz     one self-contained file (made with shiv): python3 vgpu-tui.pyz --demo
# Both hold compiled wheels (psutil) for the Python and CPU of the machine that builds them:
# build on the same Python minor version and architecture as the target VM, or pass
# PYTHON=python3.9 to build for RHEL 9's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=dist
rm -rf "$out/wheelhouse" "$out/vgpu-tui.pyz" "$out/.buildenv"
mkdir -p "$out"
"$PY" -m venv "$out/.buildenv"
"$out/.buildenv/bin/pip" install -q --disable-pip-version-check shiv wheel
"$out/.buildenv/bin/pip" wheel -q --disable-pip-version-check -w "$out/wheelhouse" .
"$out/.buildenv/bin/shiv" -q --compressed -c vgpu-tui -o "$out/vgpu-tui.pyz" \
  --find-links "$out/wheelhouse" --no-index vgpu-tui
rm -rf "$out/.buildenv"
ls -la "$out" "$out/wheelhouse"
