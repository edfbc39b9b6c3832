"""SyncTail, the synchronous reading of the log sources (what the relaunch watch uses), and the
one journalctl command line, against the real things: files rotated and truncated for real,
journalctl on journal files written by systemd-journal-remote."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time

from probes.logsource import (ENDED, RUNNING, UNAVAILABLE, FileSource, JournalSource, SyncTail, journal_argv)
from tests.test_logsource import JOURNALCTL, LISTEN, needs_journal, write_journal


def test_sync_tail_follows_a_file_through_rotation_and_truncation_and_returns_the_rest(tmp_path):
    log = tmp_path / "serve.log"
    log.write_text("before the restart\n")
    with SyncTail(FileSource(str(log), offset=log.stat().st_size, poll=0.01)).start() as tail:
        assert tail.state == RUNNING and tail.read(0.05) == []  # starts at the old end
        with open(log, "a") as fh:
            fh.write("one\ntwo\npart")
        t0 = time.monotonic()
        assert tail.read(2) == ["one", "two"]
        assert time.monotonic() - t0 < 1  # returns as soon as lines came, not after `wait`
        # logrotate's create mode: renamed away, a new file at the path
        os.rename(log, tmp_path / "serve.log.1")
        log.write_text("first of new\n")
        got = []
        while len(got) < 2:
            got += tail.read(1)
        assert got == ["part", "first of new"] and tail.source.rotations == 1
        # copytruncate mode: emptied, then written again past the old position
        with open(log, "r+") as fh:
            fh.truncate(0)
        # let the follower see the emptied file first: a truncate and a longer rewrite that
        # both land between two polls are caught only by the last-bytes mark, a race this
        # test does not time
        deadline = time.monotonic() + 5
        while tail.source.truncations == 0 and time.monotonic() < deadline:
            assert tail.read(0.02) == []
        log.write_text("rewritten after the truncation, longer than before\n")
        assert tail.read(2) == ["rewritten after the truncation, longer than before"]
        assert tail.source.truncations == 1
        with open(log, "a") as fh:
            fh.write("last line without a newline")
        assert tail.rest(5) == ["last line without a newline"]
        assert tail.finished and tail.state == ENDED
        assert tail.read(1) == []


def test_sync_tail_reads_are_bounded(tmp_path):
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    with SyncTail(FileSource(str(log), follow=False), max_lines=1000) as tail:
        sizes = []
        while not tail.finished:
            sizes.append(len(tail.read(1)))
        assert max(sizes) == 1000 and sum(sizes) == 5000


def test_negative_offset_starts_at_a_whole_line_near_the_end(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i:04d}\n" for i in range(1000)))  # 10 bytes a line
    with SyncTail(FileSource(str(log), offset=-25, follow=False)) as tail:
        assert tail.rest(5) == ["line 0998", "line 0999"]  # the cut line 0997 is dropped


def test_a_missing_file_is_unavailable_then_read_from_its_start(tmp_path):
    log = tmp_path / "later.log"
    with SyncTail(FileSource(str(log), offset=12345, poll=0.01)).start() as tail:
        assert tail.state == UNAVAILABLE and "no such file" in tail.reason
        assert tail.read(0.05) == [] and not tail.finished
        log.write_text("created later\n")
        assert tail.read(2) == ["created later"] and tail.state == RUNNING


async def test_sync_tail_called_inside_a_running_loop_still_works(tmp_path):
    # a caller that blocks its own event loop (not advised, but it must not crash)
    log = tmp_path / "y.log"
    log.write_text("a\nb\n")
    tail = SyncTail(FileSource(str(log), follow=False))
    assert tail.rest(5) == ["a", "b"]
    tail.close()
    await asyncio.sleep(0)


def test_journal_argv_is_built_in_one_place():
    assert journal_argv("ollama.service", follow=True, after_cursor="s=1") == [
        "journalctl", "--no-pager", "-u", "ollama.service", "-o", "short-iso", "-f", "--after-cursor", "s=1",
        "-n", "all"]
    assert journal_argv("ollama", lines=50, show_cursor=True)[-3:] == ["-n", "50", "--show-cursor"]
    assert journal_argv("ollama", follow=True)[-2:] == ["-n", "200"]
    assert journal_argv("ollama", since="2026-01-01 00:00:00")[-4:] == ["--since", "2026-01-01 00:00:00", "-n", "all"]


@needs_journal
def test_follow_after_a_cursor_sees_every_entry_not_only_the_last_ten(tmp_path):
    # journalctl -f implies -n 10: without -n all, 25 entries written after the cursor before
    # the follow starts would come out as the last 10 (measured with journalctl 252)
    j = tmp_path / "ollama.journal"
    write_journal(j, [LISTEN] + [f"entry {i}" for i in range(30)])
    out = subprocess.run([JOURNALCTL, "--file", str(j), "-o", "export", "-n", "all"], capture_output=True, text=True,
                         check=True).stdout
    cursors = [ln[len("__CURSOR="):] for ln in out.splitlines() if ln.startswith("__CURSOR=")]
    with SyncTail(JournalSource("ollama", follow=True, after_cursor=cursors[5], files=[str(j)])).start() as tail:
        lines = []
        deadline = time.monotonic() + 10
        while len(lines) < 25 and time.monotonic() < deadline:
            lines += tail.read(0.5)
        assert tail.state == RUNNING
        assert len(lines) == 25 and lines[0].endswith("entry 5") and lines[-1].endswith("entry 29")
        proc = tail.source.proc
    assert proc.returncode is not None  # closing the tail stopped journalctl


@needs_journal
def test_a_journal_that_cannot_be_read_ends_the_tail_with_a_reason(tmp_path):
    with SyncTail(JournalSource("ollama", follow=True, files=[str(tmp_path / "none.journal")])) as tail:
        deadline = time.monotonic() + 10
        while not tail.finished and time.monotonic() < deadline:
            tail.read(0.5)
        assert tail.finished and tail.state == UNAVAILABLE and "no such file" in tail.reason.lower()


def test_no_journalctl_is_unavailable_at_once():
    with SyncTail(JournalSource("ollama", journalctl="/nonexistent/journalctl")) as tail:
        assert tail.read(5) == [] and tail.finished
        assert (tail.state, tail.reason) == (UNAVAILABLE, "no journald (journalctl not found)")
