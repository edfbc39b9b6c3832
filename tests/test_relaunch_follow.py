"""The relaunch watch follows logs through probes.logsource: a child Ollama's log rotated in the
middle of the watch (both logrotate modes), and the systemd way with a FAKE `systemctl` (a test
must never restart a real service, and this machine runs no systemd) while the journal is a
REAL journal file written by systemd-journal-remote and read by the real journalctl (a wrapper
adds only `--file`, since no journald runs here)."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from probes import fixes, launcher
from probes.host import Host
from tests.test_launcher import CPU, GPU, HEAD, Install, cleanup, live  # noqa: F401 (cleanup: fixture)
from tests.test_logsource import JOURNAL_REMOTE, JOURNALCTL, journal_export, needs_journal, write_journal

# request lines written after the rotation: more bytes than before it, so only a follower that
# notices the rotation (not one that compares sizes) reads them from the right place
GIN = '[GIN] 2026/11/29 - 19:00:0{n} | 200 |       1.234ms |       127.0.0.1 | GET      "/api/version"'
MORE = "".join(GIN.format(n=n) + "\n" for n in range(8))


def rotating_standin(tmp_path: Path) -> str:
    """An `ollama` stand-in that logs its start, waits until the test has rotated its log, then
    logs discovery. With REOPEN set it reopens its log by name first, as a server told to after
    logrotate's create mode does; without, it keeps writing through its descriptor."""
    d = tmp_path / "bin"
    d.mkdir()
    for name, text in (("head", HEAD), ("more", MORE), ("gpu", GPU)):
        (d / f"ollama.{name}").write_text(text)
    p = d / "ollama"
    p.write_text("\n".join([
        "#!/bin/sh", '[ "$1" = serve ] || exit 2',
        'LOG=$(readlink /proc/$$/fd/1)',
        'cat "$0.head"',
        'while [ ! -e "$0.go" ]; do sleep 0.05; done',
        'if [ -n "$REOPEN" ]; then exec >>"$LOG" 2>&1; fi',
        'cat "$0.more" "$0.gpu"',
        "trap 'exit 0' TERM", "while :; do sleep 0.1; done"]) + "\n")
    p.chmod(0o755)
    return str(p)


def rotate_when_started(log: Path, go: Path, mode: str, errors: list) -> None:
    try:
        deadline = time.monotonic() + 15
        while "discovering available GPUs" not in (log.read_text() if log.exists() else ""):
            if time.monotonic() > deadline:
                raise AssertionError("the stand-in never logged its start")
            time.sleep(0.02)
        time.sleep(0.3)  # the watch has read the first lines by now
        if mode == "copytruncate":
            shutil.copyfile(log, str(log) + ".1")
            with open(log, "r+") as fh:
                fh.truncate(0)
        else:  # create
            os.rename(log, str(log) + ".1")
            log.touch()
        go.touch()
    except Exception as exc:  # reported by the test
        errors.append(exc)
        go.touch()


@pytest.mark.parametrize("mode", ["copytruncate", "create"])
def test_child_watch_survives_the_log_being_rotated_during_the_watch(tmp_path, cleanup, mode):  # noqa: F811
    binary = rotating_standin(tmp_path)
    host = live(tmp_path, **({"REOPEN": "1"} if mode == "create" else {}))
    cleanup(host)
    log = tmp_path / "state" / launcher.CHILD_LOG_NAME
    errors: list = []
    rotator = threading.Thread(target=rotate_when_started, args=(log, Path(binary + ".go"), mode, errors))
    rotator.start()
    events = list(launcher.iter_relaunch(host, Install(binary), watch_seconds=15))
    rotator.join()
    assert not errors, errors
    r = events[-1].result
    lines = [ev.text for ev in events if ev.kind == "line"]
    assert r.ok and r.discovery_finished and r.library_after == "cuda", (r.problem, lines)
    assert r.devices and r.devices[0].name in ("VGPU-STUB", "CUDA0")
    # every line once, in order: those before the rotation and those after it
    assert lines == (HEAD + MORE + GPU).splitlines()
    assert "discovering available GPUs" in Path(str(log) + ".1").read_text()  # it was rotated for real
    assert "inference compute" not in Path(str(log) + ".1").read_text()


def journal_host(tmp_path: Path, monkeypatch, journal: Path, new_entries: bytes = b"") -> Host:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    restart = f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.args\n'
    if new_entries:  # FAKE: "restarting" appends the new server's entries to the journal
        (tmp_path / "restart.export").write_bytes(new_entries)
        restart += f'exec {JOURNAL_REMOTE} -o {journal} - < {tmp_path}/restart.export 2>/dev/null\n'
    (fake / "systemctl").write_text(restart)
    (fake / "journalctl").write_text(  # the real journalctl, on the real journal file
        f'#!/bin/sh\necho "$@" >> {tmp_path}/journalctl.args\nexec {JOURNALCTL} --file {journal} "$@"\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    monkeypatch.setattr(fixes, "service_unit", lambda host: "/etc/systemd/system/ollama.service")
    monkeypatch.setattr(fixes, "systemd_running", lambda host: True)
    return Host("/", {"PATH": f"{fake}:{os.environ['PATH']}", launcher.J.STATE_DIR_ENV: str(tmp_path / "state")},
                live=True)


@needs_journal
def test_systemd_relaunch_follows_a_real_journal_through_logsource(tmp_path, monkeypatch):
    journal = tmp_path / "journal" / "system.journal"
    journal.parent.mkdir()
    write_journal(journal, (HEAD + CPU).splitlines(), start_us=int((time.time() - 120) * 1e6))
    write_journal(journal, ["another unit's line"], unit="sshd.service", mono=3000)
    # the restarted server: more than the 10 entries `journalctl -f` alone would show
    new = (HEAD + MORE + GPU).splitlines()
    host = journal_host(tmp_path, monkeypatch, journal, journal_export(new, mono=5000))
    events = list(launcher.iter_relaunch(host, watch_seconds=15))
    r = events[-1].result
    lines = [ev.text for ev in events if ev.kind == "line"]
    assert r.method == "systemd" and r.ok, r.problem
    assert (r.library_before, r.library_after, r.gpu_used_before) == ("cpu", "cuda", False)
    # every entry of the restarted server, once, journald-prefixed; none of the old server's
    assert [ln.split(": ", 1)[1] for ln in lines] == new
    assert all(" gpuvm ollama[4242]: " in ln for ln in lines)
    assert (tmp_path / "systemctl.args").read_text() == "restart ollama.service\n"
    prior, follow = (tmp_path / "journalctl.args").read_text().splitlines()
    assert "-u ollama.service" in prior and "--show-cursor" in prior
    assert "-f" in follow.split() and "--after-cursor s=" in follow and follow.endswith("-n all")
    shown = [ev.text for ev in events if ev.kind == "status" and "--after-cursor" in ev.text]
    assert shown and "-o short-iso" in shown[0]


@needs_journal
def test_systemd_relaunch_says_why_the_journal_cannot_be_followed(tmp_path, monkeypatch):
    host = journal_host(tmp_path, monkeypatch, tmp_path / "missing" / "system.journal")
    t0 = time.monotonic()
    r = launcher.relaunch(host, watch_seconds=20)
    assert time.monotonic() - t0 < 10  # not the whole --watch
    assert not r.ok and r.problem.startswith("the journal could not be followed: ")
    assert "no such file" in r.problem.lower()


@needs_journal
async def test_leaving_the_watch_early_stops_following_the_journal(tmp_path, monkeypatch):
    import psutil

    journal = tmp_path / "journal" / "system.journal"
    journal.parent.mkdir()
    write_journal(journal, (HEAD + CPU).splitlines(), start_us=int((time.time() - 120) * 1e6))
    # the new server has not finished discovery: the watch would go on for its 60 s
    host = journal_host(tmp_path, monkeypatch, journal, journal_export(HEAD.splitlines(), mono=5000))

    def followers():
        return [p for p in psutil.process_iter(["cmdline", "status"]) if str(journal) in " ".join(p.info["cmdline"] or [])
                and "-f" in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]

    stream = launcher.relaunch_stream(host, watch_seconds=60)
    t0 = time.monotonic()
    async for ev in stream:
        if ev.kind == "line":
            break  # the operator closes the relaunch screen
    assert len(followers()) == 1  # journalctl -f was following
    await stream.aclose()
    assert followers() == [] and time.monotonic() - t0 < 10
