"""The panes on the demo VM: 80x24 one-pane mode, the library tree (links, broken links,
verdicts, resolution with libtree-style [reason] tags that markup must not eat), the shim
table's filter and tiers, saving the log, and the command palette's entries."""
from __future__ import annotations

import os

from tests.test_tui_loop import args_for
from tui.app import PaneTabs, VgpuApp
from tui.panes.libtree import LibTree
from tui.panes.log import LogPane
from tui.panes.shim import ShimPane, ShimTable
from tui.screens.prompt import PromptScreen


def _shown(app):
    return [p.id for p in app.query("Pane") if p.display]


async def test_80x24_shows_one_pane_with_tabs(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(80, 24)) as pilot:
        assert await app.settled()
        assert app.query_one(PaneTabs).display
        assert _shown(app) == ["findings"]
        await pilot.press("2")
        assert _shown(app) == ["libtree"] and app.focused.id == "libtree-tree"
        await pilot.press("tab")
        assert _shown(app) == ["shim"]
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        assert not app.query_one(PaneTabs).display and len(_shown(app)) == 6


async def test_library_tree_links_verdicts_and_resolution(tmp_path):
    demo = str(tmp_path / "demo")
    from probes.sandbox.demo import build_demo

    root = build_demo(demo)
    os.symlink("/opt/vgpu/lib/libgone.so.1", os.path.join(root, "usr/local/lib/ollama/libgone.so.1"))
    app = VgpuApp(args_for(demo))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        await pilot.pause(0.2)
        tree = app.query_one(LibTree)
        labels = {n.data.name: n.label.plain for n in _walk(tree.root) if n.data is not None}
        assert "→ /opt/vgpu/lib/libcuda.so.1" in labels["libcuda.so.1"]
        assert labels["libgone.so.1"].startswith("✗") and "broken: dangling" in labels["libgone.so.1"]
        assert "not probed" in labels["cuda_v12"]  # the scanner's verdict on the backend folder
        leaf = next(n for n in _walk(tree.root) if n.data is not None and n.data.path.endswith("cuda_v12/libggml-cuda.so"))
        await pilot.press("2")
        tree.select_node(leaf)
        await pilot.pause(0.1)
        assert await app.settled()
        detail = str(app.query_one("#libtree-detail-body").render())
        # the operator's top-level link comes first on the runner's LD_LIBRARY_PATH
        assert "libcudart.so.12 → /usr/local/lib/ollama/libcudart.so.12 [LD_LIBRARY_PATH]" in detail
        assert "libcuda.so.1 →" in detail and "NEEDED (6)" in detail


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


async def test_shim_filter_and_missing_tiers(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        pane = app.query_one(ShimPane)
        assert pane.current["path"].endswith("libcuda.so.1")
        table = app.query_one(ShimTable)
        await pilot.press("3", "m")  # missing only: the demo's shim lacks a few interop names
        names = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        statuses = {table.get_row_at(i)[1].plain for i in range(table.row_count)}
        assert names and statuses == {"MISSING informational"}
        assert "cuGraphicsGLRegisterBuffer" in names
        await pilot.press("m", "m", "slash", *"^cuMemAlloc", "enter")  # all exports, filtered
        names = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert names and all(n.startswith("cuMemAlloc") for n in names)
        await pilot.press("m")  # the diff to the real 580 driver
        rows = {table.get_row_at(i)[1].plain for i in range(table.row_count)}
        assert rows <= {"only in real driver", "only in shim"}


async def test_log_save_writes_what_the_filter_shows(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    out = tmp_path / "saved.log"
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        pane = app.query_one(LogPane)
        pane.apply_filter("inference compute")
        await pilot.press("4", "s")
        await pilot.pause(0.1)
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("#prompt-input").value = str(out)
        await pilot.press("enter")
        await pilot.pause(0.1)
    lines = out.read_text().splitlines()
    assert lines and all("inference compute" in line for line in lines)


async def test_palette_has_every_action_and_readonly_none(tmp_path):
    for readonly in (False, True):
        app = VgpuApp(args_for(str(tmp_path / "demo"), readonly=readonly))
        async with app.run_test(size=(120, 40)):
            assert await app.settled()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for wanted in ("Help: keys and panes", "Log: filter", "Log: save to a file", "Shim: change view",
                           "Go to pane: 2 Library tree", "Theme: ANSI dark (the terminal's own colours, best over SSH)"):
                assert wanted in titles
            changing = [t for t in titles if t.startswith(("Fix:", "Relaunch", "Undo"))]
            assert (changing == []) == readonly, changing


async def test_ansi_themes_render_over_ssh(tmp_path):
    """The ANSI themes use the terminal's own palette (names like ansi_magenta): every part
    of the screen must render with them, before and after a focus change."""
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        for theme in ("ansi-dark", "ansi-light", "textual-dark"):
            app.theme = theme
            await pilot.press("tab", "tab")
            await pilot.pause(0.1)
            svg = app.export_screenshot()
            assert "Findings" in svg and "Relaunch" in svg


async def test_bad_root_is_one_clear_line_not_a_crash(tmp_path):
    import argparse

    args = argparse.Namespace(**{**vars(args_for(str(tmp_path))), "demo": False, "root": str(tmp_path / "nowhere")})
    app = VgpuApp(args)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        assert "not a folder" in str(app.query_one("#verdict").render())
        await pilot.press("r", "x", "2")  # nothing to act on: no crash, no screen
        assert app.screen is app.screen_stack[0]


async def test_help_lists_every_panes_keys(tmp_path):
    from tui.screens.help import HelpScreen

    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-body").render())
        for wanted in ("1 Device", "2 Library tree", "Expand all", "3 Shim exports", "Mode", "4 Live log",
                       "Filter", "Follow", "Wrap", "Time", "Save", "5 Findings", "Fix…", "6 Changes", "Undo",
                       "Relaunch", "Zoom", "? F1"):
            assert wanted in text, wanted
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_relaunch_that_cannot_run_says_why(tmp_path):
    """A --root image that is not this machine cannot be restarted: the watch says so in one line."""
    import argparse

    from tui.screens.relaunch import RelaunchScreen

    (tmp_path / "img").mkdir()
    args = argparse.Namespace(**{**vars(args_for(str(tmp_path))), "demo": False, "root": str(tmp_path / "img")})
    app = VgpuApp(args)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        await pilot.press("r")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, RelaunchScreen)
        for _ in range(100):
            if screen.done:
                break
            await pilot.pause(0.05)
        assert "relaunch failed" in str(screen.query_one("#watch-state").render())
        assert "not this machine" in str(screen.query_one("#watch-state").render())
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]


def test_the_tui_refuses_to_run_without_a_terminal():
    """`vgpu-tui --demo | cat` must not paint escape codes into a pipe forever."""
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", "tui", "--demo"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert out.returncode == 2
    assert "needs a terminal" in out.stderr and "vgpu-tui report --demo" in out.stderr
    assert "\x1b[" not in out.stdout


def test_a_folder_with_only_cpu_backends_is_not_badged_as_a_failure():
    from tui.panes.libtree import backend_badge

    cpu_only = {"probed": True, "would_load": False, "cuda_backend": None, "reason": "probed ...: CPU backends only"}
    broken = {"probed": True, "would_load": False, "cuda_backend": "/x/cuda_v12/libggml-cuda.so", "reason": "..."}
    assert "NOT" not in backend_badge(cpu_only).plain and "CPU backends only" in backend_badge(cpu_only).plain
    assert "would NOT load" in backend_badge(broken).plain
