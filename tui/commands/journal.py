"""`vgpu-tui journal` — the changes this tool has made, oldest first."""
from __future__ import annotations

import sys

from probes import journal
from tui.output import emit_json, paint, print_lines, table


def add_arguments(parser) -> None:
    pass


def run(args, ctx) -> int:
    if getattr(args, "readonly", False):
        for c in journal.pending(ctx.host):
            sys.stderr.write(f"vgpu-tui: {c.id} was interrupted ({c.status}); run without --readonly to recover it\n")
    else:
        for line in journal.recover(ctx.host):
            sys.stderr.write(f"vgpu-tui: {line}\n")
    if args.json:
        emit_json(journal.journal_json(ctx.host))
        return 0
    changes = journal.list_changes(ctx.host)
    if not changes:
        print("no changes made by vgpu-tui on this system")
        return 0
    rows = [[c.id, c.time, c.kind, c.status if c.status != "applied" else "applied", c.summary] for c in changes]
    lines = table(rows, header=["ID", "TIME", "KIND", "STATUS", "SUMMARY"])
    print_lines([lines[0]] + [paint(l, "dim") if c.undone else l for l, c in zip(lines[1:], changes)])
    return 0
