"""`vgpu-tui undo [CHANGE_ID]` — restore the state before the last change (or the one named), exactly."""
from __future__ import annotations

import sys

from probes import fixes, journal
from tui.output import emit_json, paint


def add_arguments(parser) -> None:
    parser.add_argument("change_id", metavar="CHANGE_ID", nargs="?", help="a change of `vgpu-tui journal` (default: the last one)")
    parser.add_argument("--force", action="store_true", help="undo even if the paths were changed since")


def run(args, ctx) -> int:
    for line in ([] if getattr(args, "readonly", False) else journal.recover(ctx.host)):
        sys.stderr.write(f"vgpu-tui: {line}\n")
    change = fixes.undo(ctx.host, args.change_id, force=args.force, readonly=bool(getattr(args, "readonly", False)))
    if args.json:
        emit_json({"undone": True, "change": change})
    else:
        print(paint(f"{change.id} undone: {change.summary}", "green"))
    return 0
