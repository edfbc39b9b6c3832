"""`vgpu-tui relaunch [--watch S] [--trace]` — restart Ollama, follow its new log, and show the
new discovery verdict beside the previous one (probes.launcher)."""
from __future__ import annotations

import sys

from probes import launcher
from probes.errors import ToolError
from tui.output import emit_json, paint, print_lines, table


def add_arguments(parser) -> None:
    parser.add_argument("--watch", metavar="S", type=float, default=30.0,
                        help="follow the new log for at most S seconds (default 30)")
    parser.add_argument("--trace", action="store_true",
                        help="trace the loader (LD_DEBUG, and strace when installed): which libraries each process opened")
    parser.add_argument("--quiet", action="store_true", help="don't echo the new log lines")


def _install(ctx):
    """The Ollama install (its binary matters to the child-process launcher)."""
    if ctx.host.is_sandbox or not ctx.host.live:
        return None
    path = getattr(ctx.args, "ollama", None)
    if path:
        class _Given:  # the --ollama binary
            binary = ctx.system_path(path)
        return _Given()
    try:
        from probes import ollama

        return ollama.find_install(ctx.host, ctx.args)
    except ImportError:
        return None


def run(args, ctx) -> int:
    if args.watch <= 0:
        raise ToolError("--watch needs a positive number of seconds")
    result = None
    for ev in launcher.iter_relaunch(ctx.host, _install(ctx), watch_seconds=args.watch, trace=args.trace,
                                     readonly=bool(getattr(args, "readonly", False))):
        if ev.kind == "result":
            result = ev.result
        elif args.json:
            continue
        elif ev.kind == "status":
            sys.stderr.write(paint("» " + ev.text, "cyan", sys.stderr) + "\n")
        elif not args.quiet:
            sys.stderr.write(paint("  " + ev.text, "dim", sys.stderr) + "\n")
    if args.json:
        emit_json(result)
        return 0 if result.ok else 1
    label = " (simulated Ollama)" if result.method == "simulator" else ""
    rows = [
        ["library", str(result.library_before), str(result.library_after)],
        ["GPU used", str(result.gpu_used_before), str(result.gpu_used_after)],
    ]
    print(paint(f"relaunched via {result.method}{label}: {' '.join(result.command)}", "bold"))
    print_lines(table(rows, header=["", "BEFORE", "AFTER"]))
    for d in result.devices:
        print(f"device: {d.id} {d.name or ''} library={d.library} compute={d.compute} total={d.total}")
    for fid in result.gone:
        print(paint(f"gone: {fid}", "green"))
    for fid in result.new:
        print(paint(f"new:  {fid}", "red"))
    if result.trace is not None:
        from probes import trace

        print_lines(trace.format_report(result.trace))
    if result.problem:
        sys.stderr.write(f"vgpu-tui: {result.problem}\n")
    return 0 if result.ok else 1
