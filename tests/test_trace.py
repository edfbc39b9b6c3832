"""Traced relaunch, for real: a stand-in `ollama serve` starts a discovery runner that dlopens a
gcc-built libggml-cuda.so through LD_LIBRARY_PATH (as Ollama's runner does); its libcudart
is there, its libcuda.so.1 is not. The trace must show, per process, what was opened and
what failed with the paths tried, and no tracing may remain afterwards.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from probes import fixes, journal, launcher, trace
from probes.host import Host
from tests.test_fixes import make_root, snapshot

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the test libraries")

SERVER = r'''#!{python}
import os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
lib = os.path.join(here, "..", "lib", "ollama")
lib = os.path.normpath(lib)
if sys.argv[1:2] == ["runner"]:
    import ctypes
    try:
        ctypes.CDLL("libggml-cuda.so")
        print("runner: backend loaded", flush=True)
    except OSError as exc:
        print("runner: " + str(exc), flush=True)
    sys.exit(0)
if sys.argv[1:2] != ["serve"]:
    sys.exit(2)
T = "time=2026-11-29T19:00:00.000Z level=INFO source=x.go:1 msg="
print(T + '"Listening on 127.0.0.1:11434 (version 0.24.0)"', flush=True)
print(T + '"discovering available GPUs..."', flush=True)
env = dict(os.environ, LD_LIBRARY_PATH=lib + ":" + lib + "/cuda_v12", OLLAMA_LIBRARY_PATH=lib + ":" + lib + "/cuda_v12")
subprocess.run([sys.executable, os.path.abspath(__file__), "runner", "--ollama-engine", "--port", "40000"], env=env)
print(T + '"inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.3 GiB" available="29.8 GiB"', flush=True)
while True:
    time.sleep(0.1)
'''


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    base = tmp_path_factory.mktemp("ollama")
    lib = base / "lib/ollama"
    (lib / "cuda_v12").mkdir(parents=True)
    src = base / "src"
    src.mkdir()
    (src / "rt.c").write_text("int cudart_x(void){return 1;}\n")
    (src / "cu.c").write_text("int cuInit(int x){return x;}\n")
    (src / "g.c").write_text("int cuInit(int);int cudart_x(void);int ggml_x(void){return cudart_x()+cuInit(0);}\n")
    cc = ["gcc", "-shared", "-fPIC", "-Wl,--no-as-needed"]
    subprocess.run(cc + ["-Wl,-soname,libcudart.so.12", "-o", str(lib / "cuda_v12/libcudart.so.12"), str(src / "rt.c")], check=True)
    subprocess.run(cc + ["-Wl,-soname,libcuda.so.1", "-o", str(src / "libcuda.so.1"), str(src / "cu.c")], check=True)
    subprocess.run(cc + ["-o", str(lib / "cuda_v12/libggml-cuda.so"), str(src / "g.c"),
                         str(lib / "cuda_v12/libcudart.so.12"), str(src / "libcuda.so.1")], check=True)
    (src / "libcuda.so.1").unlink()  # the driver library is missing: the runner cannot load the backend
    (base / "bin").mkdir()
    server = base / "bin/ollama"
    server.write_text(SERVER.replace("{python}", sys.executable))
    server.chmod(0o755)
    return base


class Install:
    def __init__(self, binary):
        self.binary = binary


def live(tmp_path):
    return Host("/", {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), journal.STATE_DIR_ENV: str(tmp_path / "state")},
                live=True)


def _environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return dict(kv.split(b"=", 1) for kv in fh.read().split(b"\0") if b"=" in kv)


def _check_runner(report, lib, with_argv):
    runners = [p for p in report.processes if any(f.name == "libcuda.so.1" for f in p.failed)]
    assert len(runners) == 1, trace.format_report(report)
    r = runners[0]
    assert str(lib / "cuda_v12/libggml-cuda.so") in r.opened and str(lib / "cuda_v12/libggml-cuda.so") in r.dlopened
    assert str(lib / "cuda_v12/libcudart.so.12") in r.opened
    failed = [f for f in r.failed if f.name == "libcuda.so.1"][0]
    assert failed.requested_by == str(lib / "cuda_v12/libggml-cuda.so") and failed.how == "needed by"
    assert str(lib / "libcuda.so.1") in failed.tried and str(lib / "cuda_v12/libcuda.so.1") in failed.tried
    assert "LD_LIBRARY_PATH" in failed.searched and "ld.so.cache" in failed.searched
    assert r.library_path == (str(lib), str(lib / "cuda_v12"))  # the backend folder this runner probed
    if with_argv:
        assert r.role == "discovery runner" and "runner" in r.argv
        assert [p.role for p in report.processes].count("server") == 1
    text = "\n".join(trace.format_report(report))
    assert "FAILED  libcuda.so.1 (needed by " in text and "opened  " + str(lib / "cuda_v12/libggml-cuda.so") in text
    return r


@pytest.mark.parametrize("use_strace", [True, False])
def test_traced_relaunch_shows_opened_and_failed_libraries_per_process(install, tmp_path, monkeypatch, use_strace):
    if use_strace and shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    if not use_strace:
        monkeypatch.setattr(trace, "_find_strace", lambda: None)
    host = live(tmp_path)
    try:
        result = launcher.relaunch(host, Install(str(install / "bin/ollama")), watch_seconds=20, trace=True)
        assert result.ok and result.library_after == "cpu"
        rep = result.trace
        assert rep.strace == use_strace
        _check_runner(rep, install / "lib/ollama", use_strace)
        # the server left running afterwards was restarted without tracing
        pid = launcher.child_running(host)
        assert pid is not None
        env = _environ(pid)
        assert b"LD_DEBUG" not in env and b"LD_DEBUG_OUTPUT" not in env
        assert "strace" not in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    finally:
        launcher.stop_child(host, grace=2)
        if result is not None and result.trace is not None:
            trace.cleanup(result.trace)


result = None


def test_trace_settings_in_a_service_are_temporary_and_undone_after_a_kill(tmp_path):
    vm = make_root(tmp_path)
    before = snapshot(vm)
    host = Host(str(vm))
    tracer = trace.Tracer(host, "systemd")
    tracer.start()
    dropin = (vm / "etc/systemd/system/ollama.service.d" / fixes.DROPIN_NAME).read_text()
    assert 'LD_DEBUG=libs,files' in dropin and "LD_DEBUG_OUTPUT=" in dropin
    assert tracer.finish() and snapshot(vm) == before  # the trace folder lives under the state dir
    # killed while tracing was on: the next start removes it
    pid = os.fork()
    if pid == 0:
        try:
            trace.apply_trace_env(Host(str(vm)), {"LD_DEBUG": "libs,files", "LD_DEBUG_OUTPUT": "/tmp/x/ld"})
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert "LD_DEBUG" in (vm / "etc/systemd/system/ollama.service.d" / fixes.DROPIN_NAME).read_text()
    msgs = journal.recover(host)
    assert msgs and "undone" in msgs[0]
    assert snapshot(vm) == before
    assert all(c.undone for c in journal.list_changes(host))


def test_parse_real_ld_debug_of_a_missing_dependency(install, tmp_path):
    """A direct run, no launcher: the parser against the real loader's own words."""
    out = tmp_path / "t"
    out.mkdir()
    lib = install / "lib/ollama"
    env = dict(os.environ, LD_DEBUG="libs,files", LD_DEBUG_OUTPUT=str(out / "ld"),
               LD_LIBRARY_PATH=f"{lib}:{lib}/cuda_v12")
    subprocess.run([sys.executable, "-c", "import ctypes\ntry: ctypes.CDLL('libggml-cuda.so')\nexcept OSError: pass"],
                   env=env, check=True)
    rep = trace.parse_dir(str(out))
    _check_runner(rep, lib, with_argv=False)


def test_traced_relaunch_on_the_demo_is_simulated_and_names_the_never_probed_folder(tmp_path):
    demo = pytest.importorskip("probes.sandbox.demo", reason="the sandbox demo is not built yet")
    root = demo.build_demo(str(tmp_path / "demo"))
    host = Host(root)
    r = launcher.relaunch(host, watch_seconds=20, trace=True)
    rep = r.trace
    assert rep.method == "simulator" and any("simulated" in n for n in rep.notes)
    assert any("cuda_v12 was never probed (OLLAMA_LLM_LIBRARY=cuda)" in n for n in rep.notes)
    assert not any("libggml-cuda.so" in p for proc in rep.processes for p in proc.opened)
    fixes.apply(host, fixes.plan(host, "unset", {"name": "OLLAMA_LLM_LIBRARY"}))
    r = launcher.relaunch(host, watch_seconds=20, trace=True)
    runner = [p for p in r.trace.processes if p.role == "discovery runner"][0]
    assert any(p.endswith("cuda_v12/libggml-cuda.so") for p in runner.dlopened)
    assert r.library_after == "cuda"
    # no trace settings anywhere in the sandbox's service configuration
    assert "LD_DEBUG" not in "".join(open(os.path.join(dp, f), errors="replace").read()
                                     for dp, _, fs in os.walk(os.path.join(root, "etc/systemd")) for f in fs)
