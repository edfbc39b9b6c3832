"""Ollama server logs of every era -> typed events -> verdict -> findings.

`parse_lines(lines)` reads a whole log; `LogParser` is the incremental form for live
following (`feed(line)` per line, `report()` at any time). Memory stays bounded however
long the log is: the verdict is kept as per-session state (the events that matter, a few
per kind), plus a bounded list of events and a bounded tail of lines.

What a line *means* is the signature table in probes.logsignatures; this module handles
the shapes lines come in (journald / docker / kubectl prefixes, ANSI colour, CRLF, lines
run together by journald or re-wrapped by a person, binary garbage) and turns the events
of the last server start into `library`, `gpu_used`, `gpu_count`, devices and findings.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
from typing import Any, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from probes import logsignatures as sig
from probes.facts import Finding, Fix

SIGNATURE_KINDS = dict(sig.KINDS)  # kind -> (group, meaning): for the TUI's highlights
EVIDENCE_WIDTH = 300  # characters of a line quoted as evidence

# -- the shapes of a line ----------------------------------------------------------------------
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PREFIXES = (
    # journald short / short-precise: "Nov 29 19:34:12 host ollama[1234]: " (month names may be
    # localised: "jan", "Mär", "janv.", "4月"). The host may have been cut out by the person who
    # pasted it ("Feb 06 14:10:03  ollama[29668]: "): a host never holds "[", an identifier never
    # holds "=" (so the slog line's "time=…:" is never taken for one).
    re.compile(r"^[^\W_]{2,5}\.? +[ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)? +(?:[^\s\[]+ +)?[^\s\[:=]+(?:\[\d+\])?: ?"),
    # journald short-iso(-precise): "2026-11-29T19:34:12+0000 host ollama[1234]: "
    re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)? \S+ [^\s\[:]+(?:\[\d+\])?: ?"),
    # kubectl logs --prefix: "[pod/ollama-0/ollama] "
    re.compile(r"^\[(?:pod|deployment|statefulset|daemonset|job)/[^\]]*\] ?"),
    # docker logs -t / kubectl --timestamps: "2026-11-29T19:34:12.123456789Z "
    re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) (?=\S)"),
    # Docker Desktop's log view: "2024-09-27 13:31:20 "
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[.,]\d+)? (?=\S)"),
    # docker compose: "ollama  | " / "ollama-1  | "
    re.compile(r"^[\w][\w.-]{0,62}\s*\| ?"),
    # a Markdown quote around a pasted log: "> "
    re.compile(r"^> ?"),
)
# Structured lines that need no prefix stripping start like one of these.
_BARE_STARTS = ("time=", "level=", "[GIN]", "load_backend", "ggml_", "llama_", "llm_", "  ", "\t")
_TRAILING_JOURNAL = re.compile(r"\s*[^\W\d_]{3,5}\.? [ \d]?\d \d\d:\d\d:\d\d \S+ [^\s\[:]+(?:\[\d+\])?:\s*$")
_RUN_TOGETHER = re.compile(r"(?<=.)(?=time=\d{4}-\d\d-\d\dT)")
_CONTINUATION = re.compile(r"^[ \t]+(?:\"[^\"]*\"|[\w.\-]+)=")

# An slog line. _SLOG_LENIENT also reads one whose "time=" (or "time=… level=") a person cut when
# pasting it; in both, a msg whose closing quote was lost runs to the end of the line.
_SLOG = re.compile(r'^time=\S+ level=(?P<level>[\w+-]+)(?: source=\S*)? msg=(?P<msg>"(?:[^"\\]|\\.)*(?:"|$)|\S*) ?(?P<rest>.*)$')
_SLOG_LENIENT = re.compile(r'^(?:time=\S+ )?(?:level=)?(?P<level>[\w+-]+)(?: source=\S*)? msg=(?P<msg>"(?:[^"\\]|\\.)*(?:"|$)|\S*) ?(?P<rest>.*)$')
# an slog line pasted with its start cut inside source=: "=gpu.go:94 msg=...", "source=gpu.go:94 msg=..."
_CUT_SLOG = re.compile(r'^(?:source)?=?[\w.\-]+\.go:\d+ msg=(?P<msg>"(?:[^"\\]|\\.)*(?:"|$)|\S*) ?(?P<rest>.*)$')
# an slog line pasted from its level on: "WARN source=gpu.go:222 msg=..."
_BARE_LEVEL = re.compile(r"^(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE) source=")
# an old Go-logger line whose date was cut: "gpu.go:294: INFO Unable to load ..."
_GOSRC = re.compile(r"^\s*[\w.\-]+\.go:\d+: (?:(?P<level>INFO|WARN|WARNING|ERROR|DEBUG) )?(?P<body>.*)$")
_GOLOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[\w.\-]+\.go:\d+: )?(?:(?P<level>INFO|WARN|WARNING|ERROR|DEBUG) )?(?P<body>.*)$")
_LLAMA_JSON_MSG = re.compile(r'"(?:message|msg)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_LLAMA_JSON_LEVEL = re.compile(r'"level"\s*:\s*"(\w+)"')
_UPSTREAM = re.compile(r"^\d+\.\d\d\.\d{3}\.\d{3} (?P<level>[IWEDT]) (?:[a-z]{2,4} +)?(?P<body>.*)$")
_ATTR = re.compile(r'("(?:[^"\\]|\\.)*"|[^\s="]+)=("(?:[^"\\]|\\.)*"|\S*)')
_ENV_MAP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(\[[^\]]*\]|\S*)")
_LEVELS = {"I": "INFO", "W": "WARN", "E": "ERROR", "D": "DEBUG", "T": "TRACE", "WARNING": "WARN",
           "DEBUG-4": "TRACE", "ERR": "ERROR"}
_MEMO_LIMIT = 20000


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        s = s[1:-1]
    elif s[:1] == '"' and '"' not in s[1:]:  # the closing quote was lost in a paste
        s = s[1:]
    else:
        return s
    if "\\" in s:
        s = s.replace('\\"', '"').replace("\\\\", "\\")
    return s


def parse_attrs(rest: str) -> Dict[str, str]:
    """The key=value pairs of a slog line after its msg (quoted keys and values unquoted)."""
    return {_unquote(k): _unquote(v) for k, v in _ATTR.findall(rest)}


def clean(raw: Union[str, bytes]) -> str:
    """One physical line as text: decoded, without CR/LF, ANSI colour or control bytes."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    line = raw.rstrip("\r\n")
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    if _CONTROL.search(line):
        line = _CONTROL.sub("", line.replace("\r", "").replace("\t", " "))
    return line


def strip_prefix(line: str) -> str:
    """Remove journald, docker, kubectl and timestamp prefixes (they may stack)."""
    if line.startswith(_BARE_STARTS):
        return line
    for _ in range(3):
        for rx in _PREFIXES:
            m = rx.match(line)
            if m is not None:
                line = line[m.end():]
                break
        else:
            return line
        if line.startswith(_BARE_STARTS):
            return line
    return line


def split_logical(line: str) -> List[str]:
    """A cleaned, prefix-free line split where journald ran two messages together."""
    if line.find("time=", 1) < 0:
        return [line]
    parts = _RUN_TOGETHER.split(line)
    if len(parts) == 1:
        return parts
    out = []
    for i, p in enumerate(parts):
        if i < len(parts) - 1:
            p = _TRAILING_JOURNAL.sub("", p)
        if p.strip():
            out.append(p)
    return out


# -- events ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Event:
    """One line that means something for GPU discovery: `kind` is a key of SIGNATURE_KINDS."""

    line: int
    kind: str
    level: Optional[str]
    text: str
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def evidence(self) -> str:
        text = self.text if len(self.text) <= EVIDENCE_WIDTH else self.text[:EVIDENCE_WIDTH - 1] + "…"
        return f"line {self.line}: {text}"


@dataclasses.dataclass(frozen=True)
class LogDevice:
    id: str
    name: Optional[str]
    library: Optional[str]
    compute: Optional[str]
    total: Optional[str]
    available: Optional[str] = None
    driver: Optional[str] = None
    pci_id: Optional[str] = None
    libdirs: Optional[str] = None
    line: int = dataclasses.field(default=0, metadata={"json": False})


@dataclasses.dataclass(frozen=True)
class LogReport:
    """The contract's `logs` object (plus a few additions: lines, sessions, summary, probed)."""

    source: str
    ollama_version: Optional[str]
    era: Optional[str]
    library: Optional[str]
    gpu_used: Optional[bool]
    gpu_count: Optional[int]
    devices: Tuple[LogDevice, ...]
    events: Tuple[Event, ...]
    findings: Tuple[Finding, ...]
    summary: str = ""
    lines: int = 0
    sessions: int = 0
    log_level: Optional[str] = None
    probed: Tuple[Tuple[str, ...], ...] = ()

    @property
    def errors(self) -> Tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


def group_of(kind: Optional[str]) -> Optional[str]:
    """The highlight group of an event kind: verdict, error, warning, discovery, runner, config, load."""
    return SIGNATURE_KINDS[kind][0] if kind in SIGNATURE_KINDS else None


def classify(line: str) -> Optional[str]:
    """The event kind of one raw log line (any era, any prefix), or None: for the TUI's log pane."""
    for piece in split_logical(strip_prefix(clean(line))):
        parsed = _parse_piece(piece, _CLASSIFY_MEMO)
        if parsed is not None:
            return parsed[0]
    return None


def _parse_piece(text: str, memo: Dict[str, Any]) -> Optional[Tuple[str, Optional[str], Dict[str, Any]]]:
    """(kind, level, fields) of one logical line, or None when it means nothing to discovery."""
    m = None
    if text.startswith(("time=", "level=")) or (text[:1].isupper() and _BARE_LEVEL.match(text)):
        m = _SLOG.match(text) or _SLOG_LENIENT.match(text)
        if m is None:
            return None
    elif ".go:" in text[:60] and " msg=" in text[:80]:
        m = _CUT_SLOG.match(text)  # an slog line pasted with its time/level (and part of source) cut
    if m is not None:
        msg = m.group("msg")
        hit = memo.get(msg, _MISS)
        if hit is _MISS:
            hit = sig.classify(_unquote(msg))
            if len(memo) > _MEMO_LIMIT:
                memo.clear()
            memo[msg] = hit
        if hit is None:
            # a message that means nothing may still carry an offload or crash status
            rest = m.group("rest")
            if "llm server error" not in rest:
                return None
            hit = ("runner-crash", {})
        level = m.groupdict().get("level")
        fields = dict(hit[1])
        fields.update(parse_attrs(m.group("rest")))
        return hit[0], _LEVELS.get(level, level), fields
    if text.startswith("[GIN]"):
        return None
    level = None
    body = text
    c = text[:1]
    if c.isdigit():
        m = _GOLOG.match(text)
        if m is not None:
            body = m.group("body")
            level = m.group("level")
        else:
            m = _UPSTREAM.match(text)
            if m is not None:
                body = m.group("body")
                level = m.group("level")
    elif ".go:" in text[:40] and _GOSRC.match(text) is not None:
        m = _GOSRC.match(text)
        body, level = m.group("body"), m.group("level")
    elif c == "{" and '"level"' in text:
        m = _LLAMA_JSON_MSG.search(text)
        if m is not None:
            body = _unquote('"' + m.group(1) + '"')
            lv = _LLAMA_JSON_LEVEL.search(text)
            level = lv.group(1) if lv else None
    hit = sig.classify_raw(body)
    if hit is None:
        return None
    fields = dict(hit[1])
    if body is not text and "=" in body:  # an old Go-logger line carries key=value pairs too
        fields.update(parse_attrs(body))
    elif "=" in body:
        cut = _CUT_MSG.match(body)  # a slog line quoted from inside msg="...": `message" key=value ...`
        if cut is not None:
            fields.update(parse_attrs(cut.group(1)))
    if level is None and hit[0] in sig.ERROR_KINDS:
        level = "ERROR" if hit[0] in ("panic", "ggml-assert", "cuda-error", "backend-load-failed",
                                      "cuda-init-failed") else None
    return hit[0], _LEVELS.get(level, level) if level else None, fields


_CUT_MSG = re.compile(r'[^"=]+" ([A-Za-z_][\w.]*=.*)$')
_MISS = object()
_CLASSIFY_MEMO: Dict[str, Any] = {}  # classify()'s own memo (bounded like a parser's)


# -- per-session state -------------------------------------------------------------------------
class _Session:
    """What one server start said, kept small: a few events per kind and some counters."""

    KEEP_FIRST = 6  # events kept per kind from the start of the session; the last is kept too

    def __init__(self, start_line: int) -> None:
        self.start_line = start_line
        self.first: Dict[str, List[Event]] = {}
        self.last: Dict[str, Event] = {}
        self.count: Dict[str, int] = collections.Counter()
        self.devices: "collections.OrderedDict[str, LogDevice]" = collections.OrderedDict()
        self.ic_cpu: Optional[Event] = None
        self.ggml_devices: "collections.OrderedDict[str, Event]" = collections.OrderedDict()
        self.probed: List[Tuple[str, ...]] = []
        self.env: Dict[str, str] = {}
        self.version: Optional[str] = None
        self.levels: set = set()
        self.docker = False
        self.discovery_seen = False

    def add(self, ev: Event) -> None:
        kind = ev.kind
        n = self.count[kind]
        self.count[kind] = n + 1
        if n < self.KEEP_FIRST:
            self.first.setdefault(kind, []).append(ev)
        self.last[kind] = ev
        if ev.level:
            self.levels.add(ev.level)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, ev)

    def has(self, *kinds: str) -> bool:
        return any(self.count.get(k) for k in kinds)

    def all(self, *kinds: str) -> List[Event]:
        out: List[Event] = []
        for k in kinds:
            evs = list(self.first.get(k, ()))
            last = self.last.get(k)
            if last is not None and (not evs or evs[-1] is not last):
                evs.append(last)
            out.extend(evs)
        return sorted(out, key=lambda e: e.line)


def _h_discovery_start(s: _Session, ev: Event) -> None:
    # a new discovery pass replaces the previous verdict (Era C/D log it once per start)
    s.devices.clear()
    s.ic_cpu = None
    s.discovery_seen = True


def _h_inference_compute(s: _Session, ev: Event) -> None:
    lib = (ev.get("library") or "").lower()
    if lib in sig.GPU_LIBRARIES:
        dev_id = str(ev.get("id") or len(s.devices))
        name = ev.get("description") or ev.get("name") or None
        s.devices[dev_id + "/" + lib] = LogDevice(
            id=dev_id, name=name, library=lib, compute=ev.get("compute") or None,
            total=ev.get("total") or None, available=ev.get("available") or None,
            driver=ev.get("driver") or None, pci_id=ev.get("pci_id") or None,
            libdirs=ev.get("libdirs") or None, line=ev.line)
    elif lib:
        s.ic_cpu = ev


def _h_version(s: _Session, ev: Event) -> None:
    # "Listening on … (version X)" is the server's own word; `ollama -v` output only fills a gap
    s.version = ev.get("version") or s.version or ev.get("cli_version")


def _h_config(s: _Session, ev: Event) -> None:
    env = ev.get("env") or ev.text
    body = env.split("map[", 1)[-1].rstrip().rstrip('"')
    if body.endswith("]"):
        body = body[:-1]  # the map's own closing bracket
    s.env = {k: v for k, v in _ENV_MAP.findall(body)}


def _h_bootstrap(s: _Session, ev: Event) -> None:
    paths = ev.get("OLLAMA_LIBRARY_PATH") or ev.get("libDirs") or ""
    dirs = tuple(p for p in paths.strip("[]").split() if p)
    if dirs and len(s.probed) < 64:
        s.probed.append(dirs)


def _h_cuda_device(s: _Session, ev: Event) -> None:
    key = ev.get("id") or ev.get("index") or str(len(s.ggml_devices))
    s.ggml_devices[key] = ev


_HANDLERS = {
    "discovery-start": _h_discovery_start,
    "inference-compute": _h_inference_compute,
    "version": _h_version,
    "server-config": _h_config,
    "bootstrap": _h_bootstrap,
    "cuda-device": _h_cuda_device,
}


# -- the incremental parser ------------------------------------------------------------------
# Printed by the loader or the runtime when a process starts, i.e. just before "server config".
_PREAMBLE_KINDS = frozenset(("preload-error", "device-node-error", "container-error", "install-no-gpu"))
_PREAMBLE_LINES = 50


class LogParser:
    """Feed lines one by one; ask for the report at any time. Memory is bounded.

    A structured line is held until the next line arrives, because a person may have
    re-wrapped it over several indented lines (they are joined back); `flush()` releases it.
    """

    def __init__(self, source: str = "", max_events: int = 2000, tail: int = 200) -> None:
        self.source = source
        self.lines = 0
        self.events: Deque[Event] = collections.deque(maxlen=max_events)
        self.tail: Deque[Tuple[int, str]] = collections.deque(maxlen=tail)
        self.sessions = 0
        self._session = _Session(1)
        self._pending: Optional[Tuple[int, str]] = None
        self._memo: Dict[str, Any] = {}
        self._docker = False
        self._preamble: Deque[Event] = collections.deque(maxlen=8)

    # feeding
    def feed(self, raw: Union[str, bytes]) -> List[Event]:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        raw = raw.rstrip("\r\n")
        message = journal_json_message(raw)
        if message is not None:  # `journalctl -o json`: the log line is the entry's MESSAGE
            raw = message.rstrip("\r\n")
        if "\n" in raw or "\r" in raw:  # several lines handed over as one string (or CR endings)
            out = []
            for part in re.split(r"\r\n|\n|\r", raw):
                out.extend(self.feed(part))
            return out
        line = clean(raw)
        self.lines += 1
        n = self.lines
        if not line.strip():
            return self.flush()
        if not self._docker and not line.startswith(("time=", "level=", "[GIN]")) and (
                "| " in line[:72] or line.startswith("[pod/")):
            self._docker = bool(re.match(r"^(?:[\w][\w.-]{0,62}\s*\| |\[pod/)", line))
        out: List[Event] = []
        for piece in split_logical(strip_prefix(line)):
            if self._pending is not None and _CONTINUATION.match(piece):
                self._pending = (self._pending[0], self._pending[1] + " " + piece.strip())
                continue
            if self._pending is not None and 'env="map[' in self._pending[1] and \
                    _wrapped_inside_quotes(self._pending[1], piece):
                # a terminal or the paste wrapped a long line (the server config) at a fixed width,
                # mid-word: the quoted value is still open, so this line is its continuation
                self._pending = (self._pending[0], self._pending[1] + piece)
                continue
            out.extend(self.flush())
            self.tail.append((n, piece))
            if piece.startswith(("time=", "level=")) or piece[:1].isdigit():
                self._pending = (n, piece)
            else:
                self._emit(n, piece, out)
        return out

    def flush(self) -> List[Event]:
        out: List[Event] = []
        if self._pending is not None:
            n, text = self._pending
            self._pending = None
            self._emit(n, text, out)
        return out

    def _emit(self, n: int, text: str, out: List[Event]) -> None:
        parsed = _parse_piece(text, self._memo)
        if parsed is None:
            return
        kind, level, fields = parsed
        ev = Event(n, kind, level, text, fields)
        if kind == "server-config" or (kind == "version" and "addr" in fields and (
                self._session.version is not None or self._session.discovery_seen)):
            self._new_session(n)
        self._session.add(ev)
        self.events.append(ev)
        if kind in _PREAMBLE_KINDS:
            self._preamble.append(ev)
        out.append(ev)

    def _new_session(self, n: int) -> None:
        if set(self._session.count) - _PREAMBLE_KINDS:  # a session with more than a preamble
            self.sessions += 1
            self._session = _Session(n)
            # what the loader or the container said just before the server's first line belongs to it
            for ev in self._preamble:
                if ev.line >= n - _PREAMBLE_LINES:
                    self._session.add(ev)

    # reading
    def report(self) -> LogReport:
        self.flush()
        s = self._session
        s.docker = self._docker
        return _analyse(s, self.source, tuple(self.events), self.lines, self.sessions + (1 if s.count else 0))


_UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')
_WRAP_LIMIT = 16384  # characters a wrapped line may grow to
_GO_DATE = re.compile(r"^\d{4}/\d\d/\d\d ")


def _wrapped_inside_quotes(pending: str, piece: str) -> bool:
    """True when `piece` continues `pending`, an slog line whose quoted value was cut by a wrap."""
    # only the environment map of "server config" (the longest line of every log) is joined this
    # way: a lost closing quote elsewhere must not swallow the lines that follow
    if 'env="map[' not in pending:
        return False
    if piece.startswith(("time=", "level=", "[GIN]")) or _GO_DATE.match(piece) or len(pending) > _WRAP_LIMIT:
        return False
    return len(_UNESCAPED_QUOTE.findall(pending)) % 2 == 1


def journal_json_message(raw: str) -> Optional[str]:
    """The MESSAGE of a `journalctl -o json` line (one JSON object per entry), else None.
    journald writes a message that is not valid UTF-8 as an array of byte values."""
    text = raw.lstrip()
    if not text.startswith("{") or '"MESSAGE"' not in text:
        return None
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    msg = entry.get("MESSAGE") if isinstance(entry, dict) else None
    if isinstance(msg, list):
        try:
            return bytes(msg).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return None
    return msg if isinstance(msg, str) else None


def parse_lines(lines: Iterable[Union[str, bytes]], source: str = "") -> LogReport:
    """Parse a whole log (an iterable of lines, str or bytes) into the contract's `logs` report."""
    p = LogParser(source, max_events=5000)
    for line in lines:
        p.feed(line)
    return p.report()


def parse_text(text: Union[str, bytes], source: str = "") -> LogReport:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return parse_lines(re.split(r"\r\n|\n|\r(?!\n)", text), source)


MAX_LINE_BYTES = 1 << 20  # a longer "line" (binary garbage, /dev/zero) is cut, never held whole


def bounded_lines(fh: Any, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each at most `limit` bytes: the rest of an overlong line
    is skipped, so memory stays bounded whatever the input."""
    while True:
        chunk = fh.readline(limit)
        if not chunk:
            return
        yield chunk
        while len(chunk) == limit and not chunk.endswith(b"\n"):  # skip the rest of it
            chunk = fh.readline(limit)


# A rotated log is often compressed (logrotate's ollama.log.2.gz): read it as it was.
COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "lzma"), (b"BZh", "bz2"))


def compression(path: str) -> Optional[str]:
    """The stdlib module that decompresses the file (by its magic bytes), or None."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    return next((module for prefix, module in COMPRESSED if magic.startswith(prefix)), None)


def read_log_lines(path: str) -> List[str]:
    """A log file's lines as text: decompressed, each line bounded, a journald JSON export's
    MESSAGE taken out. OSError for a device (/dev/zero never ends) or a damaged archive."""
    import lzma
    import stat as stat_mod
    mode = os.stat(path).st_mode
    if stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
        raise OSError(f"{path}: a device, not a log file")
    module = compression(path) if stat_mod.S_ISREG(mode) else None
    out: List[str] = []
    with (__import__(module).open(path, "rb") if module else open(path, "rb")) as fh:
        try:
            for raw in bounded_lines(fh):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                message = journal_json_message(line)
                out.append(line if message is None else message)
        except (EOFError, OSError, ValueError, lzma.LZMAError) as exc:
            if module is None:
                raise
            raise OSError(f"damaged {module} file: {exc}")
    return out


def parse_file(path: str, source: Optional[str] = None) -> LogReport:
    module = compression(path)
    if module is None:
        with open(path, "rb") as fh:
            return parse_lines(bounded_lines(fh), source if source is not None else path)
    import lzma
    with __import__(module).open(path, "rb") as fh:
        try:
            return parse_lines(bounded_lines(fh), source if source is not None else path)
        except (EOFError, OSError, ValueError, lzma.LZMAError) as exc:
            raise OSError(f"damaged {module} file: {exc}")


# -- the verdict -------------------------------------------------------------------------------
_RUNNER_VARIANT = re.compile(r"/runners/(?P<v>[\w.\-]+)/|/(?P<w>cuda[\w.\-]*|rocm[\w.\-]*|cpu[\w.\-]*)/libext_server")
_GPU_LAYERS = re.compile(r"--n-gpu-layers (\d+)")


def _lib_of_variant(name: str) -> str:
    name = name.lower()
    for lib in ("cuda", "rocm", "vulkan", "metal", "oneapi"):
        if name.startswith(lib):
            return lib
    return "cpu" if name.startswith("cpu") else name


def _runner_library(s: _Session) -> Optional[Tuple[str, Event]]:
    """The library the model runner evidently used (old eras name it in the runner path)."""
    best = None
    for ev in s.all("runner-start"):
        text = ev.get("lib") or ev.get("cmd") or ev.text
        m = _RUNNER_VARIANT.search(text)
        if m:
            best = (_lib_of_variant(m.group("v") or m.group("w")), ev)
    return best


def _offload(s: _Session) -> Tuple[Optional[str], Optional[int], Optional[Event]]:
    """(library, layers offloaded, event) of the last offload decision."""
    lib = None
    layers = None
    last = None
    for ev in s.all("offload", "offloaded", "runner-start"):
        if ev.kind == "offload":
            req = ev.get("request")
            if req is not None:  # the new engine's load request: GPULayers:37[...] or GPULayers:[]
                m = re.search(r"GPULayers:(\d+|\[\])", req)
                if m:
                    layers = int(m.group(1)) if m.group(1).isdigit() else 0
                    last = ev
                continue
            lib = (ev.get("library") or lib or "").lower() or None
            val = ev.get("layers.offload", ev.get("gpu_layers"))
            if val is not None and str(val).lstrip("-").isdigit():
                layers = int(val)
                last = ev
        elif ev.kind == "offloaded":
            layers = int(ev.get("offloaded"))
            last = ev
        else:
            m = _GPU_LAYERS.search(ev.get("cmd") or ev.text)
            if m and layers is None:
                layers = int(m.group(1))
                last = ev
    return lib, layers, last


def _compute_low(value: Optional[str]) -> bool:
    try:
        return value is not None and float(value) < 5.0
    except ValueError:
        return False


class _Ctx:
    """The facts the rules share, computed once per report."""

    def __init__(self, s: _Session) -> None:
        self.s = s
        self.version = s.version or _version_from_paths(s)
        self.era = sig.era_of(self.version) or _guess_era(s)
        self.devices = list(s.devices.values())
        self.library: Optional[str] = None
        self.gpu_count: Optional[int] = None
        self.found: Optional[bool] = None
        ic_gpu = self.devices
        if ic_gpu:
            self.library = ic_gpu[0].library
            self.gpu_count = len({d.id for d in ic_gpu})
            self.found = True
        elif s.ic_cpu is not None or s.has("no-gpus"):
            self.library = "cpu"
            self.gpu_count = 0
            self.found = False
        elif s.has("initial-count") and _int(s.last["initial-count"].get(
                "initial_count", s.last["initial-count"].get("count"))) == 0:
            self.gpu_count = 0
            self.found = False
        elif s.has("cuda-init"):
            n = _int(s.last["cuda-init"].get("count")) or 0
            self.gpu_count = n
            self.found = n > 0
            self.library = s.last["cuda-init"].get("backend", "CUDA").lower() if n else None
        elif s.has("gpus-detected"):
            n = _int(s.last["gpus-detected"].get("count"))
            self.gpu_count = n
            self.found = bool(n)
        elif s.has("llama-server-devices"):
            self.found = True
        if self.gpu_count is None and s.ggml_devices:
            self.gpu_count = len(s.ggml_devices)
        if not self.devices and s.ggml_devices:
            self.devices = [LogDevice(id=e.get("id") or e.get("index"), name=e.get("name"),
                                      library="cuda", compute=e.get("compute"),
                                      total=(e.get("vram") + " MiB") if e.get("vram") else None, line=e.line)
                            for e in s.ggml_devices.values()]
        self.runner = _runner_library(s)
        self.offload_lib, self.offload_layers, self.offload_ev = _offload(s)
        if self.library is None:
            if s.has("num-gpu-zero", "cpu-only-runner"):
                self.library = "cpu"
            elif self.offload_lib:
                self.library = self.offload_lib if self.offload_lib != "cpu" else "cpu"
            elif self.runner is not None:
                self.library = self.runner[0]
        self.gpu_evidence_line = max([d.line for d in self.devices] +
                                     [e.line for e in s.all("cuda-init", "gpus-detected", "offloaded")] + [0])
        # what ended GPU use after the last sign of it: a crash, or the runner's own CUDA init failing
        self.crash = [e for e in s.all("runner-crash", "cuda-error", "ggml-assert", "panic",
                                       "backend-device-init-failed", "out-of-memory", "cuda-init-failed",
                                       "runner-exec-failed")
                      if e.line >= self.gpu_evidence_line and not _runner_came_up_after(s, e)]
        if self.library == "cpu" and self.gpu_count is None and not self.found:
            self.gpu_count = 0
        # a model runner whose loaded backends have no CUDA group runs on the CPU (v0.6–v0.29)
        self.runner_without_cuda = [e for e in s.all("ggml-system") if self.found and self.library == "cuda"
                                    and e.line > self.gpu_evidence_line and "CUDA." not in e.text]
        self.gpu_used = self._gpu_used()

    def _gpu_used(self) -> Optional[bool]:
        s = self.s
        if self.library == "cpu" or self.found is False:
            return False
        if s.has("cpu-no-avx", "num-gpu-zero", "cpu-only-runner", "gpu-too-old", "compute-unsupported"):
            return False
        if any(_compute_low(e.get("compute")) for e in s.ggml_devices.values()):
            return False
        if self.runner is not None and self.runner[0] == "cpu":
            return False
        if self.found is not False and self.runners_without_gpu():
            return False
        if self.offload_layers == 0 or self.runner_without_cuda:
            return False
        if any(t in e.text for e in s.all("vram-insufficient") for t in sig.CPU_FALLBACK_TEXTS):
            return False
        if self.crash:
            return False
        gpus = [d for d in self.devices if d.library in sig.GPU_LIBRARIES]
        if gpus and all(_zero_size(d.total) for d in gpus):
            return False  # every GPU reports no memory: no layer can be placed on it
        if self.found or (self.offload_layers or 0) > 0 or (self.runner and self.runner[0] != "cpu"):
            return True
        if self.library in sig.GPU_LIBRARIES:
            return True
        if s.has(*_FAILURE_KINDS):
            return False
        return None

    def runners_without_gpu(self) -> Optional[Event]:
        """The runner list, when it names no GPU runner at all (a CPU-only install)."""
        ev = self.s.last.get("runners-list")
        if ev is None:
            return None
        names = (ev.get("runners") or ev.get("inline") or "").strip("[]").split()
        if names and not any(_lib_of_variant(n) != "cpu" for n in names):
            return ev
        return None


_FAILURE_KINDS = ("preload-error", "device-node-error", "container-error", "install-no-gpu", "driver-lib-error", "cuda-error-code", "dlsym-error", "driver-mismatch", "no-nvidia-devices",
                  "cuda-unknown-error", "gpu-memory-error", "discovery-failure", "device-filtered",
                  "cuda-init-failed", "backend-load-failed", "discovery-watchdog", "driver-too-old",
                  "llama-server-missing", "compute-unsupported", "gpu-too-old", "runner-crash",
                  "zero-memory-device", "cpu-no-avx", "nvidia-smi-failed", "backend-device-init-failed",
                  "runner-exec-failed")


_ASSETS_VERSION = re.compile(r"/\.ollama/assets/(\d+\.\d+\.\d+[\w.\-]*)/")


def _version_from_paths(s: _Session) -> Optional[str]:
    """0.1.2x extracted its runners to ~/.ollama/assets/VERSION/: the path names the version."""
    for ev in s.all("runner-start", "runners-list"):
        m = _ASSETS_VERSION.search(ev.text)
        if m:
            return m.group(1)
    return None


def _int(v: Any) -> Optional[int]:
    try:
        return int(str(v))
    except (TypeError, ValueError):
        return None


def _guess_era(s: _Session) -> Optional[str]:
    """The era the messages belong to when no version line is in the log (or None)."""
    candidates = None
    for kind, eras in sig.ERA_HINTS.items():
        if s.has(kind):
            candidates = set(eras) if candidates is None else (candidates & set(eras)) or candidates
    for ev in s.all("discovery-start"):
        for text, eras in sig.START_ERAS.items():
            if text in ev.text:
                candidates = set(eras) if candidates is None else (candidates & set(eras)) or candidates
    texts = [e.text for k in s.first for e in s.first[k]]
    for needle, eras in sig.TEXT_ERA_HINTS:
        if any(needle in t for t in texts):
            candidates = set(eras) if candidates is None else (candidates & set(eras)) or candidates
    if s.has("inference-compute"):
        ev = s.all("inference-compute")[-1]
        if "filter_id" in ev.fields or "libdirs" in ev.fields:
            eras = {"C", "D"}
        elif "variant" in ev.fields:
            eras = {"A", "B"}
        else:
            eras = None
        if eras:
            candidates = eras if candidates is None else (candidates & eras) or candidates
    if not candidates:
        return None
    order = ["A0", "A", "B", "C", "D"]
    return sorted(candidates, key=order.index)[-1] if len(candidates) == 1 else "/".join(
        sorted(candidates, key=order.index))


# -- rules: one small function per diagnosis, in the order an expert would check ---------------
# Each returns None or (id, category, title, detail, evidence events, fix). The first rule of
# severity "error" that matches is the diagnosis (severity error unless the GPU was used);
# later matches are kept as warnings so that nothing the log shows is lost.
_Hit = Tuple[str, str, str, str, List[Event], Optional[Fix]]


def _fix_unset(name: str) -> Fix:
    return Fix("unset", {"name": name}, f"vgpu-tui fix unset {name}")


def _manual(hint: str, command: str = "") -> Fix:
    return Fix("manual", {"hint": hint}, command)


def _r_library_override(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    skipped = s.all("library-skipped", "llm-library-invalid")
    requested = s.env.get("OLLAMA_LLM_LIBRARY", "")
    if skipped:
        req = skipped[0].get("requested") or requested or "?"
        return ("log-llm-library-override", "wrong-library-override",
                f"OLLAMA_LLM_LIBRARY={req} made discovery skip the GPU library folders",
                "Since 0.12.4 only a library folder whose name equals OLLAMA_LLM_LIBRARY is probed; "
                "every other folder was skipped, so no GPU could be found.",
                skipped + s.all("server-config")[:1], _fix_unset("OLLAMA_LLM_LIBRARY"))
    if requested and c.gpu_used is False and (not c.found or s.has("compatible-libs")):
        return ("log-llm-library-override", "wrong-library-override",
                f"OLLAMA_LLM_LIBRARY={requested} is set and discovery found no GPU",
                "OLLAMA_LLM_LIBRARY restricts discovery to the folder of that exact name.",
                s.all("server-config")[:1] + s.all("inference-compute")[-1:], _fix_unset("OLLAMA_LLM_LIBRARY"))
    return None


def _r_visible_devices(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    if c.found:
        return None
    value = s.env.get("CUDA_VISIBLE_DEVICES", "")
    evs = [e for e in s.all("visible-devices-override") if _hides(e.get("CUDA_VISIBLE_DEVICES", ""))]
    if _hides(value) or evs:
        shown = value or (evs[0].get("CUDA_VISIBLE_DEVICES") if evs else "")
        return ("log-visible-devices", "visible-devices-env",
                f"CUDA_VISIBLE_DEVICES={shown} hides the GPU from Ollama" if shown else
                "a *_VISIBLE_DEVICES variable restricts which GPUs Ollama may see",
                "The CUDA driver (or the shim) only reports the devices this variable lets through.",
                evs + s.all("server-config")[:1], _fix_unset("CUDA_VISIBLE_DEVICES"))
    return None


def _hides(value: str) -> bool:
    """A CUDA_VISIBLE_DEVICES value that lets no device through (-1, none, NoDevFiles, …)."""
    v = (value or "").strip().strip('"').lower()
    return bool(v) and (v.startswith("-") or v in ("none", "void", "nodevfiles", "no"))


def _r_preload(c: _Ctx) -> Optional[_Hit]:
    evs = c.s.all("preload-error")
    if not evs or c.gpu_used is True:
        return None
    return ("log-preload-broken", "preload-broken", f"{evs[0].get('path', 'a library')} cannot be preloaded",
            "The dynamic loader could not preload a library named in LD_PRELOAD or /etc/ld.so.preload; a shim "
            "that is injected this way is then absent.", evs,
            _manual("fix or remove the entry in /etc/ld.so.preload or LD_PRELOAD", "vgpu-tui resolve /usr/local/bin/ollama"))


def _r_device_nodes(c: _Ctx) -> Optional[_Hit]:
    evs = c.s.all("device-node-error")
    if not evs or c.found:
        return None
    return ("log-device-nodes", "device-nodes-missing", "an NVIDIA device node is missing or not accessible",
            "The driver library needs /dev/nvidiactl, /dev/nvidia0 and /dev/nvidia-uvm, readable and writable by the "
            "user Ollama runs as.", evs, _manual("create the nodes (nvidia-modprobe -u -c=0) and check their group",
                                                 "vgpu-tui device"))


def _r_lib_dir(c: _Ctx) -> Optional[_Hit]:
    """Era C/D: the probed folder is not a lib/ollama (the binary has no ../lib/ollama next to it)."""
    s = c.s
    if c.found or not s.probed:
        return None
    if any("lib/ollama" in d[0] for d in s.probed):
        return None
    return ("log-lib-dir-not-found", "lib-dir-not-found",
            f"Ollama's library folder is {s.probed[0][0]}, not a lib/ollama folder",
            "Ollama looks for ../lib/ollama next to the resolved binary; when it is missing it uses the binary's own "
            "folder, where no backend is found. Point ExecStart at the binary next to the intended lib/ollama.",
            s.all("bootstrap")[:2], _manual("install lib/ollama next to the running binary", "vgpu-tui tree"))


def _r_cpu_avx(c: _Ctx) -> Optional[_Hit]:
    evs = c.s.all("cpu-no-avx")
    if evs:
        return ("log-cpu-lacks-avx", "cpu-lacks-avx", "the (virtual) CPU lacks AVX, so Ollama disabled GPU support",
                "Ollama of this era only ships AVX-built GPU runners; expose AVX/AVX2 to the VM's CPU "
                "(CPU model host-passthrough) or upgrade Ollama.",
                evs + c.s.all("gpu-detected"), _manual("expose AVX/AVX2 to the VM (CPU model host-passthrough)"))
    return None


_REAL_DRIVER_NAME = re.compile(r"libcuda\.so\.\d{3}\.\d+")


def _r_symbols(c: _Ctx) -> Optional[_Hit]:
    """A missing driver symbol: an old real driver, or an incomplete shim."""
    s = c.s
    evs = [e for e in s.all("dlsym-error", "driver-lib-error", "backend-load-failed", "nvml-error")
           if "symbol lookup for" in e.text or "undefined symbol" in e.text or "required symbols" in e.text]
    evs += s.all("driver-too-old")
    if not evs:
        cif = [e for e in s.all("cuda-init-failed", "driver-lib-error")
               if "insufficient" in e.text or "driver is too old" in e.text]
        if cif:
            return ("log-driver-too-old", "driver-too-old",
                    "the CUDA driver (or shim) reports a version below what the CUDA runtime needs",
                    "cudaGetDeviceCount said the driver is insufficient for the runtime: the driver API version "
                    "(cuDriverGetVersion) must be at least the runtime's major version.",
                    cif, _manual("update the driver, or make the shim report a CUDA version >= the runtime's"))
        return None
    m = re.search(r"symbol lookup for (\w+)|undefined symbol: (\w+)", " ".join(e.text for e in evs))
    symbol = (m.group(1) or m.group(2)) if m else None
    real = any(_REAL_DRIVER_NAME.search(e.text) for e in evs) or s.has("driver-too-old")
    if real:
        return ("log-driver-too-old", "driver-too-old",
                f"the NVIDIA driver is too old{': its libcuda lacks ' + symbol if symbol else ''}",
                "The driver library exports an older CUDA driver API than this Ollama needs "
                "(cuCtxCreate_v3 needs a CUDA 12 era driver).",
                evs, _manual("upgrade the NVIDIA driver"))
    return ("log-shim-missing-symbol", "shim-incomplete",
            f"the driver library lacks {symbol or 'a required symbol'}",
            "A libcuda/libnvidia-ml that lacks an export Ollama needs fails to load; for a shim, add the export.",
            evs, _manual("add the missing exports to the shim", "vgpu-tui exports /path/to/libcuda.so.1 --against libcuda"))


def _r_driver_lib_missing(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = [e for e in s.all("backend-load-failed", "driver-lib-error", "dlsym-error", "runner-exec-failed")
           if re.search(r"libcuda\.so|libnvidia-ml\.so", e.text) and re.search(
               r"cannot open shared object|No such file|not found", e.text)]
    if not evs and not c.found:
        disc = [e for e in s.all("libs-discovered") if (e.get("paths") or e.get("inline") or "").strip("[] ") == ""]
        if disc and s.has("no-gpus"):
            evs = disc
    if evs:
        return ("log-driver-lib-not-found", "driver-lib-not-found",
                "libcuda.so.1 could not be found or opened",
                "The loader found no usable libcuda.so.1 on the paths Ollama searched.",
                evs + s.all("no-gpus")[:1], _manual("register the driver library (ldconfig) or link it into lib/ollama",
                                                   "vgpu-tui resolve /usr/local/lib/ollama/cuda_v12/libggml-cuda.so"))
    return None


_INIT_ERROR = re.compile(sig.CUDA_INIT_ERROR)

# Printed when the model runner is up and working: a "llm server error" status polled before
# it (the server asks before the runner listens) was not a crash.
_RUNNER_UP_KINDS = ("ggml-system", "model-loaded", "backend-loaded", "cuda-init", "cuda-device", "offloaded")


def _runner_came_up_after(s: "_Session", ev: Event) -> bool:
    if ev.kind != "runner-crash" or "llm server error" not in ev.text or "terminated" in ev.text:
        return False
    return any(e.line > ev.line for e in s.all(*_RUNNER_UP_KINDS))


def _codes(events: Iterable[Event]) -> List[int]:
    out = []
    for e in events:
        for m in re.finditer(r"(?:failure|err|error|context|code)[:= ]+(-?\d+)\b", e.text):
            out.append(int(m.group(1)))
    return out


def _r_cuda_init(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    if c.found:
        # discovery ended with a GPU: a candidate library or another device failing is not why the
        # GPU went unused; only the runner's own CUDA initialisation failing afterwards is
        evs = [e for e in s.all("cuda-init-failed", "backend-device-init-failed", "cuda-error")
               if e.line > c.gpu_evidence_line and (e.kind != "cuda-error" or _INIT_ERROR.search(e.text))]
    else:
        kinds = ("cuda-error-code", "driver-mismatch", "no-nvidia-devices", "cuda-unknown-error",
                 "gpu-memory-error", "cuda-init-failed", "backend-device-init-failed")
        evs = s.all(*kinds)
        evs += [e for e in s.all("driver-lib-error") if re.search(r"init failure|failed to get device|device count", e.text)]
        # a CUDA error raised while the runner initialises CUDA (old eras print no discovery lines)
        evs += [e for e in s.all("cuda-error") if _INIT_ERROR.search(e.text)]
    zero = [e for e in s.all("cuda-init") if e.get("count") == "0"]
    evs += zero
    if c.found is False and s.has("backend-loaded") and not evs:
        loaded = [e for e in s.all("backend-loaded") if e.get("backend", "").upper() not in ("CPU",)]
        if loaded and not c.devices:
            evs = loaded
    if not evs:
        return None
    evs = sorted(set(evs), key=lambda e: e.line)
    codes = [k for k in _codes(evs) if k in sig.CUDA_CODES]
    meaning = "; ".join(f"{k}: {sig.CUDA_CODES[k]}" for k in dict.fromkeys(codes))
    return ("log-cuda-init-failed", "cuda-init-failed",
            "the driver library loads but CUDA initialisation or device enumeration fails",
            "cuInit / cudaGetDeviceCount or context creation failed" + (f" ({meaning})" if meaning else "") +
            ". Check the device nodes, nvidia_uvm, permissions of the ollama user, and the shim's connection.",
            evs, _manual("run the load probe as the ollama user", "vgpu-tui probe"))


def _r_compute(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = s.all("gpu-too-old", "compute-unsupported")
    evs += [e for e in s.ggml_devices.values() if _compute_low(e.get("compute"))]
    evs += [e for e in s.all("ggml-assert") if "arch" in e.text.lower() or "compiled" in e.text]
    evs += [e for e in s.all("cuda-error") if "no kernel image" in e.text]
    if not evs and s.has("device-filtered") and not c.found:
        evs = s.all("device-filtered", "verify-device")
    if not evs:
        return None
    return ("log-unsupported-compute", "unsupported-compute",
            "the GPU's compute capability is not supported by this Ollama build",
            "Ollama drops devices whose compute capability is below 5.0 or not in the backend's compiled "
            "architectures; a virtual GPU must report a supported capability.",
            sorted(set(evs), key=lambda e: e.line), _manual("use a GPU (or shim report) with a supported compute capability"))


def _r_container(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = s.all("container-error")
    if not evs or c.gpu_used is True:
        return None
    return ("log-container-runtime", "container-runtime", "the container runtime did not pass the GPU through",
            "nvidia-container-toolkit / the runtime failed to give the container the GPU or the driver libraries "
            "(NVML 'Unknown Error' inside a container usually means a cgroup/device-permission problem).",
            evs, _manual("check --gpus all / the NVIDIA container toolkit and its cgroup settings"))


def _r_no_device(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = s.all("install-no-gpu")
    if not evs or c.found:
        return None
    return ("log-no-device", "no-device", "no NVIDIA GPU is visible to this machine",
            "The installer looked for an NVIDIA device (lspci / nvidia-smi) and found none.", evs,
            _manual("check that the (virtual) GPU is attached to the VM", "vgpu-tui device"))


def _r_timeout(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = [e for e in s.all("discovery-failure") if re.search(r"timeout|deadline|timed out", e.text)]
    evs += s.all("discovery-watchdog")
    if not evs:
        return None
    return ("log-discovery-timeout", "discovery-timeout", "GPU discovery did not finish in time",
            "A discovery probe did not answer within its timeout: a slow or hanging cuInit in the driver or shim.",
            evs, _manual("find what hangs in cuInit (the shim, the driver, a GPU in a low-power state)", "vgpu-tui probe"))


def _r_crash(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = [e for e in s.all("discovery-failure") if not re.search(r"timeout|deadline|timed out", e.text)]
    evs += [e for e in s.all("runner-exited") if e.get("code") not in (None, "0")] if not c.found else []
    if c.found or c.library not in (None, "cpu"):
        evs += [e for e in c.crash if e.kind not in ("out-of-memory", "cuda-init-failed", "runner-exec-failed")
                and "out of memory" not in e.text and "no kernel image" not in e.text
                and not _INIT_ERROR.search(e.text)]
    if not evs:
        return None
    return ("log-runner-crash", "runner-crash", "the runner process crashed",
            "A runner died during discovery or model load" +
            (f": {evs[-1].get('error')}" if evs[-1].get("error") else "") + ".",
            sorted(set(evs), key=lambda e: e.line), _manual("reproduce the runner by hand and read its stderr", "vgpu-tui probe"))


def _r_vram(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    evs = s.all("vram-insufficient", "out-of-memory", "zero-memory-device")
    # 0.12+ lists a GPU whose driver (or shim) reports no memory as `inference compute …
    # library=CUDA … total="0 B"`: nothing can be placed on it
    evs += [e for e in s.all("inference-compute")
            if (e.get("library") or "").lower() in sig.GPU_LIBRARIES and _zero_size(e.get("total"))]
    # the scheduler planned for a GPU (discovery found one, or the plan names a GPU library) and
    # placed no layer on it
    planned_gpu = c.found or (c.found is None and (c.offload_lib or "") in sig.GPU_LIBRARIES)
    if planned_gpu and c.offload_layers == 0 and c.offload_ev is not None:
        evs.append(c.offload_ev)
    if not evs:
        return None
    return ("log-vram", "oom-or-vram", "the GPU was found but the model did not fit in its memory",
            "The scheduler offloaded no (or too few) layers: free VRAM is below what the model needs, or the "
            "device reports zero memory.", sorted(set(evs), key=lambda e: e.line),
            _manual("use a smaller model or context, or free VRAM"))


def _zero_size(text: Optional[str]) -> bool:
    """"0 B", "0 bytes", "0.0 GiB": a size Ollama printed as zero."""
    number = (text or "").strip().split(" ")[0]
    try:
        return bool(number) and float(number) == 0.0
    except ValueError:
        return False


def _r_driver_missing(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    if c.found or not s.has("nvidia-smi-failed"):
        return None
    return ("log-driver-missing", "driver-missing", "nvidia-smi failed: the NVIDIA driver is not installed or not working",
            "Ollama before 0.1.17 detected NVIDIA GPUs with nvidia-smi; without it GPU support is disabled.",
            s.all("nvidia-smi-failed"), _manual("install the NVIDIA driver", "vgpu-tui device"))


def _r_backend_missing(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    rl = c.runners_without_gpu()
    if rl is not None and c.found is not False:
        return ("log-no-gpu-runner", "backend-lib-missing", "this install carries no GPU runner",
                "The runner list has only CPU runners, so inference runs on the CPU whatever discovery finds.",
                [rl] + [d for d in s.all("inference-compute") if d.line in {x.line for x in c.devices}][:2],
                _manual("reinstall Ollama with its GPU libraries"))
    if c.runner_without_cuda:
        return ("log-runner-without-cuda", "backend-lib-missing", "the model runner loaded no CUDA backend",
                "Discovery found the GPU, but the runner that loaded the model lists no CUDA backend (its "
                "libggml-cuda.so did not load there), so the model runs on the CPU.",
                c.runner_without_cuda[:2] + [d for d in s.all("inference-compute")][:1],
                _manual("check the backend's dependencies in the runner's environment", "vgpu-tui probe"))
    evs = s.all("cpu-only-runner", "llama-server-missing")
    evs += [e for e in s.all("backend-load-failed", "runner-exec-failed")
            if not re.search(r"libcuda|libnvidia-ml", e.text)]
    if evs and not c.gpu_used:
        return ("log-backend-lib-missing", "backend-lib-missing", "the GPU backend could not be loaded",
                "A backend library, or one of its dependencies, is missing or not loadable.",
                evs, _manual("check the backend folder", "vgpu-tui tree"))
    if c.gpu_used is False and not c.found and c.era in ("C", "D", "C/D"):
        sub = [d for d in s.probed if len(d) > 1]
        seen_device = s.has("compute-unsupported", "cuda-device", "cuda-init", "llama-server-devices",
                            "device-filtered", "verify-device", "gpu-too-old", "cuda-init-failed")
        if sub and not seen_device:
            probe = [e for e in s.all("bootstrap") if len((e.get("OLLAMA_LIBRARY_PATH") or "").split()) > 1]
            loaded_cuda = any("cuda" in (e.get("backend") or "").lower() for e in s.all("backend-loaded"))
            if not loaded_cuda:
                return ("log-backend-not-loaded", "backend-lib-missing",
                        "a GPU library folder was probed, but its libggml-cuda.so never loaded",
                        "Ollama's ggml loader fails silently: libggml-cuda.so is missing, a dangling link, not an "
                        "ELF, or one of its dependencies (libcudart, libcublas, libcuda.so.1) does not resolve.",
                        probe[:3] + s.all("initial-count")[:1] + ([s.ic_cpu] if s.ic_cpu else []),
                        _manual("check the backend's dependencies", "vgpu-tui probe"))
    return None


def _r_not_scanned(c: _Ctx) -> Optional[_Hit]:
    s = c.s
    if c.found:
        return None
    if s.probed and all(len(d) == 1 for d in s.probed) and not s.has("library-skipped"):
        return ("log-no-backend-folder", "backend-lib-not-scanned",
                "discovery probed only the top of lib/ollama: no backend subfolder was found",
                "Ollama 0.12.4+ probes each folder matching lib/ollama/*/*ggml-*; none matched, so no CUDA "
                "backend was tried. Put libggml-cuda.so and its CUDA libraries in lib/ollama/cuda_v12 (or cuda_v13).",
                s.all("bootstrap")[:3] + s.all("initial-count")[:1] + ([s.ic_cpu] if s.ic_cpu else []),
                _manual("move the CUDA backend into lib/ollama/cuda_vNN/", "vgpu-tui tree"))
    comp = [e for e in s.all("compatible-libs") if (e.get("compatible") or "").strip("[] ") == ""]
    if comp:
        return ("log-no-compatible-libs", "backend-lib-not-scanned",
                "no CUDA library folder was handed to the model runner",
                "Ollama 0.5.8–0.11 only uses lib/ollama folders named cuda_v12/cuda_v13 (or cuda_*).",
                comp, _manual("use the stock folder names cuda_v12 / cuda_v13", "vgpu-tui tree"))
    return None


def _r_cpu_fallback(c: _Ctx) -> Optional[_Hit]:
    """CPU with nothing more specific in the log (an INFO-level log says no more)."""
    s = c.s
    if c.gpu_used is not False or c.found:
        return None
    if s.has("lib-dir-missing"):
        return ("log-lib-dir-missing", "lib-dir-not-found", "Ollama could not find its lib/ollama folder",
                "The GPU libraries are looked up next to the running binary.", s.all("lib-dir-missing"),
                _manual("install lib/ollama next to the binary", "vgpu-tui tree"))
    if c.era in ("C", "D", "C/D") and (s.ic_cpu is not None or s.has("initial-count")):
        return ("log-no-gpu-backend", "backend-lib-missing", "discovery found no GPU: no GPU backend loaded",
                "At this log level Ollama does not say why (its loader is silent); run with OLLAMA_DEBUG=1 to see "
                "which folders were probed, and use the load probe to see the dlopen error.",
                s.all("initial-count")[:1] + ([s.ic_cpu] if s.ic_cpu else []),
                _manual("set OLLAMA_DEBUG=1 and relaunch", "vgpu-tui probe"))
    if s.has("no-gpus") and s.docker:
        return ("log-no-gpu-in-container", "container-runtime", "no GPU is visible inside the container",
                "Ollama runs in a container and found no GPU: the container was started without the GPU "
                "(--gpus all / the NVIDIA container toolkit) or without the driver libraries.",
                s.all("no-gpus")[:1], _manual("start the container with --gpus all (NVIDIA container toolkit)"))
    if s.has("no-gpus"):
        return ("log-no-gpu-found", "driver-lib-not-found", "discovery found no compatible GPU",
                "No driver library produced a usable GPU; at DEBUG level (OLLAMA_DEBUG=1) the log lists the "
                "libraries tried.", s.all("no-gpus")[:1], _manual("set OLLAMA_DEBUG=1 and relaunch", "vgpu-tui probe"))
    return None


# Notes: never the diagnosis, but worth showing.
def _n_context(c: _Ctx) -> List[_Hit]:
    s = c.s
    out: List[_Hit] = []
    paths = " ".join(e.text for e in s.all("libs-discovered", "driver-lib-error", "cuda-error-code"))
    if "/usr/lib/wsl/" in paths:
        out.append(("log-wsl-driver", "wsl", "the driver library comes from WSL (/usr/lib/wsl)",
                    "Under WSL2 the Windows driver's libcuda is mapped into /usr/lib/wsl; its version must match.",
                    s.all("libs-discovered")[:1], None))
    if s.docker and c.gpu_used is False and (c.s.has(*_FAILURE_KINDS) or c.found is False):
        out.append(("log-container", "container-runtime", "Ollama runs in a container",
                    "Check that the container runtime passes the GPU and driver libraries through "
                    "(--gpus all / nvidia-container-toolkit).", [], None))
    skipped32 = s.all("skip-32bit") + [e for e in s.all("driver-lib-error") if "wrong ELF class" in e.text]
    if skipped32:
        out.append(("log-32bit-driver-lib", "shim-incomplete", "a 32-bit driver library candidate was skipped",
                    "A 32-bit libcuda cannot be loaded by the 64-bit Ollama.", skipped32[:3], None))
    for e in s.all("runner-env"):
        # a user OLLAMA_LIBRARY_PATH is overwritten in place; Ollama's own is appended last
        keys = [k for k in e.fields if k.isupper()]
        if "OLLAMA_LIBRARY_PATH" in keys and "LD_LIBRARY_PATH" in keys and \
                keys.index("OLLAMA_LIBRARY_PATH") < keys.index("LD_LIBRARY_PATH"):
            out.append(("log-library-path-overridden", "wrong-library-override",
                        "OLLAMA_LIBRARY_PATH is set in the server's environment, but Ollama overrides it",
                        "The server replaces OLLAMA_LIBRARY_PATH for every runner, so a user value has no effect.",
                        [e], _fix_unset("OLLAMA_LIBRARY_PATH")))
            break
    cvd = s.env.get("CUDA_VISIBLE_DEVICES", "")
    if cvd and not _hides(cvd) and not c.found:
        out.append(("log-visible-devices-set", "visible-devices-env",
                    f"CUDA_VISIBLE_DEVICES={cvd} is set and no GPU was found",
                    "Check that the value names a device the driver (or shim) reports; unset it to let Ollama see all.",
                    s.all("server-config")[:1], _fix_unset("CUDA_VISIBLE_DEVICES")))
    if s.has("old-cuda-driver"):
        out.append(("log-old-cuda-driver", "driver-too-old", "Ollama reports an old CUDA driver",
                    "An older CUDA variant is used.", s.all("old-cuda-driver")[:1], None))
    if s.has("nvml-error"):
        out.append(("log-nvml", "driver-lib-not-found", "NVML could not be used; free memory comes from CUDA instead",
                    "", s.all("nvml-error")[:2], None))
    if c.library == "vulkan":
        out.append(("log-vulkan-instead", "backend-lib-missing", "Ollama uses Vulkan, not CUDA",
                    "CUDA discovery failed but the Vulkan folder works; set OLLAMA_VULKAN=0 to see the CUDA failure.",
                    [], None))
    return out


_RULES = (
    _r_no_device,
    _r_library_override,
    _r_visible_devices,
    _r_preload,
    _r_device_nodes,
    _r_cpu_avx,
    _r_symbols,
    _r_driver_lib_missing,
    _r_compute,
    _r_timeout,
    _r_container,
    _r_cuda_init,
    _r_vram,
    _r_crash,
    _r_driver_missing,
    _r_lib_dir,
    _r_backend_missing,
    _r_not_scanned,
)
_FALLBACK_RULES = (_r_cpu_fallback,)  # only when no rule above said anything


def _findings(c: _Ctx) -> List[Finding]:
    out: List[Finding] = []
    seen = set()
    primary_given = False
    for rule in _RULES:
        hit = rule(c)
        if hit is None or hit[0] in seen:
            continue
        seen.add(hit[0])
        severity = "warning"
        if not primary_given and c.gpu_used is not True:
            severity = "error"
            primary_given = True
        out.append(_finding(hit, severity))
    if not out:
        for rule in _FALLBACK_RULES:
            hit = rule(c)
            if hit is not None:
                seen.add(hit[0])
                out.append(_finding(hit, "error" if c.gpu_used is not True else "warning"))
                break
    for hit in _n_context(c):
        if hit[0] not in seen:
            seen.add(hit[0])
            out.append(_finding(hit, "warning" if c.gpu_used is False else "info"))
    return out


def _finding(hit: _Hit, severity: str) -> Finding:
    fid, cat, title, detail, evs, fix = hit
    uniq = sorted({e.line: e for e in evs if e is not None}.values(), key=lambda e: e.line)
    return Finding(fid, cat, severity, title, detail, tuple(e.evidence() for e in uniq[:8]), fix)


def _analyse(s: _Session, source: str, events: Tuple[Event, ...], lines: int, sessions: int) -> LogReport:
    c = _Ctx(s)
    findings = tuple(_findings(c))
    level = "TRACE" if "TRACE" in s.levels else "DEBUG" if "DEBUG" in s.levels else ("INFO" if s.levels else None)
    return LogReport(
        source=source, ollama_version=c.version, era=c.era if c.era and "/" not in c.era else None, library=c.library, gpu_used=c.gpu_used,
        gpu_count=c.gpu_count, devices=tuple(c.devices), events=events, findings=findings,
        summary=_summary(c, findings, lines, len(events)), lines=lines, sessions=sessions, log_level=level,
        probed=tuple(s.probed[:16]))


def _summary(c: _Ctx, findings: Tuple[Finding, ...], lines: int = 1, events: int = 1) -> str:
    if lines == 0:
        return "the log is empty"
    if events == 0 and not findings and c.gpu_used is None:  # garbage, or another program's log
        return f"no Ollama server message in {lines} line(s): is this an Ollama log?"
    if c.gpu_used is True:
        names = ", ".join(sorted({d.name for d in c.devices if d.name})) or c.library or "GPU"
        head = f"GPU used: {names} ({c.library})"
    elif c.gpu_used is False:
        head = f"GPU not used (library={c.library or 'unknown'})"
    else:
        head = "the log does not say whether the GPU is used"
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        head += f" — {errors[0].title}"
    return head
