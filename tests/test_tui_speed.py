"""What the key-latency work must not break: the focused pane's cursor still takes its
focused colours (the restyle only waits until after the key's frame), and the heap the app
freezes for the garbage collector is given back when the app ends."""
from __future__ import annotations

import gc

from tests.test_tui_loop import args_for
from tui.app import VgpuApp
from tui.panes.shim import ShimTable


async def test_focus_colours_follow_the_focus(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        table = app.query_one(ShimTable)
        await pilot.press("3")
        await pilot.pause(0.2)
        assert table.has_focus
        focused = table.get_component_rich_style("datatable--cursor")
        await pilot.press("4")
        await pilot.pause(0.2)
        blurred = table.get_component_rich_style("datatable--cursor")
        assert focused != blurred  # the cursor looks different once the focus has left
        await pilot.press("3")
        await pilot.pause(0.2)
        assert table.get_component_rich_style("datatable--cursor") == focused


async def test_frozen_heap_is_given_back(tmp_path):
    thresholds = gc.get_threshold()
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        await pilot.pause(0.5)
        assert gc.get_freeze_count() > 0  # frozen once the panes are filled
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
