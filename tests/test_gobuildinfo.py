"""probes.gobuildinfo: the Go build-info blob, written and read back from real ELF files.

Go itself is not installed here, so `go version -m` cannot be the judge; instead:
a real Go binary on this machine (when there is one) is read, make_blob's layout is
checked byte by byte against the documented format (debug/buildinfo), and gcc-built
ELFs carrying the blob (inline, Go 1.18+) or a pointer-layout header (Go < 1.18) are read.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from probes.gobuildinfo import (
    INFO_END,
    INFO_START,
    MAGIC,
    c_source,
    make_blob,
    parse_blob,
    read_buildinfo,
    split_flags,
    x_assignments,
)
from probes.host import Host

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def test_blob_layout_matches_the_format():
    blob = make_blob("0.24.0")
    assert blob[:14] == MAGIC and blob[14] == 8 and blob[15] == 0x02
    assert blob[16:32] == b"\0" * 16
    n = blob[32]
    assert blob[33:33 + n] == b"go1.24.1"
    assert INFO_START in blob and blob.endswith(INFO_END)
    text = blob[blob.index(INFO_START) + 16:-16].decode()
    assert text.endswith("\n")
    assert ('build\t-ldflags="-w -s \\"-X=github.com/ollama/ollama/version.Version=0.24.0\\" '
            '\\"-X=github.com/ollama/ollama/server.mode=release\\""') in text.splitlines()


def test_round_trip():
    info = parse_blob(make_blob("0.12.3-rc1"))
    assert info.ollama_version == "0.12.3-rc1"
    assert info.main_module == "github.com/ollama/ollama" and info.main_version == "(devel)"
    assert ("github.com/ollama/ollama/server.mode", "release") in info.x_vars


def test_ldflags_forms():
    assert split_flags("""-w '-X a.b=c d' "x y" """) == ["-w", "-X a.b=c d", "x y"]
    assert x_assignments("-s -X github.com/ollama/ollama/version.Version=0.5.7 -X=a.B=1") == [
        ("github.com/ollama/ollama/version.Version", "0.5.7"), ("a.B", "1")]


@needs_gcc
def test_gcc_elf_with_blob(tmp_path):
    src = tmp_path / "fake.c"
    src.write_text(c_source("0.24.0") + "int main(void){return 0;}\n")
    exe = tmp_path / "usr/local/bin/ollama"
    exe.parent.mkdir(parents=True)
    subprocess.run(["gcc", "-O0", "-o", str(exe), str(src)], check=True)
    out = subprocess.run(["readelf", "-SW", str(exe)], capture_output=True, text=True).stdout
    assert ".go.buildinfo" in out
    info = read_buildinfo(Host(str(tmp_path)), "/usr/local/bin/ollama")
    assert info is not None and info.layout == "inline"
    assert info.ollama_version == "0.24.0"


POINTER_SRC = r"""
struct gostr { const char *p; unsigned long n; };
static const char ver[] = "go1.16.15";
static const char mod[] = "\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6"
    "path\tgithub.com/ollama/ollama\nmod\tgithub.com/ollama/ollama\tv0.1.20\t\n"
    "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2";
static const struct gostr vs = {ver, sizeof ver - 1};
static const struct gostr ms = {mod, sizeof mod - 1};
struct hdr { char magic[14]; unsigned char ps, flags; const struct gostr *v, *m; };
__attribute__((section(".go.buildinfo"), aligned(16), used))
struct hdr h = { "\xff Go buildinf:", 8, 0, &vs, &ms };
int main(void){return 0;}
"""


@needs_gcc
def test_gcc_elf_pointer_layout(tmp_path):
    src = tmp_path / "old.c"
    src.write_text(POINTER_SRC)
    exe = tmp_path / "ollama"
    # Non-PIE: the pointers are in the file (a PIE would leave them to relocations).
    subprocess.run(["gcc", "-no-pie", "-o", str(exe), str(src)], check=True)
    info = read_buildinfo(Host(str(tmp_path)), "/ollama")
    assert info is not None and info.layout == "pointer"
    assert info.go_version == "go1.16.15"
    assert info.ollama_version == "0.1.20"  # from the main module version


def test_not_go_or_garbage(tmp_path):
    (tmp_path / "text").write_text("hello")
    (tmp_path / "trunc").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 20)
    host = Host(str(tmp_path))
    assert read_buildinfo(host, "/text") is None
    assert read_buildinfo(host, "/trunc") is None
    assert read_buildinfo(host, "/missing") is None
    assert read_buildinfo(Host.local(), "/bin/sh") is None


def test_real_go_binary_if_any():
    """A Go binary shipped on this machine: its Go version string appears in the file."""
    for cand in ("/usr/bin/gcloud-crc32c", "/usr/local/go/bin/go", "/usr/bin/docker"):
        real = os.path.realpath(cand)
        if os.path.isfile(real):
            break
    else:
        pytest.skip("no Go binary on this machine")
    info = read_buildinfo(Host.local(), real)
    assert info is not None and re.fullmatch(r"go1\.\d+(\.\d+)?", info.go_version)
    with open(real, "rb") as fh:
        assert info.go_version.encode() in fh.read()
    assert ("-compiler", "gc") in info.settings
