"""The live log sources against the real things: journalctl on journal files written by
systemd-journal-remote, files rotated and truncated for real, real child processes."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes.host import Host
from probes.logs import LogParser
from probes.logsource import (ENDED, RUNNING, UNAVAILABLE, FileSource, JournalSource, ProcessSource,
                              UnavailableSource, recent_service_lines, service_log_source)
from probes.errors import ToolError

JOURNAL_REMOTE = next((p for p in ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
                       if os.path.exists(p)), None)
JOURNALCTL = shutil.which("journalctl")
needs_journal = pytest.mark.skipif(not (JOURNAL_REMOTE and JOURNALCTL),
                                   reason="journalctl or systemd-journal-remote (apt: systemd-journal-remote) missing")

LISTEN = 'time=2026-01-01T00:00:00Z level=INFO source=routes.go:1864 msg="Listening on 127.0.0.1:11434 (version 0.24.0)"'
CPU_IC = ('time=2026-01-01T00:00:00Z level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu '
          'compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="31 GiB" available="29 GiB"')


def journal_export(messages, unit="ollama.service", start_us=None, mono=1000) -> bytes:
    """Entries in journald's export format (what systemd-journal-remote reads)."""
    ts = start_us or int(time.time() * 1e6)
    out = b""
    for i, msg in enumerate(messages):
        out += (b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n"
                b"_SYSTEMD_UNIT=%s\nSYSLOG_IDENTIFIER=ollama\n_PID=4242\n_HOSTNAME=gpuvm\nMESSAGE=%s\n\n"
                % (ts + i, mono + i, unit.encode(), msg.encode()))
    return out


def write_journal(path: Path, messages, unit="ollama.service", start_us=None, mono=1000):
    """Append entries to a real journal file with systemd-journal-remote (export format on stdin)."""
    out = journal_export(messages, unit, start_us, mono)
    subprocess.run([JOURNAL_REMOTE, "-o", str(path), "-"], input=out, check=True, capture_output=True, timeout=30)


async def take(source, n, timeout=10.0):
    out = []
    async def go():
        async for line in source:
            out.append(line)
            if len(out) >= n:
                break
    await asyncio.wait_for(go(), timeout)
    return out


# -- journalctl ---------------------------------------------------------------------------------
@needs_journal
async def test_journal_reads_the_unit_from_a_real_journal_file(tmp_path):
    j = tmp_path / "ollama.journal"
    write_journal(j, [LISTEN, CPU_IC])
    write_journal(j, ["not ollama"], unit="sshd.service", mono=5000)
    src = JournalSource("ollama", follow=False, files=[str(j)])
    lines = [ln async for ln in src]
    assert len(lines) == 2 and all(" gpuvm ollama[4242]: " in ln for ln in lines)
    assert src.state == ENDED
    p = LogParser("journal")
    for ln in lines:
        p.feed(ln)
    r = p.report()
    assert (r.ollama_version, r.library, r.gpu_used) == ("0.24.0", "cpu", False)


@needs_journal
async def test_journal_follow_sees_new_entries_and_since_skips_old_ones(tmp_path):
    j = tmp_path / "ollama.journal"
    old = int((time.time() - 3600) * 1e6)
    write_journal(j, ["old line before relaunch"], start_us=old)
    write_journal(j, [LISTEN], mono=2000)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 600))
    src = JournalSource("ollama", since=since, follow=True, files=[str(j)])
    try:
        first = await take(src, 1)
        assert src.state == RUNNING and "Listening on" in first[0]
        write_journal(j, [CPU_IC], mono=3000)
        more = await take(src, 1)
        assert "inference compute" in more[0]
    finally:
        await src.close()
    assert src.proc.returncode is not None  # the journalctl child is gone


@needs_journal
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to run journalctl as nobody")
async def test_journal_permission_denied_is_a_state(tmp_path):
    j = tmp_path / "ollama.journal"
    write_journal(j, [LISTEN])
    os.chmod(j, 0o600)
    os.chmod(tmp_path, 0o755)
    wrapper = tmp_path / "journalctl-as-nobody"
    wrapper.write_text(f"#!/bin/sh\nexec runuser -u nobody -- {JOURNALCTL} \"$@\"\n")
    wrapper.chmod(0o755)
    src = JournalSource("ollama", follow=False, files=[str(j)], journalctl=str(wrapper))
    assert [ln async for ln in src] == []
    assert src.state == UNAVAILABLE and src.reason.startswith("permission denied")


async def test_journal_without_journalctl_is_unavailable():
    src = JournalSource("ollama", journalctl="/nonexistent/journalctl")
    assert [ln async for ln in src] == []
    assert (src.state, src.reason) == (UNAVAILABLE, "no journald (journalctl not found)")


@pytest.mark.skipif(not os.path.exists("/run/systemd/journal"), reason="journald is not running on this machine")
async def test_real_journald_unit_query():
    src = JournalSource("ollama", follow=False, lines=5)
    lines = [ln async for ln in src]
    assert src.state in (ENDED, UNAVAILABLE) and isinstance(lines, list)


def test_service_source_choice(tmp_path):
    # a sandbox root: its service log file
    (tmp_path / ".vgpu-sandbox").mkdir()
    (tmp_path / "var/log/ollama").mkdir(parents=True)
    (tmp_path / "var/log/ollama/ollama.log").write_text("Nov 29 19:34:12 vgpu-demo ollama[1]: " + LISTEN + "\n")
    src = service_log_source(Host(str(tmp_path)))
    assert isinstance(src, FileSource) and src.path == str(tmp_path / "var/log/ollama/ollama.log")
    source, lines = recent_service_lines(Host(str(tmp_path)))
    assert lines and "Listening on" in lines[0]
    # a plain image without a log: a clear state, not a crash
    bare = tmp_path / "bare"
    bare.mkdir()
    src = service_log_source(Host(str(bare)))
    assert isinstance(src, UnavailableSource) and src.state == UNAVAILABLE and "not this machine" in src.reason
    with pytest.raises(ToolError):
        recent_service_lines(Host(str(bare)))
    # this machine: the journal if journald and the unit exist, else why not
    src = service_log_source(Host.local())
    if isinstance(src, UnavailableSource):
        assert src.reason.startswith(("no journald", "no unit ollama"))
    else:
        assert isinstance(src, JournalSource)


# -- files --------------------------------------------------------------------------------------
async def test_file_follow_survives_rotation_and_truncation(tmp_path):
    log = tmp_path / "ollama.log"
    log.write_text("one\ntwo\n")
    src = FileSource(str(log), poll=0.01)
    try:
        assert await take(src, 2) == ["one", "two"]
        with open(log, "a") as fh:
            fh.write("three\npart")
        assert await take(src, 1) == ["three"]
        with open(log, "a") as fh:
            fh.write("ial\n")
        assert await take(src, 1) == ["partial"]
        # logrotate's create mode: rename, then a new file at the same path
        with open(log, "a") as fh:
            fh.write("last of old\n")
        os.rename(log, tmp_path / "ollama.log.1")
        log.write_text("first of new\n")
        assert await take(src, 2) == ["last of old", "first of new"]
        assert src.rotations == 1
        # copytruncate mode: the same file emptied and written again
        with open(log, "r+") as fh:
            fh.truncate(0)
        await asyncio.sleep(0.05)
        with open(log, "a") as fh:
            fh.write("after truncate\n")
        assert await take(src, 1) == ["after truncate"]
        assert src.truncations == 1
    finally:
        await src.close()


async def test_file_missing_then_created_and_long_lines_cut(tmp_path):
    log = tmp_path / "later.log"
    src = FileSource(str(log), poll=0.01)
    it = src.__aiter__()
    task = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0.05)
    assert src.state == UNAVAILABLE and "no such file" in src.reason
    log.write_bytes(b"x" * 200000 + b"\nshort\n")
    first = await asyncio.wait_for(task, 5)
    assert len(first) == 64 * 1024 and src.state == RUNNING
    assert await asyncio.wait_for(it.__anext__(), 5) == "short"
    await src.close()


async def test_file_not_followed_reads_to_the_end(tmp_path):
    log = tmp_path / "x.log"
    log.write_bytes(b"a\r\nb\n\xff\xfe garbage\nno newline")
    lines = [ln async for ln in FileSource(str(log), follow=False)]
    assert lines == ["a", "b", "\ufffd\ufffd garbage", "no newline"]


# -- processes ----------------------------------------------------------------------------------
async def test_process_source_reads_a_real_child():
    code = "import sys\nprint('out 1', flush=True)\nprint('err 1', file=sys.stderr, flush=True)\nsys.exit(3)"
    src = ProcessSource([sys.executable, "-c", code])
    lines = [ln async for ln in src]
    assert sorted(lines) == ["err 1", "out 1"]
    assert (src.state, src.reason, src.returncode) == (ENDED, "exited with code 3", 3)


async def test_process_source_merges_a_started_process_and_close_stops_it():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys,time\nprint('a',flush=True)\nprint('b',file=sys.stderr,flush=True)",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    src = ProcessSource(proc)
    assert sorted([ln async for ln in src]) == ["a", "b"]
    long_running = ProcessSource([sys.executable, "-c", "import time\nprint('up',flush=True)\ntime.sleep(60)"])
    assert await take(long_running, 1) == ["up"]
    await long_running.close()
    assert long_running.returncode is not None and long_running.state == ENDED


async def test_process_source_missing_command():
    src = ProcessSource(["/nonexistent/ollama", "serve"])
    assert [ln async for ln in src] == []
    assert src.state == UNAVAILABLE and "command not found" in src.reason
