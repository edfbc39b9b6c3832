"""`vgpu-tui report` end to end: the demo VM (the user's own case), the three formats, the
exact fix command it prints run as printed, exit statuses, a saved log, and bad input.
"""
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not there yet")


def vgpu(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_demo_text_says_first_why_libggml_cuda_is_never_opened():
    out = vgpu("report", "--demo", "--no-probe")
    assert out.returncode == 1, out.stderr
    first = "\n".join(out.stdout.splitlines()[:3])
    assert "libggml-cuda.so is never opened" in first
    assert "OLLAMA_LLM_LIBRARY=cuda" in first
    assert "fix unset OLLAMA_LLM_LIBRARY" in first


def test_demo_json_has_the_contract_fields():
    out = vgpu("report", "--demo", "--json")
    assert out.returncode == 1, out.stderr
    d = json.loads(out.stdout)
    assert d["schema"] == 1 and d["root"]
    assert {"binary", "version", "era", "lib_dir", "service", "env"} <= set(d["ollama"])
    assert d["ollama"]["version"] == "0.24.0" and d["ollama"]["env"]["OLLAMA_LLM_LIBRARY"] == "cuda"
    for key in ("device", "tree", "backends", "shims", "probe", "log", "findings", "verdict"):
        assert key in d
    assert d["verdict"] == {"gpu_ready": False, "summary": d["verdict"]["summary"]}
    first = d["findings"][0]
    assert set(first) >= {"id", "category", "severity", "title", "detail", "evidence", "fix"}
    assert first["category"] == "wrong-library-override" and first["severity"] == "error"
    assert first["fix"]["kind"] == "unset" and first["fix"]["args"] == {"name": "OLLAMA_LLM_LIBRARY"}
    assert all({"dir", "name", "probed", "would_load", "reason"} <= set(b) for b in d["backends"])
    assert not any(b["probed"] for b in d["backends"])  # no runner starts at all
    assert d["log"]["library"] == "cpu"
    # the load probe ran in a child process and found the shim through the top-level link
    assert d["probe"] is not None and d["probe"]["libcuda"]["loaded"] is True


def test_demo_markdown_is_ready_for_a_github_issue():
    out = vgpu("report", "--demo", "--markdown", "--no-probe")
    assert out.returncode == 1, out.stderr
    md = out.stdout
    assert "| Problem | Evidence | Fix |" in md
    row = next(line for line in md.splitlines() if line.startswith("| **error**"))
    assert "wrong-library-override" in row and "fix unset OLLAMA_LLM_LIBRARY" in row
    for section in ("Device", "Library tree", "Shims", "Load probe", "Environment", "Log excerpt"):
        assert f"<summary>{section}" in md
    assert md.count("<details>") == md.count("</details>")
    assert "skipping available library" in md  # the log line that shows the filter


def test_the_printed_fix_command_works_as_printed(tmp_path):
    demo = str(tmp_path / "demo")
    out = vgpu("report", "--demo", "--demo-dir", demo, "--no-probe")
    fix_line = next(line for line in out.stdout.splitlines() if line.startswith("Fix: "))
    argv = shlex.split(fix_line[len("Fix: "):])
    assert argv[0] == "vgpu-tui"
    assert argv[1:4] == ["--demo", "--demo-dir", demo], argv  # never this machine
    done = vgpu(*argv[1:])
    assert done.returncode == 0, done.stderr
    sim = subprocess.run([sys.executable, "-m", "probes.sandbox.simulator", "serve", "--root", demo],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert sim.returncode == 0, sim.stderr
    out = vgpu("report", "--root", demo, "--json", "--no-probe")
    assert out.returncode == 0, out.stdout[-2000:]
    d = json.loads(out.stdout)
    assert d["verdict"]["gpu_ready"] is True and d["log"]["library"] == "cuda"
    assert not [f for f in d["findings"] if f["severity"] == "error"]


def test_a_saved_log_that_contradicts_the_files_is_itself_a_finding(tmp_path):
    """A healthy VM, but the log given says library=cpu: the disagreement is reported."""
    vm = builder.build_vm(str(tmp_path / "vm"))
    log = SHARED / "corpus" / "ollama-0.24" / "a_installed.debug.log"
    if not log.exists():
        pytest.skip(f"{log} not in the shared corpus")
    out = vgpu("report", "--root", vm.root, "--log", str(log), "--json", "--no-probe")
    d = json.loads(out.stdout)
    assert d["log"]["library"] == "cpu"
    ids = [f["id"] for f in d["findings"] if f["severity"] == "error"]
    assert ids and ids[0] == "scanner-loads-log-cpu"
    assert d["findings"][0]["fix"]["kind"] == "relaunch" and out.returncode == 1


def test_nothing_to_inspect_still_gives_the_json_object(tmp_path):
    out = vgpu("report", "--root", str(tmp_path), "--json")
    assert out.returncode in (0, 1), out.stderr
    d = json.loads(out.stdout)
    assert d["schema"] == 1 and d["verdict"]["gpu_ready"] is False and isinstance(d["findings"], list)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    out = vgpu("report", "--root", str(tmp_path), "--log", str(tmp_path / "absent.log"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "absent.log" in out.stderr
    out = vgpu("report", "--root", str(tmp_path / "no-such-root"))
    assert out.returncode == 2 and "not a folder" in out.stderr


def test_a_healthy_vm_with_the_load_probe_cries_no_wolf(tmp_path):
    vm = builder.build_vm(str(tmp_path / "vm"), simulate=True)
    out = vgpu("report", "--root", vm.root, "--json")
    assert out.returncode == 0, out.stdout[-3000:]
    d = json.loads(out.stdout)
    assert d["verdict"]["gpu_ready"] is True and d["verdict"]["summary"].startswith("GPU ready")
    assert d["probe"]["libcuda"]["loaded"] is True
    assert not [f for f in d["findings"] if f["severity"] == "error"]
    assert any(b["would_load"] for b in d["backends"]) and d["log"]["library"] == "cuda"
