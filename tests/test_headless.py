"""The headless core never imports Textual or Rich, and the headless CLI doesn't either."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import probes

ROOT = Path(__file__).resolve().parents[1]


def _probe_modules():
    return sorted(m.name for m in pkgutil.walk_packages(probes.__path__, "probes."))


def _imports_ui(code: str) -> list:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('textual','rich')))"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


def test_every_probe_module_imports_without_textual_or_rich():
    modules = _probe_modules()
    assert "probes.host" in modules and "probes.facts" in modules
    code = "\n".join(f"import {m}" for m in modules)
    assert _imports_ui(code) == []


def test_headless_cli_does_not_import_textual():
    code = "import tui.cli as c\nc.build_parser()\nimport tui.context"
    assert _imports_ui(code) == []


def test_help_lists_every_contract_subcommand():
    out = subprocess.run([sys.executable, "-m", "tui", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for name in ("report", "device", "tree", "exports", "resolve", "probe", "logs", "fix",
                 "journal", "undo", "relaunch", "snapshot"):
        assert f"    {name} " in out.stdout or f"    {name}\n" in out.stdout, name
