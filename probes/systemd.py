"""systemd service units as systemd reads them: the unit, its drop-ins, its environment.

Everything is read through `probes.host.Host`. The rules modelled (systemd.unit(5),
systemd.exec(5), systemd.syntax(7)):

* the unit file is the first one found in the search folders, highest priority first
  (`/etc` before `/run` before `/usr/local/lib` before `/usr/lib`/`/lib`); a unit file or
  drop-in that is a symlink to /dev/null (or empty) masks;
* drop-ins `NAME.service.d/*.conf` (plus `service.d/` and, for names with dashes, the
  prefix folders `a-.service.d/`) from every folder are merged and applied in order of
  their *file name*; a name in a higher-priority folder hides the same name below;
* `Environment=` takes space-separated assignments, each word unquoted with double or
  single quotes and C escapes (`\\n`, `\\"`, `\\x41`, ...), then `%` specifiers are
  expanded (`%%` is a literal `%`); `$` has no meaning there. An empty `Environment=`
  resets the list. A syntax error drops the rest of that line (earlier words stay).
* `EnvironmentFile=` (a `-` prefix: ignore if missing) is read in order and overrides
  `Environment=`; `UnsetEnvironment=` removes names last;
* `ExecStart=` has prefixes (`@-:+!`), the same word quoting, and `$VAR`/`${VAR}` expansion.

The writer side (`format_environment`) produces an `Environment=` line that this parser
and systemd both read back to exactly the given values.
"""
from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from probes.host import Host

# Search folders for system units, highest priority first (systemd-analyze unit-paths).
UNIT_DIRS: Tuple[str, ...] = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)

# The PATH systemd gives a service that sets none (the split-/usr default).
DEFAULT_SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'", "s": " ",
}


class SyntaxErrorInValue(ValueError):
    """A value systemd would reject ("Invalid syntax, ignoring")."""


@dataclasses.dataclass(frozen=True)
class EnvAssignment:
    """One NAME=VALUE as systemd will set it, and where it was written."""

    name: str
    value: str
    source: str  # inspected path of the unit, drop-in or EnvironmentFile
    line: int
    directive: str = "Environment"  # or "EnvironmentFile"


@dataclasses.dataclass(frozen=True)
class EnvironmentFileRef:
    path: str
    optional: bool  # written with a leading '-'
    source: str
    line: int
    found: bool
    assignments: Tuple[EnvAssignment, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExecCommand:
    """One ExecStart= line: `path` is what is executed, `argv` what it is given."""

    raw: str
    path: str
    argv: Tuple[str, ...]
    prefixes: str
    source: str
    line: int
    # NAME=VALUE words given to an `env` wrapper (ExecStart=/usr/bin/env A=1 /usr/bin/ollama serve):
    # `path`/`argv` are then the command env execs, which is what /proc/PID/exe shows.
    wrapper_env: Tuple[Tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class ServiceUnit:
    """A unit as systemd would load it after merging its drop-ins."""

    name: str
    path: Optional[str]  # the unit file (inspected path), None when only drop-ins exist
    dropins: Tuple[str, ...]  # applied drop-ins, in the order systemd applies them
    masked: bool
    exec_start: Tuple[ExecCommand, ...]
    user: Optional[str]
    group: Optional[str]
    working_directory: Optional[str]
    environment: Tuple[EnvAssignment, ...]  # Environment= words after resets, in order
    environment_files: Tuple[EnvironmentFileRef, ...]
    unset: Tuple[str, ...]
    warnings: Tuple[str, ...] = ()

    @property
    def files(self) -> Tuple[str, ...]:
        return ((self.path,) if self.path else ()) + self.dropins

    def configured_assignments(self) -> Tuple[EnvAssignment, ...]:
        """Every assignment in the order systemd applies them (later ones win), then those an
        `env` wrapper in ExecStart= adds on top (it runs after systemd set the rest)."""
        out: List[EnvAssignment] = list(self.environment)
        for ref in self.environment_files:
            out.extend(ref.assignments)
        out = [a for a in out if a.name not in self.unset]
        for cmd in self.exec_start[:1]:
            out.extend(EnvAssignment(k, v, cmd.source, cmd.line, "ExecStart") for k, v in cmd.wrapper_env)
        return tuple(out)

    def configured_env(self) -> Dict[str, str]:
        """The variables the unit sets: Environment=, then EnvironmentFile=, minus unset."""
        env: Dict[str, str] = {}
        for a in self.configured_assignments():
            env[a.name] = a.value
        return env

    def env_sources(self) -> Dict[str, EnvAssignment]:
        """For each configured variable, the assignment that wins."""
        out: Dict[str, EnvAssignment] = {}
        for a in self.configured_assignments():
            out[a.name] = a
        return out


# -- words -------------------------------------------------------------------------------
def _cunescape_one(s: str, i: int) -> Tuple[str, int]:
    """Decode the escape starting after a backslash at s[i]; returns (text, next index)."""
    if i >= len(s):
        raise SyntaxErrorInValue("backslash at end of value")
    c = s[i]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 1
    if c == "x":
        h = s[i + 1:i + 3]
        if len(h) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in h) and h != "00":
            return chr(int(h, 16)), i + 3
        raise SyntaxErrorInValue("bad \\x escape")
    if c in "uU":
        n = 4 if c == "u" else 8
        h = s[i + 1:i + 1 + n]
        if len(h) == n and all(ch in "0123456789abcdefABCDEF" for ch in h) and int(h, 16) != 0:
            return chr(int(h, 16)), i + 1 + n
        raise SyntaxErrorInValue("bad \\u escape")
    if c in "01234567":
        o = s[i:i + 3]
        if len(o) == 3 and all(ch in "01234567" for ch in o) and int(o, 8) not in (0,) and int(o, 8) < 256:
            return chr(int(o, 8)), i + 3
        raise SyntaxErrorInValue("bad octal escape")
    raise SyntaxErrorInValue(f"unknown escape \\{c}")


def split_words(text: str) -> List[str]:
    """systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) applied to a line.

    Raises SyntaxErrorInValue at the first bad word; use `iter_words` to keep the words
    before it, as systemd does.
    """
    words, error = iter_words(text)
    if error:
        raise SyntaxErrorInValue(error)
    return words


def iter_words(text: str) -> Tuple[List[str], Optional[str]]:
    """(words, error): the words read before an error, and the error (None when clean)."""
    words: List[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\n\r":
            i += 1
        if i >= n:
            return words, None
        buf: List[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                try:
                    piece, i = _cunescape_one(text, i + 1)
                except SyntaxErrorInValue as exc:
                    return words, str(exc)
                buf.append(piece)
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    buf.append(c)
                i += 1
                continue
            if c in "'\"":
                quote = c
                i += 1
                continue
            if c in " \t\n\r":
                break
            buf.append(c)
            i += 1
        if quote:
            return words, "unterminated quote"
        words.append("".join(buf))


# -- specifiers ----------------------------------------------------------------------------
def _specifiers(unit_name: str) -> Dict[str, str]:
    base = unit_name.rsplit(".", 1)[0]
    prefix, _, instance = base.partition("@")
    return {
        "%": "%", "n": unit_name, "N": base, "p": prefix, "P": prefix, "i": instance, "I": instance,
        "f": "/" + (instance or prefix), "j": prefix.rsplit("-", 1)[-1], "J": prefix.rsplit("-", 1)[-1],
        # System manager: %u/%h/%g describe root, not User= (systemd.unit(5)).
        "u": "root", "U": "0", "g": "root", "G": "0", "h": "/root", "s": "/bin/sh",
        "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc",
        "T": "/tmp", "V": "/var/tmp", "y": "", "Y": "",
    }


def expand_specifiers(text: str, unit_name: str = "ollama.service") -> Tuple[str, Optional[str]]:
    """Expand `%x` as systemd would for this unit; (text, error) — error for an unknown one.

    Host-dependent specifiers (%H %m %b %v %a ...) are kept as written (with no error):
    their value is not knowable from the files alone.
    """
    table = _specifiers(unit_name)
    out: List[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(text):
            return text, "'%' at end of value (write %% for a literal %)"
        k = text[i + 1]
        if k in table:
            out.append(table[k])
        elif k in "HlqmMbBvaAowWdR":
            out.append("%" + k)
        else:
            return text, f"unknown specifier %{k} (write %% for a literal %)"
        i += 2
    return "".join(out), None


# -- Environment= ----------------------------------------------------------------------
def parse_environment_value(
    value: str, unit_name: str = "ollama.service"
) -> Tuple[List[Tuple[str, str]], List[str]]:
    """The assignments of one `Environment=` value, in order, and systemd's warnings.

    An empty value means "reset" and yields ([], []); callers handle the reset.
    """
    words, error = iter_words(value)
    warnings: List[str] = []
    out: List[Tuple[str, str]] = []
    for word in words:
        resolved, err = expand_specifiers(word, unit_name)
        if err:
            warnings.append(f"Failed to resolve specifiers in {word!r}, ignoring: {err}")
            continue
        name, eq, val = resolved.partition("=")
        if not eq or not _NAME_RE.match(name):
            warnings.append(f"Invalid environment assignment, ignoring: {resolved!r}")
            continue
        out.append((name, val))
    if error:
        warnings.append(f"Invalid syntax ({error}), ignoring the rest of: {value!r}")
    return out, warnings


def parse_environment_line(line: str, unit_name: str = "ollama.service") -> Dict[str, str]:
    """NAME -> VALUE of an `Environment=` line (or just its value); later names win."""
    text = line.strip()
    if text.startswith("Environment") and "=" in text:
        key, _, rest = text.partition("=")
        if key.strip() == "Environment":
            text = rest
    pairs, _ = parse_environment_value(text, unit_name)
    return dict(pairs)


def quote_assignment(name: str, value: str) -> str:
    """One assignment as a double-quoted systemd word: "NAME=VALUE".

    Inside the quotes `\\` and `"` are escaped, control characters become C escapes and
    `%` is doubled (specifier expansion runs after unquoting). `$` needs nothing:
    Environment= does no variable expansion, so `$HOME` stays the four characters
    `$HOME` (write the value itself, not a reference to another variable).
    """
    if not _NAME_RE.match(name or ""):
        raise ValueError(f"{name!r} is not a valid environment variable name for systemd")
    if "\x00" in value:
        raise ValueError(f"the value of {name} contains a NUL byte")
    out: List[str] = []
    for ch in name + "=" + value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "%":
            out.append("%%")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def format_environment(assignments: Mapping[str, str]) -> str:
    """An `Environment=` line setting every NAME=VALUE exactly (see quote_assignment)."""
    if not assignments:
        raise ValueError("no assignment to write (an empty Environment= would reset the list)")
    return "Environment=" + " ".join(quote_assignment(k, v) for k, v in assignments.items())


# -- EnvironmentFile= ------------------------------------------------------------------
def parse_env_file(text: str) -> Tuple[List[Tuple[str, str, int]], List[str]]:
    """systemd's env-file format: (name, value, line) in order, and warnings.

    KEY=VALUE lines; `#`/`;` comments; single quotes literal; double quotes with `\\`
    escaping `"\\\\`$` and line continuation; unquoted values with `\\` escaping the next
    character and trailing whitespace trimmed.
    """
    out: List[Tuple[str, str, int]] = []
    warnings: List[str] = []
    i, n, line = 0, len(text), 1
    while i < n:
        # key
        while i < n and text[i] in " \t\r\n":
            if text[i] == "\n":
                line += 1
            i += 1
        if i >= n:
            break
        start_line = line
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                i += 1
            continue
        k0 = i
        while i < n and text[i] not in "=\n":
            i += 1
        key = text[k0:i].strip()
        if i >= n or text[i] == "\n":
            warnings.append(f"line {start_line}: no '=' in {key!r}, ignored")
            continue
        i += 1  # '='
        # value
        buf: List[str] = []
        trailing_ws = 0
        while i < n and text[i] in " \t":
            i += 1
        while i < n and text[i] != "\n":
            c = text[i]
            if c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    j = n
                seg = text[i + 1:j]
                line += seg.count("\n")
                buf.append(seg)
                trailing_ws = 0
                i = j + 1
                continue
            if c == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        nxt = text[i + 1]
                        if nxt in '"\\`$':
                            buf.append(nxt)
                        elif nxt == "\n":
                            line += 1
                        else:
                            buf.append("\\" + nxt)
                        i += 2
                        continue
                    if text[i] == "\n":
                        line += 1
                    buf.append(text[i])
                    i += 1
                i += 1
                trailing_ws = 0
                continue
            if c == "\\" and i + 1 < n:
                if text[i + 1] == "\n":
                    line += 1
                else:
                    buf.append(text[i + 1])
                trailing_ws = 0
                i += 2
                continue
            buf.append(c)
            trailing_ws = trailing_ws + 1 if c in " \t" else 0
            i += 1
        value = "".join(buf)
        if trailing_ws:
            value = value[: len(value) - trailing_ws]
        if _NAME_RE.match(key):
            out.append((key, value, start_line))
        else:
            warnings.append(f"line {start_line}: invalid variable name {key!r}, ignored")
    return out, warnings


# -- unit files ------------------------------------------------------------------------
def _is_mask(host: Host, path: str) -> bool:
    target = host.readlink(path)
    if target == "/dev/null":
        return True
    st = host.stat(path)
    return st is not None and st.st_size == 0 and not host.isdir(path)


def find_unit_file(host: Host, name: str) -> Optional[str]:
    """The unit file systemd uses for `name` (inspected path), or None."""
    for folder in UNIT_DIRS:
        p = f"{folder}/{name}"
        if host.lstat(p) is not None:
            return p
    return None


def _dropin_folders(name: str) -> List[str]:
    """Drop-in folder names for a unit, least specific first (systemd.unit(5))."""
    stem, dot, suffix = name.rpartition(".")
    names = [f"{suffix}.d"]  # e.g. service.d: applies to every service
    parts = stem.split("-")
    for k in range(1, len(parts)):
        names.append("-".join(parts[:k]) + "-." + suffix + ".d")
    names.append(f"{name}.d")
    return names


def find_dropins(host: Host, name: str) -> List[str]:
    """Applied drop-ins in systemd's order: by file name; higher folders hide same names."""
    chosen: Dict[str, str] = {}
    for dname in _dropin_folders(name):
        for folder in UNIT_DIRS:
            d = f"{folder}/{dname}"
            if not host.isdir(d):
                continue
            for fname in host.listdir(d):
                if fname.endswith(".conf") and fname not in chosen:
                    chosen[fname] = f"{d}/{fname}"
    return [chosen[k] for k in sorted(chosen) if not _is_mask(host, chosen[k])]


def _logical_lines(text: str) -> Iterable[Tuple[int, str]]:
    """(line number, text) with backslash-newline continuations joined by a space."""
    pending: List[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not pending:
            start = no
            s = line.lstrip()
            if s.startswith("#") or s.startswith(";"):
                continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def parse_unit_text(text: str) -> List[Tuple[str, str, str, int]]:
    """(section, key, value, line) for every assignment of a unit file, in order."""
    out: List[Tuple[str, str, str, int]] = []
    section = ""
    for no, line in _logical_lines(text):
        s = line.strip()
        if not s:
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
            continue
        key, eq, value = s.partition("=")
        if eq:
            out.append((section, key.strip(), value.strip(), no))
    return out


def _expand_vars(word: str, env: Mapping[str, str]) -> List[str]:
    """ExecStart= variable expansion: `${X}` in place, a lone `$X` word split on spaces."""
    m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
    if m:
        return env.get(m.group(1), "").split()
    return [re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda mm: env.get(mm.group(1), ""), word)]


def parse_exec(raw: str, source: str, line: int, env: Mapping[str, str],
               unit_name: str = "ollama.service") -> Optional[ExecCommand]:
    """One ExecStart= value: prefixes stripped, words unquoted, specifiers and $VARs expanded."""
    text = raw.lstrip()
    prefixes = ""
    while text and text[0] in "@-:+!|":
        prefixes += text[0]
        text = text[1:]
    words, _ = iter_words(text)
    if not words:
        return None
    expanded: List[str] = []
    for w in words:
        w2, _err = expand_specifiers(w, unit_name)
        if ":" in prefixes:
            expanded.append(w2)
        else:
            expanded.extend(_expand_vars(w2, env))
    if not expanded:
        return None
    path = expanded[0]
    argv = tuple(expanded[1:]) if "@" in prefixes else tuple(expanded)
    wrapper: List[Tuple[str, str]] = []
    if posixpath.basename(path) == "env" and "@" not in prefixes:
        rest = list(argv[1:])
        while rest and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", rest[0]):
            k, _, v = rest.pop(0).partition("=")
            wrapper.append((k, v))
        if rest and not rest[0].startswith("-"):  # env's options (-i, -u, -S) are not modelled
            path, argv = rest[0], tuple(rest)
        else:
            wrapper = []
    return ExecCommand(raw, path, argv, prefixes, source, line, tuple(wrapper))


def load_service(host: Host, name: str = "ollama.service") -> Optional[ServiceUnit]:
    """The unit `name` merged with its drop-ins, or None when neither exists."""
    if "." not in name:
        name += ".service"
    path = find_unit_file(host, name)
    dropins = find_dropins(host, name)
    if path is None and not dropins:
        return None
    masked = path is not None and _is_mask(host, path)
    files: List[str] = ([path] if path and not masked else []) + dropins
    warnings: List[str] = []
    env: List[EnvAssignment] = []
    env_files_raw: List[Tuple[str, str, int]] = []
    unset: List[str] = []
    exec_raw: List[Tuple[str, str, int]] = []
    user = group = workdir = None
    for f in files:
        text = host.read_text(f)
        if text is None:
            warnings.append(f"{f}: cannot be read")
            continue
        for section, key, value, no in parse_unit_text(text):
            if section != "Service":
                continue
            if key == "Environment":
                if not value:
                    env = []
                    continue
                pairs, warns = parse_environment_value(value, name)
                warnings.extend(f"{f}:{no}: {w}" for w in warns)
                env.extend(EnvAssignment(k, v, f, no) for k, v in pairs)
            elif key == "EnvironmentFile":
                if not value:
                    env_files_raw = []
                else:
                    env_files_raw.append((value, f, no))
            elif key == "UnsetEnvironment":
                if not value:
                    unset = []
                else:
                    unset.extend(w for w in iter_words(value)[0])
            elif key == "ExecStart":
                if not value:
                    exec_raw = []
                else:
                    exec_raw.append((value, f, no))
            elif key == "User":
                user = value or None
            elif key == "Group":
                group = value or None
            elif key == "WorkingDirectory":
                workdir = value or None
    refs: List[EnvironmentFileRef] = []
    for value, f, no in env_files_raw:
        for word in iter_words(value)[0]:
            optional = word.startswith("-")
            p = word[1:] if optional else word
            p, _ = expand_specifiers(p, name)
            text = host.read_text(p) if p.startswith("/") else None
            if text is None:
                if not optional:
                    warnings.append(f"{f}:{no}: EnvironmentFile {p} is missing: the service will fail to start")
                refs.append(EnvironmentFileRef(p, optional, f, no, False))
                continue
            items, warns = parse_env_file(text)
            warnings.extend(f"{p}: {w}" for w in warns)
            refs.append(EnvironmentFileRef(
                p, optional, f, no, True,
                tuple(EnvAssignment(k, v, p, ln, "EnvironmentFile") for k, v, ln in items)))
    partial = ServiceUnit(name, path, tuple(dropins), masked, (), user, group, workdir,
                          tuple(env), tuple(refs), tuple(unset))
    cfg = partial.configured_env()
    execs = tuple(c for c in (parse_exec(v, f, no, cfg, name) for v, f, no in exec_raw) if c)
    return dataclasses.replace(partial, exec_start=execs, warnings=tuple(warnings))


def diff_env(configured: Mapping[str, str], running: Mapping[str, str],
             names: Optional[Sequence[str]] = None) -> List[Tuple[str, Optional[str], Optional[str]]]:
    """(name, configured, running) for each variable the unit sets that differs at run time.

    Only names the unit configures are compared (plus `names`, if given): the running
    process also carries variables systemd adds itself (INVOCATION_ID, JOURNAL_STREAM...).
    """
    keys = set(configured) | set(names or ())
    out = []
    for k in sorted(keys):
        c, r = configured.get(k), running.get(k)
        if c != r:
            out.append((k, c, r))
    return out
