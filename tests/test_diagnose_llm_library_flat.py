"""OLLAMA_LLM_LIBRARY cannot filter the lone lib/ollama probe (v0.24.0 filters only dir != "")."""
import json
import subprocess
import sys
from pathlib import Path

from probes.sandbox.builder import build_vm

ROOT = Path(__file__).resolve().parents[1]


def _report(root):
    out = subprocess.run([sys.executable, "-m", "tui", "report", "--root", str(root), "--no-probe", "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    return out.returncode, json.loads(out.stdout)


def test_flat_layout_with_a_non_matching_override_still_uses_the_gpu(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("flat-layout", "llm-library-no-match"))
    rc, rep = _report(vm.root)
    assert rc == 0 and rep["verdict"]["gpu_ready"] is True
    assert "wrong-library-override" not in {f["category"] for f in rep["findings"] if f["severity"] == "error"}


def test_the_same_override_with_a_backend_subfolder_is_the_error(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("llm-library-no-match",))
    rc, rep = _report(vm.root)
    assert rc == 1 and rep["verdict"]["gpu_ready"] is False
    assert "wrong-library-override" in {f["category"] for f in rep["findings"] if f["severity"] == "error"}
