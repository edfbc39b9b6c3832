"""`vgpu-tui snapshot save NAME` / `snapshot diff [NAME] [--json]` / `snapshot list`: known-good states."""
from __future__ import annotations

import argparse

from probes import report as rep
from probes import snapshot as snap
from probes.errors import ToolError
from probes.facts import to_plain
from tui.output import emit_json, paint, print_lines, table


def add_arguments(parser) -> None:
    # One subparser per action (as `fix` has per kind): with ACTION and NAME as two positionals
    # of one parser, argparse rejected `snapshot save --json good` ("unrecognized arguments").
    from tui.cli import common_options

    shared = [common_options(suppress=True)]
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    name_help = "snapshot name (kept in the snapshot folder) or a path to a .json file"
    p = sub.add_parser("save", help="save what the report knows", parents=shared)
    p.add_argument("name", metavar="NAME", nargs="?", default=None, help=name_help)
    p = sub.add_parser("diff", help="what differs from a saved state, most suspicious first", parents=shared)
    p.add_argument("name", metavar="NAME", nargs="?", default=None, help=name_help + "; default: the newest")
    sub.add_parser("list", help="the saved snapshots", parents=shared)
    dir_help = "the snapshot folder (default: ~/.local/state/vgpu-tui/snapshots)"
    parser.add_argument("--dir", default=None, metavar="DIR", help=dir_help)
    for p in sub.choices.values():  # accepted after the action too, without resetting it
        p.add_argument("--dir", default=argparse.SUPPRESS, metavar="DIR", help=dir_help)


def _options(args, ctx):
    pointed = getattr(ctx, "_pointed", None)
    opts = rep.options_from_args(args, ctx)
    if pointed is not None:  # no fix command is printed here: no "temporary demo" note either
        ctx._pointed = pointed
    return rep.ReportOptions(ollama=opts.ollama, assume_version=opts.assume_version, log=opts.log,
                             no_probe=True, gpu_ids=opts.gpu_ids)


def run(args, ctx) -> int:
    folder = args.dir
    args.name = getattr(args, "name", None)
    if args.action == "list":
        rows = [(s.name, s.time, s.root) for s in snap.list_snapshots(folder)]
        if getattr(args, "json", False):
            emit_json({"snapshots": [to_plain(s) for s in snap.list_snapshots(folder)]})
        else:
            print_lines(table(rows, header=("NAME", "TIME", "ROOT")) if rows else
                        ["no snapshots in " + (folder or snap.snapshot_dir())])
        return 0
    if args.action == "save":
        if not args.name:
            raise ToolError("snapshot save needs a NAME")
        data = snap.take(ctx.host, args.name, _options(args, ctx))
        path = snap.save(data, args.name, folder)
        if getattr(args, "json", False):
            emit_json({"saved": path, "name": args.name})
        else:
            print_lines([f"saved {path}"])
        return 0
    name = args.name
    if not name:
        saved = snap.list_snapshots(folder)
        if not saved:
            raise ToolError("no snapshot saved yet: vgpu-tui snapshot save NAME")
        name = saved[0].path
    old = snap.load(name, folder)
    changes = snap.diff(old, snap.take(ctx.host, "now", _options(args, ctx)))
    if getattr(args, "json", False):
        emit_json({"against": name, "time": old.get("time"), "changes": [to_plain(c) for c in changes]})
    else:
        lines = [f"compared with {name} ({old.get('time')}): {len(changes)} change(s), most suspicious first"]
        for c in changes:
            mark = paint("!!", "red") if c.score >= 80 else (paint(" !", "yellow") if c.score >= 40 else "  ")
            lines.append(f"{mark} {c.text}")
        print_lines(lines)
    return 0
