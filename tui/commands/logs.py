"""`vgpu-tui logs [FILE|-] [--json]`: parse an Ollama server log into a verdict and findings.

FILE is a file of this machine (`-` reads stdin). Without FILE: the log of the local
service — the sandbox's service log under --root/--demo, or `journalctl -u ollama` on a
live host (probes.logsource chooses).
"""
from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from typing import List

from probes.errors import ToolError
from probes.logs import LogReport, bounded_lines, parse_file, parse_lines
from probes.logsource import recent_service_lines
from tui.output import emit_json, paint, print_lines

_SEVERITY_COLOUR = {"error": "red", "warning": "yellow", "info": "dim"}


def add_arguments(parser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE|-",
                        help="a saved log of this machine, or - for stdin (default: the service's log)")
    parser.add_argument("--lines", type=int, default=5000, metavar="N",
                        help="how many recent journal lines to read without FILE (default 5000)")
    parser.add_argument("--events", action="store_true", help="also list every discovery event")


def run(args, ctx) -> int:
    report = point_fixes(_read(args, ctx), ctx)
    if getattr(args, "json", False):
        emit_json(report)
    else:
        print_lines(render(report, show_events=getattr(args, "events", False)))
    return 1 if report.errors else 0


JSON_SNIFF_LIMIT = 16 << 20


def _json_document(path: str) -> bool:
    """A whole-file JSON document (not journald's one-entry-per-line export): its text would
    otherwise be read as log lines and its quoted words taken for Ollama's messages."""
    try:
        if os.path.getsize(path) > JSON_SNIFF_LIMIT:
            return False
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    if data.lstrip()[:1] not in (b"{", b"["):
        return False
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    return not (isinstance(doc, dict) and "MESSAGE" in doc)


def point_fixes(report: LogReport, ctx) -> LogReport:
    """Fix commands that act on the system inspected (--root/--demo), as `report` prints them."""
    point = getattr(ctx, "on_this_system", None)
    if point is None:
        return report
    out = []
    for f in report.findings:
        if f.fix is not None and f.fix.command and point(f.fix.command) != f.fix.command:
            f = dataclasses.replace(f, fix=dataclasses.replace(f.fix, command=point(f.fix.command)))
        out.append(f)
    return dataclasses.replace(report, findings=tuple(out))


def _read(args, ctx) -> LogReport:
    path = getattr(args, "file", None) or getattr(args, "log", None)
    if path == "-":
        stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
        return parse_lines(bounded_lines(stream) if hasattr(stream, "readline") else stream, "<stdin>")
    if path:
        if os.path.isdir(path):
            raise ToolError(f"{path}: is a folder, not a log file")
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero would be read forever
            raise ToolError(f"{path}: a device, not a log file (a pipe or `-` for stdin is fine)")
        if _json_document(path):
            raise ToolError(f"{path}: a JSON document, not an Ollama log "
                            "(journald's export, `journalctl -u ollama -o json`, is read)")
        try:
            return parse_file(path)
        except FileNotFoundError:
            raise ToolError(f"{path}: no such file")
        except PermissionError:
            raise ToolError(f"{path}: permission denied")
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror or exc}")
    if getattr(args, "lines", 5000) < 1:
        raise ToolError(f"--lines {args.lines}: give a positive number of lines")
    source, lines = recent_service_lines(ctx.host, limit=getattr(args, "lines", 5000))
    return parse_lines(lines, source)


def render(report: LogReport, show_events: bool = False) -> List[str]:
    """The text form: the verdict, then each finding with its evidence lines."""
    used = {True: paint("yes", "green"), False: paint("no", "red"), None: "unknown"}[report.gpu_used]
    out = [
        f"source:    {report.source or '-'}  ({report.lines} lines, {report.sessions} server start(s))",
        f"ollama:    {report.ollama_version or 'unknown'}  era {report.era or '?'}"
        + (f"  log level {report.log_level}" if report.log_level else ""),
        f"library:   {report.library or 'unknown'}   GPU used: {used}   GPUs: "
        + ("?" if report.gpu_count is None else str(report.gpu_count)),
    ]
    for d in report.devices:
        out.append(f"  device {d.id}: {d.name or '?'} ({d.library}, compute {d.compute or '?'}, {d.total or '?'})")
    for dirs in report.probed[:6]:
        out.append(f"  probed: {' '.join(dirs)}")
    out.append("")
    out.append(paint(report.summary, "bold"))
    for f in report.findings:
        out.append("")
        out.append(f"{paint(f.severity.upper(), _SEVERITY_COLOUR.get(f.severity, 'dim'))} [{f.category}] {f.title}")
        if f.detail:
            out.append(f"  {f.detail}")
        for ev in f.evidence:
            out.append(f"    {ev}")
        if f.fix is not None and f.fix.command:
            out.append(f"  fix: {f.fix.command}")
    if not report.findings:
        out.append("no findings")
    if show_events:
        out.append("")
        out.append("events:")
        for e in report.events:
            text = e.text if len(e.text) <= 160 else e.text[:159] + "…"
            out.append(f"  {e.line:>6} {e.kind:<22} {text}")
    return out
