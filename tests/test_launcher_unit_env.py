"""A unit on disk but no systemd running (a container): the child-process Ollama gets the
unit's configured environment, so a `fix env`/`fix unset` written into the drop-in takes
effect on the next relaunch (found on a real GPU VM whose PID 1 is not systemd)."""
from __future__ import annotations

import os
import shutil

from probes import fixes, launcher
from probes.facts import Fix
from probes.host import Host
from tests.test_launcher import Install, cleanup, standin  # noqa: F401 - the fixture


def test_child_relaunch_honours_the_units_drop_ins(tmp_path, cleanup):  # noqa: F811
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy(standin(tmp_path), root / "usr/local/bin/ollama")
    for part in ("head", "cpu", "gpu"):
        shutil.copy(tmp_path / "bin" / f"ollama.{part}", root / "usr/local/bin" / f"ollama.{part}")
    unit = root / "etc/systemd/system/ollama.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/local/bin/ollama serve\nEnvironment=\"OLLAMA_LLM_LIBRARY=cuda\"\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), launcher.J.STATE_DIR_ENV: str(tmp_path / "state")}
    host = Host(str(root), env, live=True)
    cleanup(host)
    assert launcher.method(host) == "child"  # no systemd runs this test machine

    before = launcher.relaunch(host, Install("/usr/local/bin/ollama"), watch_seconds=10)
    assert before.after.library == "cpu"  # the unit's OLLAMA_LLM_LIBRARY reached the child

    plan = fixes.plan(host, Fix("unset", {"name": "OLLAMA_LLM_LIBRARY"}))
    assert "ollama.service.d" in plan.summary
    fixes.apply(host, plan)
    after = launcher.relaunch(host, Install("/usr/local/bin/ollama"), watch_seconds=10)
    assert after.after.library == "cuda" and after.after.gpu_used is True
