"""The Host reads an inspected root like a chroot would, and never runs commands for it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probes.facts import Finding, Fix, to_json
from probes.host import Host

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "usr/local/lib/ollama/cuda_v12").mkdir(parents=True)
    (r / "usr/local/lib/ollama/cuda_v12/libggml-cuda.so").write_bytes(b"\x7fELF")
    (r / "opt/vgpu/lib").mkdir(parents=True)
    (r / "opt/vgpu/lib/libcuda.so.1").write_bytes(b"shim")
    (r / "etc").mkdir()
    (r / "etc/os-release").write_text("ID=demo\n")
    return r


def test_absolute_symlink_targets_resolve_inside_the_root(root):
    os.symlink("/opt/vgpu/lib/libcuda.so.1", root / "usr/local/lib/ollama/libcuda.so.1")
    host = Host(str(root))
    r = host.resolve("/usr/local/lib/ollama/libcuda.so.1")
    assert r.ok and r.final == "/opt/vgpu/lib/libcuda.so.1"
    assert r.hops == (("/usr/local/lib/ollama/libcuda.so.1", "/opt/vgpu/lib/libcuda.so.1"),)
    assert host.read_bytes("/usr/local/lib/ollama/libcuda.so.1") == b"shim"


def test_an_absolute_link_that_exists_only_on_this_machine_is_dangling_inside_the_root(root):
    # /etc/os-release exists on this machine, but inside the root it points nowhere.
    os.symlink("/usr/lib/os-release-of-host", root / "etc/link")
    host = Host(str(root))
    assert host.resolve("/etc/link").status == "dangling"
    assert not host.exists("/etc/link")


def test_relative_links_through_a_symlinked_folder(root):
    os.symlink("usr/local/lib", root / "lib64")
    os.symlink("../ollama/cuda_v12/libggml-cuda.so", root / "opt/vgpu/lib/x.so")
    host = Host(str(root))
    assert host.resolve("/lib64/ollama/cuda_v12/libggml-cuda.so").final == "/usr/local/lib/ollama/cuda_v12/libggml-cuda.so"
    # ../ollama from /opt/vgpu/lib leads to /opt/vgpu/ollama: dangling, not the lib tree.
    assert host.resolve("/opt/vgpu/lib/x.so").status == "dangling"


def test_dotdot_cannot_climb_out_of_the_root(root):
    os.symlink("../../../../../../etc/os-release", root / "opt/escape")
    host = Host(str(root))
    r = host.resolve("/opt/escape")
    assert r.ok and r.final == "/etc/os-release" and r.clamped
    assert host.read_text("/opt/escape") == "ID=demo\n"


def test_symlink_loop_is_reported_not_followed_forever(root):
    os.symlink("b", root / "etc/a")
    os.symlink("a", root / "etc/b")
    assert Host(str(root)).resolve("/etc/a").status == "loop"


def test_a_file_used_as_a_folder(root):
    assert Host(str(root)).resolve("/etc/os-release/x").status == "not-dir"


def test_a_root_host_refuses_to_run_commands_of_this_machine(root):
    host = Host(str(root))
    res = host.run(["uname", "-r"])
    assert res.returncode is None and "not this machine" in res.error
    live = Host.local()
    assert live.run(["uname", "-r"]).ok


def test_commands_report_missing_and_timeout_as_results():
    live = Host.local()
    assert "not found" in live.run(["no-such-command-xyz"]).error
    res = live.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    assert res.timed_out and res.returncode is None


def test_which_searches_path_inside_the_root(root):
    exe = root / "usr/local/bin/ollama"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    host = Host(str(root), env={"PATH": "/usr/bin:/usr/local/bin"})
    assert host.which("ollama") == "/usr/local/bin/ollama"
    assert host.which("sh") is None  # this machine's /usr/bin/sh is not in the root


def test_inspected_and_real_paths_round_trip(root):
    host = Host(str(root))
    real = host.path("/usr/local/lib/ollama")
    assert real == str(root.resolve()) + "/usr/local/lib/ollama"
    assert host.inspected(real) == "/usr/local/lib/ollama"
    with pytest.raises(ValueError):
        host.inspected("/somewhere/else")


def test_non_utf8_names_are_listed_and_serialisable(root):
    name = os.fsdecode(b"lib\xff.so")
    (root / "etc" / name).write_bytes(b"")
    host = Host(str(root))
    assert name in host.listdir("/etc")
    assert "lib\ufffd.so" in to_json({"names": host.listdir("/etc")})


def test_findings_validate_their_vocabulary():
    f = Finding("x", "no-device", "error", "No GPU", fix=Fix("manual", {"steps": ["a"]}))
    assert '"category": "no-device"' in to_json(f)
    with pytest.raises(ValueError):
        Finding("x", "made-up-category", "error", "t")
    with pytest.raises(ValueError):
        Fix("reboot", {})


def test_unknown_command_option_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "tui", "device", "--no-such-flag"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_missing_root_is_one_clear_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tui", "device", "--root", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "not a folder" in out.stderr
