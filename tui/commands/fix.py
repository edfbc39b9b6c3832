"""`vgpu-tui fix` — change a symlink or a service variable, or refresh the loader cache.

Each change is previewed (`--dry-run` prints the exact diff or command and touches
nothing), journaled with the exact previous state, and applied atomically (probes.fixes).
"""
from __future__ import annotations

import sys

from probes import fixes, journal
from probes.errors import ToolError
from tui.output import emit_json, paint


def add_arguments(parser) -> None:
    from tui.cli import common_options  # the kinds accept the common options too

    shared = [common_options(suppress=True)]
    sub = parser.add_subparsers(dest="fix_kind", metavar="KIND")
    sub.required = True
    p = sub.add_parser("symlink", help="create, re-point or remove (--remove) a symlink", parents=shared)
    p.add_argument("link", metavar="LINK", help="the link (a path of the inspected system)")
    p.add_argument("target", metavar="TARGET", nargs="?", help="what it points to, as written into the link")
    p.add_argument("--remove", action="store_true", help="remove the symlink LINK")
    p = sub.add_parser("env", help="set a variable of the Ollama service", parents=shared)
    p.add_argument("assignment", metavar="NAME=VALUE")
    p = sub.add_parser("unset", help="remove a variable from the Ollama service", parents=shared)
    p.add_argument("name", metavar="NAME")
    sub.add_parser("ldconfig", help="refresh the loader cache", parents=shared)
    for p in sub.choices.values():
        p.add_argument("--dry-run", action="store_true", help="show the exact change; touch nothing")
        p.add_argument("--force", action="store_true",
                       help="allow replacing a regular file or a target outside the Ollama tree")


def _fix_args(args, ctx):
    kind = args.fix_kind
    if kind == "symlink":
        if args.remove and args.target:
            raise ToolError("give either TARGET or --remove, not both")
        if not args.remove and not args.target:
            raise ToolError("fix symlink needs LINK TARGET (or LINK --remove)")
        a = {"link": ctx.system_path(args.link)}
        if args.remove:
            a["remove"] = True
        else:
            a["target"] = args.target
        return kind, a
    if kind == "env":
        name, eq, value = args.assignment.partition("=")
        if not eq:
            raise ToolError(f"{args.assignment!r}: give NAME=VALUE")
        return kind, {"name": name, "value": value}
    if kind == "unset":
        return kind, {"name": args.name}
    return kind, {}


def run(args, ctx) -> int:
    kind, a = _fix_args(args, ctx)
    readonly = bool(getattr(args, "readonly", False))
    if readonly and not args.dry_run:
        raise ToolError("--readonly: changes are refused")
    if not readonly:
        for line in journal.recover(ctx.host):
            sys.stderr.write(f"vgpu-tui: {line}\n")
    try:
        plan = fixes.plan(ctx.host, kind, a, force=args.force)
    except fixes.NothingToDo as exc:
        if args.json:
            emit_json({"applied": False, "nothing_to_do": str(exc)})
        else:
            print(str(exc))
        return 0
    if args.dry_run:
        if args.json:
            emit_json({"applied": False, "dry_run": True, "plan": plan})
        else:
            print(paint(plan.summary, "bold"))
            sys.stdout.write(plan.preview)
            for note in plan.notes:
                print(paint("note: " + note, "yellow"))
            print(paint("(dry run: nothing changed)", "dim"))
        return 0
    change = fixes.apply(ctx.host, plan, readonly=readonly)
    point = getattr(ctx, "point_text", lambda text: text)
    if args.json:
        emit_json({"applied": True, "change": change, "plan": plan})
    else:
        sys.stdout.write(plan.preview)
        print(paint(f"{change.id}: {change.summary}", "green"))
        for note in plan.notes:
            print("note: " + point(note))
        if getattr(ctx, "temporary_demo", False):
            print("note: this demo VM was temporary and is removed now, with this change; "
                  "keep one with --demo-dir DIR to relaunch and undo")
        else:
            # under --root/--demo-dir a bare `vgpu-tui undo` would act on THIS machine's journal
            print(point(f"undo with: `vgpu-tui undo {change.id}`").replace("`", ""))
    return 0
