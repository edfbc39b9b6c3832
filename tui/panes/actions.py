"""The app's actions through the fix engine, the journal and the launcher (probes.fixes,
probes.journal, probes.launcher). Blocking; called from workers. A module that is not there
yet raises ToolError("… not available yet"), which the screen shows as one line.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, List, Optional

from probes.errors import ToolError
from probes.facts import Fix, to_plain

NOT_YET = "not available yet"


def _need(module: str, name: str):
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ToolError(f"{name}: {NOT_YET} ({module})")
    fn = getattr(mod, name, None)
    if fn is None:
        raise ToolError(f"{name}: {NOT_YET} ({module}.{name})")
    return fn


def fix_of(finding: dict) -> Fix:
    """The finding's fix as the fix engine's input."""
    fix = finding.get("fix") or {}
    return Fix(str(fix.get("kind")), dict(fix.get("args") or {}), str(fix.get("command") or ""))


@dataclasses.dataclass
class Preview:
    """What a fix will do, shown before it is applied: the exact diff or command."""

    plan: Any  # the fix engine's plan, handed back to apply()
    summary: str
    diff: str
    commands: List[str]


def preview(host, finding: dict) -> Preview:
    """The fix engine's plan for the finding's fix: nothing is touched yet."""
    plan_fn = _need("probes.fixes", "plan")
    plan = plan_fn(host, fix_of(finding))
    plain = to_plain(plan)
    plain = plain if isinstance(plain, dict) else {}
    diff = plain.get("preview") or plain.get("diff") or ""
    if isinstance(diff, list):
        diff = "\n".join(str(d) for d in diff)
    commands = [" ".join(c) if isinstance(c, list) else str(c) for c in plain.get("commands") or []]
    commands = [c for c in commands if c not in diff]  # the preview usually lists them already
    summary = plain.get("summary") or (finding.get("fix") or {}).get("command") or ""
    return Preview(plan, str(summary), str(diff), commands)


def apply(host, preview_: Preview, readonly: bool = False) -> dict:
    """Apply a previewed plan through the fix engine (journaled); the change record."""
    return to_plain(_need("probes.fixes", "apply")(host, preview_.plan, readonly=readonly))


def undo(host, change_id: Optional[str] = None, readonly: bool = False) -> dict:
    """Revert a change (the last applied one when `change_id` is None); the change record."""
    return to_plain(_need("probes.fixes", "undo")(host, change_id, readonly=readonly))


def list_changes(host) -> List[dict]:
    try:
        fn = _need("probes.journal", "list_changes")
    except ToolError:
        return []
    value = to_plain(fn(host))
    if isinstance(value, dict):
        value = value.get("changes") or []
    return [c for c in value or [] if isinstance(c, dict)]
