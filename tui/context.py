"""What a subcommand runs against: the Host the common options describe.

`--root DIR` inspects DIR; `--demo` builds the demo VM (a sandbox, see probes.sandbox) in
`--demo-dir` or a temporary folder that is removed afterwards; otherwise this machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import sys
import tempfile
from typing import Optional

from probes.errors import ToolError
from probes.host import Host


@dataclasses.dataclass
class Context:
    host: Host
    args: argparse.Namespace
    demo_dir: Optional[str] = None  # where the demo VM lives, when --demo
    _cleanup: Optional[str] = None  # a temporary demo folder to remove on exit
    _pointed: bool = False          # a printed command was pointed at a temporary demo

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Context":
        _check_assume_version(getattr(args, "assume_version", None))
        _check_gpu_ids(getattr(args, "gpu", None) or ())
        if getattr(args, "demo", False):
            if getattr(args, "root", None):
                raise ToolError("--demo and --root cannot be used together")
            target = getattr(args, "demo_dir", None)
            cleanup = None
            if not target:
                target = tempfile.mkdtemp(prefix="vgpu-demo-")
                cleanup = target
            try:
                root = build_demo(target)
            except BaseException:
                if cleanup:
                    shutil.rmtree(cleanup, ignore_errors=True)
                raise
            return cls._checked(cls(Host(root), args, demo_dir=root, _cleanup=cleanup), args)
        return cls._checked(cls._make(args), args)

    @classmethod
    def _checked(cls, ctx: "Context", args: argparse.Namespace) -> "Context":
        """Options naming files of the inspected system must name the right kind of file:
        a typo in --ollama would otherwise be diagnosed as "Ollama reads /etc" and a fix
        offered that replaces that file by a link."""
        ollama = getattr(args, "ollama", None)
        if ollama:
            try:
                path = ctx.system_path(ollama)
                if not ctx.host.exists(path):
                    raise ToolError(f"--ollama {ollama}: no such file")
                if not ctx.host.isfile(path):
                    raise ToolError(f"--ollama {ollama}: not a file")
                head = ctx.host.read_bytes(path, 4) or b""
                if head != b"\x7fELF" and not head.startswith(b"#!"):  # a binary, or a wrapper script
                    raise ToolError(f"--ollama {ollama}: not an executable (ELF) file, so not an Ollama binary")
            except ToolError:
                ctx.__exit__(None, None, None)
                raise
        return ctx

    @classmethod
    def _make(cls, args: argparse.Namespace) -> "Context":
        root = getattr(args, "root", None)
        if root:
            try:
                os.stat(root)
            except PermissionError:
                raise ToolError(f"--root {root}: permission denied")
            except OSError:
                pass
            if not os.path.isdir(root):
                raise ToolError(f"--root {root}: not a folder")
            if not os.access(root, os.R_OK | os.X_OK):  # else every probe reads "nothing there"
                raise ToolError(f"--root {root}: permission denied")
            return cls(Host(root), args)
        return cls(Host.local(), args)

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        if self._cleanup:
            shutil.rmtree(self._cleanup, ignore_errors=True)
            if self._pointed:
                sys.stdout.flush()  # the note comes after the commands it is about
                sys.stderr.write(
                    f"vgpu-tui: note: this demo VM lived in a temporary folder, now removed; the printed "
                    f"commands keep one in {KEEP_DEMO_DIR()} (--demo-dir), where fix, relaunch and undo "
                    f"can follow each other\n")

    def command_root(self) -> str:
        """The options that make a printed `vgpu-tui ...` command act on this same system when
        copy-pasted: "" (this machine), "--root DIR", or "--demo --demo-dir DIR" — for a
        temporary demo (removed on exit) a lasting folder, since the printed one is gone."""
        if self.demo_dir:
            if self._cleanup:
                self._pointed = True
                return f"--demo --demo-dir {shlex.quote(KEEP_DEMO_DIR())}"
            return f"--demo --demo-dir {shlex.quote(self.demo_dir)}"
        if not self.host.live:
            return f"--root {shlex.quote(self.host.root)}"
        return ""

    @property
    def temporary_demo(self) -> bool:
        """The demo VM lives in a folder removed when this command ends."""
        return bool(self._cleanup)

    def point_text(self, text: str) -> str:
        """Every `vgpu-tui ...` quoted in a sentence, pointed at this system (see on_this_system)."""
        prefix = "" if self.temporary_demo else self.command_root()
        if not prefix:
            return text
        return text.replace("`vgpu-tui ", f"`vgpu-tui {prefix} ")

    def on_this_system(self, command: str) -> str:
        """A `vgpu-tui ...` command (from a probe) with command_root() put in front."""
        prefix = self.command_root()
        if not prefix or not command.startswith("vgpu-tui ") or command.startswith(f"vgpu-tui {prefix} "):
            return command
        if command.startswith(("vgpu-tui --root ", "vgpu-tui --demo ")):
            return command
        return f"vgpu-tui {prefix} " + command[len("vgpu-tui "):]

    def system_path(self, path: str) -> str:
        """A path given on the command line, as an inspected path of the host's system."""
        if not path.startswith("/"):
            if self.host.live:
                return os.path.abspath(path)
            raise ToolError(f"{path}: give an absolute path of the inspected system under --root/--demo")
        return path


def KEEP_DEMO_DIR() -> str:
    """Where printed commands keep the demo VM when this run's folder was temporary."""
    return os.path.join(os.path.expanduser("~"), "vgpu-demo")


def _check_gpu_ids(ids) -> None:
    """--gpu must be VENDOR:DEVICE for every command: `report` would otherwise turn the error
    into a note and judge the machine without its device facts."""
    if ids:
        from probes.device import parse_gpu_id
        for text in ids:
            parse_gpu_id(text)


def _check_assume_version(text: Optional[str]) -> None:
    """--assume-version must name a version: a typo would silently make Ollama "unknown"."""
    if text is None:
        return
    from probes.eras import parse_version
    if parse_version(text) is None:
        raise ToolError(f"--assume-version {text!r}: expected an Ollama version like 0.24.0")


def build_demo(target: str) -> str:
    """Build (or reuse) the demo VM in `target`; returns its root folder."""
    try:
        from probes.sandbox.demo import build_demo as _build
    except ImportError as exc:  # pragma: no cover - only while the sandbox is being built
        raise ToolError(f"the demo VM is not available: {exc}")
    if os.path.lexists(target) and not os.path.isdir(target):
        raise ToolError(f"--demo-dir {target}: not a folder")
    try:
        return _build(target)
    except (OSError, ValueError) as exc:  # an occupied or unwritable --demo-dir: one line, exit 2
        raise ToolError(f"--demo-dir {target}: {exc}")
