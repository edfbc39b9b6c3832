"""Snapshot tests (pytest-textual-snapshot) of the main screen at 120x40 and 80x24 and of
the fix preview, on the demo VM built at a fixed path with its log re-written by the
simulator at a fixed time and seed, so the SVGs are the same on every run.

First run or after an intended change of the screen: `pytest --snapshot-update` and look
at the SVGs in tests/__snapshots__/test_tui_snapshots/."""
from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest

from tests.test_tui_loop import args_for
from tui.app import VgpuApp

SNAP_DEMO = "/tmp/vgpu-tui-snapshot-demo"  # a fixed path: paths are on the screen
FIXED_NOW = dt.datetime(2026, 11, 29, 19, 0, 0, tzinfo=dt.timezone.utc)

pytest.importorskip("pytest_textual_snapshot")


@pytest.fixture
def demo_dir():
    from probes.sandbox import simulator
    from probes.sandbox.demo import build_demo

    shutil.rmtree(SNAP_DEMO, ignore_errors=True)
    root = build_demo(SNAP_DEMO)
    # the demo's first start is logged with today's time and a random port: log it again, fixed
    with open(os.path.join(root, "var/log/ollama/ollama.log"), "w"):
        pass
    simulator.serve(root, now=FIXED_NOW, seed=7)
    yield root
    shutil.rmtree(SNAP_DEMO, ignore_errors=True)


def _app(root: str) -> VgpuApp:
    app = VgpuApp(args_for(root))
    app.theme = "textual-dark"
    return app


async def _settle(pilot) -> None:
    assert await pilot.app.settled()
    await pilot.pause(0.3)  # the log's first batch and the tree worker
    assert await pilot.app.settled()


def test_main_screen_120x40(snap_compare, demo_dir):
    assert snap_compare(_app(demo_dir), terminal_size=(120, 40), run_before=_settle)


def test_main_screen_80x24(snap_compare, demo_dir):
    assert snap_compare(_app(demo_dir), terminal_size=(80, 24), run_before=_settle)


def test_fix_preview(snap_compare, demo_dir):
    async def open_preview(pilot) -> None:
        from tui.screens.fix_preview import FixPreviewScreen

        await _settle(pilot)
        await pilot.press("x")
        for _ in range(100):
            screen = pilot.app.screen
            if isinstance(screen, FixPreviewScreen) and (screen.preview is not None or screen.error):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    assert snap_compare(_app(demo_dir), terminal_size=(120, 40), run_before=open_preview)
