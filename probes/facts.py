"""Dataclasses shared by every probe, and the one function that turns facts into JSON.

Each probe module defines its own frozen dataclasses for what it learns; the types that
cross module boundaries (findings and their fixes) live here. `to_json` turns any of them
into the plain JSON of ../shared/CONTRACT.md: dataclasses become objects, tuples lists,
paths strings, enums their value.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import os
from typing import Any, Mapping, Optional, Tuple

SEVERITIES = ("error", "warning", "info")

CATEGORIES = (
    "no-device",
    "device-nodes-missing",
    "driver-missing",
    "driver-too-old",
    "driver-lib-not-found",
    "shim-incomplete",
    "preload-broken",
    "cuda-init-failed",
    "lib-dir-not-found",
    "backend-lib-not-scanned",
    "backend-lib-missing",
    "wrong-library-override",
    "visible-devices-env",
    "unsupported-compute",
    "cpu-lacks-avx",
    "discovery-timeout",
    "runner-crash",
    "oom-or-vram",
    "container-runtime",
    "wsl",
)

FIX_KINDS = ("symlink", "env", "unset", "ldconfig", "relaunch", "manual")


@dataclasses.dataclass(frozen=True)
class Fix:
    """A concrete remedy. `command` is the exact vgpu-tui invocation that applies it."""

    kind: str
    args: Mapping[str, Any]
    command: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FIX_KINDS:
            raise ValueError(f"unknown fix kind {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosis in the contract's vocabulary, with the evidence that supports it."""

    id: str
    category: str
    severity: str
    title: str
    detail: str = ""
    evidence: Tuple[str, ...] = ()
    fix: Optional[Fix] = None

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown finding category {self.category!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")


def to_plain(value: Any) -> Any:
    """Recursively convert facts into JSON-ready values.

    A dataclass field whose metadata has {"json": False} is left out; a dataclass may
    define `__json__()` to return its own plain form.
    """
    if hasattr(value, "__json__"):
        return to_plain(value.__json__())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, enum.Enum):
        return to_plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        # Paths that are not UTF-8 arrive as surrogate escapes; JSON must stay valid UTF-8.
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def to_json(value: Any, indent: Optional[int] = 2) -> str:
    """The JSON text of any fact, finding or result."""
    return json.dumps(to_plain(value), indent=indent, ensure_ascii=False)
