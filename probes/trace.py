"""What Ollama really opened: a traced relaunch, parsed per process.

Tracing is the dynamic loader's own: `LD_DEBUG=libs,files` with `LD_DEBUG_OUTPUT=DIR/ld`, so
every process (the server, each discovery runner whose output Ollama throws away, the
model runner) writes its own file DIR/ld.PID. Where `strace` is installed and Ollama is a
child of the tool, `strace -f -ff -e trace=openat,execve -o DIR/st` runs as well, which
adds each process's command line (so runners can be told from the server) and every
`openat` with its result. The settings go only into the traced start:

* child process: the variables are given to that one start (strace passes them with -E
  so that strace itself is not traced); the relaunch then restarts without them;
* systemd: a *temporary* journaled change (probes.fixes kind "trace-env") in the tool's
  drop-in, undone right after the traced start, and undone by `probes.journal.recover`
  at the next start if the tool was killed in between.

`parse_dir(folder)` turns the files into a TraceReport: per process, the libraries of
interest it opened (libggml-*, CUDA, driver), the searches that failed with every path
the loader tried, and what asked for them.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from probes import journal as J
from probes.host import Host

LD_DEBUG_VALUE = "libs,files"
TRACE_VARS = ("LD_DEBUG", "LD_DEBUG_OUTPUT")
# Libraries worth showing (name prefixes); every failed search is shown whatever its name.
RELEVANT_PREFIXES = ("libggml", "libcuda", "libcudart", "libcublas", "libnvidia-", "libnvcuda",
                     "libllama", "libmtmd", "libvulkan", "librocm", "libhip", "libamdhip")

_PID_PREFIX = re.compile(r"^\s*(\d+):\t?(.*)$")
_FILE_REQ = re.compile(r"^file=(?P<name>.+?) \[\d+\];\s+(?P<how>needed by|dynamically loaded by) (?P<by>.+?) \[\d+\]$")
_FILE_MAP = re.compile(r"^file=(?P<name>.+?) \[\d+\];\s+generating link map$")
_FIND = re.compile(r"^find library=(?P<name>.+?) \[\d+\]; searching$")
_SEARCH_PATH = re.compile(r"^ search path=(?P<path>.*?)\t+\((?P<why>[^)]*)\)$")
_SEARCH_CACHE = re.compile(r"^ search cache=(?P<path>.+)$")
_TRYING = re.compile(r"^  trying file=(?P<path>.+)$")
_INIT_PROG = re.compile(r"^initialize program: (?P<prog>.+)$")
_CALL_INIT = re.compile(r"^calling init: (?P<path>.+)$")
_HWCAP_SUBDIR = re.compile(r"/(glibc-hwcaps/[^/]+|tls(/[^/]+)*|x86_64(/x86_64)?|haswell|avx512_1)$")
_STRACE_EXEC = re.compile(r'^execve\("(?P<path>[^"]*)", \[(?P<argv>.*?)\](?:, .*)?\) = 0')
_STRACE_OPEN = re.compile(r'^openat\([^,]+, "(?P<path>[^"]*)", [^)]*\) = (?P<rc>-?\d+)(?: (?P<errno>E\w+))?')


def relevant(name: str) -> bool:
    return os.path.basename(name).startswith(RELEVANT_PREFIXES)


@dataclasses.dataclass(frozen=True)
class FailedLoad:
    """A library the loader looked for and did not load."""

    name: str
    requested_by: Optional[str]   # the library that NEEDs it, or what dlopen'ed it
    how: str                      # "needed by" | "dynamically loaded by"
    tried: Tuple[str, ...]        # every path tried, in order
    searched: Tuple[str, ...]     # where it looked: "LD_LIBRARY_PATH", "RUNPATH", "ld.so.cache", ...
    error: Optional[str] = None   # the loader's message, where known


@dataclasses.dataclass(frozen=True)
class ProcessTrace:
    pid: int
    program: Optional[str]
    argv: Tuple[str, ...]
    role: str                     # "server" | "discovery runner" | "model runner" | "runner" | "process"
    opened: Tuple[str, ...]       # libraries of interest that were loaded (full paths)
    failed: Tuple[FailedLoad, ...]
    dlopened: Tuple[str, ...]     # of those, the ones loaded by dlopen (backends)
    open_errors: Tuple[Tuple[str, str], ...] = ()  # strace: (path, errno) of relevant openat failures
    other_libraries: int = 0      # loaded libraries not of interest (libc, libstdc++...)
    library_path: Tuple[str, ...] = ()  # the LD_LIBRARY_PATH the loader searched: which backend folder a runner probed


@dataclasses.dataclass(frozen=True)
class TraceReport:
    folder: str
    method: str
    strace: bool
    processes: Tuple[ProcessTrace, ...]
    notes: Tuple[str, ...] = ()

    def opened_by(self) -> Dict[str, List[str]]:
        """For the library tree: path -> labels of the processes that loaded it."""
        out: Dict[str, List[str]] = {}
        for label, p in labelled(self.processes):
            for path in p.opened:
                out.setdefault(path, []).append(label)
        return out


def labelled(processes: Sequence[ProcessTrace]) -> List[Tuple[str, ProcessTrace]]:
    """("server", p), ("runner 1", p), ... in start order."""
    counts: Dict[str, int] = {}
    out = []
    for p in processes:
        # The simulated trace of a sandbox has no real processes: pid 0 is not shown.
        pid = f" (pid {p.pid})" if p.pid > 0 else ""
        if p.role == "server":
            out.append((f"server{pid}", p))
            continue
        counts[p.role] = counts.get(p.role, 0) + 1
        out.append((f"{p.role} {counts[p.role]}{pid}", p))
    return out


# -- parsing LD_DEBUG output -----------------------------------------------------------------

class _Segment:
    """One program image in one process (an exec starts a new one)."""

    def __init__(self, program: Optional[str] = None):
        self.program = program
        self.opened: List[str] = []
        self.dlopened: List[str] = []
        self.failed: List[FailedLoad] = []
        self.loaded_names: set = set()
        self.library_path: List[str] = []


class _Request:
    def __init__(self, name: str, how: str, by: Optional[str]):
        self.name, self.how, self.by = name, how, by
        self.tried: List[str] = []
        self.searched: List[str] = []


def parse_ld_debug(lines: Iterable[str]) -> List[_Segment]:
    segments: List[_Segment] = [_Segment()]
    seg = segments[0]
    req: Optional[_Request] = None

    def close(r: Optional[_Request]) -> None:
        if r is not None and r.name not in seg.loaded_names:
            seg.failed.append(FailedLoad(r.name, r.by, r.how, tuple(r.tried), tuple(r.searched)))

    for raw in lines:
        m = _PID_PREFIX.match(raw.rstrip("\n"))
        if not m:
            continue
        text = m.group(2)
        if not text.strip():
            continue
        mm = _FILE_REQ.match(text)
        if mm:
            close(req)
            by = mm.group("by")
            # An exec: the new image's first dependencies are "needed by" the new program.
            if (mm.group("how") == "needed by" and seg.program is not None and by != seg.program
                    and by not in seg.opened and by not in seg.loaded_names and "/" in by
                    and not _is_loaded_path(seg, by)):
                seg = _Segment(by)
                segments.append(seg)
            elif seg.program is None and mm.group("how") == "needed by" and not seg.loaded_names:
                seg.program = by
            req = _Request(mm.group("name"), mm.group("how"), by)
            continue
        mm = _FIND.match(text)
        if mm:
            if req is None or req.name != mm.group("name"):
                close(req)
                req = _Request(mm.group("name"), "needed by", None)
            continue
        mm = _SEARCH_PATH.match(text)
        if mm and req is not None:
            req.searched.append(mm.group("why"))
            if mm.group("why") == "LD_LIBRARY_PATH":
                for d in mm.group("path").split(":"):
                    if not _HWCAP_SUBDIR.search(d) and d not in seg.library_path:
                        seg.library_path.append(d)
            continue
        mm = _SEARCH_CACHE.match(text)
        if mm and req is not None:
            req.searched.append("ld.so.cache")
            continue
        mm = _TRYING.match(text)
        if mm and req is not None:
            req.tried.append(mm.group("path"))
            continue
        mm = _FILE_MAP.match(text)
        if mm:
            name = mm.group("name")
            path = name if name.startswith("/") else (req.tried[-1] if req is not None and req.name == name
                                                      and req.tried else name)
            seg.loaded_names.add(name)
            seg.opened.append(path)
            if req is not None and req.name == name and req.how == "dynamically loaded by":
                seg.dlopened.append(path)
            req = None if (req is not None and req.name == name) else req
            continue
        mm = _INIT_PROG.match(text)
        if mm:
            close(req)
            req = None
            if seg.program is None or not seg.program.startswith("/"):
                seg.program = mm.group("prog")
            continue
        mm = _CALL_INIT.match(text)
        if mm:
            path = mm.group("path").strip()
            # a cache hit reports the name only; the init line gives the full path
            for i, p in enumerate(seg.opened):
                if not p.startswith("/") and os.path.basename(path) == p:
                    seg.opened[i] = path
            continue
        if "destroying link map" in text or text.startswith("calling fini"):
            close(req)
            req = None
    close(req)
    return segments


def _is_loaded_path(seg: _Segment, path: str) -> bool:
    return any(p == path or os.path.basename(p) == os.path.basename(path) for p in seg.opened)


# -- parsing strace output -------------------------------------------------------------------

def _split_argv(text: str) -> Tuple[str, ...]:
    return tuple(bytes(s, "ascii", "backslashreplace").decode("unicode_escape")
                 for s in re.findall(r'"((?:[^"\\]|\\.)*)"', text))


def parse_strace(lines: Iterable[str]) -> Tuple[Tuple[str, ...], List[str], List[Tuple[str, str]]]:
    """(argv of the last successful execve, relevant libraries opened, relevant open errors)."""
    argv: Tuple[str, ...] = ()
    opened: List[str] = []
    errors: List[Tuple[str, str]] = []
    for line in lines:
        m = _STRACE_EXEC.match(line)
        if m:
            argv = _split_argv(m.group("argv"))
            opened, errors = [], []  # a new image
            continue
        m = _STRACE_OPEN.match(line)
        if m and relevant(m.group("path")):
            if int(m.group("rc")) >= 0:
                if m.group("path") not in opened:
                    opened.append(m.group("path"))
            else:
                errors.append((m.group("path"), m.group("errno") or m.group("rc")))
    return argv, opened, errors


# -- the whole folder ------------------------------------------------------------------------

def _role(argv: Sequence[str], program: Optional[str], server_pids: Sequence[int], pid: int) -> str:
    if "runner" in argv[1:3]:
        return "model runner" if "--model" in argv else "discovery runner"
    if "serve" in argv[1:3] or pid in server_pids:
        return "server"
    if "runner" in argv:
        return "runner"
    return "process"


def _read_lines(path: str) -> List[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def parse_dir(folder: str, method: str = "child", server_pids: Sequence[int] = (),
              notes: Sequence[str] = ()) -> TraceReport:
    """Every process that wrote a trace into `folder`, in pid order."""
    ld: Dict[int, str] = {}
    st: Dict[int, str] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        names = []
    for name in names:
        base, _, pid = name.rpartition(".")
        if pid.isdigit():
            (ld if base == "ld" else st if base == "st" else {})[int(pid)] = os.path.join(folder, name)
    processes = []
    for pid in sorted(set(ld) | set(st)):
        segs = parse_ld_debug(_read_lines(ld[pid])) if pid in ld else [_Segment()]
        seg = segs[-1]
        argv, s_opened, s_errors = parse_strace(_read_lines(st[pid])) if pid in st else ((), [], [])
        if argv and argv[0].startswith("strace"):
            continue  # the tracer itself
        program = seg.program or (argv[0] if argv else None)
        opened = [p for p in seg.opened if relevant(p)]
        for p in s_opened:
            if p not in opened:
                opened.append(p)
        others = len([p for p in seg.opened if not relevant(p)])
        processes.append(ProcessTrace(
            pid, program, tuple(argv), _role(argv, program, server_pids, pid), tuple(opened),
            tuple(seg.failed), tuple(p for p in seg.dlopened if relevant(p)), tuple(s_errors), others,
            tuple(seg.library_path)))
    return TraceReport(folder, method, bool(st), tuple(processes), tuple(notes))


def format_report(report: TraceReport) -> List[str]:
    """Text lines for the CLI: per process, what it opened and what failed."""
    if report.method == "simulator":
        lines = ["trace (SIMULATED from the sandbox's discovery model):"]
    else:
        lines = [f"trace ({'LD_DEBUG + strace' if report.strace else 'LD_DEBUG'}), files in {report.folder}:"]
    for note in report.notes:
        lines.append(f"  note: {note}")
    if not report.processes:
        lines.append("  no process wrote a trace")
    for label, p in labelled(report.processes):
        cmd = " ".join(p.argv) if p.argv else (p.program or "?")
        lines.append(f"  {label}: {cmd}")
        if p.library_path and p.role != "server":
            lines.append(f"    LD_LIBRARY_PATH={':'.join(p.library_path)}")
        for path in p.opened:
            lines.append(f"    opened  {path}" + ("  (dlopen)" if path in p.dlopened else ""))
        for f in p.failed:
            by = f" ({f.how} {f.requested_by})" if f.requested_by else ""
            lines.append(f"    FAILED  {f.name}{by}; looked in {', '.join(dict.fromkeys(f.searched)) or '-'}")
            if f.error:
                lines.append(f"              error: {f.error}")
            for t in f.tried:
                lines.append(f"              tried {t}")
        for path, err in p.open_errors:
            lines.append(f"    openat  {path}: {err}")
        if p.other_libraries:
            lines.append(f"    (+{p.other_libraries} other libraries)")
    return lines


# -- the tracer used by probes.launcher ------------------------------------------------------

class Tracer:
    """Turns tracing on for exactly one start of Ollama, and off again."""

    def __init__(self, host: Host, how: str, use_strace: Optional[bool] = None):
        self.host, self.how = host, how
        self.strace = _find_strace() if how == "child" and use_strace is not False else None
        self.change_id: Optional[str] = None
        self.notes: List[str] = []
        if how == "systemd":
            self.folder = _service_trace_folder(host)
            self.notes.append("strace is not used for a systemd service (it would need ExecStart= edited)")
        elif how == "simulator":
            self.folder = ""
            self.notes.append("simulated: the sandbox's Ollama loads no libraries; this is what its discovery "
                              "model says each runner would open, not a recording of a loader")
        else:
            self.folder = tempfile.mkdtemp(prefix="vgpu-tui-trace-")
        if how == "child" and self.strace is None and use_strace is not False:
            self.notes.append("strace is not installed: LD_DEBUG only (no command lines, roles guessed)")

    def describe(self) -> str:
        if self.how == "simulator":
            return "simulated from the sandbox's discovery model (no loader runs in a sandbox)"
        s = f"LD_DEBUG={LD_DEBUG_VALUE} LD_DEBUG_OUTPUT={self.folder}/ld"
        return s + (" + strace -f -e trace=openat,execve" if self.strace else "")

    def variables(self) -> Dict[str, str]:
        return {"LD_DEBUG": LD_DEBUG_VALUE, "LD_DEBUG_OUTPUT": self.folder + "/ld"}

    def start(self) -> None:
        if self.how == "systemd":
            self.change_id = apply_trace_env(self.host, self.variables()).id

    def environment(self, env: Mapping[str, str]) -> Dict[str, str]:
        out = dict(env)
        if not self.strace:  # with strace the variables go to the traced command only (-E)
            out.update(self.variables())
        return out

    def command_prefix(self) -> List[str]:
        if not self.strace:
            return []
        argv = [self.strace, "-f", "-ff", "-qq", "-e", "trace=openat,execve", "-s", "512",
                "-o", self.folder + "/st"]
        for k, v in self.variables().items():
            argv += ["-E", f"{k}={v}"]
        return argv + ["--"]

    def finish(self) -> List[str]:
        """Turn tracing off in the service configuration (systemd); returns what was done."""
        if self.change_id is None:
            return []
        from probes import fixes

        change = fixes.undo(self.host, self.change_id, force=True)
        self.change_id = None
        return [f"tracing removed from the service ({change.id} undone)"]

    def report(self, server_pids: Sequence[int] = ()) -> TraceReport:
        if self.how == "simulator":
            return simulated_report(self.host, self.notes)
        return parse_dir(self.folder, self.how, server_pids, self.notes)


def _find_strace() -> Optional[str]:
    return Host.local().which("strace")


def _service_trace_folder(host: Host) -> str:
    """A private folder the service's user can write its trace files into."""
    import pwd

    base = host.path(J.state_dir(host))
    os.makedirs(base, mode=0o755, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="trace-", dir=base)
    try:
        from probes import systemd

        svc = systemd.load_service(host, "ollama.service")
        user = svc.user if svc else None
        if user:
            pw = pwd.getpwnam(user)
            os.chown(folder, pw.pw_uid, pw.pw_gid)
    except (KeyError, OSError, ImportError):
        pass
    return folder


def apply_trace_env(host: Host, variables: Mapping[str, str]):
    """Journal and apply the tracing variables as a temporary service change."""
    from probes import fixes

    plan = fixes.plan(host, "trace-env", {"changes": dict(variables)})
    return fixes.apply(host, plan)


def cleanup(report: TraceReport) -> None:
    if report.folder:
        shutil.rmtree(report.folder, ignore_errors=True)


def simulated_report(host: Host, notes: Sequence[str] = ()) -> TraceReport:
    """For a sandbox: per discovery runner, what the sandbox's discovery model says the loader
    opens and where it fails (probes.sandbox.discovery), in the shape of a real trace."""
    from probes.sandbox import discovery, simulator

    exe, env, user = simulator.service(host.root)
    d = discovery.discover(host, exe, env, user)
    notes = list(notes)
    for reason, folder in d.skipped:
        why = (f"OLLAMA_LLM_LIBRARY={env.get('OLLAMA_LLM_LIBRARY', '')}" if reason == "user"
               else "OLLAMA_VULKAN is off" if reason == "vulkan" else reason)
        notes.append(f"{folder} was never probed ({why})")
    inherited = [p for p in (env.get("LD_LIBRARY_PATH") or "").split(":") if p]
    procs = [ProcessTrace(0, exe, (exe, "serve"), "server", (), (), ())]
    for i, probe in enumerate(d.probes, 1):
        search = list(probe.dirs) + inherited
        loader = discovery.Loader(host, search)
        opened: List[str] = []
        dl: List[str] = []
        failed: List[FailedLoad] = []
        if probe.cpu:
            opened.append(probe.cpu)
            dl.append(probe.cpu)
        for b in probe.cuda:
            ok, err, loaded = loader.dlopen(b.path)
            opened.extend(p for p in loaded.values() if relevant(p) and p not in opened)
            if ok:
                dl.append(b.path)
                continue
            name = (err or "").split(":", 1)[0]
            if name and "/" not in name:  # a dependency not found
                tried = tuple(f"{x}/{name}" for x in search) + tuple(f"{x}/{name}" for x in discovery.DEFAULT_LIB_DIRS)
                failed.append(FailedLoad(name, b.path, "needed by", tried,
                                         ("LD_LIBRARY_PATH", "ld.so.cache", "system search path"), err))
            else:
                failed.append(FailedLoad(b.path, None, "dynamically loaded by", (), (), err))
        argv = (exe, "runner", "--ollama-engine", "--port", str(40000 + i))
        # simulated processes have no pid: -i keeps them distinct and unlabelled
        procs.append(ProcessTrace(-i, exe, argv, "discovery runner", tuple(opened), tuple(failed), tuple(dl),
                                  library_path=tuple(search)))
    return TraceReport("", "simulator", False, tuple(procs), tuple(notes))
