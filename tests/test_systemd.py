"""probes.systemd: unit + drop-ins as systemd merges them, Environment= quoting both ways.

Checked against the real parser where it exists: `systemd-analyze verify` loads a unit
in a test manager and prints the same "Invalid syntax"/"Invalid environment assignment"
warnings systemd logs when it loads the service.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from probes.host import Host
from probes.systemd import (
    format_environment,
    load_service,
    parse_env_file,
    parse_environment_line,
    parse_environment_value,
    split_words,
)


def write(root, rel, text):
    p = os.path.join(str(root), rel.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as fh:
        fh.write(text)
    return p


def test_man_page_example():
    # systemd.exec(5): three variables, $ kept literally.
    env = parse_environment_line('Environment="VAR1=word1 word2" VAR2=word3 "VAR3=$word 5 6"')
    assert env == {"VAR1": "word1 word2", "VAR2": "word3", "VAR3": "$word 5 6"}


def test_quotes_escapes_and_specifiers():
    assert split_words(r"""a'b c'd "e\"f" g\x41 \s""") == ["ab cd", 'e"f', "gA", " "]
    env = parse_environment_line(r'Environment="P=100%%" Q=%n')
    assert env == {"P": "100%", "Q": "ollama.service"}


def test_bad_words_dropped_like_systemd():
    pairs, warns = parse_environment_value('A=1 1X=2 B=2 "C=open')
    assert pairs == [("A", "1"), ("B", "2")]
    assert any("Invalid environment assignment" in w for w in warns)
    assert any("Invalid syntax" in w for w in warns)


@pytest.mark.parametrize("values", [
    {"OLLAMA_LLM_LIBRARY": "cuda_v12"},
    {"LD_LIBRARY_PATH": "/opt/vgpu lib/x:/usr/local/lib/ollama", "X": ""},
    {"Q": 'say "hi" it\'s 100% $HOME \\ done', "T": "a\tb\nc"},
])
def test_format_round_trip(values):
    line = format_environment(values)
    assert line.startswith("Environment=")
    assert parse_environment_line(line) == values


def test_format_rejects_bad_names():
    with pytest.raises(ValueError):
        format_environment({"1BAD": "x"})
    with pytest.raises(ValueError):
        format_environment({})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_real_systemd_agrees(tmp_path):
    lines = {
        "good": format_environment({"Q": 'a "b" 100% $X \\ y', "E": ""}),
        "unterminated": 'Environment="A=1 B=2',
        "badname": "Environment=1X=2",
        "badescape": r"Environment=D=\q",
    }
    unit = "[Service]\nExecStart=/bin/true\n" + "\n".join(lines.values()) + "\n"
    path = tmp_path / "t.service"
    path.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=30)
    out = proc.stdout + proc.stderr
    warned_lines = {int(l.split(":")[1]) for l in out.splitlines() if l.startswith(str(path) + ":")}
    ours = set()
    for no, line in enumerate(unit.splitlines(), 1):
        if line.startswith("Environment="):
            _, warns = parse_environment_value(line.partition("=")[2])
            if warns:
                ours.add(no)
    assert ours == warned_lines, out
    assert 3 not in warned_lines  # the line format_environment wrote is accepted


def test_unit_dropins_order_and_override(tmp_path):
    write(tmp_path, "/usr/lib/systemd/system/ollama.service",
          "[Service]\nExecStart=/usr/bin/ollama serve\nUser=nobody\n")
    write(tmp_path, "/etc/systemd/system/ollama.service",
          "[Unit]\nDescription=Ollama\n[Service]\nExecStart=/usr/local/bin/ollama serve\n"
          'User=ollama\nGroup=ollama\nEnvironment="PATH=/usr/bin:/bin"\n')
    write(tmp_path, "/usr/lib/systemd/system/ollama.service.d/20-debug.conf",
          "[Service]\nEnvironment=OLLAMA_DEBUG=0\n")
    write(tmp_path, "/etc/systemd/system/ollama.service.d/20-debug.conf",
          "[Service]\nEnvironment=OLLAMA_DEBUG=1\n")
    write(tmp_path, "/run/systemd/system/ollama.service.d/10-lib.conf",
          '[Service]\nEnvironment="OLLAMA_LLM_LIBRARY=cuda"\nEnvironmentFile=-/etc/ollama.env\n'
          "EnvironmentFile=-/etc/missing.env\n")
    write(tmp_path, "/etc/systemd/system/ollama.service.d/30-exec.conf",
          "[Service]\nExecStart=\nExecStart=/opt/ollama/bin/ollama serve\n")
    write(tmp_path, "/etc/ollama.env", "# comment\nOLLAMA_LLM_LIBRARY='cuda_v12'\nOLLAMA_DEBUG=\"2\"  \n")
    unit = load_service(Host(str(tmp_path)), "ollama")
    assert unit.path == "/etc/systemd/system/ollama.service"
    assert unit.dropins == (
        "/run/systemd/system/ollama.service.d/10-lib.conf",
        "/etc/systemd/system/ollama.service.d/20-debug.conf",
        "/etc/systemd/system/ollama.service.d/30-exec.conf",
    )
    assert unit.user == "ollama" and unit.group == "ollama"
    assert [c.path for c in unit.exec_start] == ["/opt/ollama/bin/ollama"]
    assert unit.exec_start[0].argv == ("/opt/ollama/bin/ollama", "serve")
    env = unit.configured_env()
    # EnvironmentFile= overrides Environment= regardless of where it was written.
    assert env["OLLAMA_LLM_LIBRARY"] == "cuda_v12"
    assert env["OLLAMA_DEBUG"] == "2"
    assert unit.env_sources()["OLLAMA_DEBUG"].source == "/etc/ollama.env"
    assert [r.found for r in unit.environment_files] == [True, False]


def test_empty_environment_resets(tmp_path):
    write(tmp_path, "/etc/systemd/system/ollama.service",
          "[Service]\nExecStart=/usr/local/bin/ollama serve\nEnvironment=A=1 B=2\n")
    write(tmp_path, "/etc/systemd/system/ollama.service.d/override.conf",
          "[Service]\nEnvironment=\nEnvironment=C=3\n")
    unit = load_service(Host(str(tmp_path)), "ollama.service")
    assert unit.configured_env() == {"C": "3"}


def test_missing_and_masked(tmp_path):
    assert load_service(Host(str(tmp_path)), "ollama") is None
    os.makedirs(tmp_path / "etc/systemd/system")
    os.symlink("/dev/null", tmp_path / "etc/systemd/system/ollama.service")
    unit = load_service(Host(str(tmp_path)), "ollama")
    assert unit.masked and unit.exec_start == ()


def test_env_file_format():
    items, warns = parse_env_file("A=1\n export B=2\nC='x y'\"z\"\nD=a\\\nb\n; c\nE= spaced  \n")
    d = {k: v for k, v, _ in items}
    assert d == {"A": "1", "C": "x yz", "D": "ab", "E": "spaced"}
    assert warns  # 'export B' is not a valid name for systemd


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_dropin_order_matches_systemd_analyze(tmp_path):
    write(tmp_path, "/usr/lib/systemd/system/ollama.service", "[Service]\nExecStart=/usr/bin/ollama serve\n")
    write(tmp_path, "/usr/lib/systemd/system/ollama.service.d/20-a.conf", "[Service]\nEnvironment=A=1\n")
    write(tmp_path, "/etc/systemd/system/ollama.service.d/20-a.conf", "[Service]\nEnvironment=A=2\n")
    write(tmp_path, "/run/systemd/system/ollama.service.d/10-b.conf", "[Service]\nEnvironment=B=1\n")
    write(tmp_path, "/usr/local/lib/systemd/system/ollama.service.d/30-c.conf", "[Service]\nEnvironment=C=1\n")
    proc = subprocess.run(["systemd-analyze", f"--root={tmp_path}", "cat-config", "systemd/system/ollama.service"],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"systemd-analyze cat-config failed: {proc.stderr.strip()}")
    real = [l[2 + len(str(tmp_path)):] for l in proc.stdout.splitlines() if l.startswith("# " + str(tmp_path))]
    unit = load_service(Host(str(tmp_path)), "ollama")
    assert [unit.path] + list(unit.dropins) == real
    assert unit.configured_env() == {"B": "1", "A": "2", "C": "1"}
