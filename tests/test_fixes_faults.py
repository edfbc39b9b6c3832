"""Every planted fault whose diagnosis offers a fix the tool can apply: apply the suggested fixes,
relaunch the (simulated) Ollama and see library=cuda; undo them all in reverse and find the
root exactly as it was (byte for byte, the journal aside)."""
from __future__ import annotations

import pytest

builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not built yet")
report = pytest.importorskip("probes.report", reason="the report is not built yet")

from probes import fixes, journal, launcher  # noqa: E402
from probes.host import Host  # noqa: E402
from tests.test_fixes import snapshot  # noqa: E402

FIXABLE = ("binary-in-usr-bin", "ggml-cuda-top-level-only", "ggml-cuda-two-deep", "ggml-cuda-versioned-name",
           "ldcache-stale", "libcuda-not-on-path", "llm-library-no-match", "shim-wrong-soname",
           "visible-devices-hidden")


@pytest.mark.slow
@pytest.mark.parametrize("fault", FIXABLE)
def test_suggested_fixes_make_discovery_find_the_gpu_and_undo_restores_the_fault(tmp_path, fault):
    vm = builder.build_vm(str(tmp_path / "vm"), faults=(fault,))
    root = getattr(vm, "root", vm)
    host = Host(root)
    before = launcher.relaunch(host, watch_seconds=10)
    assert before.library_after == "cpu", fault
    state = snapshot(tmp_path / "vm")
    rep = report.build_report(host, report.ReportOptions(no_probe=True))
    applied = []
    for finding in rep.findings:
        fix = finding.fix
        if fix is None or fix.kind not in ("symlink", "env", "unset", "ldconfig"):
            continue
        try:
            applied.append(fixes.apply(host, fixes.plan(host, fix)))
        except fixes.NothingToDo:
            pass
    assert applied, f"{fault}: no applicable fix was suggested"
    after = launcher.relaunch(host, watch_seconds=10)
    assert after.library_after == "cuda", (fault, [c.summary for c in applied])
    for change in reversed(applied):
        fixes.undo(host, change.id)
    relaunched = launcher.relaunch(host, watch_seconds=10)
    assert relaunched.library_after == "cpu", fault
    # the simulator's log and running-server record change with every relaunch; the tool's
    # own journal folder (var/lib/vgpu-tui, and var/lib made for it) stays
    skip = ("var/log/ollama", ".vgpu-sandbox/run")
    now = {k: v for k, v in snapshot(tmp_path / "vm").items() if not k.startswith(skip)}
    if "var/lib" not in state:
        now.pop("var/lib", None)
    assert now == {k: v for k, v in state.items() if not k.startswith(skip)}
    assert all(c.undone for c in journal.list_changes(host))
