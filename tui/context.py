"""What a subcommand runs against: the Host the common options describe.

`--root DIR` inspects DIR; `--demo` builds the demo VM (a sandbox, see probes.sandbox) in
`--demo-dir` or a temporary folder that is removed afterwards; otherwise this machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Context":
        if getattr(args, "demo", False):
            if getattr(args, "root", None):
                raise ToolError("--demo and --root cannot be used together")
            target = getattr(args, "demo_dir", None)
            cleanup = None
            if not target:
                target = tempfile.mkdtemp(prefix="vgpu-demo-")
                cleanup = target
            root = build_demo(target)
            return cls(Host(root), args, demo_dir=root, _cleanup=cleanup)
        root = getattr(args, "root", None)
        if root:
            if not os.path.isdir(root):
                raise ToolError(f"--root {root}: not a folder")
            return cls(Host(root), args)
        return cls(Host.local(), args)

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        if self._cleanup:
            shutil.rmtree(self._cleanup, ignore_errors=True)

    def system_path(self, path: str) -> str:
        """A path given on the command line, as an inspected path of the host's system."""
        if not path.startswith("/"):
            if self.host.live:
                return os.path.abspath(path)
            raise ToolError(f"{path}: give an absolute path of the inspected system under --root/--demo")
        return path


def build_demo(target: str) -> str:
    """Build (or reuse) the demo VM in `target`; returns its root folder."""
    try:
        from probes.sandbox.demo import build_demo as _build
    except ImportError as exc:  # pragma: no cover - only while the sandbox is being built
        raise ToolError(f"the demo VM is not available: {exc}")
    return _build(target)
