"""The one exception type the tool raises on purpose.

A ToolError is shown to the user as a single line (no traceback unless --debug); anything
else escaping a command is a bug.
"""
from __future__ import annotations


class ToolError(Exception):
    """A clear, expected failure: bad input, a refused change, a missing file."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
