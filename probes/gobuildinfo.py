"""Go build information read from a binary without running it (what `go version -m` shows).

The Go linker writes a 32-byte header starting `\\xff Go buildinf:` (16-byte aligned, in
section `.go.buildinfo`, else in the first writable PT_LOAD segment):

    offset 0   14 bytes magic
    offset 14  pointer size (4 or 8)
    offset 15  flags: bit 0 big-endian, bit 1 "strings inline" (Go 1.18+)
    Go 1.18+:  at offset 32, two varint-length-prefixed strings: the Go version, the modinfo
    older:     at 16 and 16+ptrsize, addresses of two Go string headers {data ptr, len}

The modinfo text is framed by two 16-byte sentinels and holds lines `path`, `mod`, `dep`,
`=>` and `build KEY=VALUE` (values quoted like Go's strconv.Quote when needed). Ollama's
release build puts its version in `-ldflags ... -X=github.com/ollama/ollama/version.Version=X`,
recorded as the `build -ldflags=...` setting. Only the header and those strings are read.
"""
from __future__ import annotations

import dataclasses
import re
import struct
from typing import BinaryIO, List, Optional, Tuple

from probes.host import Host

MAGIC = b"\xff Go buildinf:"
INFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
INFO_END = bytes.fromhex("f932433186182072008242104116d8f2")
OLLAMA_MODULE = "github.com/ollama/ollama"
VERSION_VAR = "/version.Version"
SEARCH_LIMIT = 64 * 1024  # Go's debug/buildinfo searches this much of the data start
MAX_STRING = 1 << 20


@dataclasses.dataclass(frozen=True)
class GoBuildInfo:
    go_version: str
    path: Optional[str]  # main package
    main_module: Optional[str]
    main_version: Optional[str]  # "(devel)" for a plain `go build` of a checkout
    settings: Tuple[Tuple[str, str], ...]  # `build` lines, in order
    x_vars: Tuple[Tuple[str, str], ...]  # -X name=value from -ldflags, in order
    layout: str  # "inline" (Go 1.18+) or "pointer"

    @property
    def ldflags(self) -> Optional[str]:
        return dict(self.settings).get("-ldflags")

    @property
    def version_var(self) -> Optional[Tuple[str, str]]:
        """(name, value) of the -X that sets a `.../version.Version`, Ollama's first."""
        hits = [(k, v) for k, v in self.x_vars if k.endswith(VERSION_VAR)]
        for k, v in hits:
            if k == OLLAMA_MODULE + VERSION_VAR or (self.main_module and k == self.main_module + VERSION_VAR):
                return k, v
        return hits[0] if hits else None

    @property
    def ollama_version(self) -> Optional[str]:
        """The version Ollama reports: the -X variable, else a real main-module version."""
        vv = self.version_var
        if vv and vv[1]:
            return vv[1]
        mv = self.main_version or ""
        if re.fullmatch(r"v\d+\.\d+\.\d+(?:[-+].*)?", mv) and "0.0.0-" not in mv:
            return mv[1:]
        return None


# -- writing ------------------------------------------------------------------------------
def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def go_quote(s: str) -> str:
    """strconv.Quote for the ASCII and printable-UTF-8 text build settings hold."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _quote_value(v: str) -> str:
    # runtime/debug: quote when the value holds space, tab, CR, LF, a quote or a backtick.
    return go_quote(v) if any(c in v for c in ' \t\r\n"`') else v


def ollama_ldflags(version: str, module: str = OLLAMA_MODULE) -> str:
    """The -ldflags of Ollama's release build (scripts/build_*.sh GOFLAGS)."""
    return (f'-w -s "-X={module}/version.Version={version}" '
            f'"-X={module}/server.mode=release"')


def modinfo_text(version: str, module: str = OLLAMA_MODULE, go_version: str = "go1.24.1",
                 ldflags: Optional[str] = None) -> str:
    """The modinfo lines a `go build -trimpath -buildmode=pie` of Ollama records."""
    settings = [
        ("-buildmode", "pie"),
        ("-compiler", "gc"),
        ("-trimpath", "true"),
        ("-ldflags", ldflags if ldflags is not None else ollama_ldflags(version, module)),
        ("CGO_ENABLED", "1"),
        ("GOARCH", "amd64"),
        ("GOOS", "linux"),
        ("GOAMD64", "v1"),
    ]
    lines = [f"path\t{module}", f"mod\t{module}\t(devel)\t"]
    lines += [f"build\t{k}={_quote_value(v)}" for k, v in settings]
    return "\n".join(lines) + "\n"


def make_blob(version: str, module: str = OLLAMA_MODULE, go_version: str = "go1.24.1",
              ldflags: Optional[str] = None) -> bytes:
    """A Go 1.18+ build-info blob (header + strings) recording `version` as Ollama's
    release build does. Put it, 16-byte aligned, in an ELF section named `.go.buildinfo`
    (see `c_source`) and `go version -m` and `read_buildinfo` both read it.
    """
    header = MAGIC + bytes([8, 0x02]) + b"\x00" * 16
    mod = INFO_START + modinfo_text(version, module, go_version, ldflags).encode() + INFO_END
    gov = go_version.encode()
    return header + _uvarint(len(gov)) + gov + _uvarint(len(mod)) + mod


def c_source(version: str, symbol: str = "go_buildinfo", **kw) -> str:
    """C source defining the blob in a writable `.go.buildinfo` section (for gcc)."""
    blob = make_blob(version, **kw)
    body = ",".join(str(b) for b in blob)
    return (
        f"/* Go build info recording Ollama {version} (probes.gobuildinfo.make_blob) */\n"
        f'__attribute__((section(".go.buildinfo"), aligned(16), used))\n'
        f"unsigned char {symbol}[{len(blob)}] = {{{body}}};\n"
    )


# -- reading ------------------------------------------------------------------------------
def _read_uvarint(data: bytes, pos: int) -> Tuple[int, int]:
    n = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            break
    raise ValueError("bad varint")


def go_unquote(s: str) -> str:
    """strconv.Unquote for a double-quoted Go string (or the text itself if not quoted)."""
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        return s
    body = s[1:-1]
    out: List[str] = []
    i = 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif e in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(e)
            i += 2
    return "".join(out)


def split_flags(s: str) -> List[str]:
    """cmd/internal/quoted.Split: space-separated fields, '...' or "..." quoting, no escapes."""
    out: List[str] = []
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " \t\n\r":
            i += 1
        if i >= n:
            break
        if s[i] in "'\"":
            q = s[i]
            j = s.find(q, i + 1)
            if j < 0:
                out.append(s[i + 1:])
                break
            out.append(s[i + 1:j])
            i = j + 1
            continue
        j = i
        while j < n and s[j] not in " \t\n\r":
            j += 1
        out.append(s[i:j])
        i = j
    return out


def x_assignments(ldflags: str) -> List[Tuple[str, str]]:
    """(importpath.name, value) of every -X in an -ldflags string."""
    fields = split_flags(ldflags)
    out: List[Tuple[str, str]] = []
    i = 0
    while i < len(fields):
        f = fields[i]
        arg = None
        if f in ("-X", "--X") and i + 1 < len(fields):
            arg = fields[i + 1]
            i += 1
        elif f.startswith("-X=") or f.startswith("--X="):
            arg = f.split("=", 1)[1]
        if arg and "=" in arg:
            k, v = arg.split("=", 1)
            out.append((k, v))
        i += 1
    return out


def parse_modinfo(text: str) -> Tuple[Optional[str], Optional[str], Optional[str], List[Tuple[str, str]]]:
    """(path, main module, main version, build settings) of a modinfo text."""
    path = mod = ver = None
    settings: List[Tuple[str, str]] = []
    for line in text.split("\n"):
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            path = parts[1]
        elif parts[0] == "mod" and len(parts) > 1:
            mod = parts[1]
            ver = parts[2] if len(parts) > 2 else None
        elif parts[0] == "build" and len(parts) > 1:
            kv = "\t".join(parts[1:])
            if kv.startswith('"'):
                m = re.match(r'("(?:[^"\\]|\\.)*")=(.*)$', kv)
                if not m:
                    continue
                key, value = go_unquote(m.group(1)), m.group(2)
            else:
                key, _, value = kv.partition("=")
            settings.append((key, go_unquote(value)))
    return path, mod, ver, settings


def _strip_sentinels(mod: bytes) -> bytes:
    if len(mod) >= 33 and mod[-17:-16] == b"\n":
        return mod[16:-16]
    return mod


def parse_blob(blob: bytes, read_at=None) -> Optional[GoBuildInfo]:
    """Decode a build-info region starting at the magic. `read_at(vaddr, n)` is needed only
    for the pre-1.18 pointer layout."""
    if not blob.startswith(MAGIC) or len(blob) < 32:
        return None
    ptr_size, flags = blob[14], blob[15]
    if flags & 0x02:
        try:
            n, pos = _read_uvarint(blob, 32)
            gov = blob[pos:pos + n]
            pos += n
            m, pos = _read_uvarint(blob, pos)
            mod = blob[pos:pos + m]
        except ValueError:
            return None
        if len(mod) != m or len(gov) != n:
            return None
        layout = "inline"
    else:
        if read_at is None or ptr_size not in (4, 8):
            return None
        endian = ">" if flags & 0x01 else "<"
        fmt = endian + ("Q" if ptr_size == 8 else "I")

        def read_string(addr: int) -> Optional[bytes]:
            hdr = read_at(addr, 2 * ptr_size)
            if hdr is None or len(hdr) < 2 * ptr_size:
                return None
            data_ptr = struct.unpack(fmt, hdr[:ptr_size])[0]
            length = struct.unpack(fmt, hdr[ptr_size:])[0]
            if length > MAX_STRING:
                return None
            return read_at(data_ptr, length) if length else b""

        a1 = struct.unpack(fmt, blob[16:16 + ptr_size])[0]
        a2 = struct.unpack(fmt, blob[16 + ptr_size:16 + 2 * ptr_size])[0]
        gov, mod = read_string(a1), read_string(a2)
        if gov is None:
            return None
        mod = mod or b""
        layout = "pointer"
    text = _strip_sentinels(mod).decode("utf-8", "replace")
    path, module, ver, settings = parse_modinfo(text)
    xs: List[Tuple[str, str]] = []
    for k, v in settings:
        if k == "-ldflags":
            xs.extend(x_assignments(v))
    return GoBuildInfo(gov.decode("utf-8", "replace"), path, module, ver, tuple(settings),
                       tuple(xs), layout)


def _read_exact_blob(fh: BinaryIO, offset: int) -> bytes:
    """The header and, for the inline layout, exactly its two strings."""
    fh.seek(offset)
    head = fh.read(32 + 10)
    if len(head) < 32 or not head[15] & 0x02:
        return head
    try:
        n, pos = _read_uvarint(head, 32)
    except ValueError:
        return head
    if n > MAX_STRING:
        return head
    fh.seek(offset)
    data = fh.read(pos + n + 10)
    try:
        m, pos2 = _read_uvarint(data, pos + n)
    except ValueError:
        return data
    if m > MAX_STRING:
        return data
    fh.seek(offset)
    return fh.read(pos2 + m)


def read_buildinfo_stream(fh: BinaryIO) -> Optional[GoBuildInfo]:
    """Build info of an ELF file object; None when it is not a Go binary (or not ELF)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(fh)
        start = size = None
        for sec in elf.iter_sections():
            if sec.name == ".go.buildinfo":
                start, size = sec["sh_offset"], sec["sh_size"]
                break
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        if start is None:
            for seg in loads:
                if seg["p_flags"] & 0x3 == 0x2:  # PF_W without PF_X
                    start, size = seg["p_offset"], seg["p_filesz"]
                    break
    except (ELFError, OSError, ValueError, struct.error):
        return None
    if start is None:
        return None

    def read_at(vaddr: int, n: int) -> Optional[bytes]:
        for seg in loads:
            lo = seg["p_vaddr"]
            if lo <= vaddr and vaddr + n <= lo + seg["p_filesz"]:
                fh.seek(seg["p_offset"] + vaddr - lo)
                return fh.read(n)
        return None

    fh.seek(start)
    region = fh.read(min(size or SEARCH_LIMIT, SEARCH_LIMIT))
    pos = 0
    while True:
        pos = region.find(MAGIC, pos)
        if pos < 0:
            return None
        if pos % 16 == 0:
            fh.seek(start + pos)
            return parse_blob(_read_exact_blob(fh, start + pos), read_at)
        pos += 1


def read_buildinfo(host: Host, path: str) -> Optional[GoBuildInfo]:
    """Build info of the binary at an inspected path; None if unreadable or not Go."""
    real = host.real_path(path)
    if real is None:
        return None
    try:
        with open(real, "rb") as fh:
            return read_buildinfo_stream(fh)
    except OSError:
        return None
