"""The traced relaunch from the TUI (T) on the demo VM: the watch runs like a plain relaunch,
then the trace (SIMULATED from the sandbox's discovery model: no loader runs in a sandbox)
is laid over the library tree, selecting a library says which process opened it, and no
tracing variable is left in the service's environment afterwards. --readonly hides T."""
from __future__ import annotations

import os
import time

from probes import journal as J
from probes.sandbox import simulator
from tests.test_tui_loop import _wait_screen, args_for
from tui.app import VgpuApp
from tui.panes.libtree import LibTree, LibTreePane
from tui.screens.relaunch import RelaunchScreen


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _labels(app):
    tree = app.query_one(LibTree)
    return {n.data.path: n.label.plain for n in _walk(tree.root) if n.data is not None}


async def _traced_relaunch(pilot):
    app = pilot.app
    await pilot.press("T")
    screen = await _wait_screen(pilot, RelaunchScreen)
    assert screen.trace, "T opens the traced watch"
    deadline = time.monotonic() + 30
    while not screen.done and time.monotonic() < deadline:
        await pilot.pause(0.1)
    assert screen.done, "the traced watch did not finish"
    watch_log = "\n".join(screen.query_one("#watch-log").lines)
    await pilot.press("escape")
    await pilot.pause(0.1)
    assert await app.settled()
    return screen, watch_log


def _no_tracing_left(root: str, host) -> None:
    _, env, _ = simulator.service(root)  # the unit + drop-ins, as systemd would compute them
    assert not any(k.startswith("LD_DEBUG") for k in env), env
    with open(os.path.join(root, ".vgpu-sandbox/run/ollama.environ"), "rb") as fh:
        assert b"LD_DEBUG" not in fh.read()
    for change in J.list_changes(host):  # a journaled trace change must have been undone
        assert getattr(change, "kind", "") != "trace-env" or getattr(change, "undone", True)


async def test_traced_relaunch_overlays_the_tree_and_leaves_no_tracing(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo")))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        shown = [b.binding.action for b in app.screen.active_bindings.values()]
        assert "trace_relaunch" in shown  # the key is in the footer
        root = app.host.root
        lib = "/usr/local/lib/ollama"

        # the demo as it is (OLLAMA_LLM_LIBRARY=cuda): no runner starts, nothing is opened
        screen, watch_log = await _traced_relaunch(pilot)
        assert "SIMULATED" in watch_log and "was never probed (OLLAMA_LLM_LIBRARY=cuda)" in watch_log
        pane = app.query_one(LibTreePane)
        for _ in range(50):
            if pane.trace is not None:
                break
            await pilot.pause(0.05)
        assert pane.trace is not None and pane.trace.simulated
        assert "SIMULATED" in str(pane.status_widget().render())  # the label stays visible
        labels = _labels(app)
        assert "never probed (OLLAMA_LLM_LIBRARY=cuda)" in labels[f"{lib}/cuda_v12"]
        assert labels[f"{lib}/cuda_v12/libggml-cuda.so"].startswith("· ")
        assert "never opened" in labels[f"{lib}/cuda_v12/libggml-cuda.so"]
        _no_tracing_left(root, app.host)

        # fix it (x, y), trace again: discovery runner 1 opens the CUDA backend
        await pilot.press("5", "x")
        from tui.screens.fix_preview import FixPreviewScreen

        preview = await _wait_screen(pilot, FixPreviewScreen)
        while preview.preview is None and not preview.error:
            await pilot.pause(0.05)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert await app.settled()
        screen, watch_log = await _traced_relaunch(pilot)
        assert "discovery runner 1" in watch_log
        for _ in range(50):
            labels = _labels(app)
            if "opened by" in labels.get(f"{lib}/cuda_v12/libggml-cuda.so", ""):
                break
            await pilot.pause(0.05)
        assert labels[f"{lib}/cuda_v12/libggml-cuda.so"].startswith("● ")
        assert "opened by discovery runner 1" in labels[f"{lib}/cuda_v12/libggml-cuda.so"]
        assert "searched by discovery runner 1" in labels[f"{lib}/cuda_v12"]
        # the file behind cuda_v12/libcudart.so.12 was opened through the operator's top-level link
        assert "opened as libcudart.so.12 by discovery runner 1" in labels[f"{lib}/cuda_v12/libcudart.so.12.8.90"]
        assert "never opened" in labels[f"{lib}/libggml-cpu-x64.so"]

        # selecting a library says which processes opened it
        tree = app.query_one(LibTree)
        leaf = next(n for n in _walk(tree.root) if n.data is not None and n.data.path == f"{lib}/cuda_v12/libggml-cuda.so")
        await pilot.press("2")
        tree.select_node(leaf)
        await pilot.pause(0.1)
        assert await app.settled()
        detail = str(app.query_one("#libtree-detail-body").render())
        assert "Traced relaunch (SIMULATED" in detail
        assert "● opened by discovery runner 1" in detail
        assert "NEEDED" in detail  # the library's own resolution is still below
        _no_tracing_left(root, app.host)


async def test_readonly_hides_the_traced_relaunch(tmp_path):
    app = VgpuApp(args_for(str(tmp_path / "demo"), readonly=True))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.settled()
        shown = [b.binding.action for b in app.screen.active_bindings.values()]
        assert "trace_relaunch" not in shown
        await pilot.press("T")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, RelaunchScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert not any("Traced relaunch" in str(t) for t in titles)
