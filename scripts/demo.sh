#!/usr/bin/env bash
# Set up a virtual environment with the project and start the app: on the built-in demo VM
# where no Ollama is installed, else on this machine. The README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
if [ "$#" -gt 0 ]; then
  exec .venv/bin/vgpu-tui "$@"
elif command -v ollama >/dev/null 2>&1 || [ -e /etc/systemd/system/ollama.service ]; then
  exec .venv/bin/vgpu-tui
else
  exec .venv/bin/vgpu-tui --demo
fi
