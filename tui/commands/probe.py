"""`vgpu-tui probe`: load libcuda, NVML and each libggml-cuda.so in child processes.

The environment is the one Ollama gives its discovery runner: taken from the scanner
model (probes.ollama.find_install + probes.scanner.analyze) when those modules are there,
otherwise from LibOllamaPath-based defaults (era C: LD_LIBRARY_PATH=<lib>:<dir>:<inherited>,
OLLAMA_LIBRARY_PATH=<lib>:<dir> for every folder one level down holding a libggml-cuda.so).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from probes import loadprobe
from probes.host import Host
from tui.commands.device import findings_lines
from tui.output import emit_json, paint, print_lines

Backend = Tuple[str, Dict[str, str]]


def add_arguments(parser) -> None:
    parser.add_argument("--timeout", type=float, default=loadprobe.DEFAULT_TIMEOUT, metavar="S",
                        help="seconds each child may take before it is killed (default 20)")
    parser.add_argument("--as-user", metavar="USER", default=None,
                        help="run the children as USER (e.g. ollama) when running as root")
    parser.add_argument("--no-init", action="store_true",
                        help="only dlopen each libggml-cuda.so; do not call its ggml_backend_init")


def run(args, ctx) -> int:
    if args.timeout <= 0:
        from probes.errors import ToolError
        raise ToolError("--timeout must be a positive number of seconds")
    libcuda_env, backends, source, user, labels = environment(ctx.host, args)
    result = loadprobe.run_probe(ctx.host, libcuda_env=libcuda_env, backends=backends,
                                 timeout=args.timeout, as_user=args.as_user, service_user=user,
                                 init_backends=not args.no_init)
    if args.json:
        emit_json(result)
    else:
        print_lines(render(result, source, labels))
    return 1 if any(f.severity == "error" for f in result.findings) else 0


# ------------------------------------------------------------------ environment
def environment(host: Host, args) -> Tuple[Dict[str, str], List[Backend], str, str, Dict[str, str]]:
    """(libcuda env, [(libggml-cuda.so, env)], where it came from, service user,
    {backend path: the scanner's verdict on its folder})."""
    try:
        return _from_scanner(host, args)
    except Exception:  # noqa: BLE001 - the scanner is another area's; fall back, never fail
        pass
    return _defaults(host, args)


def _from_scanner(host: Host, args):
    """The runner environments of probes.scanner (the Ollama issue's scanner model)."""
    from probes import ollama, scanner
    install = ollama.find_install(host, args)
    report = scanner.analyze(host, install)
    server_env = dict(install.server_env("configured"))
    lib = report.lib_dir or install.lib_dir
    backends: List[Backend] = []
    labels: Dict[str, str] = {}
    probed: List[Dict[str, str]] = []
    for b in report.backends:
        path = _cuda_file(host, b)
        if path is None:
            continue
        # A folder discovery skips (e.g. OLLAMA_LLM_LIBRARY) is probed with the environment
        # its runner would have if it were not skipped: that says whether un-skipping helps.
        env = dict(b.env) if b.env else _runner_env(server_env, [lib] + ([b.dir] if b.dir != lib else []))
        backends.append((path, env))
        labels[path] = b.reason
        if b.probed:
            probed.append(env)
    libcuda_env = (probed or [e for _, e in backends] or [_runner_env(server_env, [lib] if lib else [])])[0]
    if not install.binary:
        return (_runner_env(server_env, [lib]) if lib else server_env), backends, \
            f"no Ollama found: environment from {install.env_source}", install.user or "ollama", labels
    source = (f"the scanner model of Ollama {report.version or '(version unknown)'} "
              f"(era {report.era}, LibOllamaPath {lib or '-'}, environment from {install.env_source})")
    return libcuda_env, backends, source, install.user or "ollama", labels


def _cuda_file(host: Host, b) -> Optional[str]:
    """The libggml-cuda.so ggml's loader would open in this folder, if any."""
    if b.dlopen is not None:
        return b.dlopen.path
    for f in b.files:
        if f.backend == "cuda" and f.role == "base-name":
            return f.path
    path = f"{str(b.dir).rstrip('/')}/libggml-cuda.so"  # a folder discovery never probes
    return path if b.dir and host.lstat(path) is not None else None


def lib_ollama_path(host: Host) -> Optional[str]:
    """LibOllamaPath by the era-C rule: <real exe dir>/../lib/ollama, then <exe dir>/lib/ollama."""
    exe = host.which("ollama") or next((p for p in ("/usr/local/bin/ollama", "/usr/bin/ollama")
                                        if host.exists(p)), None)
    if exe is None:
        return None
    r = host.resolve(exe)
    folder = (r.final if r.ok else exe).rsplit("/", 1)[0] or "/"
    parent = folder.rsplit("/", 1)[0] or "/"
    for candidate in (f"{parent.rstrip('/')}/lib/ollama", f"{folder.rstrip('/')}/lib/ollama"):
        if host.isdir(candidate):
            return candidate
    return None


def _defaults(host: Host, args):
    inherited = dict(host.env) if host.live else {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    lib = getattr(args, "ollama_lib", None) or lib_ollama_path(host)
    source = ("LibOllamaPath defaults (" + (lib or "no Ollama found") + "; "
              + ("the tool's own environment" if host.live else "an empty environment")
              + " stands in for the service's)")
    if lib is None:
        return inherited, [], source, "ollama", {}
    dirs = [f"{lib}/{n}" for n in host.listdir(lib)
            if host.isdir(f"{lib}/{n}") and any("ggml-" in m for m in host.listdir(f"{lib}/{n}"))]
    backends = [(f"{d}/libggml-cuda.so", _runner_env(inherited, [lib, d])) for d in dirs
                if host.lstat(f"{d}/libggml-cuda.so") is not None]
    if not dirs and host.lstat(f"{lib}/libggml-cuda.so") is not None:
        backends.append((f"{lib}/libggml-cuda.so", _runner_env(inherited, [lib])))
    libcuda_env = backends[0][1] if backends else _runner_env(inherited, [lib])
    return libcuda_env, backends, source, "ollama", {}


def _runner_env(inherited: Mapping[str, str], dirs: List[str]) -> Dict[str, str]:
    env = dict(inherited)
    old = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = ":".join(dirs + ([old] if old else []))
    env["OLLAMA_LIBRARY_PATH"] = ":".join(dirs)
    return env


# ---------------------------------------------------------------------- text
def _mib(n: Optional[int]) -> str:
    return "-" if n is None else f"{n // (1024 * 1024)} MiB"


def _status(ok: bool) -> str:
    return paint("loaded", "green") if ok else paint("NOT LOADED", "red")


def _library_lines(lib) -> List[str]:
    """The first line of a driver library's stage (which file was mapped), or its dlerror."""
    line = f"{lib.requested}  {_status(lib.loaded)}"
    if not lib.loaded:
        return [line, f"  dlerror: {lib.error}"]
    return [line + f"  {lib.path}" + (f" -> {lib.real_path}" if lib.real_path and lib.real_path != lib.path else "")]


def render(r: loadprobe.ProbeResult, source: str, labels: Optional[Mapping[str, str]] = None) -> List[str]:
    out = [paint("Load probe", "bold") + f"  (children ran as {r.run_as or ('root' if r.euid == 0 else f'uid {r.euid}')};"
           f" environment: {source})", ""]
    lc = r.libcuda
    out += _library_lines(lc)
    if lc.loaded:
        ver = lc.driver_version
        out.append(f"  cuInit = {lc.init_result_name} ({lc.init_result})"
                   + (f"; driver API {ver // 1000}.{ver % 1000 // 10} ({ver})" if ver is not None else "")
                   + (f"; {lc.device_count} device(s)" if lc.device_count is not None else ""))
        for d in lc.devices:
            out.append(f"  [{d.index}] {d.name}  compute {d.compute}  {d.uuid}  {_mib(d.total_memory)}"
                       + (f"  pci {d.pci_bus_id}" if d.pci_bus_id else ""))
        if lc.error and lc.init_result == 0:
            out.append(f"  {paint(lc.error, 'red')}")
    nv = r.nvml
    out += _library_lines(nv)
    if nv.loaded:
        out.append(f"  nvmlInit_v2 = {nv.init_result_name}; driver {nv.driver_version or '-'}; "
                   f"{nv.device_count if nv.device_count is not None else '-'} device(s)")
        for d in nv.devices:
            out.append(f"  [{d.index}] {d.name}  {d.uuid}  {_mib(d.total_memory)}")
        for uuid, code, name in nv.uuid_lookup:
            out.append(f"  by CUDA UUID {uuid}: {name}")
    out.append("")
    out.append(paint("Backends", "bold") + ("" if r.backends else "  none to probe (no libggml-cuda.so in an Ollama library folder)"))
    for b in r.backends:
        out.append(f"  {b.path}  {_status(b.loaded)}"
                   + (f", ggml_backend_init registers {b.devices} device(s)" if b.devices is not None else ""))
        if labels and labels.get(b.path):
            out.append(paint(f"    scanner: {labels[b.path]}", "dim"))
        if b.base is not None and not b.base.loaded:
            out.append(f"    libggml-base.so: {b.base.error}")
        if b.error:
            out.append(f"    {paint(b.error, 'red')}")
        out.append(f"    LD_LIBRARY_PATH={b.ld_library_path or ''}")
    for s in r.stages:
        if s.signal or s.timed_out:
            out.append(paint(f"  stage {s.name}: {'timed out' if s.timed_out else s.signal} in {s.last_step}", "red"))
    for note in r.notes:
        out.append(paint("note: ", "dim") + note)
    out.append("")
    out += findings_lines(r.findings)
    return out
