"""`vgpu-tui snapshot save NAME` / `snapshot diff [NAME] [--json]` / `snapshot list`: known-good states."""
from __future__ import annotations

from probes import report as rep
from probes import snapshot as snap
from probes.errors import ToolError
from probes.facts import to_plain
from tui.output import emit_json, paint, print_lines, table


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("save", "diff", "list"), help="save the state, diff against one, or list them")
    parser.add_argument("name", nargs="?", default=None,
                        help="snapshot name (kept in the snapshot folder) or a path to a .json file; "
                             "diff without NAME uses the newest snapshot")
    parser.add_argument("--dir", default=None, metavar="DIR", help="the snapshot folder (default: ~/.local/state/vgpu-tui/snapshots)")


def _options(args, ctx):
    opts = rep.options_from_args(args, ctx)
    return rep.ReportOptions(ollama=opts.ollama, assume_version=opts.assume_version, log=opts.log,
                             no_probe=True, gpu_ids=opts.gpu_ids)


def run(args, ctx) -> int:
    folder = args.dir
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
