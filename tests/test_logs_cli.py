"""`vgpu-tui logs` end to end: the contract's JSON, the text verdict, stdin, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
E3 = CORPUS / "ollama-0.24" / "e3_llm_library_cuda_v13_on_b.debug.log"
H200 = CORPUS / "ollama-0.24" / "h200_gpu_ok_debug1.log"
needs_corpus = pytest.mark.skipif(not E3.exists(), reason="../shared/corpus is not present")


def vgpu(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "tui", "logs", *args], capture_output=True, text=True,
                          cwd=ROOT, input=stdin, timeout=60)


@needs_corpus
def test_json_has_the_contract_fields_and_exit_status_follows_errors():
    out = vgpu(str(E3), "--json")
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    for key in ("source", "ollama_version", "era", "library", "gpu_used", "gpu_count", "devices", "events", "findings"):
        assert key in data
    assert (data["ollama_version"], data["library"], data["gpu_used"], data["gpu_count"]) == ("0.24.0", "cpu", False, 0)
    assert {"line", "kind", "level", "text"} <= set(data["events"][0])
    f = data["findings"][0]
    assert (f["severity"], f["category"]) == ("error", "wrong-library-override")
    assert f["evidence"][0].startswith("line ") and f["fix"]["command"] == "vgpu-tui fix unset OLLAMA_LLM_LIBRARY"
    ok = vgpu(str(H200), "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["devices"][0]["name"] == "NVIDIA H200"


@needs_corpus
def test_text_output_gives_the_verdict_then_the_evidence_and_reads_stdin():
    out = vgpu("-", stdin=E3.read_text())
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0].startswith("source:    <stdin>")
    assert any("GPU used: no" in ln for ln in lines[:4])
    i = next(i for i, ln in enumerate(lines) if ln.startswith("ERROR [wrong-library-override]"))
    assert any("skipping available library at user's request" in ln for ln in lines[i:])
    assert "\x1b[" not in out.stdout  # no colour when not on a terminal


def test_bad_input_is_one_clear_line(tmp_path):
    out = vgpu(str(tmp_path / "missing.log"))
    assert (out.returncode, out.stderr.strip()) == (2, f"vgpu-tui: {tmp_path / 'missing.log'}: no such file")
    out = vgpu(str(tmp_path))
    assert out.returncode == 2 and "is a folder" in out.stderr and "Traceback" not in out.stderr
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(bytes(range(256)) * 50)
    out = vgpu(str(garbage), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["gpu_used"] is None


def test_sandbox_root_reads_its_service_log(tmp_path):
    (tmp_path / ".vgpu-sandbox").mkdir()
    log = tmp_path / "var/log/ollama"
    log.mkdir(parents=True)
    (log / "ollama.log").write_text(
        'Nov 29 19:34:12 vgpu-demo ollama[1234]: time=2026-11-29T19:34:12.000Z level=INFO source=routes.go:1864 '
        'msg="Listening on 127.0.0.1:11434 (version 0.24.0)"\n'
        'Nov 29 19:34:12 vgpu-demo ollama[1234]: time=2026-11-29T19:34:12.000Z level=INFO source=types.go:60 '
        'msg="inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama\n')
    out = subprocess.run([sys.executable, "-m", "tui", "logs", "--root", str(tmp_path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    data = json.loads(out.stdout)
    assert data["source"].endswith("var/log/ollama/ollama.log") and data["library"] == "cpu"
