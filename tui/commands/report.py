"""`vgpu-tui report [--json|--markdown]`: the whole diagnosis (probes.report), exit 1 on an error finding."""
from __future__ import annotations

import sys

from probes import report as rep
from probes.errors import ToolError
from tui.output import emit_json, paint, print_lines


def add_arguments(parser) -> None:
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="Markdown ready to paste into a GitHub issue")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="seconds the load probe may take (default 20)")


def run(args, ctx) -> int:
    if args.timeout is not None and not args.timeout > 0:
        raise ToolError("--timeout must be a positive number of seconds")
    if getattr(args, "json", False) and getattr(args, "markdown", False):
        raise ToolError("--json and --markdown: choose one")
    report = rep.build_report(ctx.host, rep.options_from_args(args, ctx))
    if getattr(args, "json", False):
        emit_json(rep.to_json_obj(report))
    elif getattr(args, "markdown", False):
        sys.stdout.write(rep.to_markdown(report))
    else:
        lines = rep.to_text(report)
        colour = "green" if report.verdict.gpu_ready else "red"
        print_lines([paint(lines[0], colour)] + lines[1:])
    return rep.exit_status(report)
