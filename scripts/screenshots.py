"""SVG and PNG captures of every pane and of the fix → relaunch → undo loop, from the demo VM.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--no-png]

The demo is built in a fixed folder (/tmp/vgpu-tui-demo, so the paths on the pictures read
well) and its first start is logged again by the simulator at a fixed time, so two runs give
the same pictures. SVG comes from Textual's own `save_screenshot`; PNG from cairosvg
(`pip install cairosvg`, which needs the system's libcairo) after swapping Textual's web font
for DejaVu Sans Mono, so the columns line up. Without cairosvg only the SVGs are written.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEMO = "/tmp/vgpu-tui-demo"
FIXED_NOW = dt.datetime(2026, 11, 29, 19, 0, 0, tzinfo=dt.timezone.utc)
PNG_WIDTH = 1600


def fresh_demo() -> str:
    from probes.sandbox import simulator
    from probes.sandbox.demo import build_demo

    shutil.rmtree(DEMO, ignore_errors=True)
    root = build_demo(DEMO)
    with open(os.path.join(root, "var/log/ollama/ollama.log"), "w"):
        pass
    simulator.serve(root, now=FIXED_NOW, seed=7)
    return root


def args_for(root: str):
    ns = argparse.Namespace(demo=True, demo_dir=root, root=None, readonly=False, log=None, ollama=None,
                            assume_version=None, no_probe=False, gpu=None, json=False, debug=True)
    return ns


class Shooter:
    def __init__(self, app, pilot, out: str):
        self.app, self.pilot, self.out, self.files = app, pilot, out, []

    async def shot(self, name: str) -> None:
        await self.pilot.pause(0.3)
        await self.app.settled()
        path = self.app.save_screenshot(name + ".svg", path=self.out)
        self.files.append(path)
        print("wrote", os.path.relpath(path, ROOT))

    async def until(self, check, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check() and time.monotonic() < deadline:
            await self.pilot.pause(0.05)


async def capture(out: str) -> list:
    from tui.app import VgpuApp
    from tui.screens.fix_preview import FixPreviewScreen
    from tui.screens.prompt import PromptScreen
    from tui.screens.relaunch import RelaunchScreen
    from tui.screens.snapshots import SnapshotDiffScreen, SnapshotPickScreen

    root = fresh_demo()
    snapshots = os.path.join(DEMO + "-snapshots")
    shutil.rmtree(snapshots, ignore_errors=True)
    os.environ["VGPU_TUI_SNAPSHOTS"] = snapshots  # not the operator's own snapshot folder
    from tui.panes import traceview

    traceview.now = lambda: "19:05:00"  # the same pictures on every run
    app = VgpuApp(args_for(root))
    async with app.run_test(size=(120, 40)) as pilot:
        s = Shooter(app, pilot, out)
        await app.settled()
        await s.shot("main-120x40")
        # each pane zoomed (z), with something worth seeing selected
        await pilot.press("1", "z")
        await s.shot("pane-device")
        await pilot.press("2")
        tree = app.query_one("#libtree-tree")
        for node in tree.root.children:
            if node.data is not None and node.data.name == "cuda_v12":
                for leaf in node.children:
                    if leaf.data is not None and leaf.data.name == "libggml-cuda.so":
                        tree.select_node(leaf)
        await s.shot("pane-library-tree")
        await pilot.press("3", "m")
        await s.shot("pane-shim-exports")
        await pilot.press("m", "m", "4", "slash", *"discover|initial_count|inference|skipping", "enter")
        await s.shot("pane-live-log")
        await pilot.press("slash", "escape", "5")
        await s.shot("pane-findings")
        await pilot.press("z")
        # the loop: preview the fix, apply it, relaunch, see the GPU, undo
        await pilot.press("x")
        await s.until(lambda: isinstance(app.screen, FixPreviewScreen) and app.screen.preview is not None)
        await s.shot("loop-1-fix-preview")
        await pilot.press("y")
        await s.until(lambda: app.query_one("#changes").changes)
        await s.shot("loop-2-fix-applied")
        await pilot.press("r")
        await s.until(lambda: isinstance(app.screen, RelaunchScreen) and app.screen.done)
        await s.shot("loop-3-relaunch-watch")
        await pilot.press("escape")
        await s.until(lambda: app.query_one("#verdict").state == "gpu")
        await s.shot("loop-4-gpu-in-use")
        # the working state is saved as a known-good snapshot (palette: Save snapshot…)
        app.action_save_snapshot()
        await s.until(lambda: isinstance(app.screen, PromptScreen))
        await pilot.pause(0.1)
        app.screen.query_one("#prompt-input").value = "gpu-working"
        await pilot.press("enter")
        await s.until(lambda: os.path.exists(os.path.join(snapshots, "gpu-working.json")))
        saved = os.path.join(snapshots, "gpu-working.json")
        with open(saved, encoding="utf-8") as fh:
            data = json.load(fh)
        data["time"] = "2026-11-29T19:04:00Z"  # the same pictures on every run
        with open(saved, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        # T: the traced relaunch, then its overlay on the library tree
        await pilot.press("T")
        await s.until(lambda: isinstance(app.screen, RelaunchScreen) and app.screen.done)
        await s.shot("trace-1-traced-relaunch")
        await pilot.press("escape")
        await s.until(lambda: app.query_one("#libtree").trace is not None)
        await pilot.press("2", "z")
        tree = app.query_one("#libtree-tree")
        for node in tree.root.children:
            if node.data is not None and node.data.name == "cuda_v12":
                for leaf in node.children:
                    if leaf.data is not None and leaf.data.name == "libggml-cuda.so":
                        tree.select_node(leaf)
        await s.shot("trace-2-library-tree-overlay")
        await pilot.press("z", "6", "u")
        await s.until(lambda: app.query_one("#changes").changes and app.query_one("#changes").changes[0].get("undone"))
        await s.shot("loop-5-undone")
        # compare with the known-good snapshot: the undone fix comes back as the first change
        await pilot.press("5", "d")
        await s.until(lambda: isinstance(app.screen, SnapshotPickScreen) and app.screen.loaded)
        await s.shot("compare-1-pick-snapshot")
        await pilot.press("enter")
        await s.until(lambda: isinstance(app.screen, SnapshotDiffScreen) and app.screen.changes is not None)
        await s.shot("compare-2-snapshot-diff")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await s.shot("help")
    small = VgpuApp(args_for(root))
    async with small.run_test(size=(80, 24)) as pilot:
        await small.settled()
        await Shooter(small, pilot, out).shot("main-80x24")
    shutil.rmtree(DEMO, ignore_errors=True)
    shutil.rmtree(snapshots, ignore_errors=True)
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".svg"))


def to_png(svg: str, width: int = PNG_WIDTH) -> str:
    import cairosvg

    with open(svg, encoding="utf-8") as fh:
        text = fh.read()
    text = text.replace('"Fira Code"', '"DejaVu Sans Mono"').replace("Fira Code", "DejaVu Sans Mono")
    png = svg[:-4] + ".png"
    cairosvg.svg2png(bytestring=text.encode("utf-8"), write_to=png, output_width=width)
    return png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="SVG and PNG captures of the TUI on the demo VM")
    p.add_argument("--out", default=os.path.join(ROOT, "screenshots"))
    p.add_argument("--no-png", action="store_true", help="only the SVGs")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    svgs = asyncio.run(capture(os.path.abspath(a.out)))
    if a.no_png:
        return 0
    try:
        import cairosvg  # noqa: F401
    except Exception as exc:  # missing package or libcairo: the SVGs are still there
        print(f"no PNG: cairosvg unavailable ({exc}); pip install cairosvg", file=sys.stderr)
        return 0
    for svg in svgs:
        print("wrote", os.path.relpath(to_png(svg), ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
