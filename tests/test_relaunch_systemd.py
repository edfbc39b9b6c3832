"""The systemd way of relaunching, with FAKE `systemctl` and `journalctl` (this machine has no
systemd running, and a test must never restart a real service): the tool notes the journal
cursor, runs `systemctl restart ollama.service`, follows `journalctl -u ollama.service -f
--after-cursor` and reads the new verdict. The fakes record the argv they were given."""
from __future__ import annotations

import os
from pathlib import Path

from probes import fixes, launcher
from probes.host import Host
from tests.test_launcher import CPU, GPU, HEAD

J = "Nov 29 19:34:1{n} vm ollama[4242]: "


def _journal(body: str, n: int) -> str:
    return "".join(J.format(n=n) + line + "\n" for line in body.splitlines())


def test_systemd_restart_then_follow_the_journal_from_the_cursor(tmp_path, monkeypatch):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (tmp_path / "old.log").write_text(_journal(HEAD + CPU, 0))
    (tmp_path / "new.log").write_text(_journal(HEAD + GPU, 5))
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.args\n')
    (fake / "journalctl").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/journalctl.args\n'
        f'case "$*" in *--show-cursor*) cat {tmp_path}/old.log; echo "-- cursor: s=fake;i=7"; exit 0;; esac\n'
        f'case "$*" in *-f*) cat {tmp_path}/new.log; exec sleep 30;; esac\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    monkeypatch.setattr(fixes, "service_unit", lambda host: "/etc/systemd/system/ollama.service")
    monkeypatch.setattr(fixes, "systemd_running", lambda host: True)
    host = Host("/", {"PATH": f"{fake}:{os.environ['PATH']}", launcher.J.STATE_DIR_ENV: str(tmp_path / "state")},
                live=True)
    assert launcher.method(host) == "systemd"
    r = launcher.relaunch(host, watch_seconds=10)
    assert r.method == "systemd" and r.ok
    assert r.library_before == "cpu" and r.library_after == "cuda"
    assert (tmp_path / "systemctl.args").read_text() == "restart ollama.service\n"
    calls = (tmp_path / "journalctl.args").read_text().splitlines()
    assert "-u ollama.service" in calls[0] and "--show-cursor" in calls[0]
    assert "-f" in calls[1].split() and "--after-cursor s=fake;i=7" in calls[1]


def test_under_root_relaunch_is_refused(tmp_path):
    import pytest
    from probes.errors import ToolError

    with pytest.raises(ToolError, match="cannot be restarted"):
        launcher.relaunch(Host(str(tmp_path)))
