"""The Ollama install the service really runs: binary, version, era, LibOllamaPath, environment.

`find_install(host, options)` answers, reading the system only through Host:

* the binary: `--ollama`, else the systemd unit's ExecStart (unit + drop-ins), else a
  running `ollama serve` (psutil on the live system; on a sandbox its record under
  `.vgpu-sandbox/run/`), else PATH. Like the kernel's /proc/self/exe, symlinks are
  followed; a copy is not (ollama-discovery.md §1.1);
* the version: Go build info in the binary (no execution), else `ollama --version` (live
  system only, with a timeout), else the log's `Listening on ... (version X)`;
  `--assume-version` overrides;
* the era and LibOllamaPath by that era's candidate list (§1.2), and any other
  `lib/ollama` tree that this binary will not read;
* the service environment (unit, drop-ins, EnvironmentFile, in systemd's order) beside the
  running server's, with their differences (a drop-in edited but not yet applied).
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from probes import eras, gobuildinfo, systemd
from probes.facts import Finding, Fix
from probes.host import Host

SERVICE = "ollama.service"
SANDBOX_RUN = "/.vgpu-sandbox/run"
SANDBOX_LOG = "/var/log/ollama/ollama.log"
# Where install.sh, packages, Docker and manual installs put a tree (§1.2, §7).
KNOWN_TREES = ("/usr/local/lib/ollama", "/usr/lib/ollama", "/opt/ollama/lib/ollama", "/lib/ollama")
# systemd's fixed search path for a bare ExecStart= name.
SYSTEMD_EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
LISTENING_RE = re.compile(r"Listening on \S+ \(version ([^)\s]+)\)")
VERSION_OUT_RE = re.compile(r"version(?: is)?\s+v?(\d+\.\d+\.\d+\S*)")
LOG_TAIL_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """A running `ollama serve` (or the sandbox's record of one)."""

    pid: Optional[int]
    exe: Optional[str]  # inspected path, as /proc/PID/exe gives it
    cmdline: Tuple[str, ...]
    environ: Optional[Mapping[str, str]]  # None when it could not be read
    source: str  # "psutil" | "sandbox-record"
    note: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class LibDirCandidate:
    path: str
    exists: bool
    chosen: bool
    note: str = ""


@dataclasses.dataclass(frozen=True)
class EnvDifference:
    name: str
    configured: Optional[str]
    running: Optional[str]
    source: Optional[str]  # the unit file / drop-in / EnvironmentFile that sets it
    note: str


@dataclasses.dataclass(frozen=True)
class OtherTree:
    path: str
    has_cuda_backend: bool
    note: str


@dataclasses.dataclass(frozen=True)
class OllamaInstall:
    binary: Optional[str]  # as found (ExecStart, process, PATH, --ollama)
    real_binary: Optional[str]  # after following symlinks: what the kernel reports as the exe
    binary_source: Optional[str]  # "option" | "systemd" | "process" | "path"
    version: Optional[str]
    version_source: Optional[str]  # "assumed" | "buildinfo" | "--version" | "log"
    era: Optional[str]
    era_assumed: bool  # version unknown: the rules of DEFAULT_ERA_VERSION are used
    lib_dir: Optional[str]  # LibOllamaPath ("" would mean none found, eras ≤ v0.5.7)
    lib_dir_exists: bool
    lib_dir_is_symlink: bool
    lib_dir_candidates: Tuple[LibDirCandidate, ...]
    other_trees: Tuple[OtherTree, ...]
    service: Optional[systemd.ServiceUnit]
    user: Optional[str]
    env: Mapping[str, str]  # what the next start of the server gets
    env_source: str  # "service" | "process" | "host" | "none"
    running_env: Optional[Mapping[str, str]]
    env_differences: Tuple[EnvDifference, ...]
    processes: Tuple[ProcessInfo, ...]
    buildinfo: Optional[gobuildinfo.GoBuildInfo] = dataclasses.field(default=None, metadata={"json": False})
    notes: Tuple[str, ...] = ()
    findings: Tuple[Finding, ...] = ()

    @property
    def exe_dir(self) -> Optional[str]:
        return posixpath.dirname(self.real_binary) if self.real_binary else None

    def server_env(self, which: str = "configured") -> Mapping[str, str]:
        """The server's environment: "configured" (next start) or "running" (now)."""
        if which == "running" and self.running_env is not None:
            return self.running_env
        return self.env


def _opt(options: Any, name: str) -> Any:
    if options is None:
        return None
    if isinstance(options, Mapping):
        return options.get(name)
    return getattr(options, name, None)


# -- processes ------------------------------------------------------------------------------
def _parse_environ(data: bytes) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            k, _, v = item.partition(b"=")
            env[k.decode("utf-8", "surrogateescape")] = v.decode("utf-8", "surrogateescape")
    return env


def _sandbox_process(host: Host) -> Optional[ProcessInfo]:
    exe = host.read_text(SANDBOX_RUN + "/ollama.exe")
    envb = host.read_bytes(SANDBOX_RUN + "/ollama.environ")
    if exe is None and envb is None:
        return None
    pid_text = host.read_text(SANDBOX_RUN + "/ollama.pid")
    pid = int(pid_text.strip()) if pid_text and pid_text.strip().isdigit() else None
    exe = exe.strip() if exe else None
    return ProcessInfo(pid, exe, (exe or "ollama", "serve"),
                       _parse_environ(envb) if envb is not None else None,
                       "sandbox-record", "recorded by the sandbox simulator")


def _live_processes() -> List[ProcessInfo]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return []
    out: List[ProcessInfo] = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmd = proc.info.get("cmdline") or []
            if not cmd or posixpath.basename(cmd[0]) != "ollama" or "serve" not in cmd[1:]:
                continue
            note = None
            try:
                exe = proc.exe() or None
            except (psutil.AccessDenied, psutil.ZombieProcess):
                exe, note = None, "its executable could not be read (run as root)"
            try:
                environ: Optional[Dict[str, str]] = dict(proc.environ())
            except (psutil.AccessDenied, psutil.ZombieProcess):
                environ = None
                note = "its environment could not be read (run as root or as the service user)"
            if exe and exe.endswith(" (deleted)"):
                exe = exe[: -len(" (deleted)")]
                note = "its executable was replaced or deleted after it started"
            out.append(ProcessInfo(proc.info["pid"], exe, tuple(cmd), environ, "psutil", note))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def find_processes(host: Host) -> List[ProcessInfo]:
    """Running `ollama serve` processes of the inspected system."""
    if host.is_sandbox:
        rec = _sandbox_process(host)
        return [rec] if rec else []
    if host.live:
        return _live_processes()
    return []  # an image under --root has no processes we could see


# -- binary ----------------------------------------------------------------------------------
def _exec_path(host: Host, path: str) -> str:
    if path.startswith("/"):
        return path
    found = host.which(path, SYSTEMD_EXEC_PATH)
    return found or path


def _service_exec(service: Optional[systemd.ServiceUnit]) -> Optional[systemd.ExecCommand]:
    if service is None or not service.exec_start:
        return None
    for cmd in service.exec_start:
        if "serve" in cmd.argv[1:]:
            return cmd
    return service.exec_start[0]


# -- version ---------------------------------------------------------------------------------
def version_from_log_text(text: str) -> Optional[str]:
    found = None
    for m in LISTENING_RE.finditer(text):
        found = m.group(1)
    return found


def _read_local_tail(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def _log_text(host: Host, options: Any) -> Optional[str]:
    log = _opt(options, "log")
    if log:
        return _read_local_tail(log)
    if host.exists(SANDBOX_LOG):
        real = host.real_path(SANDBOX_LOG)
        return _read_local_tail(real) if real else None
    if host.live:
        res = host.run(["journalctl", "-u", SERVICE, "--no-pager", "-o", "cat", "-n", "5000"], timeout=5)
        if res.ok:
            return res.stdout
    return None


def _version(host: Host, real_binary: Optional[str], options: Any
             ) -> Tuple[Optional[str], Optional[str], Optional[gobuildinfo.GoBuildInfo], List[str]]:
    notes: List[str] = []
    info = gobuildinfo.read_buildinfo(host, real_binary) if real_binary else None
    assumed = _opt(options, "assume_version")
    if assumed:
        if eras.parse_version(assumed) is None:
            from probes.errors import ToolError
            raise ToolError(f"--assume-version {assumed}: not a version like 0.24.0")
        return assumed.lstrip("v"), "assumed", info, notes
    if info is not None:
        if info.ollama_version and eras.parse_version(info.ollama_version):
            return info.ollama_version, "buildinfo", info, notes
        notes.append(f"{real_binary} is a Go binary ({info.go_version}) but records no release "
                     "version (a development build?)")
    if real_binary and host.live and host.isfile(real_binary):
        res = host.run([real_binary, "--version"], timeout=5)
        m = VERSION_OUT_RE.search((res.stdout or "") + (res.stderr or ""))
        if m and eras.parse_version(m.group(1)):
            return m.group(1), "--version", info, notes
        if res.timed_out:
            notes.append(f"`{real_binary} --version` did not answer within 5 s")
    text = _log_text(host, options)
    if text:
        v = version_from_log_text(text)
        if v and eras.parse_version(v):
            return v, "log", info, notes
    return None, None, info, notes


# -- LibOllamaPath ---------------------------------------------------------------------------
def _machine_arch(host: Host) -> str:
    return "arm64" if os.uname().machine in ("aarch64", "arm64") and host.live else "amd64"


def lib_ollama_path(host: Host, real_binary: str, version: Optional[str], cwd: str = "/"
                    ) -> Tuple[str, Tuple[LibDirCandidate, ...]]:
    """LibOllamaPath for a resolved executable, by the version's rules (§1.2)."""
    exe_dir = posixpath.dirname(real_binary)
    cands = eras.rule("libollama_candidates", version) or ()
    must_dir = eras.rule("libollama_must_be_dir", version, False)
    fallback = eras.rule("libollama_fallback", version, "{exe}")
    arch = _machine_arch(host)
    out: List[LibDirCandidate] = []
    chosen: Optional[str] = None
    for pattern in cands:
        p = posixpath.normpath(pattern.format(exe=exe_dir, cwd=cwd, arch=arch))
        ok = host.isdir(p) if must_dir else host.exists(p)
        note = ""
        if not ok and host.exists(p):
            note = "exists but is not a folder"
        elif ok and not host.isdir(p):
            note = "exists but is not a folder: Ollama still takes it (os.Stat only)"
        take = ok and chosen is None
        if take:
            chosen = p
        out.append(LibDirCandidate(p, ok, take, note))
    if chosen is None:
        chosen = fallback.format(exe=exe_dir) if fallback else ""
        out.append(LibDirCandidate(chosen or "(none)", bool(chosen) and host.isdir(chosen), True,
                                   "no candidate exists: the fallback"))
    return chosen, tuple(out)


def _has_cuda_backend(host: Host, tree: str) -> bool:
    if host.exists(tree + "/libggml-cuda.so"):
        return True
    return any(host.exists(f"{tree}/{d}/libggml-cuda.so") for d in host.listdir(tree))


def other_trees(host: Host, lib_dir: Optional[str]) -> Tuple[OtherTree, ...]:
    """Known lib/ollama trees other than the one used (they are ignored silently)."""
    out: List[OtherTree] = []
    used = host.resolve(lib_dir).final if lib_dir else None
    for tree in KNOWN_TREES:
        if tree == lib_dir or not host.isdir(tree):
            continue
        if used and host.resolve(tree).final == used:
            continue
        cuda = _has_cuda_backend(host, tree)
        out.append(OtherTree(tree, cuda, f"{tree} exists but this Ollama reads {lib_dir or 'no tree'}; "
                             "nothing in it is used"))
    return tuple(out)


# -- environment ----------------------------------------------------------------------------
def _passwd_entry(host: Host, user: str) -> Optional[List[str]]:
    text = host.read_text("/etc/passwd") or ""
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[0] == user:
            return parts
    return None


def service_base_env(host: Host, service: systemd.ServiceUnit) -> Dict[str, str]:
    """Variables systemd itself gives every service (before the unit's own)."""
    env = {"PATH": systemd.DEFAULT_SERVICE_PATH}
    if service.user:
        pw = _passwd_entry(host, service.user)
        env.update({"USER": service.user, "LOGNAME": service.user})
        if pw:
            env.update({"HOME": pw[5], "SHELL": pw[6]})
    return env


def env_differences(service: Optional[systemd.ServiceUnit], configured: Mapping[str, str],
                    running: Optional[Mapping[str, str]]) -> Tuple[EnvDifference, ...]:
    if running is None or service is None:
        return ()
    sources = service.env_sources()
    out: List[EnvDifference] = []
    for name, conf, run in systemd.diff_env(service.configured_env(), running):
        src = sources[name].source if name in sources else None
        if run is None:
            note = f"set in {src} but not in the running server: restart the service to apply it"
        elif conf is None:
            note = "in the running server but no longer in the unit: it goes away at the next restart"
        else:
            note = f"the unit ({src}) says {conf!r} but the running server has {run!r}: restart to apply"
        out.append(EnvDifference(name, conf, run, src, note))
    # Variables the running server has that the unit does not set and systemd does not add.
    for name in ("OLLAMA_LLM_LIBRARY", "OLLAMA_LIBRARY_PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
                 "LD_PRELOAD", "OLLAMA_VULKAN"):
        if name in running and name not in configured:
            out.append(EnvDifference(name, None, running[name], None,
                                     "in the running server but not set by the unit: it goes away at the next restart"))
    return tuple(out)


# -- main -------------------------------------------------------------------------------------
def find_install(host: Host, options: Any = None) -> OllamaInstall:
    """Everything about the Ollama the service runs; never raises for a broken system."""
    notes: List[str] = []
    findings: List[Finding] = []
    service = systemd.load_service(host, SERVICE)
    if service is not None:
        notes.extend(service.warnings)
    procs = find_processes(host)
    proc = procs[0] if procs else None

    binary = source = None
    opt_bin = _opt(options, "ollama")
    exec_cmd = _service_exec(service)
    if opt_bin:
        binary, source = opt_bin, "option"
    elif exec_cmd is not None:
        binary, source = _exec_path(host, exec_cmd.path), "systemd"
        if posixpath.basename(exec_cmd.path) == "env":  # ExecStart=/usr/bin/env [VAR=x] ollama serve
            words = [w for w in exec_cmd.argv[1:] if "=" not in w and not w.startswith("-")]
            if words:
                path_var = service.configured_env().get("PATH", systemd.DEFAULT_SERVICE_PATH) if service else None
                binary = words[0] if words[0].startswith("/") else (host.which(words[0], path_var) or words[0])
    elif proc is not None and proc.exe:
        binary, source = proc.exe, "process"
    else:
        search = (service.configured_env().get("PATH") if service else None) or \
            (host.env.get("PATH") if host.live else None)
        found = host.which("ollama", search)
        if found:
            binary, source = found, "path"

    real_binary = None
    if not binary:
        findings.append(Finding(
            "ollama-not-found", "lib-dir-not-found", "warning", "No Ollama binary found",
            "There is no ollama.service unit, no running `ollama serve` and no `ollama` on PATH, so "
            "which library folder Ollama would use is unknown.",
            ("looked at: the systemd unit folders, running processes, PATH",),
            Fix("manual", {}, "vgpu-tui report --ollama /path/to/ollama")))
    if binary:
        r = host.resolve(binary)
        real_binary = r.final
        if r.status != "ok":
            notes.append(f"{binary}: {r.status} ({r.final})")
            findings.append(Finding(
                "ollama-binary-missing", "lib-dir-not-found", "error",
                f"The Ollama binary {binary} does not exist",
                f"{'The unit runs' if source == 'systemd' else 'Looked for'} {binary}, which leads to "
                f"{r.final} ({r.status}). The service cannot start.",
                (f"{binary}: {r.status}",)))
        elif r.hops:
            notes.append(f"{binary} is a symlink to {real_binary}: Ollama computes its library folder "
                         f"from {posixpath.dirname(real_binary)}")
    if proc is not None and proc.exe and real_binary and proc.exe != real_binary:
        notes.append(f"the running server is {proc.exe} but {source} names {real_binary}: "
                     "after a restart the latter runs")

    version, vsource, info, vnotes = _version(host, real_binary, options)
    notes.extend(vnotes)
    era = eras.era_for(version)
    era_assumed = era is None
    if era is None:
        era = eras.era_for(eras.DEFAULT_ERA_VERSION)
        notes.append(f"the Ollama version is unknown: modelling {era.label} (v{eras.DEFAULT_ERA_VERSION}); "
                     "give --assume-version X.Y.Z to choose")

    cwd = (service.working_directory if service and service.working_directory else "/")
    lib_dir: Optional[str] = None
    cands: Tuple[LibDirCandidate, ...] = ()
    if real_binary:
        lib_dir, cands = lib_ollama_path(host, real_binary, version, cwd)
    lib_exists = bool(lib_dir) and host.isdir(lib_dir)
    lib_link = False
    if lib_dir:
        parent = host.resolve(posixpath.dirname(lib_dir))
        lib_link = parent.ok and host.islink(f"{parent.final.rstrip('/')}/{posixpath.basename(lib_dir)}")
    others = other_trees(host, lib_dir) if real_binary else ()
    if lib_link:
        notes.append(f"{lib_dir} is a symlink to {host.resolve(lib_dir).final}: Ollama keeps the link's path "
                     "in OLLAMA_LIBRARY_PATH and reads the files through it")
    if real_binary and not lib_exists:
        findings.append(Finding(
            "lib-dir-missing", "lib-dir-not-found", "error",
            f"Ollama's library folder does not exist for {real_binary}",
            f"Ollama {version or '(version unknown)'} looks for its libraries at "
            f"{', '.join(c.path for c in cands if not c.chosen or c.exists)}; none exists, so it uses "
            f"{lib_dir or 'no folder'} and runs on the CPU.",
            tuple(f"{c.path}: {'exists' if c.exists else 'missing'}" for c in cands)))
    for t in others:
        if t.has_cuda_backend or not lib_exists:
            findings.append(Finding(
                "lib-dir-other-tree", "lib-dir-not-found", "error" if t.has_cuda_backend else "warning",
                f"Ollama reads {lib_dir}, not {t.path}",
                f"The binary {real_binary} takes its libraries from {lib_dir}"
                f"{' (no ../lib/ollama next to it, so its own folder)' if lib_dir == posixpath.dirname(real_binary) else ''}. "
                f"{t.path}{' holds a CUDA backend but' if t.has_cuda_backend else ''} is never read: "
                "changes made there have no effect.",
                (f"binary: {real_binary}", f"LibOllamaPath: {lib_dir}", f"ignored tree: {t.path}"),
                Fix("manual", {"binary": real_binary, "tree": t.path},
                    f"point ExecStart at {posixpath.dirname(posixpath.dirname(t.path))}/bin/ollama, "
                    f"or put the libraries under {lib_dir}")))

    configured: Dict[str, str] = {}
    env_source = "none"
    if service is not None:
        configured = service_base_env(host, service)
        configured.update(service.configured_env())
        env_source = "service"
    running = proc.environ if proc is not None else None
    if service is None:
        if running is not None:
            configured, env_source = dict(running), "process"
        elif host.live:
            configured, env_source = dict(host.env), "host"
    diffs = env_differences(service, configured, running)
    if proc is not None and running is None and proc.note:
        notes.append(f"running server pid {proc.pid}: {proc.note}")

    return OllamaInstall(
        binary=binary, real_binary=real_binary, binary_source=source,
        version=version, version_source=vsource, era=era.letter, era_assumed=era_assumed,
        lib_dir=lib_dir, lib_dir_exists=lib_exists, lib_dir_is_symlink=lib_link,
        lib_dir_candidates=cands, other_trees=others, service=service,
        user=service.user if service else None, env=configured, env_source=env_source,
        running_env=running, env_differences=diffs, processes=tuple(procs), buildinfo=info,
        notes=tuple(notes), findings=tuple(findings))


def summary(install: OllamaInstall) -> Dict[str, Any]:
    """The contract's `report.ollama` object."""
    svc = None
    if install.service is not None:
        s = install.service
        svc = {"name": s.name, "unit": s.path, "dropins": list(s.dropins), "masked": s.masked,
               "exec_start": [list(c.argv) for c in s.exec_start], "user": s.user, "group": s.group,
               "environment_files": [r.path for r in s.environment_files],
               "env_differences": [dataclasses.asdict(d) for d in install.env_differences]}
    return {"binary": install.real_binary or install.binary, "version": install.version,
            "era": install.era, "lib_dir": install.lib_dir, "service": svc, "env": dict(install.env)}
