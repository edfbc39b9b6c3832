"""The TUI's whole loop on the demo VM (`vgpu-tui --demo`), driven by Pilot:
read the finding, preview and apply its fix, relaunch, see library=cuda and the verdict
change, undo, relaunch, see it revert. Also --readonly (no action anywhere)."""
from __future__ import annotations

import argparse

import pytest

from tui.app import VgpuApp
from tui.panes.changes import ChangesPane
from tui.panes.findings import FindingsPane
from tui.panes.header import VerdictBar
from tui.screens.compare import CompareScreen
from tui.screens.fix_preview import FixPreviewScreen
from tui.screens.relaunch import RelaunchScreen

PLANTED = "llm-library-no-match"


def args_for(demo_dir: str, **extra) -> argparse.Namespace:
    """The options of `vgpu-tui --demo --demo-dir DIR` (the app builds the demo VM itself)."""
    base = dict(demo=True, demo_dir=demo_dir, root=None, readonly=False, log=None, ollama=None,
                assume_version=None, no_probe=True, gpu=None, json=False, debug=True)
    base.update(extra)
    return argparse.Namespace(**base)


@pytest.fixture
def vm(tmp_path):
    """Where the demo VM is built (the planted OLLAMA_LLM_LIBRARY=cuda drop-in, one start logged)."""
    return str(tmp_path / "demo")


async def _wait_screen(pilot, cls, timeout=15.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if isinstance(pilot.app.screen, cls):
            return pilot.app.screen
        await pilot.pause(0.05)
    raise AssertionError(f"{cls.__name__} did not open")


async def _relaunch(pilot):
    app = pilot.app
    await pilot.press("r")
    screen = await _wait_screen(pilot, RelaunchScreen)
    import time

    deadline = time.monotonic() + 30
    while not screen.done and time.monotonic() < deadline:
        await pilot.pause(0.1)
    assert screen.done, "the watch did not finish"
    after = screen.after
    await pilot.press("escape")
    await pilot.pause(0.1)
    assert await app.settled()
    return screen, after


async def test_fix_relaunch_undo_loop(vm):
    app = VgpuApp(args_for(vm))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        bar = app.query_one(VerdictBar)
        assert bar.state == "cpu"
        findings = app.query_one(FindingsPane)
        first = findings.current
        assert first["category"] == "wrong-library-override"
        assert "OLLAMA_LLM_LIBRARY" in first["title"]
        assert first["fix"]["kind"] == "unset"
        assert "x: preview and apply" in str(app.query_one("#findings-detail-body").render())
        shown = [b.binding.action for b in app.screen.active_bindings.values()]
        assert "pane_fix" in shown and "relaunch" in shown  # the keys are offered (footer)

        # x opens the preview of the exact change; y applies it through the fix engine
        await pilot.press("x")
        preview = await _wait_screen(pilot, FixPreviewScreen)
        while preview.preview is None and not preview.error:
            await pilot.pause(0.05)
        assert not preview.error, preview.error
        assert "OLLAMA_LLM_LIBRARY" in preview.preview.diff
        await pilot.press("y")
        await pilot.pause(0.2)
        assert await app.settled()
        changes = app.query_one(ChangesPane)
        assert len(changes.changes) == 1 and not changes.changes[0]["undone"]

        # r relaunches: the watch shows library=cuda beside the old library=cpu
        screen, after = await _relaunch(pilot)
        assert screen.before["library"] == "cpu"
        assert after["library"] == "cuda" and after["gpu_used"] is not False
        assert bar.state == "gpu"
        assert "GPU in use" in str(bar.render())
        await pilot.press("c")  # the before/after comparison stays available
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("escape")

        # undo (u on the change list), relaunch: back to the CPU
        await pilot.press("6")
        await pilot.press("u")
        await pilot.pause(0.2)
        assert await app.settled()
        assert changes.changes[0]["undone"]
        screen, after = await _relaunch(pilot)
        assert after["library"] == "cpu"
        assert bar.state == "cpu"


async def test_readonly_offers_no_action(vm):
    app = VgpuApp(args_for(vm, readonly=True))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        assert "READ-ONLY" in str(app.query_one(VerdictBar).render())
        shown = [b.binding.action for b in app.screen.active_bindings.values()]
        assert not any(a in ("relaunch", "undo_last", "pane_fix") for a in shown)
        await pilot.press("x")
        await pilot.press("r")
        await pilot.press("u")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, (FixPreviewScreen, RelaunchScreen))
        # the finding still says what to do, without offering the key
        assert "x: preview" not in str(app.query_one("#findings-detail-body").render())
