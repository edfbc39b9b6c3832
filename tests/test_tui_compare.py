"""Known-good snapshots from the TUI on the demo VM: "Save snapshot…" (palette) writes the
same JSON file as `vgpu-tui snapshot save`; after a planted change and a rescan, "Compare
with…" (d on the findings pane) lists the snapshots, and the diff names the change first."""
from __future__ import annotations

import json
import os
import time

from tests.test_tui_loop import _wait_screen, args_for
from tui.app import VgpuApp
from tui.screens.prompt import PromptScreen
from tui.screens.snapshots import SnapshotDiffScreen, SnapshotPickScreen

PLANTED = '[Service]\nEnvironment="CUDA_VISIBLE_DEVICES=-1"\n'  # the fault `visible-devices-hidden`


async def _until(pilot, check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    assert check()


async def test_saved_snapshot_names_the_planted_change_first(tmp_path, monkeypatch):
    folder = tmp_path / "snapshots"
    monkeypatch.setenv("VGPU_TUI_SNAPSHOTS", str(folder))  # `vgpu-tui snapshot`'s default folder
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        titles = [str(c.title) for c in app.get_system_commands(app.screen)]
        assert "Save snapshot…" in titles and "Compare with… a saved snapshot" in titles

        # nothing saved yet: the picker says how to save one
        await pilot.press("5", "d")
        pick = await _wait_screen(pilot, SnapshotPickScreen)
        await _until(pilot, lambda: pick.loaded)
        assert "Save snapshot…" in str(pick.query_one("#pick-state").render())
        await pilot.press("escape")

        # save the working state under a name of our own
        app.action_save_snapshot()
        prompt = await _wait_screen(pilot, PromptScreen)
        await pilot.pause(0.05)
        assert prompt.query_one("#prompt-input").value.startswith("known-good-")  # a dated default
        prompt.query_one("#prompt-input").value = ""
        await pilot.press(*"known-good", "enter")
        await _until(pilot, lambda: (folder / "known-good.json").exists())
        assert json.loads((folder / "known-good.json").read_text())["snapshot"] == 1

        # plant a change, rescan, compare: the change comes first
        dropins = os.path.join(app.host.root, "etc/systemd/system/ollama.service.d")
        with open(os.path.join(dropins, "zz-hide.conf"), "w") as fh:
            fh.write(PLANTED)
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        assert await app.settled()
        await pilot.press("5", "d")
        pick = await _wait_screen(pilot, SnapshotPickScreen)
        await _until(pilot, lambda: pick.loaded)
        assert [s.name for s in pick.snapshots] == ["known-good"]
        await pilot.press("enter")
        diff = await _wait_screen(pilot, SnapshotDiffScreen)
        await _until(pilot, lambda: diff.changes is not None)
        assert not diff.error
        first = diff.changes[0]
        assert "CUDA_VISIBLE_DEVICES" in first.text and first.score >= 80
        body = str(diff.query_one("#diff-body").render())
        assert body.splitlines()[0].startswith("!! ") and "CUDA_VISIBLE_DEVICES" in body.splitlines()[0]
        assert "most suspicious first" in str(diff.query_one("#diff-state").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SnapshotDiffScreen)


async def test_compare_is_offered_under_readonly(tmp_path, monkeypatch):
    """Comparing reads only: it stays under --readonly (fixes and relaunch do not)."""
    monkeypatch.setenv("VGPU_TUI_SNAPSHOTS", str(tmp_path / "none"))
    app = VgpuApp(args_for(str(tmp_path / "demo"), readonly=True))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        shown = [b.binding.action for b in app.screen.active_bindings.values()]
        assert "pane_compare" in shown
        await pilot.press("d")
        assert isinstance(await _wait_screen(pilot, SnapshotPickScreen), SnapshotPickScreen)
