"""`vgpu-tui journal` — not yet available (see the issue that builds it)."""
from __future__ import annotations

from probes.errors import ToolError


def add_arguments(parser) -> None:
    pass


def run(args, ctx) -> int:
    raise ToolError("'journal' is not yet available")
