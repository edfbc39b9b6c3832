"""The child-process launcher, for real: a stand-in `ollama` script is started, followed,
stopped (SIGTERM, then SIGKILL when it ignores SIGTERM) and restarted; its log goes through
the real log parser. State (pid file, log, journal) lives in tmp_path, never in /var/lib.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import launcher
from probes.errors import ToolError
from probes.host import Host

ROOT = Path(__file__).resolve().parents[1]
T = "time=2026-11-29T19:00:0{n}.000Z level={lvl} source={src} msg="
HEAD = "\n".join([
    T.format(n=0, lvl="INFO", src="routes.go:1802") + '"server config" env="map[CUDA_VISIBLE_DEVICES: OLLAMA_DEBUG:INFO]"',
    T.format(n=1, lvl="INFO", src="routes.go:2008") + '"Listening on 127.0.0.1:11434 (version 0.24.0)"',
    T.format(n=1, lvl="INFO", src="runner.go:67") + '"discovering available GPUs..."',
]) + "\n"
CPU = T.format(n=2, lvl="INFO", src="types.go:60") + ('"inference compute" id=cpu library=cpu compute="" name=cpu '
      'description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.3 GiB" available="29.8 GiB"\n')
GPU = T.format(n=2, lvl="INFO", src="types.go:42") + (
    '"inference compute" id=GPU-56475055-5354-5542-0000-000000000001 filter_id="" library=CUDA compute=9.0 '
    'name=CUDA0 description="VGPU-STUB" libdirs=ollama,cuda_v12 driver=13.0 pci_id=0000:00:06.0 type=discrete '
    'total="80.0 GiB" available="79.5 GiB"\n')


def standin(tmp_path: Path, on_term: str = "exit 0", exit_at_once: bool = False) -> str:
    """An `ollama` stand-in: logs like Ollama 0.24.0 (CPU when OLLAMA_LLM_LIBRARY is set, as the
    real one does with a name that matches no folder), then serves until stopped."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for name, text in (("head", HEAD), ("cpu", CPU), ("gpu", GPU)):
        (d / f"ollama.{name}").write_text(text)
    body = ["#!/bin/sh", '[ "$1" = serve ] || exit 2']
    if exit_at_once:
        body += ["echo 'Error: listen tcp 127.0.0.1:11434: bind: address already in use' >&2", "exit 1"]
    else:
        body += ['cat "$0.head"', 'if [ -n "$OLLAMA_LLM_LIBRARY" ]; then cat "$0.cpu"; else cat "$0.gpu"; fi']
        body += [f"trap '{on_term}' TERM", "while :; do sleep 0.1; done"]
    p = d / "ollama"
    p.write_text("\n".join(body) + "\n")
    p.chmod(0o755)
    return str(p)


class Install:
    def __init__(self, binary):
        self.binary = binary


def live(tmp_path, **env):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), launcher.J.STATE_DIR_ENV: str(tmp_path / "state")}
    base.update(env)
    return Host("/", base, live=True)


@pytest.fixture
def cleanup():
    hosts = []
    yield hosts.append
    for h in hosts:
        launcher.stop_child(h, grace=1)


def test_child_is_started_followed_and_restarted_with_the_new_environment(tmp_path, cleanup):
    binary = standin(tmp_path)
    host = live(tmp_path, OLLAMA_LLM_LIBRARY="cuda")
    cleanup(host)
    r1 = launcher.relaunch(host, Install(binary), watch_seconds=10)
    assert r1.method == "child" and r1.ok and r1.discovery_finished
    assert r1.library_before is None and r1.library_after == "cpu" and r1.gpu_used_after is False
    pid1 = launcher.child_running(host)
    assert pid1 == r1.pid and os.path.exists(f"/proc/{pid1}")
    # The operator unsets the variable; the relaunch stops the old server and starts a new one.
    host2 = live(tmp_path)
    r2 = launcher.relaunch(host2, Install(binary), watch_seconds=10)
    assert r2.ok and r2.library_before == "cpu" and r2.library_after == "cuda"
    assert r2.devices and r2.devices[0].name in ("VGPU-STUB", "CUDA0")
    assert r2.gone and not r2.new  # the CPU-only finding went away
    assert launcher.child_running(host2) == r2.pid != pid1
    assert not os.path.exists(f"/proc/{pid1}") or launcher._proc_start_time(pid1) is None
    assert launcher.stop_child(host2, grace=5) == "terminated"
    assert launcher.child_running(host2) is None


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, cleanup):
    binary = standin(tmp_path, on_term="")
    host = live(tmp_path)
    cleanup(host)
    r = launcher.relaunch(host, Install(binary), watch_seconds=10)
    assert r.ok
    t0 = time.monotonic()
    assert launcher.stop_child(host, grace=1) == "killed"
    assert 0.9 < time.monotonic() - t0 < 8
    assert launcher._proc_start_time(r.pid) is None


def test_a_server_that_exits_at_once_is_reported_not_awaited(tmp_path, cleanup):
    binary = standin(tmp_path, exit_at_once=True)
    host = live(tmp_path)
    cleanup(host)
    t0 = time.monotonic()
    r = launcher.relaunch(host, Install(binary), watch_seconds=20)
    assert time.monotonic() - t0 < 10
    assert not r.ok and r.exit_status == 1
    assert "exited with status 1" in r.problem


def test_a_server_not_started_by_the_tool_is_left_alone(tmp_path):
    binary = standin(tmp_path)
    other = subprocess.Popen([binary, "serve"], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(0.3)
        with pytest.raises(ToolError, match=f"already running as pid {other.pid}"):
            launcher.relaunch(live(tmp_path), Install(binary), watch_seconds=5)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_reused_pid_is_not_taken_for_our_server(tmp_path):
    host = live(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    # the pid of this test process, with a start time that is not its own
    (state / launcher.PID_NAME).write_text(json.dumps({"pid": os.getpid(), "start_time": "1"}))
    assert launcher.child_running(host) is None
    assert launcher.stop_child(host) is None


def test_relaunch_cli_json(tmp_path):
    binary = standin(tmp_path)
    env = dict(os.environ, **{launcher.J.STATE_DIR_ENV: str(tmp_path / "state")})
    env.pop("OLLAMA_LLM_LIBRARY", None)
    try:
        out = subprocess.run([sys.executable, "-m", "tui", "relaunch", "--watch", "10", "--json", "--ollama", binary],
                             capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["method"] == "child" and data["library_after"] == "cuda" and data["ok"] is True
    finally:
        launcher.stop_child(live(tmp_path), grace=2)
