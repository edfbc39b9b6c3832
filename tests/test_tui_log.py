"""The live log pane: filter (regex, `!` inverts), follow that stops when you scroll up and
resumes at the end, wrap/timestamps, bounded memory — on the demo VM's real service log file,
appended to while the app runs, and on the model alone."""
from __future__ import annotations

import time

from tui.app import VgpuApp
from tui.panes.log import LogPane, LogView
from tui.panes.logmodel import LogFilter, LogModel, strip_timestamp, wrap_lines

from tests.test_tui_loop import args_for

JOURNAL = "Nov 29 19:34:12 vgpu-demo ollama[1234]: "
LINE = JOURNAL + 'time=2026-11-29T19:34:12.000Z level=INFO source=routes.go:1 msg="request" n={n}'
GPU = JOURNAL + 'time=2026-11-29T19:34:13.000Z level=INFO source=types.go:42 msg="inference compute" library=CUDA name=CUDA0'


def test_filter_regex_and_inverse():
    m = LogModel()
    m.add(["alpha library=cpu", "beta initial_count=0", "gamma library=CUDA"])
    m.set_filter("library=(cpu|cuda)")  # case-insensitive regex
    assert m.display() == ["alpha library=cpu", "gamma library=CUDA"]
    m.set_filter("!library")
    assert m.display() == ["beta initial_count=0"]
    m.set_filter("([unclosed")  # a half-typed regex filters as plain text, never raises
    assert LogFilter("([unclosed").error and m.display() == []


def test_timestamps_hidden_by_default_and_memory_bounded():
    assert strip_timestamp(GPU).startswith('level=INFO msg="inference compute"')
    m = LogModel(max_lines=100)
    m.add(LINE.format(n=i) for i in range(1000))
    assert len(m.lines) == 100 and m.total == 1000
    assert m.display()[-1].endswith("n=999") and "time=" not in m.display()[-1]
    m.timestamps = True
    assert m.display()[-1].startswith("Nov 29 19:34:12")
    assert wrap_lines(["x" * 50], 20) == ["x" * 20, "  " + "x" * 18, "  " + "x" * 12]


async def _until(pilot, check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await pilot.pause(0.05)
    return False


async def test_follow_filter_on_the_live_demo_log(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        pane = app.query_one(LogPane)
        view = app.query_one(LogView)
        log_file = app.host.path("/var/log/ollama/ollama.log")
        assert await _until(pilot, lambda: pane.model.total > 0), "the demo's log did not arrive"

        with open(log_file, "a") as fh:
            fh.write("\n".join(LINE.format(n=i) for i in range(400)) + "\n")
        assert await _until(pilot, lambda: pane.model.lines[-1].endswith("n=399"))
        await pilot.pause(0.2)
        assert pane.following and view.is_vertical_scroll_end

        # scrolling up stops the follow: new lines do not move the view
        await pilot.press("4", "home")
        await pilot.pause(0.1)
        top = view.scroll_y
        with open(log_file, "a") as fh:
            fh.write("\n".join(LINE.format(n=1000 + i) for i in range(50)) + "\n" + GPU + "\n")
        assert await _until(pilot, lambda: "inference compute" in pane.model.lines[-1])
        await pilot.pause(0.2)
        assert not pane.following and view.scroll_y == top
        assert "PAUSED" in str(pane.border_subtitle)

        # End resumes it
        await pilot.press("end")
        await pilot.pause(0.1)
        assert pane.following and view.is_vertical_scroll_end

        # `/` filter (w: no wrap, one line per line): only the GPU verdict line; `!` inverts
        await pilot.press("w", "slash")
        app.query_one("#log-filter").value = "library=CUDA.*name=CUDA0"  # as typed, in one go
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert [line for line in view.lines if line] == [strip_timestamp(GPU)]
        await pilot.press("slash", "home", "exclamation_mark", "enter")
        await pilot.pause(0.1)
        assert all("name=CUDA0" not in line for line in view.lines)
        assert any("n=1049" in line for line in view.lines)

        # t shows the journald prefix and the slog time again
        await pilot.press("t")
        await pilot.pause(0.1)
        assert view.lines[-1].startswith("Nov 29 19:34:12 vgpu-demo ollama[1234]: time=")
