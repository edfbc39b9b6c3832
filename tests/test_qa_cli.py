"""QA regressions: what a demanding operator hit using the headless commands.

Each test runs the real CLI (tui.cli.main, in process) on a sandbox VM built by the real
builder, or on this machine's own files, and asserts what the user sees: the exit status,
the one stderr line, and that nothing was touched.
"""
from __future__ import annotations

import json
import os

import pytest

from probes.sandbox.builder import build_vm
from tui.cli import main


def vgpu(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def vm(tmp_path):
    return build_vm(str(tmp_path / "vm")).root


def test_snapshot_save_never_writes_outside_json_nor_over_a_foreign_file(capsys, tmp_path, vm, monkeypatch):
    monkeypatch.setenv("VGPU_TUI_SNAPSHOTS", str(tmp_path / "snaps"))
    victim = tmp_path / "precious"
    victim.write_text("keep me\n")
    rc, out, err = vgpu(capsys, "--root", vm, "snapshot", "save", str(victim))
    assert rc == 2 and "must end in .json" in err and err.count("\n") == 1
    assert victim.read_text() == "keep me\n"
    foreign = tmp_path / "data.json"
    foreign.write_text('{"mine": true}\n')
    rc, out, err = vgpu(capsys, "--root", vm, "snapshot", "save", str(foreign))
    assert rc == 2 and "not a vgpu-tui snapshot" in err
    assert json.loads(foreign.read_text()) == {"mine": True}
    # a snapshot file of our own may be overwritten (saving the same name again)
    rc, out, err = vgpu(capsys, "--root", vm, "snapshot", "save", str(tmp_path / "good.json"))
    assert rc == 0, err
    rc, out, err = vgpu(capsys, "--root", vm, "snapshot", "save", str(tmp_path / "good.json"))
    assert rc == 0, err


@pytest.mark.parametrize("argv, message", [
    (("tree", "/etc/passwd"), "not a folder"),
    (("resolve", "/nonexistent-k"), "no such file\n"),
    (("report", "--no-probe", "--assume-version", "garbage"), "--assume-version 'garbage'"),
    (("exports", "/usr/local/lib/ollama/cuda_v12/libcublas.so.12", "--against", "nonsense"), "--against 'nonsense'"),
    (("resolve", "/usr/local/lib/ollama/cuda_v12/libggml-cuda.so", "--depth", "-1"), "--depth -1"),
])
def test_bad_input_is_one_clear_line_and_exit_2(capsys, vm, argv, message):
    rc, out, err = vgpu(capsys, "--root", vm, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("vgpu-tui: ") and err.count("\n") == 1 and message in err, err
    assert "dangling" not in err  # a path that does not exist is not a "dangling symlink"


def test_a_temporary_demo_prints_fix_commands_that_work_when_copy_pasted(capsys, tmp_path, monkeypatch):
    import shlex
    monkeypatch.setenv("HOME", str(tmp_path))
    rc, out, err = vgpu(capsys, "report", "--demo", "--no-probe")
    assert rc == 1
    fix = [line[len("Fix: "):] for line in out.splitlines() if line.startswith("Fix: ")][0]
    keep = str(tmp_path / "vgpu-demo")
    assert fix == f"vgpu-tui --demo --demo-dir {keep} fix unset OLLAMA_LLM_LIBRARY"
    # no printed command names the temporary folder, which is gone now
    assert not [line for line in out.splitlines() if "vgpu-tui " in line and "/vgpu-demo-" in line]
    assert "temporary folder" in err and keep in err and err.count("\n") == 1
    rc, out, err = vgpu(capsys, *shlex.split(fix)[1:])
    assert rc == 0, err
    assert "UnsetEnvironment=OLLAMA_LLM_LIBRARY" in (
        tmp_path / "vgpu-demo/etc/systemd/system/ollama.service.d/zz-vgpu-tui.conf").read_text()


def test_report_names_each_backend_state_once_and_manual_fixes_act_on_the_root(capsys, tmp_path):
    root = build_vm(str(tmp_path / "vm"), faults=("cublas-missing",)).root
    rc, out, err = vgpu(capsys, "--root", root, "report", "--no-probe")
    assert rc == 1
    for word in ("probed", "would load", "not probed"):
        assert f"{word} - {word}" not in out and f"{word} - probed" not in out
    assert "/usr/local/lib/ollama/cuda_v12: probed (" in out
    fix = [line for line in out.splitlines() if line.startswith("Fix: ")][0]
    # the release installed (0.24.0 ships .tar.zst), not ollama.com's newest; relaunch on the root
    assert "releases/download/v0.24.0/ollama-linux-amd64.tar.zst" in fix and "--zstd" in fix
    assert f"vgpu-tui --root {root} relaunch" in fix


def test_garbage_or_empty_log_says_so_instead_of_pretending(capsys, monkeypatch, tmp_path):
    import io
    import sys
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(os.urandom(100000))))
    rc, out, err = vgpu(capsys, "logs", "-")
    assert rc == 0 and err == ""
    assert "is this an Ollama log?" in out
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    rc, out, err = vgpu(capsys, "logs", str(empty), "--json")
    assert rc == 0 and json.loads(out)["summary"] == "the log is empty"


def test_logs_fix_commands_act_on_the_inspected_root_like_the_report_does(capsys, tmp_path):
    demo = str(tmp_path / "demo")
    rc, out, err = vgpu(capsys, "logs", "--demo", "--demo-dir", demo, "--json")
    assert rc == 1
    fixes = [f["fix"]["command"] for f in json.loads(out)["findings"] if f["fix"] and f["fix"]["command"]]
    assert fixes == [f"vgpu-tui --demo --demo-dir {demo} fix unset OLLAMA_LLM_LIBRARY"]
    rc, out, err = vgpu(capsys, "report", "--demo", "--demo-dir", demo, "--no-probe", "--json")
    assert fixes[0] in [f["fix"]["command"] for f in json.loads(out)["findings"] if f["fix"]]


def test_a_non_utf8_path_in_an_error_is_shown_as_bytes_on_one_line(capsys, tmp_path):
    folder = os.fsencode(str(tmp_path)) + b"/\xff\xfedir"
    os.mkdir(folder)
    rc, out, err = vgpu(capsys, "logs", os.fsdecode(folder + b"/nolog"))
    assert rc == 2 and err.endswith("/\\xff\\xfedir/nolog: no such file\n")
    assert "\\udc" not in err


def _as_nobody(tmp_path, *argv):
    """Run the CLI as user nobody (setpriv), the way an operator without root would."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop to user nobody")
    repo = Path(__file__).resolve().parents[1]
    site = [p for p in sys.path if p.endswith("site-packages")]
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    home = tmp_path / "nobody-home"
    home.mkdir(exist_ok=True)
    os.chown(home, 65534, 65534)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONPATH": os.pathsep.join([str(repo)] + site)}
    out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-m", "tui", *argv],
                         capture_output=True, text=True, cwd=str(repo), env=env, timeout=120)
    if "No module named" in out.stderr or "Permission denied" in out.stderr and "vgpu-tui" not in out.stderr:
        pytest.skip(f"this Python cannot run as nobody here: {out.stderr.strip()[:200]}")
    return out


@pytest.fixture
def open_tmp():
    """A folder user nobody can reach (pytest's own tmp_path sits under a 0700 folder)."""
    import shutil
    import tempfile
    from pathlib import Path
    d = tempfile.mkdtemp(prefix="vgpu-qa-")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_unreadable_places_are_named_as_such_for_a_user_without_root(open_tmp):
    tmp_path = open_tmp
    vm = build_vm(str(tmp_path / "vm")).root
    os.chmod(os.path.dirname(vm), 0o755)
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "libz.so.1").write_bytes(b"\x7fELF")
    out = _as_nobody(tmp_path, "resolve", str(secret / "libz.so.1"))
    assert out.returncode == 2 and out.stderr.endswith("libz.so.1: permission denied\n"), out.stderr
    out = _as_nobody(tmp_path, "--root", str(secret), "report", "--no-probe")
    assert out.returncode == 2 and out.stdout == "" and "permission denied" in out.stderr
    # a change without the rights: one line, no traceback, and nothing written — both before
    # the journal exists and once root has used it (its lock file is then root's)
    before = sorted(os.listdir(vm + "/etc/systemd/system/ollama.service.d"))
    for _ in range(2):
        out = _as_nobody(tmp_path, "--root", vm, "fix", "env", "OLLAMA_DEBUG=1")
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "permission denied" in out.stderr.lower() and "internal error" not in out.stderr
        assert sorted(os.listdir(vm + "/etc/systemd/system/ollama.service.d")) == before
        assert main(["--root", vm, "fix", "env", "OLLAMA_DEBUG=1"]) == 0
        assert main(["--root", vm, "undo"]) == 0


def test_snapshot_list_with_none_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VGPU_TUI_SNAPSHOTS", str(tmp_path / "none"))
    rc, out, err = vgpu(capsys, "snapshot", "list")
    assert rc == 0 and out.startswith("no snapshots in ")


def test_exports_answers_the_against_question_first_and_lists_names_sorted(capsys, tmp_path):
    root = build_vm(str(tmp_path / "vm"), faults=("shim-missing-fatal",)).root
    rc, out, err = vgpu(capsys, "--root", root, "exports", "/opt/vgpu/lib/libcuda.so.1", "--against", "libcuda")
    assert rc == 1
    assert 0 < out.index("Missing against libcuda") < out.index("Exports (")
    assert "cuMemCreate" in out[:out.index("Exports (")]
    names = [line.split()[-1] for line in out[out.index("Exports ("):out.index("Imports (")].splitlines()[2:] if line.strip()]
    assert names == sorted(names) and len(names) > 100


def test_exports_of_a_real_library_lists_readelf_s_set_in_name_order(capsys):
    import shutil
    import subprocess
    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc) or not shutil.which("readelf"):
        pytest.skip("needs glibc's libc.so.6 and readelf")
    rc, out, err = vgpu(capsys, "exports", libc, "--no-imports")
    assert rc == 0
    rows = [line.split() for line in out.splitlines()[out.splitlines().index("Exports (%d):" % (
        len([r for r in out.splitlines() if r.startswith("  FUNC") or r.startswith("  OBJECT")
             or r.startswith("  IFUNC") or r.startswith("  NOTYPE") or r.startswith("  TLS")]))) + 2:] if line.strip()]
    ref = subprocess.run(["readelf", "--dyn-syms", "-W", libc], capture_output=True, text=True).stdout.splitlines()
    want = {r.split()[7] for r in ref if len(r.split()) >= 8 and r.split()[0].rstrip(":").isdigit()
            and r.split()[6] != "UND" and r.split()[4] != "LOCAL"}
    got = [r[-1] for r in rows]
    assert set(got) == want and got == sorted(got, key=lambda n: n.split("@")[0])


@pytest.mark.parametrize("fault", ["cublas-missing", "ggml-cuda-dangling"])
def test_tree_calls_a_cuda_backend_that_cannot_load_an_error_as_report_does(capsys, tmp_path, fault):
    root = build_vm(str(tmp_path / "vm"), faults=(fault,)).root
    rc, out, err = vgpu(capsys, "--root", root, "tree")
    assert rc == 1
    assert "ERROR [backend-lib-missing] /usr/local/lib/ollama/cuda_v12/libggml-cuda.so" in out
    assert "libcublas.so.12: libcublas.so.12:" not in out
    rc_report = main(["--root", root, "report", "--no-probe"])
    capsys.readouterr()
    assert rc_report == rc


def test_tree_of_a_working_layout_with_a_spare_link_has_no_error(capsys, tmp_path):
    root = build_vm(str(tmp_path / "vm"), faults=("top-level-symlinks",)).root
    rc, out, err = vgpu(capsys, "--root", root, "tree")
    assert rc == 0 and "ERROR" not in out


def test_resolve_says_first_what_is_missing_and_how_to_see_the_runner_s_view(capsys, tmp_path):
    import shlex
    root = build_vm(str(tmp_path / "vm")).root
    lib = "/usr/local/lib/ollama/cuda_v12/libggml-cuda.so"
    rc, out, err = vgpu(capsys, "--root", root, "resolve", lib)
    assert rc == 1
    first = out.splitlines()[0]
    assert first.startswith("4 of 6 dependencies cannot be loaded (no LD_LIBRARY_PATH): libggml-base.so.0")
    hint = out.strip().splitlines()[-1]
    cmd = hint[hint.index("vgpu-tui "):hint.index("  (or")]
    rc, out, err = vgpu(capsys, *shlex.split(cmd)[1:])
    assert rc == 0 and out.startswith("all 6 dependencies resolve (LD_LIBRARY_PATH=")


def test_painted_cells_stay_aligned_on_a_terminal(monkeypatch):
    import io
    import sys
    from tui import output

    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(sys, "stdout", Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    gpu = output.paint("GPU", "green")
    assert gpu != "GPU"  # coloured on a terminal
    lines = output.table([("0000:00:06.0", gpu, "NVIDIA"), ("0000:00:01.0", "", "Intel")], header=("slot", "", "name"))
    starts = {output._ANSI.sub("", line).index(name) for line, name in zip(lines, ("name", "NVIDIA", "Intel"))}
    assert len(starts) == 1


@pytest.mark.parametrize("ollama, message", [
    ("/nonexistent-ollama", "no such file"),
    ("/etc/passwd", "not an executable (ELF) file"),
    ("/usr/local/lib/ollama", "not a file"),
])
def test_a_wrong_ollama_path_is_refused_rather_than_diagnosed(capsys, vm, ollama, message):
    # before: "Ollama reads /etc" and a fix that replaced /etc/passwd by a link (--force)
    rc, out, err = vgpu(capsys, "--root", vm, "report", "--no-probe", "--ollama", ollama)
    assert rc == 2 and out == "" and f"--ollama {ollama}: {message}" in err


def test_the_real_ollama_binary_is_accepted(capsys, vm):
    rc, out, err = vgpu(capsys, "--root", vm, "report", "--no-probe", "--ollama", "/usr/local/bin/ollama")
    assert rc == 0 and out.startswith("GPU ready"), err


def test_a_demo_dir_that_is_a_file_is_refused_in_one_line(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    rc, out, err = vgpu(capsys, "--demo", "--demo-dir", str(f), "device")
    assert rc == 2 and err == f"vgpu-tui: --demo-dir {f}: not a folder\n" and f.read_text() == "x"


def test_a_device_given_as_log_is_refused_and_overlong_lines_are_cut(capsys, monkeypatch):
    import io
    import sys
    from probes.logs import MAX_LINE_BYTES, bounded_lines
    rc, out, err = vgpu(capsys, "logs", "/dev/zero")  # used to read (and grow) forever
    assert rc == 2 and "a device, not a log file" in err
    ok = b'time=2026-01-01T00:00:00Z level=INFO source=routes.go:1 msg="Listening on 127.0.0.1:11434 (version 0.24.0)"\n'
    data = b"\0" * (3 * MAX_LINE_BYTES + 5) + b"\n" + ok
    lines = list(bounded_lines(io.BytesIO(data)))
    assert [len(x) for x in lines] == [MAX_LINE_BYTES, len(ok)] and lines[1] == ok
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    rc, out, err = vgpu(capsys, "logs", "-", "--json")
    assert rc == 0 and json.loads(out)["ollama_version"] == "0.24.0"


@pytest.mark.parametrize("size", [10, 3000])
def test_exports_of_a_truncated_library_is_an_error_not_an_empty_list(capsys, tmp_path, size):
    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        pytest.skip("needs glibc's libc.so.6")
    cut = tmp_path / "libcut.so"
    cut.write_bytes(open(libc, "rb").read(size))
    rc, out, err = vgpu(capsys, "exports", str(cut))
    assert rc == 2 and out == "" and "truncated" in err and "None" not in err
    from probes.elf import ElfInfo  # noqa: F401 - the summary of an unreadable header
    from probes.elf import read_elf
    from probes.host import Host
    assert "None" not in read_elf(Host.local(), str(cut)).summary()


def test_a_root_with_a_space_gives_a_fix_command_that_survives_the_shell(capsys, tmp_path):
    import shlex
    root = build_vm(str(tmp_path / "my vm"), faults=("llm-library-no-match",)).root
    rc, out, err = vgpu(capsys, "--root", root, "report", "--no-probe")
    fix = [line[len("Fix: "):] for line in out.splitlines() if line.startswith("Fix: ")][0]
    rc, out, err = vgpu(capsys, *shlex.split(fix)[1:], "--dry-run")
    assert rc == 0 and "UnsetEnvironment=OLLAMA_LLM_LIBRARY" in out, err


@pytest.mark.parametrize("command", [("report", "--no-probe"), ("probe",), ("device",), ("tree",)])
def test_a_bad_gpu_id_is_a_usage_error_for_every_command(capsys, vm, command):
    rc, out, err = vgpu(capsys, "--root", vm, *command, "--gpu", "garbage")
    assert rc == 2 and out == "" and err == "vgpu-tui: --gpu 'garbage': expected VENDOR:DEVICE in hex, e.g. 10de:2335\n"


def test_a_device_fix_under_root_says_it_is_for_the_vm_not_this_machine(capsys, tmp_path):
    root = build_vm(str(tmp_path / "vm"), faults=("device-nodes-no-access",)).root
    rc, out, err = vgpu(capsys, "--root", root, "device")
    assert rc == 1
    fix = [line.strip() for line in out.splitlines() if line.strip().startswith("fix")][0]
    assert fix.startswith("fix (on the inspected system itself, not on this machine): chmod 0666 /dev/nvidiactl")
    assert "NVreg_DeviceFileMode" in fix  # chmod alone is lost at the next boot
    rc, out, err = vgpu(capsys, "--root", root, "report", "--no-probe")
    assert "Fix: (on the inspected system itself, not on this machine) chmod 0666" in out


@pytest.mark.parametrize("argv, message", [
    (("report", "--timeout", "-1"), "--timeout must be a positive number"),
    (("report", "--timeout", "0"), "--timeout must be a positive number"),
    (("report", "--json", "--markdown", "--no-probe"), "--json and --markdown: choose one"),
    (("logs", "--lines", "-5"), "--lines -5: give a positive number"),
])
def test_option_values_that_make_no_sense_are_refused(capsys, vm, argv, message):
    rc, out, err = vgpu(capsys, "--root", vm, *argv)
    assert rc == 2 and out == "" and message in err and err.count("\n") == 1


def test_probe_under_root_does_not_advise_an_option_that_refuses_root(capsys, vm):
    rc, out, err = vgpu(capsys, "--root", vm, "probe")
    assert rc == 0, err
    assert "--as-user" not in out  # `probe --as-user` only works on this machine
    rc, out, err = vgpu(capsys, "--root", vm, "probe", "--as-user", "ollama")
    assert rc == 2 and "only works on this machine" in err


def test_resolve_counts_a_missing_preload_apart_from_the_dependencies(capsys):
    import shutil
    import subprocess
    if not os.path.exists("/usr/bin/ls"):
        pytest.skip("needs /usr/bin/ls")
    rc, out, err = vgpu(capsys, "resolve", "/usr/bin/ls", "--env", "LD_PRELOAD=/nonexistent-k.so")
    first, second = out.splitlines()[:2]
    assert first.startswith("all ") and "dependencies resolve" in first
    assert second.startswith("preload cannot be loaded") and "/nonexistent-k.so" in second
    if shutil.which("true"):  # the real loader: ignored, and the program runs
        real = subprocess.run(["true"], env={"LD_PRELOAD": "/nonexistent-k.so", "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True)
        assert real.returncode == 0 and "ignored" in real.stderr


def test_a_broken_lib_ollama_link_or_an_empty_tree_is_named_not_unexplained(capsys, tmp_path):
    root = build_vm(str(tmp_path / "link")).root
    lib = os.path.join(root, "usr/local/lib/ollama")
    os.rename(lib, lib + ".moved")
    os.symlink("/opt/ollama-old/lib/ollama", lib)  # the tree the link named was moved away
    rc, out, err = vgpu(capsys, "--root", root, "report", "--no-probe")
    assert rc == 1 and "no rule found why" not in out
    assert out.startswith("CPU only: /usr/local/lib/ollama is a dangling symlink, so Ollama reads /usr/local/bin")
    assert out.count("[error]") == 1
    root = build_vm(str(tmp_path / "empty")).root
    lib = os.path.join(root, "usr/local/lib/ollama")
    import shutil
    shutil.rmtree(lib)
    os.mkdir(lib)
    rc, out, err = vgpu(capsys, "--root", root, "report", "--no-probe")
    assert rc == 1 and out.startswith("CPU only: /usr/local/lib/ollama holds no libggml-cuda.so")


CORPUS = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "corpus"


def test_a_json_document_is_not_read_as_a_log(capsys):
    doc = CORPUS / "issue-logs" / "001.json"
    if not doc.exists():
        pytest.skip("the corpus is not there")
    rc, out, err = vgpu(capsys, "logs", str(doc))  # its "notes" quote Ollama's messages
    assert rc == 2 and out == "" and "a JSON document, not an Ollama log" in err


def test_journalctl_json_export_reads_like_the_plain_log(capsys, tmp_path):
    """`journalctl -u ollama -o json > x` (real journalctl on a journal written by
    systemd-journal-remote) gives the same verdict as the plain log."""
    import shutil
    import subprocess
    from tests.test_logsource import JOURNAL_REMOTE, JOURNALCTL, write_journal
    plain = CORPUS / "ollama-0.24" / "e3_llm_library_cuda_v13_on_b.debug.log"
    if not (JOURNAL_REMOTE and JOURNALCTL and plain.exists()):
        pytest.skip("needs journalctl, systemd-journal-remote and the corpus")
    messages = [line.split("]: ", 1)[1] if "]: " in line[:80] else line
                for line in plain.read_text().splitlines() if line.strip()]
    journal = tmp_path / "ollama.journal"
    write_journal(journal, messages)
    export = subprocess.run([JOURNALCTL, "--file", str(journal), "-o", "json", "--no-pager"],
                            capture_output=True, text=True, check=True).stdout
    (tmp_path / "x.json").write_text(export)
    rc, out, err = vgpu(capsys, "logs", str(tmp_path / "x.json"), "--json")
    from_json = json.loads(out)
    rc2, out, err = vgpu(capsys, "logs", str(plain), "--json")
    from_plain = json.loads(out)
    assert rc == rc2 == 1
    for key in ("ollama_version", "library", "gpu_used", "gpu_count", "summary"):
        assert from_json[key] == from_plain[key], key
    assert [f["id"] for f in from_json["findings"]] == [f["id"] for f in from_plain["findings"]]


def test_after_a_fix_under_root_the_printed_undo_and_relaunch_act_on_that_root(capsys, vm):
    import shlex
    rc, out, err = vgpu(capsys, "--root", vm, "fix", "env", "OLLAMA_DEBUG=1")
    assert rc == 0
    assert f"(`vgpu-tui --root {vm} relaunch`)" in out
    undo = [line[len("undo with: "):] for line in out.splitlines() if line.startswith("undo with: ")][0]
    assert undo == f"vgpu-tui --root {vm} undo c0001"  # a bare `vgpu-tui undo` would undo here, on /
    rc, out, err = vgpu(capsys, *shlex.split(undo)[1:])
    assert rc == 0 and out.startswith("c0001 undone")


def test_a_fix_on_a_temporary_demo_says_it_is_gone(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    rc, out, err = vgpu(capsys, "--demo", "fix", "env", "OLLAMA_DEBUG=1")
    assert rc == 0 and "undo with" not in out and "this demo VM was temporary" in out


def test_tree_does_not_repeat_an_absolute_link_target(capsys, tmp_path):
    root = build_vm(str(tmp_path / "vm"), faults=("libcuda-not-on-path",)).root
    os.symlink("/opt/vgpu/lib/libcuda.so.1", os.path.join(root, "usr/local/lib/ollama/libcuda.so.1"))
    rc, out, err = vgpu(capsys, "--root", root, "tree")
    line = [x for x in out.splitlines() if "libcuda.so.1 ->" in x][0]
    assert line.count("/opt/vgpu/lib/libcuda.so.1") == 1


@pytest.mark.parametrize("module", ["gzip", "lzma", "bz2"])
def test_a_rotated_compressed_log_reads_like_the_plain_one(capsys, tmp_path, vm, module):
    plain = CORPUS / "ollama-0.24" / "e3_llm_library_cuda_v13_on_b.log"
    if not plain.exists():
        pytest.skip("the corpus is not there")
    packed = tmp_path / "ollama.log.2"
    with __import__(module).open(str(packed), "wb") as fh:
        fh.write(plain.read_bytes())
    rc, out, err = vgpu(capsys, "logs", str(packed), "--json")
    rc2, out2, err2 = vgpu(capsys, "logs", str(plain), "--json")
    a, b = json.loads(out), json.loads(out2)
    assert rc == rc2 == 1 and a["summary"] == b["summary"] and a["library"] == b["library"] == "cpu"
    rc, out, err = vgpu(capsys, "--root", vm, "report", "--no-probe", "--log", str(packed), "--json")
    assert json.loads(out)["log"]["library"] == "cpu"
    damaged = tmp_path / "cut.gz"
    damaged.write_bytes(packed.read_bytes()[:120]) if module == "gzip" else None
    if module == "gzip":
        rc, out, err = vgpu(capsys, "logs", str(damaged))
        assert rc == 2 and "damaged gzip file" in err


def test_report_log_of_a_device_is_refused_not_read_forever(capsys, vm):
    rc, out, err = vgpu(capsys, "--root", vm, "report", "--no-probe", "--log", "/dev/zero")
    assert rc == 2 and err == "vgpu-tui: --log /dev/zero: a device, not a log file\n"


def test_snapshot_options_may_come_anywhere(capsys, tmp_path, vm):
    folder = str(tmp_path / "snaps")
    rc, out, err = vgpu(capsys, "--root", vm, "snapshot", "save", "--json", "--dir", folder, "good")
    assert rc == 0 and json.loads(out)["name"] == "good", err  # was: unrecognized arguments: good
    rc, out, err = vgpu(capsys, "--root", vm, "snapshot", "--dir", folder, "diff", "good")
    assert rc == 0 and out.startswith("compared with good")
    rc, out, err = vgpu(capsys, "snapshot", "list", "--dir", folder)
    assert rc == 0 and out.splitlines()[1].startswith("good")


def test_no_gpu_tells_how_to_declare_a_stub_device_with_other_ids(capsys, tmp_path):
    root = build_vm(str(tmp_path / "vm"), faults=("no-gpu",)).root
    rc, out, err = vgpu(capsys, "--root", root, "device")
    assert rc == 1 and "declare it with --gpu VENDOR:DEVICE" in out
