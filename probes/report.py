"""The whole report: the one place that calls every probe, then diagnoses, then renders.

`build_report(host, options)` collects device, Ollama install, tree, scanner model, shim
checks, load probe and log; a probe that is missing or fails becomes a note, never a crash,
so `report --json` always prints an object with schema/root/ollama/findings/verdict.
`to_json_obj`, `to_markdown` and `to_text` render it (JSON per ../shared/CONTRACT.md).
"""
from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from probes import diagnose
from probes.diagnose import Facts, g
from probes.errors import ToolError
from probes.facts import Finding, to_plain
from probes.host import Host

SCHEMA = 1
SANDBOX_LOG = "/var/log/ollama/ollama.log"
LOG_EXCERPT_LINES = 25


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    ollama: Optional[str] = None          # --ollama PATH (inspected path)
    assume_version: Optional[str] = None  # --assume-version
    log: Optional[str] = None             # --log FILE (a file of this machine)
    no_probe: bool = False                # --no-probe
    gpu_ids: Tuple[str, ...] = ()         # --gpu VENDOR:DEVICE
    probe_timeout: float = 20.0
    root_option: Optional[str] = None     # how fix commands name the system ("--root DIR"); None: derived


@dataclasses.dataclass(frozen=True)
class Verdict:
    gpu_ready: bool
    summary: str


@dataclasses.dataclass(frozen=True)
class Report:
    schema: int
    root: str
    ollama: Dict[str, Any]
    device: Any
    tree: Any
    backends: List[Dict[str, Any]]
    shims: List[Any]
    probe: Any
    log: Any
    findings: List[Finding]
    verdict: Verdict
    notes: List[str] = dataclasses.field(default_factory=list)  # probes that were unavailable or failed
    facts: Optional[Facts] = dataclasses.field(default=None, metadata={"json": False})
    log_lines: Tuple[str, ...] = dataclasses.field(default=(), metadata={"json": False})


# --------------------------------------------------------------------------------------
# Collecting


def _step(notes: List[str], what: str, fn: Callable[[], Any]) -> Any:
    """Run one probe; a missing module or a failure becomes a note and None."""
    try:
        return fn()
    except ImportError as exc:
        notes.append(f"{what}: not available ({exc})")
    except ToolError as exc:
        notes.append(f"{what}: {exc}")
    except Exception as exc:  # noqa: BLE001 - one failing probe must not sink the report
        notes.append(f"{what} failed: {type(exc).__name__}: {exc}")
    return None


def collect(host: Host, options: ReportOptions, notes: List[str]) -> Tuple[Facts, Any, Tuple[str, ...]]:
    """Every probe, in the order the diagnosis reads them. Returns (facts, tree, log lines)."""
    install = _step(notes, "ollama install", lambda: _find_install(host, options))
    user = str(g(install, "user", "") or "ollama")
    device = _step(notes, "device", lambda: _device(host, options, user))
    scan = _step(notes, "scanner", lambda: _scan(host, install)) if install is not None else None
    scan_running = _step(notes, "scanner (running environment)", lambda: _scan_running(host, install))
    scan_unfiltered = _step(notes, "scanner (without OLLAMA_LLM_LIBRARY)", lambda: _scan_unfiltered(host, install))
    ldcache = _step(notes, "loader cache", lambda: _ldcache(host))
    drivers = _step(notes, "shim check", lambda: _drivers(host, install, scan))
    tree = _step(notes, "tree", lambda: _tree(host, install, scan)) if install is not None else None
    probe = None
    if not options.no_probe:
        probe = _step(notes, "load probe", lambda: _probe(host, install, scan, options, user))
        measured = _probe_facts(probe)
        if measured and str(g(install, "era", "") or "").upper().startswith("D"):
            # Era D's driver filter needs the NVIDIA driver and the GPU's compute capability,
            # which only the load probe measures: model discovery again with them.
            scan = _step(notes, "scanner (with the load probe's driver facts)",
                         lambda: _scan(host, install, **measured)) or scan
    if options.log:  # a log the user named must be readable: a usage error otherwise (exit 2)
        lines, source = _log_lines(host, options)
    else:
        lines, source = _step(notes, "log", lambda: _log_lines(host, options)) or ((), None)
    log = _step(notes, "log parser", lambda: _parse_log(lines, source)) if lines else None
    root_option = options.root_option if options.root_option is not None else \
        ("" if host.live else f"--root {host.root}")
    root_option = root_option.strip() + " " if root_option.strip() else ""
    facts = Facts(host=host, device=device, install=install, scan=scan, scan_running=scan_running,
                  scan_unfiltered=scan_unfiltered,
                  drivers=drivers, ldcache=ldcache, probe=probe, log=log, service_user=user,
                  root_option=root_option)
    return facts, tree, tuple(lines)


def _find_install(host: Host, options: ReportOptions) -> Any:
    from probes import ollama
    return ollama.find_install(host, options)


def _device(host: Host, options: ReportOptions, user: str) -> Any:
    from probes import device
    return device.collect(host, gpu_ids=tuple(options.gpu_ids), service_user=user)


def _scan(host: Host, install: Any, **measured: Any) -> Any:
    from probes import scanner
    return scanner.analyze(host, install, **measured)


def _probe_facts(probe: Any) -> Dict[str, Any]:
    """What the load probe measured that the scanner's era-D driver filter uses."""
    out: Dict[str, Any] = {}
    nvml_version = str(g(g(probe, "nvml"), "driver_version", "") or "")
    if nvml_version.split(".")[0].isdigit():
        out["driver_major"] = int(nvml_version.split(".")[0])
    api = g(g(probe, "libcuda"), "driver_version")
    if isinstance(api, int) and api > 0:
        out["cuda_driver_api"] = api
    devices = g(g(probe, "libcuda"), "devices", ()) or ()
    compute = str(g(devices[0], "compute", "") or "") if devices else ""
    if compute.count(".") == 1 and all(p.isdigit() for p in compute.split(".")):
        out["compute"] = tuple(int(p) for p in compute.split("."))
    return out


def _scan_running(host: Host, install: Any) -> Any:
    """The scanner model under the running server's environment, when that differs."""
    if install is None or g(install, "running_env") is None:
        return None
    running, configured = dict(g(install, "running_env")), dict(g(install, "env", {}) or {})
    if all(running.get(n) == configured.get(n) for n in diagnose.GPU_VARS):
        return None  # only variables that do not change discovery differ
    from probes import scanner
    return scanner.analyze(host, install, which="running")


def _scan_unfiltered(host: Host, install: Any) -> Any:
    """The scanner model without OLLAMA_LLM_LIBRARY: what the filter keeps from being probed."""
    env = dict(g(install, "env", {}) or {})
    if install is None or not env.get("OLLAMA_LLM_LIBRARY"):
        return None
    from probes import scanner
    env.pop("OLLAMA_LLM_LIBRARY")
    return scanner.analyze(host, install, env=env)


def _ldcache(host: Host) -> Any:
    from probes import ldcache
    check = getattr(ldcache, "check_cache", None)
    return check(host) if check else ldcache.read_ld_cache(host)


def _drivers(host: Host, install: Any, scan: Any) -> Any:
    from probes import shim
    return shim.driver_libraries(host, install, scan)


def shim_objects(host: Host, drivers: Any) -> List[Dict[str, Any]]:
    """The contract's report.shims: one exports object per driver library the runner loads."""
    from probes import shim
    out = []
    for lib in diagnose._items(drivers, "libraries"):
        path = g(lib, "path")
        if not path:
            continue
        obj = shim.exports_report(host, path, against=g(lib, "kind"))
        obj.update({"soname_wanted": g(lib, "soname"), "via": g(lib, "via"), "realpath": g(lib, "realpath"),
                    "note": g(lib, "note")})
        out.append(obj)
    return out


def _tree(host: Host, install: Any, scan: Any) -> Any:
    """The library tree, each folder's dependencies resolved in the runner's environment."""
    from probes import libtree
    lib_dir = g(install, "lib_dir")
    if not lib_dir or not host.isdir(lib_dir):
        return None
    envs = {str(g(b, "dir")): dict(g(b, "env", {}) or {}) for b in diagnose.backends(scan) if g(b, "env")}
    base = dict(g(install, "env", {}) or {})
    base.setdefault("LD_LIBRARY_PATH", lib_dir)
    return libtree.scan_tree(host, lib_dir, base, folder_env=lambda folder: envs.get(folder, base))


def _probe(host: Host, install: Any, scan: Any, options: ReportOptions, user: str) -> Any:
    """The load probe, with the environment the scanner gives each CUDA backend's runner."""
    from probes import loadprobe
    base = dict(g(install, "env", {}) or {})
    jobs = []
    for b in diagnose.backends(scan):
        if not diagnose.is_cuda_backend(b) or not g(b, "dir"):
            continue
        env = dict(base)
        runner = dict(g(b, "env", {}) or {})
        if not runner:  # not probed (filtered out): the environment its runner would have
            dirs = [x for x in dict.fromkeys((g(install, "lib_dir"), str(g(b, "dir")))) if x]
            inherited = base.get("LD_LIBRARY_PATH")
            runner = {"LD_LIBRARY_PATH": ":".join(dirs + ([inherited] if inherited else [])),
                      "OLLAMA_LIBRARY_PATH": ":".join(dirs)}
        env.update(runner)
        path = str(g(b, "path", "") or posixpath.join(str(g(b, "dir")), diagnose.CUDA_BACKEND))
        jobs.append((path, env))
    if jobs:
        libcuda_env = jobs[0][1]
    else:
        lib_dir = g(install, "lib_dir")
        libcuda_env = dict(base, LD_LIBRARY_PATH=":".join(x for x in (lib_dir, base.get("LD_LIBRARY_PATH")) if x))
    return loadprobe.run_probe(host, libcuda_env=libcuda_env, backends=jobs, timeout=options.probe_timeout,
                               service_user=user)


def _log_lines(host: Host, options: ReportOptions) -> Tuple[Tuple[str, ...], Optional[str]]:
    """--log FILE (of this machine), else the service's own log (journal, or the sandbox's file)."""
    if options.log:
        from probes.logs import read_log_lines  # as `vgpu-tui logs FILE` reads it (.gz, journald JSON)
        try:
            return tuple(read_log_lines(options.log)), options.log
        except OSError as exc:
            raise ToolError(f"--log {options.log}: {exc.strerror or str(exc).replace(options.log + ': ', '')}")
    from probes import logsource
    source, lines = logsource.recent_service_lines(host)
    return tuple(lines or ()), source


def _parse_log(lines: Sequence[str], source: Optional[str]) -> Any:
    from probes import logs
    return logs.parse_lines(list(lines), source=source)


# --------------------------------------------------------------------------------------
# Assembling


def build_report(host: Host, options: Optional[ReportOptions] = None) -> Report:
    """Collect every fact, diagnose, and give the report (never raises for a missing probe)."""
    options = options or ReportOptions()
    notes: List[str] = []
    facts, tree, lines = collect(host, options, notes)
    try:
        findings = diagnose.diagnose(facts, notes)
    except Exception as exc:  # noqa: BLE001 - the facts are still worth printing
        notes.append(f"diagnosis failed: {type(exc).__name__}: {exc}")
        findings = []
    findings = sorted(findings, key=lambda x: diagnose.SEVERITY_ORDER[x.severity])
    return Report(
        schema=SCHEMA,
        root=host.root,
        ollama=ollama_section(facts),
        device=facts.device,
        tree=tree,
        backends=backend_rows(facts.scan),
        shims=_step(notes, "shim exports", lambda: shim_objects(host, facts.drivers)) or [],
        probe=facts.probe,
        log=facts.log,
        findings=findings,
        verdict=verdict(facts, findings),
        notes=notes,
        facts=facts,
        log_lines=lines,
    )


def ollama_section(f: Facts) -> Dict[str, Any]:
    """The contract's report.ollama (probes.ollama.summary) plus the running environment."""
    out: Dict[str, Any] = {"binary": None, "version": None, "era": None, "lib_dir": None, "service": None, "env": {}}
    if f.install is not None:
        try:
            from probes import ollama
            out.update(to_plain(ollama.summary(f.install)))
        except Exception:  # noqa: BLE001 - fall back to the fields every install has
            out.update({k: to_plain(g(f.install, k)) for k in ("binary", "version", "era", "lib_dir")})
            out["env"] = diagnose.env_configured(f)
    out["binary_as_found"] = g(f.install, "binary")
    out["version_source"] = g(f.install, "version_source")
    out["env_running"] = diagnose.env_running(f)
    return out


def backend_rows(scan: Any) -> List[Dict[str, Any]]:
    rows = []
    for b in diagnose.backends(scan):
        rows.append({
            "dir": g(b, "dir"), "name": g(b, "name"), "probed": bool(g(b, "probed", False)),
            "would_load": bool(g(b, "would_load", False)), "reason": g(b, "reason", ""),
            "cuda_backend": g(b, "path"),  # this folder's libggml-cuda.so, or null (CPU backends only)
        })
    return rows


def verdict(f: Facts, findings: Sequence[Finding]) -> Verdict:
    errs = diagnose.errors(findings)
    log_gpu = g(f.log, "gpu_used")
    loads = diagnose.cuda_loads(f.scan)
    if errs:
        more = f" (+{len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})" if len(errs) > 1 else ""
        state = "The GPU is in use, but" if log_gpu is True else "CPU only:"
        return Verdict(False, f"{state} {errs[0].title}{more}")
    if loads or log_gpu is True:
        where = [str(g(b, "dir")) for b in diagnose.backends(f.scan) if g(b, "would_load") and diagnose.is_cuda_backend(b)]
        return Verdict(True, "GPU ready: the CUDA backend loads" + (f" from {where[0]}" if where else "")
                       + (" and the log shows the GPU in use" if log_gpu is True else ""))
    if f.scan is None and f.log is None:
        return Verdict(False, "Unknown: neither Ollama's tree nor a log could be read")
    return Verdict(False, "CPU only: no CUDA backend would load, and no rule found why")


def to_json_obj(report: Report) -> Dict[str, Any]:
    return to_plain(report)


# --------------------------------------------------------------------------------------
# Text for a terminal: the answer first


def to_text(report: Report) -> List[str]:
    v = report.verdict
    lines = [v.summary]
    errs = [x for x in report.findings if x.severity == "error"]
    if errs:
        lines.append("Why: " + (errs[0].detail or errs[0].title))
        if errs[0].fix is not None:
            lines.append("Fix: " + _fix_text(errs[0]))
    lines.append("")
    o = report.ollama
    era_text = f"era {o.get('era') or '?'}" if o.get("version") else f"version unknown, modelled as era {o.get('era') or '?'}"
    lines.append(f"Ollama  {o.get('version') or '?'} ({era_text})  binary {o.get('binary') or '?'}"
                 f"  lib {o.get('lib_dir') or '?'}")
    if report.root != "/":
        lines.append(f"Root    {report.root}")
    lines.append("")
    for i, x in enumerate(report.findings, 1):
        lines.append(f"{i}. [{x.severity}] {x.category}: {x.title}  ({x.id})")
        for e in x.evidence[:6]:
            lines.append(f"     - {e}")
        if x.fix is not None:
            lines.append(f"     fix: {_fix_text(x)}")
    if not report.findings:
        lines.append("No problem found.")
    if report.backends:
        lines.append("")
        lines.append("Backend folders (what Ollama's discovery will do):")
        for b in report.backends:
            lines.append(f"  {backend_line(b)}")
    if report.notes:
        lines.append("")
        lines.extend("note: " + n for n in report.notes)
    return lines


def backend_line(b: Mapping[str, Any]) -> str:
    """"DIR: reason" — the scanner's reason is a whole sentence that already starts with
    "probed"/"not probed"; the state word is added only when it does not (never doubled)."""
    state = "would load" if b.get("would_load") else ("probed" if b.get("probed") else "not probed")
    reason = str(b.get("reason") or "")
    if not reason:
        return f"{b.get('dir')}: {state}"
    if reason.startswith(("probed", "not probed", state)):
        return f"{b.get('dir')}: {reason}"
    return f"{b.get('dir')}: {state} - {reason}"


def _fix_text(x: Finding) -> str:
    if x.fix is None:
        return ""
    if x.fix.command:
        return x.fix.command
    args = x.fix.args
    if not args.get("steps") and args.get("command") and args.get("hint"):  # as `device` prints it
        return f"({args['hint']}) {args['command']}"
    steps = list(args.get("steps") or []) or [str(args[k]) for k in ("command", "hint") if args.get(k)]
    return "; ".join(str(s) for s in steps)


# --------------------------------------------------------------------------------------
# Markdown for a GitHub issue


def _clip(text: str, width: int = 240) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    v = report.verdict
    o = report.ollama
    out = [
        "## vgpu-tui report",
        "",
        f"**{_cell(v.summary)}**",
        "",
        f"Ollama {o.get('version') or '?'} (era {o.get('era') or '?'}), binary `{o.get('binary') or '?'}`, "
        f"library folder `{o.get('lib_dir') or '?'}`.",
        "",
        "| Problem | Evidence | Fix |",
        "|---|---|---|",
    ]
    for x in report.findings:
        ev = "<br>".join(f"`{_cell(_clip(scrub(e)))}`" for e in x.evidence[:6])
        fix = f"`{_cell(_fix_text(x))}`" if x.fix is not None and x.fix.command else _cell(_fix_text(x))
        out.append(f"| **{x.severity}** `{x.category}`: {_cell(x.title)} | {ev} | {fix} |")
    if not report.findings:
        out.append("| none | | |")
    out.append("")
    out += _details("Device", _device_lines(report))
    out += _details("Library tree and backends", _tree_lines(report))
    out += _details("Shims (driver libraries the runner loads)", _shim_lines(report))
    out += _details("Load probe", _probe_lines(report))
    out += _details("Environment", _env_lines(report))
    out += _details("Log excerpt", _log_excerpt(report))
    if report.notes:
        out += _details("Notes", report.notes)
    return "\n".join(out) + "\n"


def _details(title: str, lines: Sequence[str]) -> List[str]:
    body = list(lines) or ["(nothing)"]
    return ["<details><summary>" + title + "</summary>", "", "```", *body, "```", "", "</details>", ""]


def _device_lines(r: Report) -> List[str]:
    d = r.device
    if d is None:
        return ["device probe unavailable"]
    out = []
    for p in diagnose._items(d, "pci"):
        if g(p, "gpu") or str(g(p, "vendor_id", "")) == "10de":
            out.append(f"{g(p, 'slot')}  {g(p, 'vendor_id')}:{g(p, 'device_id')}  {g(p, 'name', '') or ''}"
                       f"  driver={g(p, 'driver', 'none')}")
    for n in diagnose._items(d, "nodes"):
        out.append(f"{g(n, 'path')}  exists={g(n, 'exists', False)}  mode={g(n, 'mode', '?')}")
    drv = g(d, "driver")
    if drv is not None:
        out.append(f"driver version: {g(drv, 'version', '?')}")
    return out or ["no GPU on the PCI bus"]


def _tree_lines(r: Report) -> List[str]:
    out = [backend_line(b) for b in r.backends]
    host = r.facts.host if r.facts else None
    ld = r.ollama.get("lib_dir")
    if host is not None and ld:
        out += _listing(host, ld, 0)
    return out


def _listing(host: Host, folder: str, level: int) -> List[str]:
    out = []
    for name in host.listdir(folder)[:80]:
        path = posixpath.join(folder, name)
        pad = "  " * (level + 1)
        if host.islink(path):
            r = host.resolve(path)
            out.append(f"{pad}{name} -> {host.readlink(path)}" + ("" if r.ok else f"  [{r.status}]"))
        elif host.isdir(path):
            out.append(f"{pad}{name}/")
            if level < 2:
                out += _listing(host, path, level + 1)
        else:
            st = host.lstat(path)
            out.append(f"{pad}{name}  {st.st_size if st else '?'} B")
    return out


def _shim_lines(r: Report) -> List[str]:
    out = []
    for s in r.shims:
        out.append(f"{g(s, 'path')}: soname={g(s, 'soname')} class={g(s, 'elf_class')} machine={g(s, 'machine')}")
        missing = diagnose._items(s, "missing")
        if missing:
            out.append("  missing: " + " ".join(str(m) for m in missing[:40]))
    return out


def _probe_lines(r: Report) -> List[str]:
    p = r.probe
    if p is None:
        return ["not run (--no-probe or unavailable)"]
    out = []
    for key in ("libcuda", "nvml"):
        part = g(p, key)
        out.append(f"{key}: path={g(part, 'path')} loaded={g(part, 'loaded', False)} error={g(part, 'error')}"
                   f" init={g(part, 'init_result')} devices={g(part, 'device_count')}")
    for b in diagnose._items(p, "backends"):
        out.append(f"{g(b, 'path')}: loaded={g(b, 'loaded', False)} error={g(b, 'error')}")
    if g(p, "crashed"):
        out.append(f"crashed: {g(p, 'signal')}")
    if g(p, "timed_out"):
        out.append("timed out")
    return out


SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|API_?KEY|AUTH|CREDENTIAL|PRIVATE", re.I)
URL_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def scrub(text: str) -> str:
    """Text without the user:password of any URL in it."""
    return URL_USERINFO.sub(r"\1(redacted)@", text)


def redact(name: str, value: str) -> str:
    """A value safe to paste into a public issue: secrets hidden, URL passwords removed."""
    return "(redacted)" if SECRET_NAMES.search(name) else scrub(value)


def _env_lines(r: Report) -> List[str]:
    out = ["configured (the next start):"]
    out += [f"  {k}={redact(k, v)}" for k, v in sorted((r.ollama.get("env") or {}).items())]
    running = r.ollama.get("env_running")
    if running is not None:
        out.append("running server:")
        out += [f"  {k}={redact(k, v)}" for k, v in sorted(running.items())]
    return out


def _log_excerpt(r: Report) -> List[str]:
    """The lines that matter: those the findings cite and the discovery verdict lines."""
    if not r.log_lines:
        return ["no log"]
    keys = ("initial_count", "inference compute", "library=", "skipping", "OLLAMA_LLM_LIBRARY",
            "bootstrap discovery", "load_backend", "failure during", "error", "Listening on")
    wanted = [i for i, line in enumerate(r.log_lines) if any(k in line for k in keys)]
    picked = wanted[-LOG_EXCERPT_LINES:] if wanted else list(range(max(0, len(r.log_lines) - LOG_EXCERPT_LINES), len(r.log_lines)))
    return [f"{i + 1:>5}: {scrub(r.log_lines[i][:400])}" for i in picked]


def exit_status(report: Report) -> int:
    return 1 if diagnose.errors(report.findings) else 0


def options_from_args(args: Any, ctx: Any = None) -> ReportOptions:
    """ReportOptions from the CLI's common options."""
    ollama = getattr(args, "ollama", None)
    if ollama and ctx is not None:
        ollama = ctx.system_path(ollama)
    root_option = None
    if ctx is not None and hasattr(ctx, "command_root"):
        root_option = ctx.command_root()  # works when copy-pasted, even after a temporary demo
    elif ctx is not None and getattr(ctx, "demo_dir", None):
        root_option = f"--root {ctx.demo_dir}"
    return ReportOptions(
        ollama=ollama,
        assume_version=getattr(args, "assume_version", None),
        log=getattr(args, "log", None),
        no_probe=bool(getattr(args, "no_probe", False)),
        gpu_ids=tuple(getattr(args, "gpu", None) or ()),
        probe_timeout=float(getattr(args, "timeout", None) or 20.0),
        root_option=root_option,
    )
