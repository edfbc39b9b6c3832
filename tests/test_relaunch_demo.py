"""The demo's planted fault, end to end through the CLI: unset OLLAMA_LLM_LIBRARY, relaunch the
(simulated) Ollama, and see library=cuda where it was cpu; undo and relaunch brings cpu back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

demo = pytest.importorskip("probes.sandbox.demo", reason="the sandbox demo is not built yet")
pytest.importorskip("probes.sandbox.simulator", reason="the sandbox simulator is not built yet")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_demo_fault_fixed_relaunched_seen_fixed_and_undone(tmp_path):
    d = str(tmp_path / "demo")
    root = demo.build_demo(d)
    r = cli("relaunch", "--root", root, "--json", "--watch", "20")
    assert r.returncode in (0, 1), r.stderr
    first = json.loads(r.stdout)
    assert first["method"] == "simulator" and first["library_after"] == "cpu"
    r = cli("fix", "unset", "OLLAMA_LLM_LIBRARY", "--root", root)
    assert r.returncode == 0, r.stderr
    r = cli("relaunch", "--root", root, "--json", "--watch", "20")
    assert r.returncode == 0, r.stderr
    after = json.loads(r.stdout)
    assert after["library_before"] == "cpu" and after["library_after"] == "cuda" and after["gpu_used_after"] is not False
    assert after["devices"] and "VGPU-STUB" in json.dumps(after["devices"])
    r = cli("undo", "--root", root)
    assert r.returncode == 0, r.stderr
    r = cli("relaunch", "--root", root, "--json", "--watch", "20")
    again = json.loads(r.stdout)
    assert again["library_after"] == "cpu"


async def test_relaunch_stream_yields_progress_then_the_result(tmp_path):
    from probes import launcher
    from probes.host import Host

    root = demo.build_demo(str(tmp_path / "demo"))
    events = [ev async for ev in launcher.relaunch_stream(Host(root), watch_seconds=20)]
    kinds = [ev.kind for ev in events]
    assert kinds[0] == "status" and "simulated" in events[0].text
    assert "line" in kinds and kinds[-1] == "result" and kinds.count("result") == 1
    assert any("inference compute" in ev.text for ev in events if ev.kind == "line")
    assert events[-1].result.library_after == "cpu"
