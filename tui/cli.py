"""The `vgpu-tui` command line: one subcommand per pane and action of ../shared/CONTRACT.md.

Each subcommand lives in its own module under tui/commands/ with `add_arguments(parser)`
and `run(args, ctx) -> int`; this file only wires them up, builds the Host the options
describe, and turns errors into one clear line (exit 2) instead of a traceback.
Without a subcommand it starts the Textual app, the only path that imports Textual.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from probes.errors import ToolError

# (subcommand, module under tui/commands, one-line help). The order is the order of --help.
COMMANDS = (
    ("report", "report", "the whole diagnosis: device, libraries, backends, shims, probe, log, findings, verdict"),
    ("device", "device", "PCI devices, device nodes, kernel modules, driver version"),
    ("tree", "tree", "the Ollama library folder as a tree, with what Ollama's scanner makes of it"),
    ("exports", "exports", "a shared library's dynamic exports and imports; --against a required set"),
    ("resolve", "resolve", "how the dynamic loader resolves each DT_NEEDED of a library, and every path tried"),
    ("probe", "probe", "the load probe: dlopen the driver libraries and backends in a child process"),
    ("logs", "logs", "parse an Ollama server log (any era) into events, devices, a verdict and findings"),
    ("fix", "fix", "change a symlink or a service variable, or refresh the loader cache (journaled)"),
    ("journal", "journal", "the changes this tool has made"),
    ("undo", "undo", "revert the last change, or the one named"),
    ("relaunch", "relaunch", "restart Ollama and report the new discovery verdict beside the old one"),
    ("snapshot", "snapshot", "save what the report knows, or show what differs from a saved state"),
)


def common_options(suppress: bool) -> argparse.ArgumentParser:
    """The contract's common options, accepted before and after the subcommand.

    The copy attached to each subparser uses SUPPRESS defaults so that an option given
    before the subcommand is not reset by the subparser.
    """
    d = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--root", metavar="DIR", default=d(None),
                   help="inspect a system image or sandbox at DIR instead of /")
    g.add_argument("--demo", action="store_true", default=d(False),
                   help="build the built-in demo VM (a sandbox) and inspect it")
    g.add_argument("--demo-dir", metavar="DIR", default=d(None),
                   help="keep the demo VM in DIR (reused when it is already there)")
    g.add_argument("--json", action="store_true", default=d(False), help="print one JSON object")
    g.add_argument("--ollama", metavar="PATH", default=d(None),
                   help="the Ollama binary, when it is not found by the usual means")
    g.add_argument("--assume-version", metavar="X.Y.Z", default=d(None),
                   help="the Ollama version, when it cannot be read from the binary or log")
    g.add_argument("--log", metavar="FILE", default=d(None),
                   help="a saved Ollama log (a file of this machine) instead of the live one")
    g.add_argument("--no-probe", action="store_true", default=d(False),
                   help="skip the load probe (static analysis only)")
    g.add_argument("--gpu", metavar="VENDOR:DEVICE", action="append", default=d(None),
                   help="treat this PCI device as the GPU (a custom stub device); repeatable")
    g.add_argument("--readonly", action="store_true", default=d(False),
                   help="refuse every change")
    g.add_argument("--debug", action="store_true", default=d(False),
                   help="show a traceback when the tool itself fails")
    return p


# Common options that take a value: skipped when looking for the subcommand's name.
_VALUE_OPTIONS = {"--root", "--demo-dir", "--ollama", "--assume-version", "--log", "--gpu"}


def _chosen_command(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named on the command line, found without parsing it fully."""
    names = {n for n, _, _ in COMMANDS}
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--":
            return None
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token if token in names else None
    return None


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The parser. Only the chosen subcommand's module is imported (all of them when `argv`
    is None, e.g. for tests), so one command's imports never slow down or break another."""
    chosen = _chosen_command(argv) if argv is not None else None
    parser = argparse.ArgumentParser(
        prog="vgpu-tui",
        description="Find out why Ollama uses the CPU although a (virtual) NVIDIA GPU is there, "
                    "fix it, relaunch Ollama and see the result. Without a subcommand: the TUI.",
        parents=[common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = common_options(suppress=True)
    for name, module, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[shared])
        if argv is None or name == chosen:
            _command_module(module).add_arguments(p)
    return parser


def _command_module(module: str):
    return importlib.import_module(f"tui.commands.{module}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _run_app(args)
        from tui.context import Context

        module = dict((n, m) for n, m, _ in COMMANDS)[args.command]
        with Context.from_args(args) as ctx:
            return int(_command_module(module).run(args, ctx) or 0)
    except ToolError as exc:
        if getattr(args, "debug", False):
            raise
        sys.stderr.write(f"vgpu-tui: {_printable(str(exc))}\n")
        return exc.exit_code
    except PermissionError as exc:  # e.g. a fix or undo run without the rights it needs
        if getattr(args, "debug", False):
            raise
        where = exc.filename if exc.filename is not None else ""
        sys.stderr.write(f"vgpu-tui: {_printable(str(where))}: permission denied "
                         f"(reading works as any user; changing the system needs root)\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("vgpu-tui: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the tool itself failed: one line, exit 2
        if getattr(args, "debug", False):
            raise
        sys.stderr.write(f"vgpu-tui: internal error: {type(exc).__name__}: {_printable(str(exc))} (run with --debug for details)\n")
        return 2


def _printable(text: str) -> str:
    """A message naming a non-UTF-8 path: its bytes as \\xNN (as `tree` shows them), one line."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\n", " ").replace("\r", " ")


def _run_app(args: argparse.Namespace) -> int:
    try:
        from tui.app import run_app
    except ImportError as exc:
        raise ToolError(f"the TUI is not available: {exc}")
    return int(run_app(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
