"""Fixes on an inspected root: previews, refusals, atomic apply, journal and exact undo.

Everything runs on a --root folder in tmp_path (never on this machine's /etc).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probes import fixes, journal, systemd
from probes.errors import ToolError
from probes.host import Host

ROOT = Path(__file__).resolve().parents[1]
UNIT = """[Unit]
Description=Ollama Service
After=network-online.target

[Service]
ExecStart=/usr/local/bin/ollama serve
User=ollama
Group=ollama
Restart=always
RestartSec=3
Environment="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

[Install]
WantedBy=default.target
"""


def make_root(base: Path, unit: bool = True) -> Path:
    r = base / "vm"
    lib = r / "usr/local/lib/ollama"
    (lib / "cuda_v12").mkdir(parents=True)
    (lib / "cuda_v12/libggml-cuda.so").write_bytes(b"\x7fELF-cuda")
    (lib / "libggml-base.so").write_bytes(b"\x7fELF-base")
    (r / "opt/vgpu/lib").mkdir(parents=True)
    (r / "opt/vgpu/lib/libcuda.so.1").write_bytes(b"\x7fELF-shim")
    (r / "etc").mkdir(exist_ok=True)
    (r / "var/lib").mkdir(parents=True)  # the journal goes to var/lib/vgpu-tui
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    if unit:
        (r / "etc/systemd/system/ollama.service.d").mkdir(parents=True)
        (r / "etc/systemd/system/ollama.service").write_text(UNIT)
        (r / "etc/systemd/system/ollama.service.d/override.conf").write_text(
            '[Service]\nEnvironment="OLLAMA_LLM_LIBRARY=cuda"\n')
    return r


def snapshot(root: Path) -> dict:
    """Every path under the root (the journal excepted): type, link target, bytes, mode."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.startswith("var/lib/vgpu-tui"):
            continue
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            key = os.path.relpath(p, root)
            if key.startswith("var/lib/vgpu-tui"):
                continue
            st = os.lstat(p)
            if os.path.islink(p):
                out[key] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[key] = ("dir", st.st_mode & 0o7777)
            else:
                out[key] = ("file", Path(p).read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
    return out


@pytest.fixture
def vm(tmp_path):
    return make_root(tmp_path)


def test_symlink_create_repoint_remove_and_undo_in_reverse(vm):
    host = Host(str(vm))
    link = "/usr/local/lib/ollama/libcuda.so.1"
    before = snapshot(vm)
    p1 = fixes.plan(host, "symlink", {"link": link, "target": "/opt/vgpu/lib/libcuda.so.1"})
    assert "ln -s /opt/vgpu/lib/libcuda.so.1 " + link in p1.preview
    assert snapshot(vm) == before  # planning touches nothing
    c1 = fixes.apply(host, p1)
    assert os.readlink(vm / link.lstrip("/")) == "/opt/vgpu/lib/libcuda.so.1"
    after1 = snapshot(vm)
    c2 = fixes.apply(host, fixes.plan(host, "symlink", {"link": link, "target": "../../../../opt/vgpu/lib/libcuda.so.1"}))
    assert os.readlink(vm / link.lstrip("/")) == "../../../../opt/vgpu/lib/libcuda.so.1"
    c3 = fixes.apply(host, fixes.plan(host, "symlink", {"link": link, "remove": True}))
    assert not os.path.lexists(vm / link.lstrip("/"))
    assert [c.id for c in journal.list_changes(host)] == [c1.id, c2.id, c3.id]
    # Undo the last, then the one before...
    assert fixes.undo(host).id == c3.id
    assert os.readlink(vm / link.lstrip("/")) == "../../../../opt/vgpu/lib/libcuda.so.1"
    assert fixes.undo(host).id == c2.id
    assert snapshot(vm) == after1
    assert fixes.undo(host).id == c1.id
    assert snapshot(vm) == before
    assert all(c.undone for c in journal.list_changes(host))
    # no temporary files are left beside the link
    assert not [n for n in os.listdir(vm / "usr/local/lib/ollama") if n.endswith(".tmp")]


def test_undo_of_an_older_change_is_refused_while_a_later_one_holds_the_path(vm):
    host = Host(str(vm))
    link = "/usr/local/lib/ollama/libcuda.so.1"
    c1 = fixes.apply(host, fixes.plan(host, "symlink", {"link": link, "target": "/opt/vgpu/lib/libcuda.so.1"}))
    c2 = fixes.apply(host, fixes.plan(host, "symlink", {"link": link, "target": "cuda_v12/libggml-cuda.so"}))
    with pytest.raises(ToolError, match=f"changed after {c1.id} \\(by {c2.id}\\)"):
        fixes.undo(host, c1.id)
    fixes.undo(host, c2.id)
    fixes.undo(host, c1.id)
    assert not os.path.lexists(vm / link.lstrip("/"))


def test_replacing_a_regular_file_needs_force_and_undo_restores_its_bytes_mode_and_owner(vm):
    host = Host(str(vm))
    f = vm / "usr/local/lib/ollama/libggml-base.so"
    os.chmod(f, 0o751)
    with pytest.raises(ToolError, match="regular file"):
        fixes.plan(host, "symlink", {"link": "/usr/local/lib/ollama/libggml-base.so", "target": "cuda_v12/libggml-cuda.so"})
    before = snapshot(vm)
    fixes.apply(host, fixes.plan(host, "symlink", {"link": "/usr/local/lib/ollama/libggml-base.so",
                                                   "target": "cuda_v12/libggml-cuda.so"}, force=True))
    assert os.path.islink(f)
    fixes.undo(host)
    assert snapshot(vm) == before
    assert f.read_bytes() == b"\x7fELF-base" and (f.stat().st_mode & 0o777) == 0o751


@pytest.mark.parametrize("target, why", [
    ("/etc/passwd", "neither in the Ollama tree nor a shared library"),
    ("/nowhere/libcuda.so.1", "dangling"),
    ("../../../../../../../opt/vgpu/lib/libcuda.so.1", "climbs out of the root"),
])
def test_targets_outside_the_tree_or_the_root_are_refused_without_force(vm, target, why):
    host = Host(str(vm))
    before = snapshot(vm)
    with pytest.raises(ToolError, match=why):
        fixes.plan(host, "symlink", {"link": "/usr/local/lib/ollama/libcuda.so.1", "target": target})
    assert snapshot(vm) == before
    assert journal.list_changes(host) == []


def test_a_link_through_an_absolute_symlinked_folder_stays_inside_the_root(vm, tmp_path):
    # /lib -> /usr/local/lib inside the root; on this machine /usr/local/lib is another folder.
    os.symlink("/usr/local/lib", vm / "lib")
    outside = "/usr/local/lib/ollama/libcuda.so.1"  # the same path on this machine
    existed = os.path.lexists(outside)
    host = Host(str(vm))
    c = fixes.apply(host, fixes.plan(host, "symlink", {"link": "/lib/ollama/libcuda.so.1",
                                                        "target": "/opt/vgpu/lib/libcuda.so.1"}))
    assert os.path.islink(vm / "usr/local/lib/ollama/libcuda.so.1")
    assert c.paths == ("/usr/local/lib/ollama/libcuda.so.1",)
    assert os.path.lexists(outside) == existed
    fixes.undo(host)
    assert not os.path.lexists(vm / "usr/local/lib/ollama/libcuda.so.1")


@pytest.mark.parametrize("name, value, why", [
    ("1BAD", "x", "not a valid environment variable name"),
    ("A-B", "x", "not a valid environment variable name"),
    ("", "x", "not a valid environment variable name"),
    ("A", "line1\nline2", "newline"),
    ("A", "nul\x00byte", "NUL"),
])
def test_bad_names_and_values_are_refused_with_one_line_and_nothing_touched(vm, name, value, why):
    host = Host(str(vm))
    before = snapshot(vm)
    with pytest.raises(ToolError, match=why) as exc:
        fixes.plan(host, "env", {"name": name, "value": value})
    assert "\n" not in str(exc.value)
    assert snapshot(vm) == before


def test_readonly_refuses_apply_and_undo(vm):
    host = Host(str(vm))
    p = fixes.plan(host, "env", {"name": "OLLAMA_DEBUG", "value": "1"})
    with pytest.raises(ToolError, match="--readonly"):
        fixes.apply(host, p, readonly=True)
    with pytest.raises(ToolError, match="--readonly"):
        fixes.undo(host, readonly=True)
    assert not (vm / "etc/systemd/system/ollama.service.d" / fixes.DROPIN_NAME).exists()


VALUES = {
    "OLLAMA_DEBUG": "1",
    "SPACES": "a b  c",
    "QUOTES": 'say "hi" and \'bye\'',
    "DOLLAR": "$HOME ${PATH} $$",
    "PERCENT": "100% %n %%",
    "BACKSLASH": "C:\\path\\ and \\n",
    "TAB": "a\tb",
}


def test_env_dropin_round_trips_every_value_and_the_unit_file_is_untouched(vm):
    host = Host(str(vm))
    unit_bytes = (vm / "etc/systemd/system/ollama.service").read_bytes()
    for name, value in VALUES.items():
        fixes.apply(host, fixes.plan(host, "env", {"name": name, "value": value}))
    fixes.apply(host, fixes.plan(host, "unset", {"name": "OLLAMA_LLM_LIBRARY"}))
    svc = systemd.load_service(host, "ollama.service")
    env = svc.configured_env()
    for name, value in VALUES.items():
        assert env[name] == value, name
    assert "OLLAMA_LLM_LIBRARY" not in env  # UnsetEnvironment= wins over override.conf
    assert svc.dropins[-1].endswith("/" + fixes.DROPIN_NAME)  # applied after override.conf
    assert (vm / "etc/systemd/system/ollama.service").read_bytes() == unit_bytes


def _verify(tmp_path: Path, vm: Path) -> str:
    """systemd-analyze verify on the unit and its drop-ins; returns its complaints."""
    d = tmp_path / "units"
    shutil.copytree(vm / "etc/systemd/system", d)
    # the unit's binary must exist for verify; point it at a real program of this machine
    text = (d / "ollama.service").read_text().replace("/usr/local/bin/ollama", "/bin/true")
    text = text.replace("User=ollama\nGroup=ollama\n", "")
    (d / "ollama.service").write_text(text)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{d}:", SYSTEMD_LOG_COLOR="0")
    res = subprocess.run(["systemd-analyze", "verify", str(d / "ollama.service")],
                         capture_output=True, text=True, env=env, timeout=60)
    return "\n".join(l for l in (res.stdout + res.stderr).splitlines() if "ollama.service.d" in l)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_dropin_passes_systemd_analyze_verify(vm, tmp_path):
    host = Host(str(vm))
    for name, value in VALUES.items():
        fixes.apply(host, fixes.plan(host, "env", {"name": name, "value": value}))
    fixes.apply(host, fixes.plan(host, "unset", {"name": "OLLAMA_LLM_LIBRARY"}))
    assert _verify(tmp_path, vm) == ""
    # the check is able to fail: a hand-written bad line is reported
    bad = vm / "etc/systemd/system/ollama.service.d/bad.conf"
    bad.write_text('[Service]\nEnvironment="A=\\q" "B=50%z"\n')
    assert "bad.conf" in _verify(tmp_path / "again", vm)


def test_no_systemd_unit_means_the_launch_environment_file(tmp_path):
    vm = make_root(tmp_path, unit=False)
    host = Host(str(vm))
    p = fixes.plan(host, "env", {"name": "OLLAMA_DEBUG", "value": "2 $x \"y\""})
    assert fixes.ENV_FILE in p.summary
    fixes.apply(host, p)
    fixes.apply(host, fixes.plan(host, "unset", {"name": "CUDA_VISIBLE_DEVICES"}))
    env = fixes.launch_environment(host, {"CUDA_VISIBLE_DEVICES": "-1", "HOME": "/root"})
    assert env == {"OLLAMA_DEBUG": "2 $x \"y\"", "HOME": "/root"}
    fixes.undo(host)
    fixes.undo(host)
    assert not (vm / "etc/vgpu-tui").exists()


def test_unset_of_a_variable_nobody_sets_is_nothing_to_do(vm):
    host = Host(str(vm))
    with pytest.raises(fixes.NothingToDo):
        fixes.plan(host, "unset", {"name": "NOT_SET_ANYWHERE"})


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ldconfig") is None, reason="ldconfig -r needs root")
def test_ldconfig_under_root_rebuilds_the_cache_and_undo_restores_the_old_bytes(vm):
    host = Host(str(vm))
    shutil.copy("/usr/lib/x86_64-linux-gnu/libz.so.1" if os.path.exists("/usr/lib/x86_64-linux-gnu/libz.so.1")
                else sys.executable, vm / "opt/vgpu/lib/libz.so.1")
    (vm / "etc/ld.so.conf").write_text("/opt/vgpu/lib\n")
    (vm / "etc/ld.so.cache").write_bytes(b"old cache bytes")
    p = fixes.plan(host, "ldconfig", {})
    assert "-r " + str(vm) in p.preview
    fixes.apply(host, p)
    assert b"libz.so.1" in (vm / "etc/ld.so.cache").read_bytes()
    fixes.undo(host)
    assert (vm / "etc/ld.so.cache").read_bytes() == b"old cache bytes"


def test_a_failing_follow_up_command_rolls_back(vm, monkeypatch):
    host = Host(str(vm))
    (vm / "etc/ld.so.cache").write_bytes(b"old")
    p = fixes.plan(host, "ldconfig", {}) if os.geteuid() == 0 else None
    if p is None:
        pytest.skip("needs root for ldconfig -r")
    p = fixes.Plan(p.kind, p.args, p.summary, p.preview, p.ops, (("/bin/false",),))
    with pytest.raises(ToolError, match="rolled back"):
        fixes.apply(host, p)
    assert (vm / "etc/ld.so.cache").read_bytes() == b"old"
    assert journal.list_changes(host)[-1].status == "rolled-back"


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_cli_fix_journal_undo(vm):
    r = _cli("fix", "env", "OLLAMA_DEBUG=1", "--root", str(vm), "--dry-run")
    assert r.returncode == 0 and '+Environment="OLLAMA_DEBUG=1"' in r.stdout and "dry run" in r.stdout
    assert not (vm / "var/lib/vgpu-tui/journal").exists() or not list((vm / "var/lib/vgpu-tui/journal").glob("*.json"))
    r = _cli("fix", "unset", "OLLAMA_LLM_LIBRARY", "--root", str(vm))
    assert r.returncode == 0, r.stderr
    r = _cli("journal", "--json", "--root", str(vm))
    import json
    changes = json.loads(r.stdout)["changes"]
    assert [(c["kind"], c["undone"]) for c in changes] == [("unset", False)]
    assert set(changes[0]) >= {"id", "time", "kind", "summary", "undone"}
    r = _cli("--readonly", "undo", "--root", str(vm))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--readonly" in r.stderr
    r = _cli("undo", changes[0]["id"], "--root", str(vm))
    assert r.returncode == 0 and "undone" in r.stdout
    r = _cli("fix", "env", "BAD NAME=1", "--root", str(vm))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = _cli("undo", "--root", str(vm))
    assert r.returncode == 1 and "nothing to undo" in r.stderr


def _sandbox_with_libs(tmp_path):
    vm = make_root(tmp_path)
    (vm / ".vgpu-sandbox").mkdir()
    libdir = "/usr/lib/x86_64-linux-gnu"
    for name in ("libz.so.1", "libm.so.6"):
        real = os.path.realpath(f"{libdir}/{name}")
        if not os.path.exists(real):
            pytest.skip(f"{libdir}/{name} is not on this machine")
        shutil.copy(real, vm / "opt/vgpu/lib" / name)
    (vm / "opt/vgpu/lib/libcuda.so.1").unlink()  # not an ELF file: ldconfig skips it
    # a library whose SONAME link is missing, and a development link
    shutil.copy(os.path.realpath(f"{libdir}/libz.so.1"), vm / "opt/vgpu/lib/libzz.so.1.2.13")
    os.rename(vm / "opt/vgpu/lib/libzz.so.1.2.13", vm / "opt/vgpu/lib/libz.so.1.2.13")
    (vm / "opt/vgpu/lib/libz.so.1").unlink()
    os.symlink("libm.so.6", vm / "opt/vgpu/lib/libm.so")
    (vm / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (vm / "etc/ld.so.conf.d").mkdir()
    (vm / "etc/ld.so.conf.d/vgpu.conf").write_text("/opt/vgpu/lib\n")
    return vm


def test_ldconfig_in_a_sandbox_writes_what_real_ldconfig_writes_and_undo_restores(tmp_path):
    from probes import ldcache

    vm = _sandbox_with_libs(tmp_path)
    host = Host(str(vm))
    assert host.is_sandbox
    p = fixes.plan(host, "ldconfig", {})
    assert "sandbox" in p.preview
    fixes.apply(host, p)
    ours = {(e.soname, e.path) for e in ldcache.read_ld_cache(host).entries}
    assert ("libz.so.1", "/opt/vgpu/lib/libz.so.1") in ours
    if os.geteuid() == 0 and shutil.which("ldconfig"):
        ref = tmp_path / "ref"
        shutil.copytree(vm, ref, symlinks=True)
        subprocess.run(["ldconfig", "-X", "-r", str(ref)], check=True, timeout=60)
        theirs = {(e.soname, e.path) for e in ldcache.read_ld_cache(Host(str(ref))).entries}
        assert ours == theirs
    fixes.undo(host)
    assert not (vm / "etc/ld.so.cache").exists()


def test_on_a_systemd_host_the_change_is_followed_by_daemon_reload(vm, monkeypatch):
    monkeypatch.setattr(fixes, "systemd_running", lambda host: True)
    host = Host(str(vm))
    p = fixes.plan(host, "env", {"name": "OLLAMA_DEBUG", "value": "1"})
    assert p.commands == (("systemctl", "daemon-reload"),) and p.undo_commands == p.commands
    assert p.preview.endswith("$ systemctl daemon-reload\n")
    # systemctl is never run for a --root: the command is refused, and the change rolled back
    before = snapshot(vm)
    with pytest.raises(ToolError, match="rolled back"):
        fixes.apply(host, p)
    assert snapshot(vm) == before


def test_a_write_that_fails_midway_is_rolled_back_with_one_line(vm):
    host = Host(str(vm))
    # a folder squatting on the temporary name makes the second operation fail (EEXIST)
    fixes.apply(host, fixes.plan(host, "env", {"name": "OLLAMA_DEBUG", "value": "1"}))
    before = snapshot(vm)
    squat = vm / "etc/systemd/system/ollama.service.d" / f".{fixes.DROPIN_NAME}.vgpu-tui-c0002-0.tmp"
    squat.mkdir()
    (squat / "x").write_text("x")
    with pytest.raises(ToolError, match="rolled back") as exc:
        fixes.apply(host, fixes.plan(host, "env", {"name": "OLLAMA_DEBUG", "value": "2"}))
    assert "\n" not in str(exc.value)
    shutil.rmtree(squat)
    assert snapshot(vm) == before
    assert journal.list_changes(host)[-1].status == "rolled-back"


def test_a_link_in_a_missing_folder_is_refused(vm):
    with pytest.raises(ToolError, match="no such folder"):
        fixes.plan(Host(str(vm)), "symlink", {"link": "/usr/local/lib/ollama/nope/libx.so", "target": "/opt/vgpu/lib/libcuda.so.1"})
