"""probes.ollama: the binary the service runs, its version, era, LibOllamaPath and environment.

Sandboxes come from probes.sandbox.builder; the process test starts a real process named
`ollama serve` (a gcc-built sleeper) and reads it back through psutil.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from probes.errors import ToolError
from probes.host import Host
from probes.ollama import find_install, find_processes, lib_ollama_path, version_from_log_text
from probes.sandbox.builder import (add_library, build_vm, remove, set_running_env, symlink,
                                    write_dropin, write_file, write_unit)


def test_healthy_sandbox(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    inst = find_install(vm.host)
    assert inst.binary == "/usr/local/bin/ollama" and inst.binary_source == "systemd"
    assert inst.version == "0.24.0" and inst.version_source == "buildinfo" and inst.era == "C"
    assert inst.lib_dir == "/usr/local/lib/ollama" and inst.lib_dir_exists
    assert inst.user == "ollama" and inst.env["HOME"] == "/usr/share/ollama"
    assert inst.running_env is not None and inst.env_differences == ()
    assert inst.findings == ()


def test_dropin_not_yet_applied(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    write_dropin(vm, "override.conf", {"OLLAMA_LLM_LIBRARY": "cuda_v12"})
    inst = find_install(vm.host)
    assert inst.env["OLLAMA_LLM_LIBRARY"] == "cuda_v12"
    d = {x.name: x for x in inst.env_differences}
    assert d["OLLAMA_LLM_LIBRARY"].running is None
    assert "restart" in d["OLLAMA_LLM_LIBRARY"].note
    assert d["OLLAMA_LLM_LIBRARY"].source.endswith("override.conf")


def test_copied_binary_reads_its_own_tree(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("binary-in-usr-bin",))
    inst = find_install(vm.host)
    assert inst.real_binary == "/usr/bin/ollama"
    assert inst.lib_dir == "/usr/bin"  # no /usr/lib/ollama: the exe's folder (§1.2 fallback)
    f = [f for f in inst.findings if f.id == "lib-dir-other-tree"]
    assert f and f[0].severity == "error" and "/usr/local/lib/ollama" in f[0].title


def test_symlinked_binary_resolves_like_proc_self_exe(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    os.makedirs(vm.real("/opt/x/bin"))
    os.replace(vm.real("/usr/local/bin/ollama"), vm.real("/opt/x/bin/ollama"))
    symlink(vm, "/usr/local/bin/ollama", "/opt/x/bin/ollama")
    inst = find_install(vm.host)
    assert inst.real_binary == "/opt/x/bin/ollama"
    assert inst.lib_dir == "/opt/x/bin"  # /opt/x/lib/ollama does not exist
    os.makedirs(vm.real("/opt/x/lib"))
    symlink(vm, "/opt/x/lib/ollama", "/usr/local/lib/ollama")  # a symlinked lib/ollama: kept as written
    inst = find_install(vm.host)
    assert inst.lib_dir == "/opt/x/lib/ollama" and inst.lib_dir_is_symlink


def test_version_sources(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    inst = find_install(vm.host, {"assume_version": "0.9.6"})
    assert inst.version == "0.9.6" and inst.version_source == "assumed" and inst.era == "B"
    with pytest.raises(ToolError):
        find_install(vm.host, {"assume_version": "latest"})
    # no build info: the log's Listening line
    write_file(vm, "/usr/local/bin/ollama", "#!/bin/sh\n", mode=0o755)
    write_file(vm, "/var/log/ollama/ollama.log",
               'Nov 29 19:34:12 vgpu-demo ollama[1]: time=x level=INFO source=routes.go:1864 '
               'msg="Listening on 127.0.0.1:11434 (version 0.12.3)"\n')
    inst = find_install(vm.host)
    assert inst.version == "0.12.3" and inst.version_source == "log" and inst.era == "B"
    remove(vm, "/var/log/ollama/ollama.log")
    inst = find_install(vm.host)
    assert inst.version is None and inst.era_assumed and inst.era == "C"


def test_no_unit_uses_process_then_path(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    remove(vm, "/etc/systemd/system/ollama.service")
    inst = find_install(vm.host)
    assert inst.binary_source == "process" and inst.env_source == "process"
    remove(vm, "/.vgpu-sandbox/run/ollama.exe")
    remove(vm, "/.vgpu-sandbox/run/ollama.environ")
    inst = find_install(vm.host)
    assert inst.binary_source is None or inst.binary_source == "path"


def test_lib_ollama_candidates_by_era(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    os.makedirs(vm.real("/usr/local/bin/lib"))
    write_file(vm, "/usr/local/bin/lib/ollama", "not a folder\n")
    # v0.24: ../lib/ollama first
    p, _ = lib_ollama_path(vm.host, "/usr/local/bin/ollama", "0.24.0")
    assert p == "/usr/local/lib/ollama"
    # v0.3.7–v0.5.1: <exe>/lib/ollama comes first, and any file type counts (os.Stat)
    p, cands = lib_ollama_path(vm.host, "/usr/local/bin/ollama", "0.4.0")
    assert p == "/usr/local/bin/lib/ollama" and "not a folder" in cands[0].note
    # v0.30+: a candidate must be a folder
    p, _ = lib_ollama_path(vm.host, "/usr/local/bin/ollama", "0.31.0")
    assert p == "/usr/local/lib/ollama"


def test_log_version_line():
    assert version_from_log_text('msg="Listening on [::]:11434 (version 0.5.7)"\n'
                                 'msg="Listening on 127.0.0.1:11434 (version 0.24.0)"') == "0.24.0"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_real_process_found_with_environment(tmp_path):
    src = tmp_path / "s.c"
    src.write_text("#include <unistd.h>\nint main(void){sleep(20);return 0;}\n")
    exe = tmp_path / "ollama"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    proc = subprocess.Popen([str(exe), "serve"], env={"OLLAMA_LLM_LIBRARY": "cuda", "PATH": "/usr/bin"})
    try:
        time.sleep(0.2)
        found = [p for p in find_processes(Host.local()) if p.pid == proc.pid]
        assert found and found[0].exe == str(exe)
        assert found[0].environ["OLLAMA_LLM_LIBRARY"] == "cuda"
    finally:
        proc.kill()
        proc.wait()


def test_execstart_through_env(tmp_path):
    vm = build_vm(str(tmp_path / "vm"))
    write_file(vm, "/etc/systemd/system/ollama.service",
               "[Service]\nExecStart=/usr/bin/env OLLAMA_HOST=0.0.0.0 ollama serve\nUser=ollama\n")
    inst = find_install(vm.host)
    assert inst.binary == "/usr/local/bin/ollama" and inst.version == "0.24.0"
