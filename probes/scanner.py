"""What the detected Ollama does with its library tree: the scanner model.

For the version's era (ollama-discovery.md §2, §3; era C = v0.12.4–v0.24 exact):

1. which folders discovery probes: the glob `LibOllamaPath/*/*ggml-*` (one level; a
   symlinked folder counts, a dangling one does not; file names only, so a dangling
   `libggml-cuda.so` still counts), the `""` fallback (LibOllamaPath alone), and the filters
   (`OLLAMA_LLM_LIBRARY` = folder name, JetPack, Vulkan);
2. each probe runner's environment: `LD_LIBRARY_PATH` = its dirs + the inherited value;
   `OLLAMA_LIBRARY_PATH` = its dirs, replacing the server's own;
3. in each runner, ggml's loader over each `OLLAMA_LIBRARY_PATH` entry (entries must contain
   `lib/ollama` or be the executable's folder): for every backend name, the variants
   `libggml-NAME-*.so` that are regular files (each dlopened to be scored), else the base
   name `libggml-NAME.so` if it exists (links followed: a dangling link is never opened);
4. whether each dlopen(RTLD_NOW) succeeds: the file is a loadable ELF of the runner's kind,
   every DT_NEEDED resolves in the runner's environment (probes.loader), every undefined
   driver symbol (cu*) is exported by the libcuda.so.1 it gets (or a preload), and it has
   `ggml_backend_init`.

Every folder of the tree gets a BackendVerdict whose `reason` is the one line `tree` shows
(a complete sentence starting "probed", "not probed", "given to", "not used"...).

Era B (v0.5.8–v0.12.3): the GPU is found in the server (libcuda by FindGPULibs' globs, links
followed, the legacy discovery symbols; else cudart, which needs libcuda.so.1 by name); the
model runner then gets DependencyPath (LibOllamaPath/cuda_<cudaVariant>) and one compatible
folder (exact RunnerName/OLLAMA_LLM_LIBRARY entry, else the family before the first "_"), with
the LD_LIBRARY_PATH/OLLAMA_LIBRARY_PATH layout of its sub-version (eras.RULES).
Era D (v0.30+): each probe is a llama-server (found by FindLlamaServer's candidates, started
by the service user, its DT_NEEDED resolved) scanning its own folder, plus GGML_BACKEND_PATH =
the first sorted libggml-*.so* of the GPU folder; filterOldCUDADriver for cuda_v12; Vulkan on by
default; the JetPack fallback (scanner_era_d.py).
Era A (v0.1.34–v0.5.7), reduced: cgo discovery, the AVX gate, the runner executables of
lib/ollama/runners (v0.5.2+); payload runners (≤ v0.5.1) are said to be invisible.

Finding ids this module emits (ScanReport.findings; probes.diagnose may emit the same id for
the same situation and should keep one of each id):
  llm-library-no-match       wrong-library-override  error    eras C/D: no folder is named OLLAMA_LLM_LIBRARY
  llama-server-missing       backend-lib-missing     error    era D: FindLlamaServer finds nothing (§8 #19)
  llama-server-cannot-start  backend-lib-missing     error    era D: not executable / not an ELF / DT_NEEDED missing
  cuda-driver-too-old        driver-too-old          error    era D: filterOldCUDADriver drops the device (§8 #10)
  cuda-driver-may-be-too-old driver-too-old          warning  era D: dropped if the GPU's compute capability < 7.0
  cuda-driver-unverified     driver-too-old          info     era D: no driver version from NVML; devices kept
  vulkan-instead-of-cuda     backend-lib-missing     warning  era D: CUDA fails, the default-on Vulkan folder wins
  cgo-discovery-no-libcuda   driver-lib-not-found    error    eras A/B: no usable libcuda/libcudart for cgo discovery
  avx-gate-disables-gpu      cpu-lacks-avx           error    era A ≤ v0.5.1: no AVX, GPU disabled
"""
from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from probes import eras
from probes.elf import read_elf
from probes.facts import Finding, Fix
from probes.host import Host

# Libraries every `ollama runner` process already has mapped (a cgo C++ binary): a backend
# needing them is satisfied whatever the root holds.
RUNNER_LOADED = ("linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6",
                 "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                 "libresolv.so.2")
DRIVER_SYMBOL = re.compile(r"^cu[A-Z]")
GPU_BACKENDS = ("cuda", "hip", "vulkan", "sycl", "musa", "cann", "opencl", "metal")
# ggml_backend_score bits of the x86 CPU variants (ggml-cpu/arch/x86/cpu-feats.cpp).
CPU_SCORE_BITS = {"FMA": 1, "F16C": 2, "SSE42": 4, "BMI2": 8, "AVX": 16, "AVX2": 32, "AVX_VNNI": 64,
                  "AVX512": 128, "AVX512_VBMI": 256, "AVX512_BF16": 512, "AVX512_VNNI": 1024,
                  "AMX_INT8": 2048}
TRUE_VALUES = ("1", "t", "T", "TRUE", "true", "True")
FALSE_VALUES = ("0", "f", "F", "FALSE", "false", "False")


@dataclasses.dataclass(frozen=True)
class LoadVerdict:
    """Would dlopen(path, RTLD_NOW|RTLD_LOCAL) in that runner succeed, and why not."""

    path: str
    ok: bool
    error: Optional[str]  # dlerror()-like text, the first failure glibc would meet
    missing_needed: Tuple[str, ...] = ()
    missing_symbols: Tuple[str, ...] = ()
    libcuda: Optional[str] = None  # the libcuda.so.1 this load binds to
    needed: Tuple[Tuple[str, Optional[str], Optional[str]], ...] = ()  # (name, found, via)
    skipped: Tuple[str, ...] = ()  # candidates the loader passed over (wrong class, ...)
    hint: Optional[str] = None  # what else the system has under that name


@dataclasses.dataclass(frozen=True)
class FileConsidered:
    """A libggml-* file ggml's loader looks at in one folder for one backend name."""

    path: str
    backend: str
    role: str  # "variant" (libggml-NAME-*.so, scored) or "base-name" (libggml-NAME.so)
    opened: bool  # ggml would dlopen it
    note: str
    load: Optional[LoadVerdict] = None


@dataclasses.dataclass(frozen=True)
class Probe:
    """One runner discovery starts (era C/D), or the model runner (era B)."""

    dirs: Tuple[str, ...]  # OLLAMA_LIBRARY_PATH as the server sets it
    env: Mapping[str, str]  # LD_LIBRARY_PATH, OLLAMA_LIBRARY_PATH (+ GGML_BACKEND_PATH in era D)
    searched: Tuple[str, ...]  # the folders the runner's ggml scans
    skipped: Tuple[Tuple[str, str], ...]  # (entry, why the runner ignores it)
    files: Tuple[FileConsidered, ...]
    loaded: Tuple[Tuple[str, str], ...]  # (backend, path) predicted to load
    kind: str = "discovery"
    failure: Optional[str] = None  # era D: the probe fails before any backend loads (its error)
    driver_filter: Any = None  # era D: scanner_era_d.DriverFilter of a cuda_v12 probe

    @property
    def gpu_loads(self) -> Tuple[Tuple[str, str], ...]:
        return tuple(x for x in self.loaded if x[0] in GPU_BACKENDS)

    @property
    def devices_kept(self) -> Tuple[Tuple[str, str], ...]:
        """GPU loads whose devices survive the probe's own filters (initial_count counts these)."""
        dropped = self.driver_filter is not None and self.driver_filter.dropped
        return tuple(x for x in self.gpu_loads if not (dropped and x[0] == "cuda"))


@dataclasses.dataclass(frozen=True)
class BackendVerdict:
    dir: str
    name: str
    probed: bool
    would_load: bool
    reason: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    files: Tuple[FileConsidered, ...] = ()
    dlopen: Optional[LoadVerdict] = None
    path: Optional[str] = None  # the libggml-cuda.so of this folder, when there is one
    if_probed: Optional[LoadVerdict] = None  # a folder discovery skips: its dlopen if it were probed

    def __post_init__(self) -> None:
        if self.path is None:
            p = self.dlopen.path if self.dlopen is not None else next(
                (f.path for f in self.files if f.backend == "cuda" and f.role != "variant"), None)
            object.__setattr__(self, "path", p)


@dataclasses.dataclass(frozen=True)
class ScanReport:
    version: Optional[str]
    era: str
    lib_dir: Optional[str]
    glob: str
    glob_matches: Tuple[str, ...]
    lib_dirs: Tuple[str, ...]  # discovery's libDirs ("" = LibOllamaPath alone)
    runner_started: bool
    probes: Tuple[Probe, ...]
    backends: Tuple[BackendVerdict, ...]
    gpu_backend_loads: int  # initial_count for one GPU that initialises
    predicted_library: str  # "cuda", "vulkan", ... or "cpu"
    notes: Tuple[str, ...] = ()
    findings: Tuple[Finding, ...] = ()
    # Second pass (era C/D): one validation runner per GPU backend load (per device), same
    # OLLAMA_LIBRARY_PATH plus GGML_CUDA_INIT=1 and CUDA_VISIBLE_DEVICES=<that device>.
    validation_runs: Tuple[Tuple[str, ...], ...] = ()

    def backend(self, name: str) -> Optional[BackendVerdict]:
        for b in self.backends:
            if b.name == name or b.dir == name:
                return b
        return None


# -- helpers ----------------------------------------------------------------------------
def _env_var(env: Mapping[str, str], name: str) -> str:
    """envconfig.Var: trimmed of spaces, then of quotes."""
    return (env.get(name) or "").strip().strip("\"'")


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    """envconfig.Bool: unset -> false; unparsable -> true."""
    v = _env_var(env, name)
    if not v:
        return False
    if v in FALSE_VALUES:
        return False
    return True


def _join(*parts: str) -> str:
    return posixpath.normpath(posixpath.join(*parts))


def mode_allows(st, uid: int, gids, bits: int) -> bool:
    """Whether the owner, group or other bits of `st` (whichever apply to the user uid/gids)
    grant all of `bits` (r=4, w=2, x=1), as the kernel judges them."""
    shift = 6 if st.st_uid == uid else 3 if st.st_gid in gids else 0
    return ((st.st_mode >> shift) & bits) == bits


def access_denied(host: Host, ids, path: str, need: int = 0o4) -> Optional[str]:
    """Why the service user (`ids` from _user_ids) cannot reach `path`: search (x) permission on
    every folder on the way (each prefix as it resolves), then `need` (r=4, r+x=5) on the path
    itself. None when it can, or when the user is unknown or root."""
    if ids is None or ids[0] == 0:
        return None
    uid, gids, user = ids

    def lacks(p: str, bits: int) -> Optional[str]:
        st = host.stat(p)
        if st is None:
            return None  # missing: another check says so
        if mode_allows(st, uid, gids, bits):
            return None
        return f"{p}: mode {st.st_mode & 0o777:04o}, owner uid {st.st_uid}: not {'listable' if bits == 5 else 'readable' if bits == 4 else 'searchable'} by user {user}"

    final = host.resolve(path).final
    for way in (path, final) if final != path else (path,):
        parts = [x for x in way.split("/") if x]
        for i in range(1, len(parts)):
            why = lacks("/" + "/".join(parts[:i]), 0o1)
            if why:
                return why
    return lacks(path, need) if need else None


def glob_libdirs(host: Host, lib_dir: str, ids=None) -> Tuple[List[str], List[str]]:
    """(matches, libDirs) of Go's filepath.Glob(LibOllamaPath/*/*ggml-*), run by the server as the
    service user (`ids`): a folder it cannot open is silently skipped, like Go's glob does."""
    matches: List[str] = []
    if not lib_dir or not host.isdir(lib_dir) or access_denied(host, ids, lib_dir, 0o5):
        return [], []
    for sub in host.listdir(lib_dir):  # sorted, like Go's glob
        d = f"{lib_dir.rstrip('/')}/{sub}"
        if not host.isdir(d):  # os.Stat: follows links, so dangling / files are skipped
            continue
        if access_denied(host, ids, d, 0o5):  # os.Open fails: glob ignores the error
            continue
        for name in host.listdir(d):
            if fnmatch.fnmatchcase(name, "*ggml-*"):
                matches.append(f"{d}/{name}")
    dirs: List[str] = []
    for m in matches:
        p = posixpath.dirname(m)
        if p not in dirs:
            dirs.append(p)
    return matches, dirs


def _user_ids(host: Host, user: Optional[str]):
    """(uid, gids, name) of the service user from the root's /etc/passwd and /etc/group."""
    if not user:
        return None
    uid = gid = None
    for line in (host.read_text("/etc/passwd") or "").splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[0] == user and f[2].isdigit():
            uid, gid = int(f[2]), int(f[3]) if f[3].isdigit() else None
    if uid is None:
        return None
    gids = {gid} if gid is not None else set()
    for line in (host.read_text("/etc/group") or "").splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[2].isdigit() and user in f[3].split(","):
            gids.add(int(f[2]))
    return uid, gids, user


def _runner_kind(host: Host, install) -> Tuple[int, int]:
    if getattr(install, "real_binary", None):
        info = read_elf(host, install.real_binary, symbols=False)
        if info.is_elf and info.machine_code is not None and info.elf_class:
            return info.machine_code, info.elf_class
    return 62, 64


def _loaded_in_runner(host: Host, install) -> Tuple[str, ...]:
    names = set(RUNNER_LOADED)
    if getattr(install, "real_binary", None):
        info = read_elf(host, install.real_binary, symbols=False)
        names.update(info.needed)
    return tuple(sorted(names))


def _split_list(value: Optional[str]) -> List[str]:
    """Go's filepath.SplitList: "" (or unset) gives no entry; empty entries are kept."""
    return value.split(":") if value else []


def _lexists(host: Host, path: str) -> bool:
    """lstat inside the root with the folder part resolved (a link itself counts)."""
    parent = host.resolve(posixpath.dirname(path))
    return parent.ok and host.lstat(f"{parent.final.rstrip('/')}/{posixpath.basename(path)}") is not None


def _bfs(node):
    queue = [node]
    while queue:
        n = queue.pop(0)
        yield n
        queue.extend(n.children)


class _Loader:
    """dlopen verdicts for one host, cached per (path, LD_LIBRARY_PATH)."""

    def __init__(self, host: Host, install, server_env: Mapping[str, str]):
        self.host = host
        self.kind = _runner_kind(host, install)
        self.runner_loaded = set(_loaded_in_runner(host, install))
        self.server_env = server_env
        self._cache: Dict[Tuple[str, str], LoadVerdict] = {}
        self.ids = _user_ids(host, getattr(install, "user", None))
        try:
            from probes.cpu import GGML_CPU_VARIANTS, collect
            feats = collect(host).features
            self.cpu_features = set(feats) if feats else None
            self.cpu_variants = dict(GGML_CPU_VARIANTS)
        except Exception:  # the CPU facts are a refinement, never a reason to fail
            self.cpu_features, self.cpu_variants = None, {}

    def cpu_score(self, fname: str) -> int:
        """ggml_backend_score of libggml-cpu-VARIANT.so on this CPU (1 when unknown)."""
        variant = fname[len("libggml-cpu-"):-3]
        needs = self.cpu_variants.get(variant)
        if self.cpu_features is None or needs is None:
            return 1
        if not all(n in self.cpu_features for n in needs):
            return 0
        return 1 + sum(CPU_SCORE_BITS.get(n, 0) for n in needs)

    def verdict(self, path: str, env: Mapping[str, str]) -> LoadVerdict:
        key = (path, env.get("LD_LIBRARY_PATH", ""))
        if key not in self._cache:
            self._cache[key] = self._verdict(path, env)
        return self._cache[key]

    def _unreadable(self, path: str) -> Optional[str]:
        """Why the service user cannot read the file (None when it can or the user is unknown)."""
        if self.ids is None:
            return None
        uid, gids, user = self.ids
        if uid == 0:
            return None
        on_way = access_denied(self.host, self.ids, path, 0)
        if on_way:
            return on_way
        st = self.host.stat(path)
        if st is None:
            return None
        if mode_allows(st, uid, gids, 0o4):
            return None
        return f"{path}: mode {st.st_mode & 0o777:04o}, not readable by user {user}"

    def _hint(self, name: str) -> Optional[str]:
        """What the cache holds near `name`: another SONAME, or the same one for another kind."""
        from probes.ldcache import ACCEPTED_FLAGS, read_ld_cache

        cache = read_ld_cache(self.host)
        stem = name.split(".so")[0] + ".so"
        accepted = ACCEPTED_FLAGS.get(self.kind, ())
        for e in cache.entries:
            if e.soname == name and e.flags not in accepted:
                return (f"ld.so.cache has {name} => {e.path}, but for another kind of binary "
                        f"({e.kind}{',' + e.arch if e.arch else ''}): wrong ELF class or machine")
        for e in cache.entries:
            if e.soname != name and (e.soname.startswith(stem) or posixpath.basename(e.path) == name):
                return f"ld.so.cache has {e.path} under the SONAME {e.soname}, not {name}"
        return None

    def _verdict(self, path: str, env: Mapping[str, str]) -> LoadVerdict:
        from probes.loader import resolve_tree

        host = self.host
        info = read_elf(host, path)
        if not info.is_elf:
            err = info.error or "not an ELF file"
            if "no such file" not in err:
                err = "invalid ELF header" if "ELF" in err or "magic" in err.lower() else err
            return LoadVerdict(path, False, f"{path}: {err}")
        if info.error:
            return LoadVerdict(path, False, f"{path}: {info.error}")
        if (info.machine_code, info.elf_class) != self.kind:
            what = f"ELFCLASS{info.elf_class}" if info.elf_class != self.kind[1] else f"machine {info.machine}"
            return LoadVerdict(path, False, f"{path}: wrong ELF class: {what}")
        if info.type != "DYN":
            return LoadVerdict(path, False, f"{path}: cannot dynamically load executable")
        denied = self._unreadable(path)
        if denied:
            return LoadVerdict(path, False, f"{path}: cannot open shared object file: Permission denied "
                                            f"({denied})")
        tree = resolve_tree(host, path, env)
        needed: List[Tuple[str, Optional[str], Optional[str]]] = []
        missing: List[str] = []
        first_error: Optional[str] = None
        skipped: Tuple[str, ...] = ()
        objects: List[str] = []
        libcuda: Optional[str] = None
        for node in _bfs(tree):
            if node is tree:
                continue
            if node.preload:
                if node.found:
                    objects.append(node.path)
                    if (node.soname or node.name).startswith("libcuda.so"):
                        libcuda = node.path
                continue
            satisfied = node.found or node.already_loaded or node.name in self.runner_loaded
            if node in tree.children:
                needed.append((node.name, node.path if node.found else None,
                               node.via if node.found else ("runner" if satisfied else None)))
            if node.found and not node.already_loaded:
                objects.append(node.path)
                if node.name == "libcuda.so.1" or node.soname == "libcuda.so.1":
                    libcuda = libcuda or node.path
            if not satisfied:
                missing.append(node.name)
                if first_error is None:
                    first_error = node.error or f"{node.name}: cannot open shared object file: No such file or directory"
                    skipped = tuple(node.skipped)
        if first_error is None:
            for n in _bfs(tree):
                if n is not tree and n.found and not n.already_loaded and not n.preload:
                    denied = self._unreadable(n.path)
                    if denied:
                        first_error = f"{n.name}: cannot open shared object file: Permission denied ({denied})"
                        missing.append(n.name)
                        skipped = ()
                        break
        if first_error:
            return LoadVerdict(path, False, first_error, tuple(missing), (), libcuda, tuple(needed),
                               skipped, self._hint(missing[0]))
        # Undefined driver symbols must be defined by an object in scope (RTLD_NOW binds all).
        exported: set = set()
        for obj in objects:
            e = read_elf(host, obj)
            exported.update(s.name for s in e.exports if s.default_version or s.version is None)
        want = [s.name for s in info.imports if DRIVER_SYMBOL.match(s.name) and s.bind != "WEAK"]
        lacking = tuple(sorted(set(n for n in want if n not in exported)))
        if lacking:
            return LoadVerdict(path, False, f"{path}: undefined symbol: {lacking[0]}", (), lacking,
                               libcuda, tuple(needed))
        names = {s.name for s in info.exports}
        if "ggml_backend_init" not in names:
            return LoadVerdict(path, False, f"{path}: no ggml_backend_init (not a ggml backend)", (), (),
                               libcuda, tuple(needed))
        return LoadVerdict(path, True, None, (), (), libcuda, tuple(needed))


ABORT_NOTE = ("a symlink loop: ggml's directory scan throws (status: Too many levels of symbolic links) "
              "and the runner aborts")


def _scan_folder(host: Host, loader: _Loader, folder: str, env: Mapping[str, str],
                 names: Sequence[str]) -> Tuple[List[FileConsidered], List[Tuple[str, str]]]:
    """ggml_backend_load_best(name, silent, folder) for every name: files and loads."""
    files: List[FileConsidered] = []
    loaded: List[Tuple[str, str]] = []
    if not host.isdir(folder):
        return files, loaded
    # directory_iterator with skip_permission_denied: an unlistable folder yields nothing; the
    # base-name fallback's fs::exists needs only search permission on the way.
    entries = [] if access_denied(host, loader.ids, folder, 0o5) else host.listdir(folder)
    searchable = not access_denied(host, loader.ids, folder, 0o1)
    # The variant scan calls directory_entry::is_regular_file() on EVERY entry before it looks at
    # the name; for a symlink that is a stat(), and libstdc++ throws filesystem_error on ELOOP.
    # Nothing in ggml catches it: std::terminate, the runner aborts (SIGABRT) and reports nothing.
    for fname in entries:
        p = f"{folder}/{fname}"
        if host.islink(p) and host.resolve(p).status == "loop":
            files.append(FileConsidered(p, names[0] if names else "", "abort", False, ABORT_NOTE))
            return files, []
    for name in names:
        prefix = f"libggml-{name}-"
        best, best_score = None, 0
        for fname in entries:
            p = f"{folder}/{fname}"
            if not (fname.startswith(prefix) and posixpath.splitext(fname)[1] == ".so"):
                continue
            if not host.isfile(p):
                files.append(FileConsidered(p, name, "variant", False,
                                            "not a regular file after following links: skipped"))
                continue
            v = loader.verdict(p, env)
            e = read_elf(host, p) if v.ok else None
            has_score = bool(e and any(s.name == "ggml_backend_score" for s in e.exports))
            note = ("loads; scored" if has_score else "loads but has no ggml_backend_score: skipped") \
                if v.ok else f"dlopen fails: {v.error}"
            score = loader.cpu_score(fname) if (name == "cpu" and v.ok and has_score) else int(v.ok and has_score)
            if name == "cpu" and v.ok and has_score:
                note = f"loads; score {score}" + (" (this CPU lacks a feature it needs)" if not score else "")
            files.append(FileConsidered(p, name, "variant", True, note, v))
            if score > best_score:
                best, best_score = p, score  # the highest score wins, ties keep the first
        if best is not None:
            loaded.append((name, best))
            continue
        base = f"{folder}/libggml-{name}.so"
        if not searchable or not _lexists(host, base):
            if name in GPU_BACKENDS:
                near = [f for f in entries if f.startswith(f"libggml-{name}") and f not in
                        [posixpath.basename(x.path) for x in files]]
                for f in near:
                    files.append(FileConsidered(f"{folder}/{f}", name, "ignored", False,
                                                f"ggml only loads the exact name libggml-{name}.so"))
            continue
        if not host.exists(base):
            r = host.resolve(base)
            what = "symlink loop" if r.status == "loop" else f"dangling symlink (→ {r.final})"
            files.append(FileConsidered(base, name, "base-name", False,
                                        f"{what}: ggml's existence check fails, never opened"))
            continue
        v = loader.verdict(base, env)
        files.append(FileConsidered(base, name, "base-name", True,
                                    "loads" if v.ok else f"dlopen fails: {v.error}", v))
        if v.ok:
            loaded.append((name, base))
    return files, loaded


def _run_probe(host: Host, loader: _Loader, install, dirs: Sequence[str], server_env: Mapping[str, str],
               version: Optional[str], kind: str = "discovery", ld_dirs: Optional[Sequence[str]] = None,
               ld_tail: Sequence[str] = (), ld_exact: bool = False, set_olp: bool = True) -> Probe:
    """A runner started with OLLAMA_LIBRARY_PATH=dirs (era B/C semantics). `ld_exact`: ld_dirs is
    the whole LD_LIBRARY_PATH (era B layouts); `set_olp=False`: the server sets no
    OLLAMA_LIBRARY_PATH (before v0.6.7; the runner searches LD_LIBRARY_PATH)."""
    env = dict(server_env)
    inherited = [] if ld_exact else _split_list(server_env.get("LD_LIBRARY_PATH"))
    ld = list(ld_dirs if ld_dirs is not None else dirs) + inherited + list(ld_tail)
    env["LD_LIBRARY_PATH"] = ":".join(ld)
    if set_olp:
        env["OLLAMA_LIBRARY_PATH"] = ":".join(dirs)
    exe_dir = install.exe_dir or ""
    search_env = eras.rule("runner_search_env", version, "OLLAMA_LIBRARY_PATH")
    entries = [p for p in env.get(search_env, "").split(":")]
    searched: List[str] = []
    skipped: List[Tuple[str, str]] = []
    filter_on = eras.rule("runner_skips_non_lib_ollama", version, False)
    for p in entries:
        if not p:
            continue
        a = posixpath.normpath(p)  # filepath.Abs: no symlink resolution
        if filter_on and a != exe_dir and "lib/ollama" not in a:
            skipped.append((p, "skipping path which is not part of ollama"))
            continue
        if a not in searched:
            searched.append(a)
    names = eras.rule("ggml_backend_names", version) or ("cuda", "cpu")
    files: List[FileConsidered] = []
    loaded: List[Tuple[str, str]] = []
    failure: Optional[str] = None
    for folder in searched:
        f, l = _scan_folder(host, loader, folder, env, names)
        files += f
        loaded += l
        abort = next((x for x in f if x.role == "abort"), None)
        if abort is not None:  # the process dies: whatever loaded before is never reported
            failure, loaded = f"the runner aborts: {abort.path} is {abort.note}", []
            break
    shown = {"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"]}
    if set_olp:
        shown["OLLAMA_LIBRARY_PATH"] = env["OLLAMA_LIBRARY_PATH"]
    return Probe(tuple(dirs), shown, tuple(searched), tuple(skipped), tuple(files), tuple(loaded), kind,
                 failure=failure)


# -- era D: llama-server -------------------------------------------------------------------
def _run_probe_d(host: Host, loader: _Loader, lib_dir: str, dir_: str, server_env: Mapping[str, str],
                 version: Optional[str], server, driver_major: Optional[int] = None,
                 compute: Optional[Tuple[int, int]] = None) -> Probe:
    """One llama-server discovery probe with gpuLibs = [LibOllamaPath, dir] (or [LibOllamaPath]):
    llama-server scans its own folder (ggml_backend_load_all, /proc/self/exe's folder), then
    loads GGML_BACKEND_PATH non-silently; a CUDA device found through cuda_v12 then goes through
    filterOldCUDADriver."""
    from probes import scanner_era_d as d

    dirs = (lib_dir,) + ((dir_,) if dir_ else ())
    ld, backend_path = d.llama_server_env(host, version, server, lib_dir, dirs, server_env)
    env = dict(server_env)
    env["LD_LIBRARY_PATH"] = ":".join(ld)
    shown = {"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"]}
    if backend_path:
        env["GGML_BACKEND_PATH"] = shown["GGML_BACKEND_PATH"] = backend_path
    error = d.start_error(host, server, env, RUNNER_LOADED)
    if error:
        what = server.path or "llama-server"
        return Probe(dirs, shown, (), ((what, error),), (), (), "llama-server", failure=error)
    names = eras.rule("ggml_backend_names", version) or ("cuda", "cpu")
    scan_dir = server.scan_dir or lib_dir
    files, loaded = _scan_folder(host, loader, scan_dir, env, names)
    if backend_path:
        v = loader.verdict(backend_path, env)
        m = re.match(r"libggml-([A-Za-z0-9]+)", posixpath.basename(backend_path))
        name = m.group(1).lower() if m else "unknown"
        files.append(FileConsidered(backend_path, name, "GGML_BACKEND_PATH", True,
                                    "loads" if v.ok else f"load_backend: failed to load {backend_path}: {v.error}", v))
        if v.ok:
            loaded.append((name, backend_path))
    filt = None
    if any(b == "cuda" for b, _ in loaded):
        filt = d.cuda_driver_filter(host, version, dirs, env, driver_major, compute)
    return Probe(dirs, shown, (scan_dir,), (), tuple(files), tuple(loaded), "llama-server",
                 driver_filter=filt)


# -- analysis ----------------------------------------------------------------------------------
def _folders(host: Host, lib_dir: str) -> List[str]:
    """The tree's folders that get a verdict line: LibOllamaPath and its subfolders."""
    out = [lib_dir]
    for sub in host.listdir(lib_dir):
        p = f"{lib_dir.rstrip('/')}/{sub}"
        if host.isdir(p) or (_lexists(host, p) and not host.exists(p)):
            out.append(p)
    return out


def _cuda_files(host: Host, folder: str) -> List[str]:
    return [f for f in host.listdir(folder) if f.startswith("libggml-cuda")]


def _deep_cuda(host: Host, folder: str) -> Optional[str]:
    for sub in host.listdir(folder):
        p = f"{folder}/{sub}"
        if host.isdir(p) and host.exists(f"{p}/libggml-cuda.so"):
            return p
    return None


def analyze(host: Host, install, env: Optional[Mapping[str, str]] = None,
            which: str = "configured", *, driver_major: Optional[int] = None,
            compute: Optional[Tuple[int, int]] = None, cuda_driver_api: Optional[int] = None) -> ScanReport:
    """The scanner model for this install. `env` overrides the server environment;
    otherwise `install.server_env(which)` ("configured": the next start; "running": now).
    `driver_major` (NVML's driver major), `cuda_driver_api` (cuDriverGetVersion, e.g. 12080) and
    `compute` (the GPU's compute capability, (9, 0)) are run-time facts, e.g. from the load
    probe; era D's driver filter and era B's cudaVariant use them when known."""
    version = install.version
    era = eras.era_for(version) or eras.era_for(eras.DEFAULT_ERA_VERSION)
    server_env = dict(env if env is not None else install.server_env(which))
    lib_dir = install.lib_dir or ""
    loader = _Loader(host, install, server_env)
    notes: List[str] = []
    if install.version is None:
        notes.append(f"version unknown: the rules of v{eras.DEFAULT_ERA_VERSION} are used")
    if era.letter == "A0":
        return ScanReport(version, era.letter, lib_dir, "", (), (), False, (), (), 0, "unknown",
                          (f"{era.label}: not modelled (NVML-first discovery, runners extracted from "
                           "the binary at run time)",))
    if era.letter == "A":
        return _analyze_a(host, install, loader, server_env, version, era, lib_dir, notes,
                          cuda_driver_api=cuda_driver_api, compute=compute)
    if era.letter == "B":
        return _analyze_b(host, install, loader, server_env, version, era, lib_dir, notes,
                          cuda_driver_api=cuda_driver_api, compute=compute)
    return _analyze_cd(host, install, loader, server_env, version, era, lib_dir, notes,
                       driver_major=driver_major, compute=compute)


def cuda_jetpack(host: Host, env: Mapping[str, str], arm64: bool) -> str:
    """discover/gpu.go cudaJetpack: arm64 only; JETSON_JETPACK's major, else /etc/nv_tegra_release."""
    if not arm64:
        return ""
    tegra = env.get("JETSON_JETPACK", "")
    if tegra:
        return "jetpack" + tegra.split(".")[0]
    m = re.search(r" R(\d+) ", host.read_text("/etc/nv_tegra_release") or "")
    return {"35": "jetpack5", "36": "jetpack6"}.get(m.group(1), "") if m else ""


def _filters(env: Mapping[str, str], version: Optional[str], d_era: bool, jetpack: str = ""):
    requested = _env_var(env, "OLLAMA_LLM_LIBRARY")
    if requested.startswith("mlx_") and eras.rule("llm_library_mlx_exempt", version, False):
        requested = ""
    vulkan_rule = eras.rule("vulkan", version)
    vulkan_on = (_env_var(env, "OLLAMA_VULKAN") not in FALSE_VALUES) if d_era else _env_bool(env, "OLLAMA_VULKAN")

    def skip(dir_: str) -> Optional[str]:
        base = posixpath.basename(dir_)
        if requested and base != requested:
            return f"OLLAMA_LLM_LIBRARY={requested} does not match this folder's name ({base})"
        if jetpack and base != "cuda_" + jetpack:
            return f"a JetPack ({jetpack}) was detected: only cuda_{jetpack} is probed"
        if not jetpack and "cuda_jetpack" in base and eras.rule("jetpack_dir_needs_detection", version):
            return "a JetPack folder and no JetPack was detected"
        if vulkan_rule and "vulkan" in base and not vulkan_on:
            return ("a Vulkan folder and OLLAMA_VULKAN is not set (experimental Vulkan support disabled)"
                    if vulkan_rule == "opt-in" else "a Vulkan folder and OLLAMA_VULKAN=0")
        return None
    return requested, skip


def _analyze_cd(host, install, loader, server_env, version, era, lib_dir, notes, *,
                driver_major: Optional[int] = None, compute: Optional[Tuple[int, int]] = None) -> ScanReport:
    d_era = era.letter == "D"
    glob = f"{lib_dir}/*/*ggml-*"
    matches, dirs = glob_libdirs(host, lib_dir, loader.ids)
    lib_dirs = list(dirs) or [""]
    jetpack = cuda_jetpack(host, server_env, loader.kind[0] == 183)
    if jetpack and f"{lib_dir}/cuda_{jetpack}" not in dirs and eras.rule("jetpack_missing_dir_fallback", version):
        notes.append(f"JetPack {jetpack} detected but {lib_dir}/cuda_{jetpack} is not installed: "
                     "Ollama falls back to the standard CUDA folders")
        jetpack = ""
    requested, skip = _filters(server_env, version, d_era, jetpack)
    probes: Dict[str, Probe] = {}
    skipped: Dict[str, str] = {}
    server = None
    if d_era and lib_dir:
        from probes import scanner_era_d
        from probes.ollama import _machine_arch

        cwd = getattr(getattr(install, "service", None), "working_directory", None) or "/"
        server = scanner_era_d.find_llama_server(
            host, version, lib_dir, install.exe_dir or "", cwd, loader.ids, _machine_arch(host))
    if lib_dir:
        for d in lib_dirs:
            why = skip(d) if d else None
            if why:
                skipped[d] = why
                continue
            if d_era:
                probes[d] = _run_probe_d(host, loader, lib_dir, d, server_env, version, server,
                                         driver_major, compute)
            else:
                dirs_ = [lib_dir, d] if d else [lib_dir]
                ld = None
                if eras.rule("probe_ld_path", version) == "libollama+dirs+rocm+inherited":
                    ld = [lib_dir] + dirs_ + ([f"{lib_dir}/rocm"] if host.isdir(f"{lib_dir}/rocm") else [])
                probes[d] = _run_probe(host, loader, install, dirs_, server_env, version, ld_dirs=ld)
    runner_started = bool(probes)
    gpu_loads = sum(len(p.devices_kept) for p in probes.values())
    libs = sorted({b for p in probes.values() for b, _ in p.devices_kept})
    predicted = ("cuda" if "cuda" in libs else libs[0]) if libs else "cpu"

    backends: List[BackendVerdict] = []
    findings: List[Finding] = []
    if lib_dir and host.isdir(lib_dir):
        for folder in _folders(host, lib_dir):
            v = _verdict_cd(host, folder, lib_dir, probes, skipped, dirs, requested, runner_started, d_era,
                            loader.ids)
            if not v.probed and folder != lib_dir and not d_era and host.exists(f"{folder}/libggml-cuda.so"):
                # What would happen if the filter let it through (e.g. after unsetting the variable).
                env_if = dict(server_env)
                env_if["LD_LIBRARY_PATH"] = ":".join([lib_dir, folder] + _split_list(server_env.get("LD_LIBRARY_PATH")))
                v = dataclasses.replace(v, if_probed=loader.verdict(f"{folder}/libggml-cuda.so", env_if))
            backends.append(v)
    elif lib_dir:
        notes.append(f"{lib_dir} does not exist: discovery probes it alone and finds no backend")
    if requested and not runner_started and skipped:
        findings.append(Finding(
            "llm-library-no-match", "wrong-library-override", "error",
            f"OLLAMA_LLM_LIBRARY={requested} matches no backend folder: no GPU runner is started",
            f"Ollama {version or ''} probes only folders of {lib_dir} named exactly {requested}; "
            f"the folders are {', '.join(posixpath.basename(d) for d in dirs)}. Discovery starts no "
            "runner, libggml-cuda.so is never opened and the server uses the CPU (initial_count=0).",
            tuple(f"{d}: skipped ({skipped[d]})" for d in skipped),
            Fix("unset", {"name": "OLLAMA_LLM_LIBRARY"}, "vgpu-tui fix unset OLLAMA_LLM_LIBRARY")))
    user_olp = server_env.get("OLLAMA_LIBRARY_PATH")
    if user_olp and runner_started and not d_era:
        notes.append(f"OLLAMA_LIBRARY_PATH={user_olp} in the server's environment has no effect: "
                     "the server replaces it for every runner")
    if d_era:
        findings += _findings_d(host, version, lib_dir, server, probes, predicted, notes)
        allowed = eras.rule("igpu_filter", version)
        igpu = _env_var(server_env, "OLLAMA_IGPU_ENABLE")
        if allowed and igpu and igpu in FALSE_VALUES:
            notes.append(f"OLLAMA_IGPU_ENABLE={igpu}: integrated GPUs of every library are dropped, "
                         "CUDA ones (Jetson) included")
        elif allowed and not igpu and any("vulkan" in posixpath.basename(p.dirs[-1]) for p in probes.values()):
            notes.append("an integrated GPU found through Vulkan is dropped (INFO `dropping integrated GPU`) "
                         f"unless OLLAMA_IGPU_ENABLE=1; {'/'.join(allowed)} devices are kept")
    validation = tuple(p.dirs for p in probes.values() for b, _ in p.devices_kept if b in ("cuda", "hip"))
    return ScanReport(version, era.letter, lib_dir, glob, tuple(matches), tuple(lib_dirs), runner_started,
                      tuple(probes.values()), tuple(backends), gpu_loads, predicted, tuple(notes),
                      tuple(findings), validation_runs=validation)


def _findings_d(host, version, lib_dir, server, probes, predicted, notes) -> List[Finding]:
    """Era D findings: llama-server missing or not startable (§8 #19), filterOldCUDADriver
    (§8 #10), Vulkan used instead of CUDA (§8 #21); RPATH notes."""
    out: List[Finding] = []
    failmsg = eras.rule("probe_failure_message", version, "failure during llama-server GPU discovery")
    failure = next((p.failure for p in probes.values() if p.failure), None)
    if server is not None and failure and all(p.failure for p in probes.values()):
        missing = server.path is None
        out.append(Finding(
            "llama-server-missing" if missing else "llama-server-cannot-start", "backend-lib-missing", "error",
            (f"llama-server is missing: Ollama {version} cannot probe any GPU" if missing else
             f"{server.path} cannot be started: Ollama {version} cannot probe any GPU"),
            (f"Ollama v0.30+ discovers GPUs by running llama-server from its library folder; every probe "
             f"fails, the server logs INFO `{failmsg}` and uses the CPU."),
            (f"{failmsg} error=\"{failure}\"",),
            Fix("manual", {"hint": f"restore {lib_dir}/llama-server from the release tarball with mode 0755 "
                                   "(and a mount without noexec)"})))
    for p in probes.values():
        f = p.driver_filter
        if f is None or not f.applies:
            continue
        ev = tuple(x for x in (f"driver: {f.driver_source}", f"runtime: {f.runtime_source}" if f.runtime else "",
                               f"WARN {f.log}" if f.log else "") if x)
        if f.dropped:
            out.append(Finding(
                "cuda-driver-too-old", "driver-too-old", "error",
                f"Ollama {version} drops the GPU found through {p.dirs[-1]}: the NVIDIA driver is too old",
                f.reason + ". Ollama's filterOldCUDADriver removes the device before initial_count.", ev,
                Fix("manual", {"hint": "make the driver (or the shim's nvmlSystemGetDriverVersion) report "
                                       "550 or newer, or remove the CUDA 12.4+ runtime's need for it"})))
        elif f.maybe_dropped:
            out.append(Finding("cuda-driver-may-be-too-old", "driver-too-old", "warning",
                               "The GPU may be dropped for an old NVIDIA driver", f.reason, ev, None))
        elif f.log:
            out.append(Finding("cuda-driver-unverified", "driver-too-old", "info",
                               "Ollama cannot verify the NVIDIA driver version (devices kept)", f.reason, ev, None))
    if predicted == "vulkan" and any(posixpath.basename(d).startswith("cuda") for p in probes.values() for d in p.dirs):
        out.append(Finding(
            "vulkan-instead-of-cuda", "backend-lib-missing", "warning",
            "Ollama will use Vulkan, not CUDA: the CUDA backend does not work",
            "Vulkan folders are probed by default from v0.30; CUDA discovery fails, so the Vulkan device is used.",
            tuple(f"{fc.path}: {fc.note}" for p in probes.values() for fc in p.files
                  if fc.backend == "cuda") or ("no libggml-cuda.so loads in any probe",),
            Fix("env", {"name": "OLLAMA_VULKAN", "value": "0"}, "vgpu-tui fix env OLLAMA_VULKAN=0")))
    if eras.rule("ggml_rpath_origin", version):
        for p in probes.values():
            for fc in p.files:
                if fc.backend == "cuda" and fc.opened and fc.load is not None and fc.load.missing_needed:
                    info = read_elf(host, fc.path, symbols=False)
                    if not any("$ORIGIN" in r or "${ORIGIN}" in r for r in info.rpath + info.runpath):
                        notes.append(f"{fc.path} has no RPATH/RUNPATH $ORIGIN (a stock v0.30+ build has one): "
                                     "its runtime libraries are found only through LD_LIBRARY_PATH and the cache")
                        break
    return out


def _short(host: Host, lib_dir: str, path: str) -> str:
    return path[len(lib_dir.rstrip("/")) + 1:] if path.startswith(lib_dir.rstrip("/") + "/") else path


def _verdict_cd(host, folder, lib_dir, probes, skipped, dirs, requested, runner_started, d_era,
                ids=None) -> BackendVerdict:
    top = folder == lib_dir
    name = posixpath.basename(folder)
    cuda = _cuda_files(host, folder)
    if top:
        mine = [p for p in probes.values()]
        env = dict(mine[0].env) if mine else {}
        files = tuple(f for p in mine for f in p.files if posixpath.dirname(f.path) == folder and f.backend == "cuda")
        if not mine:
            why = ("no runner is started" + (f" (OLLAMA_LLM_LIBRARY={requested} matches no folder)"
                                             if requested else ""))
            if "libggml-cuda.so" in cuda:
                why += ", so libggml-cuda.so here is never opened"
            return BackendVerdict(folder, name, False, False, f"not probed: {why}", {}, files,
                                  path=f"{folder}/libggml-cuda.so" if "libggml-cuda.so" in cuda else None)
        loads = [p for p in mine if any(b == "cuda" and posixpath.dirname(x) == folder for b, x in p.loaded)]
        alone = list(probes) == [""]
        if d_era:
            failed = next((p.failure for p in mine if p.failure), None)
            mine = [p for p in mine if p.searched]
            if not mine:
                return BackendVerdict(folder, name, False, False,
                                      f"not scanned: every discovery probe fails ({failed})")
        how = ("scanned by llama-server as its own folder" if d_era else
               "probed alone (no subfolder matched the glob */*ggml-*)") if alone else \
            (f"{'scanned as llama-server’s own folder by' if d_era else 'probed as the first OLLAMA_LIBRARY_PATH entry of'}"
             f" each runner ({len(mine)} runner{'s' if len(mine) > 1 else ''})")
        aborted = None if d_era else next((p.failure for p in mine if p.failure), None)
        if aborted:
            return BackendVerdict(folder, name, True, False, f"{how}: {aborted}", env, files)
        if not cuda:
            return BackendVerdict(folder, name, True, False, f"{how}: no libggml-cuda.so here (CPU backends only)",
                                  env, files)
        base = next((f for f in files if f.role == "base-name"), None)
        if loads:
            twice = " — and again from its own folder: the backend loads twice (a duplicate Ollama drops)" \
                if any(len(p.gpu_loads) > 1 for p in mine) else ""
            return BackendVerdict(folder, name, True, True,
                                  f"{how}: libggml-cuda.so here loads (ggml's base-name fallback){twice}",
                                  env, files, base.load if base else None)
        if base is None:
            odd = ", ".join(cuda)
            return BackendVerdict(folder, name, True, False,
                                  f"{how}: {odd} is not opened: ggml loads only the exact name libggml-cuda.so",
                                  env, files)
        if not base.opened:
            return BackendVerdict(folder, name, True, False, f"{how}: libggml-cuda.so is a {base.note}", env, files)
        return BackendVerdict(folder, name, True, False,
                              f"{how}: libggml-cuda.so is opened but {_fail_text(base.load, env)}",
                              env, files, base.load)
    # a subfolder
    if folder in probes:
        p = probes[folder]
        files = tuple(f for f in p.files if posixpath.dirname(f.path) == folder and f.backend in GPU_BACKENDS)
        olp = p.env.get("OLLAMA_LIBRARY_PATH") or p.env.get("GGML_BACKEND_PATH", "")
        how = f"probed (OLLAMA_LIBRARY_PATH={olp})" if not d_era else f"probed by llama-server ({olp or 'no GGML_BACKEND_PATH'})"
        if p.skipped and d_era and not p.searched:
            return BackendVerdict(folder, name, True, False, f"{how}, but {p.skipped[0][1]}", dict(p.env), files)
        if p.failure and not d_era:
            return BackendVerdict(folder, name, True, False, f"{how}, but {p.failure}", dict(p.env), files)
        if not d_era and any(posixpath.normpath(x) == folder for x, _ in p.skipped):
            # ggml.go OnceLoad: an entry equal to neither the binary's folder nor containing lib/ollama
            return BackendVerdict(folder, name, True, False,
                                  f"{how}, but the runner skips it: its path contains no lib/ollama and is not "
                                  "the binary's folder (DEBUG \"skipping path which is not part of ollama\")",
                                  dict(p.env), files)
        gpu_here = [(b, x) for b, x in p.loaded if posixpath.dirname(x) == folder and b in GPU_BACKENDS]
        if gpu_here:
            b, x = gpu_here[0]
            load = next((f.load for f in files if f.path == x), None)
            filt = p.driver_filter
            if filt is not None and filt.dropped and b == "cuda":
                return BackendVerdict(folder, name, True, False,
                                      f"{how}: {posixpath.basename(x)} loads, but {filt.reason}", dict(p.env), files, load)
            tail = ""
            if filt is not None and filt.applies and (filt.maybe_dropped or filt.log):
                tail = f" ({filt.reason})"
            return BackendVerdict(folder, name, True, True, f"{how}: {posixpath.basename(x)} loads{tail}",
                                  dict(p.env), files, load)
        if not files and not cuda:
            return BackendVerdict(folder, name, True, False, f"{how}: no GPU backend library in it",
                                  dict(p.env), files)
        base = next((f for f in files if f.role in ("base-name", "GGML_BACKEND_PATH")), None)
        if base is None:
            odd = ", ".join(cuda) or ", ".join(posixpath.basename(f.path) for f in files)
            return BackendVerdict(folder, name, True, False,
                                  f"{how}, but {odd} is not opened: ggml loads only the exact name libggml-cuda.so",
                                  dict(p.env), files)
        if not base.opened:
            return BackendVerdict(folder, name, True, False,
                                  f"{how}, but {posixpath.basename(base.path)} is a {base.note}", dict(p.env), files)
        return BackendVerdict(folder, name, True, False,
                              f"{how}, but {posixpath.basename(base.path)} is opened and "
                              f"{_fail_text(base.load, p.env)}", dict(p.env), files, base.load)
    if folder in skipped:
        tail = ", so no runner is started" if not runner_started else ""
        if requested and "OLLAMA_LLM_LIBRARY" in skipped[folder]:
            any_match = any(posixpath.basename(d) == requested for d in dirs)
            if not any_match:
                return BackendVerdict(folder, name, False, False,
                                      f"not probed: OLLAMA_LLM_LIBRARY={requested} matches no folder{tail}")
        return BackendVerdict(folder, name, False, False, f"not probed: {skipped[folder]}{tail}")
    denied = access_denied(host, ids, folder, 0o5) if host.exists(folder) else None
    if denied:
        return BackendVerdict(folder, name, False, False,
                              f"not probed: the server (user {ids[2]}) cannot open this folder ({denied}); "
                              "the glob skips it silently",
                              path=f"{folder}/libggml-cuda.so" if "libggml-cuda.so" in cuda else None)
    if not host.exists(folder):
        r = host.resolve(folder)
        what = "a folder link in a loop" if r.status == "loop" else f"a dangling folder link (→ {r.final})"
        return BackendVerdict(folder, name, False, False, f"not probed: {what}; the glob's os.Stat fails")
    deep = _deep_cuda(host, folder)
    if deep:
        return BackendVerdict(folder, name, False, False,
                              f"not probed: no *ggml-* file directly in it; {_short(host, lib_dir, deep)}/libggml-cuda.so "
                              "is two levels down and the glob looks one level deep")
    return BackendVerdict(folder, name, False, False,
                          "not probed: no file matching *ggml-* in it (the glob lib/ollama/*/*ggml-* skips it)")


def _fail_text(load: Optional[LoadVerdict], env: Mapping[str, str]) -> str:
    if load is None:
        return "fails to load"
    err = load.error or "fails"
    if "Permission denied" in err:
        return f"dlopen fails: {err} — silently"
    if load.missing_needed:
        extra = ""
        if load.skipped:
            extra = f"; skipped {', '.join(load.skipped[:2])}"
        if load.hint:
            extra += f"; {load.hint}"
        return (f"dlopen fails: {err} (not on LD_LIBRARY_PATH={env.get('LD_LIBRARY_PATH', '')}, "
                f"in ld.so.cache or the default folders{extra}) — silently")
    if load.missing_symbols:
        lib = load.libcuda or "the libcuda.so.1 it loads"
        more = f" (+{len(load.missing_symbols) - 1} more)" if len(load.missing_symbols) > 1 else ""
        return f"dlopen fails: {load.missing_symbols[0]}{more} is not exported by {lib} — silently"
    return f"dlopen fails: {err} — silently"


# -- era B ---------------------------------------------------------------------------------------
# discover/gpu_linux.go (v0.4.0–v0.12.3): where the server's cgo discovery globs for libcuda.
NVCUDA_GLOBS = (
    "/usr/local/cuda*/targets/*/lib/libcuda.so*", "/usr/lib/*-linux-gnu/nvidia/current/libcuda.so*",
    "/usr/lib/*-linux-gnu/libcuda.so*", "/usr/lib/wsl/lib/libcuda.so*", "/usr/lib/wsl/drivers/*/libcuda.so*",
    "/opt/cuda/lib*/libcuda.so*", "/usr/local/cuda/lib*/libcuda.so*", "/usr/lib*/libcuda.so*",
    "/usr/local/lib*/libcuda.so*",
)
CUDART_GLOBS = (
    "/usr/local/cuda/lib64/libcudart.so*", "/usr/lib/x86_64-linux-gnu/nvidia/current/libcudart.so*",
    "/usr/lib/x86_64-linux-gnu/libcudart.so*", "/usr/lib/wsl/lib/libcudart.so*",
    "/usr/lib/wsl/drivers/*/libcudart.so*", "/opt/cuda/lib64/libcudart.so*",
    "/usr/local/cuda*/targets/aarch64-linux/lib/libcudart.so*",
    "/usr/lib/aarch64-linux-gnu/nvidia/current/libcudart.so*", "/usr/lib/aarch64-linux-gnu/libcudart.so*",
    "/usr/local/cuda/lib*/libcudart.so*", "/usr/lib*/libcudart.so*", "/usr/local/lib*/libcudart.so*",
)
_META = re.compile(r"[*?\[]")


def host_glob(host: Host, pattern: str) -> List[str]:
    """Go's filepath.Glob inside the root: folders must stat as folders, names match by name."""
    if not _META.search(pattern):
        return [pattern] if _lexists(host, pattern) else []
    folder, name = posixpath.split(pattern)
    folders = host_glob(host, folder) if _META.search(folder) else [folder]
    out: List[str] = []
    for d in folders:
        if host.isdir(d):
            out += [f"{d.rstrip('/')}/{n}" for n in host.listdir(d) if fnmatch.fnmatchcase(n, name)]
    return out


def _readlink_chain(host: Host, path: str) -> str:
    """FindGPULibs: follow os.Readlink until it fails (a dangling chain ends at the missing target)."""
    for _ in range(40):
        parent = host.resolve(posixpath.dirname(path))
        real_parent = parent.final if parent.ok else posixpath.dirname(path)
        target = host.readlink(f"{real_parent.rstrip('/')}/{posixpath.basename(path)}")
        if target is None:
            return path
        path = target if target.startswith("/") else posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return path


def find_gpu_libs(host: Host, lib_dir: str, server_env: Mapping[str, str], base: str,
                  defaults: Sequence[str], cwd: str = "/") -> List[str]:
    """discover/gpu.go FindGPULibs: bundled folder, LD_LIBRARY_PATH, then the given globs;
    every match followed through its links; duplicates dropped."""
    patterns = [f"{lib_dir}/{base}"] if lib_dir else []
    for p in (server_env.get("LD_LIBRARY_PATH") or "").split(":"):
        patterns.append(posixpath.join(p if p.startswith("/") else posixpath.join(cwd, p), base))
    patterns += list(defaults)
    candidates: List[str] = []
    for pat in patterns:
        if "PhysX" in pat:
            continue
        for m in host_glob(host, posixpath.normpath(pat)):
            lib = _readlink_chain(host, m)
            if lib not in candidates:
                candidates.append(lib)
    return candidates


def _dlopen_lazy(host: Host, loader: "_Loader", path: str, env: Mapping[str, str],
                 wanted: Sequence[str]) -> Optional[str]:
    """dlopen(RTLD_LAZY) then dlsym of `wanted`: None when it works, else why not."""
    from probes.loader import resolve_tree

    info = read_elf(host, path)
    if not info.is_elf:
        return info.error or "not an ELF file"
    if (info.machine_code, info.elf_class) != loader.kind:
        return "wrong ELF class (skipping 32bit library)"
    tree = resolve_tree(host, path, env, preload=False)
    bad = [n.name for n in tree.unresolved() if n.name not in loader.runner_loaded]
    if bad:
        return f"{bad[0]}: cannot open shared object file"
    usable = {x.name for x in info.exports if x.default_version or x.version is None}
    lacking = [n for n in wanted if n not in usable]
    return f"symbol lookup for {lacking[0]} failed" if lacking else None


def _cudart_fallback(host: Host, lib_dir: str, server_env: Mapping[str, str], loader: "_Loader",
                     cwd: str, version: Optional[str] = None) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """When no libcuda works: libcudart (bundled cuda_v*/ first), which dlopens libcuda.so.1 by name."""
    from probes.loader import find_library
    from probes.shim import required

    extra = eras.rule("cudart_bundled_glob", version)
    cands = find_gpu_libs(host, lib_dir, server_env, "libcudart.so*",
                          ([extra.format(lib=lib_dir)] if lib_dir and extra else []) + list(CUDART_GLOBS), cwd)
    by_era = required()["eras"]
    names = (by_era.get(eras.rule("symbol_era", version) or "", {}).get("cudart")
             or by_era.get("v0.4.0-v0.12.3", {}).get("cudart", ()))
    tried: List[Tuple[str, str]] = []
    for c in cands:
        why = _dlopen_lazy(host, loader, c, server_env, names)
        if why is None:
            res = find_library(host, "libcuda.so.1", server_env)
            if not res.found:
                why = "cudart cannot find libcuda.so.1 (cudaErrorInsufficientDriver)"
            else:
                e = read_elf(host, res.found)
                usable = {x.name for x in e.exports if x.default_version or x.version is None}
                fallback = required().get("libcuda_cudart_fallback_elf_without_getprocaddress", ())
                if "cuGetProcAddress_v2" not in usable and not all(n in usable for n in fallback):
                    why = f"{res.found} has neither cuGetProcAddress_v2 nor cudart's fallback names"
                else:
                    tried.append((c, f"loads; cudart uses {res.found}"))
                    return c, tried
        tried.append((c, why))
    return None, tried


def discovery_b(host: Host, lib_dir: str, server_env: Mapping[str, str], loader: "_Loader",
                cwd: str = "/", version: Optional[str] = None) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """Era A/B GPU discovery in the server (cgo): libcuda (nvcuda), else cudart.
    Returns (library used or None, [(candidate, outcome)])."""
    from probes.shim import required

    if not eras.rule("cgo_bundled_search", version, True):
        lib_dir = ""  # before v0.3.7 only LD_LIBRARY_PATH and the globs are searched
    candidates = find_gpu_libs(host, lib_dir, server_env, "libcuda.so*", NVCUDA_GLOBS, cwd)
    wanted = eras.rule("nvcuda_symbols", version) or required().get("libcuda_ollama_legacy", ())
    tried: List[Tuple[str, str]] = []
    for c in candidates:
        why = _dlopen_lazy(host, loader, c, server_env, wanted)
        if why is None:
            tried.append((c, "loads (cuInit and the device count are run-time facts)"))
            return c, tried
        tried.append((c, why))
    found, more = _cudart_fallback(host, lib_dir, server_env, loader, cwd, version)
    return found, tried + more


# What cuDriverGetVersion reports for a real NVIDIA driver branch (NVIDIA's release notes: the
# CUDA version each driver supports). Used only when the driver is real (/proc/driver/nvidia).
DRIVER_CUDA_API = ((580, (13, 0)), (575, (12, 9)), (570, (12, 8)), (565, (12, 7)), (560, (12, 6)),
                   (555, (12, 5)), (550, (12, 4)), (545, (12, 3)), (535, (12, 2)), (530, (12, 1)),
                   (525, (12, 0)), (520, (11, 8)), (515, (11, 7)), (510, (11, 6)), (470, (11, 4)))


def _driver_api(host: Host, given: Optional[int]) -> Tuple[Optional[Tuple[int, int]], str]:
    """The CUDA driver API version cuDriverGetVersion would give: the load probe's value when the
    caller has it, else the real driver's branch from /proc/driver/nvidia/version."""
    if given:
        return (given // 1000, given % 1000 // 10), f"cuDriverGetVersion = {given} (load probe)"
    from probes.device import driver_info

    d = driver_info(host)
    try:
        major = int((d.version or "").split(".")[0])
    except ValueError:
        return None, "unknown (no NVIDIA kernel driver version to read; a shim answers at run time)"
    for branch, api in DRIVER_CUDA_API:
        if major >= branch:
            return api, f"driver {d.version} ({d.source}) supports CUDA {api[0]}.{api[1]}"
    return None, f"driver {d.version} is older than any CUDA 11.4 driver"


def cuda_variant(version: Optional[str], api: Optional[Tuple[int, int]],
                 compute: Optional[Tuple[int, int]]) -> Tuple[str, str]:
    """cudaVariant by the version's rule: (variant, why). An unknown fact makes its check
    undecidable; the check is then taken as not holding, and `why` says so."""
    spec = eras.rule("cuda_variant", version) or {"checks": (), "default": "v12"}
    unknown: List[str] = []
    for check in spec["checks"]:
        if "cc_below" in check:
            if compute is None:
                unknown.append(f"compute capability below {check['cc_below'][0]}.{check['cc_below'][1]} would give "
                               f"{check['variant']}")
                continue
            if tuple(compute) < tuple(check["cc_below"]):
                return check["variant"], f"compute capability {compute[0]}.{compute[1]}"
        if "driver_below" in check:
            if api is None:
                unknown.append(f"a driver API below {check['driver_below'][0]}.{check['driver_below'][1]} would give "
                               f"{check['variant']}")
                continue
            if tuple(api) < tuple(check["driver_below"]):
                return check["variant"], f"CUDA driver API {api[0]}.{api[1]}"
    why = "the newest rule applies" if not unknown else "assumed; " + "; ".join(unknown)
    return spec["default"], why


def _too_old(found: Optional[str], version: Optional[str], compute: Optional[Tuple[int, int]],
             notes: List[str]) -> Optional[str]:
    """Era A/B: a GPU below the minimum compute capability is put on the unsupported list."""
    floor = eras.rule("cgo_min_compute", version)
    if found and compute and floor and tuple(compute) < tuple(floor):
        notes.append(f"[0] CUDA GPU is too old. Compute Capability detected: {compute[0]}.{compute[1]} "
                     f"(below {floor[0]}.{floor[1]}): no GPU")
        return None
    return found


def _runner_paths_b(version: Optional[str], lib_dir: str, dep: Optional[str], compat: Optional[str],
                    server_env: Mapping[str, str]) -> Tuple[List[str], List[str]]:
    """The model runner's (LD_LIBRARY_PATH entries, OLLAMA_LIBRARY_PATH entries) by the version's layout."""
    parts = {"dep": [dep] if dep else [], "compat": [compat] if compat else [], "lib": [lib_dir],
             "inherited": _split_list(server_env.get("LD_LIBRARY_PATH")) if "LD_LIBRARY_PATH" in server_env else []}
    ld = [x for part in (eras.rule("model_runner_ld_path", version) or ("dep", "compat", "lib", "inherited"))
          for x in parts[part]]
    olp = [x for part in (eras.rule("model_runner_olp", version) or ()) for x in parts[part]]
    return ld, olp


def _analyze_b(host, install, loader, server_env, version, era, lib_dir, notes, *,
               cuda_driver_api: Optional[int] = None, compute: Optional[Tuple[int, int]] = None) -> ScanReport:
    """Era B (v0.5.8–v0.12.3): cgo discovery in the server finds the GPU; the model runner
    (llm/server.go NewLlamaServer) then gets one CUDA folder: DependencyPath =
    LibOllamaPath/cuda_<cudaVariant> when it exists; compatible = the entry of LibOllamaPath
    named exactly RunnerName() (or OLLAMA_LLM_LIBRARY when such an entry exists), then the
    entries of the same family (name before the first "_"), in Go map order."""
    entries = host.listdir(lib_dir) if lib_dir else []
    cwd = getattr(getattr(install, "service", None), "working_directory", None) or "/"
    found, tried = discovery_b(host, lib_dir, server_env, loader, cwd, version)
    findings: List[Finding] = []
    lib_found = found
    found = _too_old(found, version, compute, notes)
    if found:
        notes.append(f"discovery (in the server, cgo) uses {found}")
        via_cudart = posixpath.basename(found).startswith("libcudart")
        api, api_why = ((0, 0), "discovery used cudart, which leaves the driver version at 0.0") if via_cudart \
            else _driver_api(host, cuda_driver_api)
        variant, why = cuda_variant(version, api, compute)
        notes.append(f"cudaVariant = {variant} ({why}; driver API: {api_why})")
        lib = f"cuda_{variant}"
    else:
        why = "; ".join(f"{c}: {o}" for c, o in tried[:4]) or "no libcuda.so* or libcudart.so* in the " \
            "bundled folder, LD_LIBRARY_PATH or the driver folders"
        if not lib_found:
            notes.append(f"discovery (in the server, cgo) finds no usable libcuda or libcudart ({why}): "
                         "no GPU, so the model runner gets no CUDA folder")
        lib, variant = "cpu", ""
    if not lib_found:
        findings.append(Finding(
            "cgo-discovery-no-libcuda", "driver-lib-not-found", "error",
            f"Ollama {version} finds no usable libcuda.so* or libcudart.so*: it uses the CPU",
            "Era B discovery (in the server) globs the bundled folder, the server's LD_LIBRARY_PATH and fixed "
            "driver folders (not ld.so.cache), follows each match's links and needs every discovery symbol.",
            tuple(f"{c}: {o}" for c, o in tried) or ("no candidate matched any glob",),
            Fix("manual", {"hint": f"link the shim as {lib_dir}/libcuda.so.1 (searched first) or put its folder "
                                   "on the service's LD_LIBRARY_PATH"})))
    requested = _env_var(server_env, "OLLAMA_LLM_LIBRARY")
    if requested and requested in entries:
        notes.append(f"OLLAMA_LLM_LIBRARY={requested}: using requested gpu library")
        lib = requested
    elif requested:
        notes.append(f"OLLAMA_LLM_LIBRARY={requested}: no {lib_dir}/{requested}, so it is ignored")
    family = lib.split("_")[0]
    exact = [e for e in entries if e == lib]
    fam = sorted(e for e in entries if e != lib and e.split("_")[0] == family)
    matching = exact + fam
    random_pick = not exact and len(fam) > 1
    if random_pick:
        notes.append(f"no entry named {lib}: Ollama picks one of {', '.join(fam)} in Go map order (random); "
                     f"the model shows {fam[0]}")
    compatible = matching if eras.rule("model_runner_compatible", version) == "all" else matching[:1]
    probes: Dict[str, Probe] = {}
    dep = f"{lib_dir}/cuda_{variant}" if found and variant and host.exists(f"{lib_dir}/cuda_{variant}") else None
    if lib_dir:
        compat = f"{lib_dir}/{compatible[0]}" if compatible else None
        ld, olp = _runner_paths_b(version, lib_dir, dep, compat, server_env)
        key = compat or ""
        probes[key] = _run_probe(host, loader, install, olp or ld, server_env, version, "model-runner",
                                 ld_dirs=ld, ld_exact=True, set_olp=bool(olp))
    gpu_loads = sum(len(p.gpu_loads) for p in probes.values()) if found else 0
    backends: List[BackendVerdict] = []
    if lib_dir and host.isdir(lib_dir):
        p = next(iter(probes.values()), None)
        for folder in _folders(host, lib_dir):
            name = posixpath.basename(folder)
            searched = p is not None and folder in p.searched
            files = tuple(f for f in p.files if posixpath.dirname(f.path) == folder) if p else ()
            ok = bool(p) and any(posixpath.dirname(x) == folder for b, x in p.gpu_loads)
            base = next((f for f in files if f.role == "base-name" and f.backend == "cuda"), None)
            if folder == lib_dir:
                backends.append(BackendVerdict(folder, name, searched, ok and bool(found),
                                               "searched by the model runner" + (
                                                   ": libggml-cuda.so here loads" if ok else " (CPU backends)"),
                                               dict(p.env) if p else {}, files))
            elif searched:
                how = ("given to the model runner (" + ", ".join(f"{k}={v}" for k, v in p.env.items()) + ")")
                if ok and found:
                    reason = f"{how}: libggml-cuda.so loads"
                elif ok:
                    reason = (f"{how}: libggml-cuda.so loads, but discovery found no GPU, so no layer is "
                              "offloaded")
                elif base is not None and base.opened:
                    reason = f"{how}: libggml-cuda.so {_fail_text(base.load, p.env)}"
                else:
                    reason = f"{how}: no loadable libggml-cuda.so"
                backends.append(BackendVerdict(folder, name, True, ok and bool(found), reason, dict(p.env), files,
                                               base.load if base else None))
            elif not found and name.split("_")[0] == "cuda":
                backends.append(BackendVerdict(folder, name, False, False, (
                    "not used: discovery in the server found no usable libcuda (era B globs fixed driver "
                    "folders, not ld.so.cache), so the model runner gets no CUDA folder" if not lib_found else
                    "not used: the GPU's compute capability is below the minimum, so the model runner gets "
                    "no CUDA folder")))
            elif name in matching:
                backends.append(BackendVerdict(folder, name, False, False,
                                               f"a {family} folder, but {compatible[0]} is the one given to the runner"
                                               + (" (Go map order: random)" if random_pick else "")))
            else:
                backends.append(BackendVerdict(folder, name, False, False,
                                               f"not used: the runner gets {lib_dir}/{lib} or a folder of the "
                                               f"{family} family (a name starting \"{family}_\"); "
                                               f"this name is never chosen"))
    predicted = "cuda" if gpu_loads else "cpu"
    if found and not gpu_loads and lib_dir:
        notes.append("discovery finds the GPU, so the log says library=cuda, but the model runner loads no "
                     "CUDA backend: layers run on the CPU")
    notes.append("era B finds the GPU through libcuda in the server itself (cgo); folders only decide "
                 "which CUDA backend the model runner loads")
    return ScanReport(version, era.letter, lib_dir, "", (), tuple(compatible), bool(probes),
                      tuple(probes.values()), tuple(backends), gpu_loads, predicted, tuple(notes), tuple(findings))


# -- era A (reduced) ----------------------------------------------------------------------------
def _analyze_a(host, install, loader, server_env, version, era, lib_dir, notes, *,
               cuda_driver_api: Optional[int] = None, compute: Optional[Tuple[int, int]] = None) -> ScanReport:
    """Era A (v0.1.34–v0.5.7), reduced: what can be told without the runner executables' insides.

    Modelled: the cgo discovery in the server (libcuda by LD_LIBRARY_PATH then the NvcudaGlobs,
    the bundled folder first from v0.3.7, links followed, the discovery symbols; else cudart);
    the AVX gate that disables the GPU (v0.1.23–v0.5.1, probes.cpu); cudaVariant (v0.3.7+);
    for v0.5.2–v0.5.7 the runner chosen among lib/ollama/runners/*/ollama_* (exact
    cuda_<variant>[_avx], else the cuda family sorted; `_avx` runners need AVX) and whether its
    DT_NEEDED resolve. Not modelled: runners embedded as payloads (v0.1.34–v0.5.1: extracted
    to a temporary folder at run time), the runner's exact LD_LIBRARY_PATH (approximated as
    DependencyPath + the runner's folder + the inherited value), cuInit and memory queries.
    """
    from probes import cpu as cpu_mod
    from probes.loader import resolve_tree

    findings: List[Finding] = []
    cwd = getattr(getattr(install, "service", None), "working_directory", None) or "/"
    found, tried = discovery_b(host, lib_dir, server_env, loader, cwd, version)
    lib_found = found
    found = _too_old(found, version, compute, notes)
    predicted = "cpu"
    v = eras.parse_version(version) or (0, 0, 0)
    gate = cpu_mod.gpu_gate(v)
    facts = cpu_mod.collect(host)
    gated = bool(gate) and facts.avx is False
    if lib_found:
        notes.append(f"discovery (in the server, cgo) uses {lib_found}")
    else:
        notes.append("discovery (in the server, cgo) finds no usable libcuda or libcudart: "
                     + ("; ".join(f"{c}: {o}" for c, o in tried[:4]) or "no candidate matched any glob"))
        findings.append(Finding(
            "cgo-discovery-no-libcuda", "driver-lib-not-found", "error",
            f"Ollama {version} finds no usable libcuda.so* or libcudart.so*: it uses the CPU",
            "Era A discovery (in the server) globs the server's LD_LIBRARY_PATH and fixed driver folders "
            "(not ld.so.cache)" + (", after the bundled folder" if eras.rule("cgo_bundled_search", version) else ""),
            tuple(f"{c}: {o}" for c, o in tried) or ("no candidate matched any glob",),
            Fix("manual", {"hint": "put the shim's folder on the service's LD_LIBRARY_PATH"})))
    if gated:
        notes.append(f"{facts.source}: no AVX, and Ollama {version} logs \"{gate['log']}\": the GPU is not used")
        findings.append(Finding(
            "avx-gate-disables-gpu", "cpu-lacks-avx", "error",
            f"Ollama {version} disables the GPU because the (virtual) CPU lacks AVX",
            f"v{'.'.join(map(str, gate['first']))}–v{'.'.join(map(str, gate['last']))} refuse every GPU without AVX.",
            (f"{facts.source}: flags lack avx (model {facts.model or 'unknown'})", f"log: {gate['log']}"),
            Fix("manual", {"hint": "give the VM the host's CPU type (QEMU/Proxmox 'host', libvirt "
                                   "host-passthrough), or upgrade Ollama"})))
    variant = ""
    if found and not gated:
        via_cudart = posixpath.basename(found).startswith("libcudart")
        api, api_why = ((0, 0), "discovery used cudart") if via_cudart else _driver_api(host, cuda_driver_api)
        if eras.rule("cuda_variant", version):
            variant, why = cuda_variant(version, api, compute)
            notes.append(f"cudaVariant = {variant} ({why}; driver API: {api_why})")
    probes: List[Probe] = []
    backends: List[BackendVerdict] = []
    chosen: Optional[str] = None
    if eras.rule("era_a_runners", version) == "payload":
        notes.append(f"{era.label}: the runners are embedded in the ollama binary and extracted at run "
                     "time ($OLLAMA_TMPDIR or /tmp/ollama*/runners): vgpu-tui cannot check them statically")
        predicted = "cuda" if found and not gated else "cpu"
    elif lib_dir:
        runners_dir = f"{lib_dir}/runners"
        names = [n for n in host.listdir(runners_dir)
                 if any(f.startswith("ollama_") for f in host.listdir(f"{runners_dir}/{n}"))]
        usable = [n for n in names if not (len(n.split("_")) == 3 and n.endswith("_avx") and facts.avx is False)]
        wanted = f"cuda_{variant}" if variant else "cuda"
        exact = [n for n in usable if n == wanted or "_".join(n.split("_")[:2]) == wanted]
        family = sorted(n for n in usable if n.split("_")[0] == "cuda" and n not in exact)
        cuda_order = (exact[-1:] + family) if found and not gated else []
        for n in names:
            folder = f"{runners_dir}/{n}"
            exe = next((f"{folder}/{f}" for f in host.listdir(folder) if f.startswith("ollama_")), folder)
            if n not in usable:
                backends.append(BackendVerdict(folder, n, False, False,
                                               "not used: an _avx GPU runner and the CPU lacks AVX "
                                               "(INFO `GPU runner incompatible with host system`)"))
                continue
            if cuda_order and n == cuda_order[0]:
                dep = f"{lib_dir}/cuda_{variant}" if variant and host.exists(f"{lib_dir}/cuda_{variant}") else None
                ld = ([dep] if dep else []) + [lib_dir, folder] + _split_list(server_env.get("LD_LIBRARY_PATH"))
                env = dict(server_env)
                env["LD_LIBRARY_PATH"] = ":".join(ld)
                tree = resolve_tree(host, exe, env)
                bad = [x.name for x in tree.unresolved() if x.name not in loader.runner_loaded]
                ok = not bad
                chosen = folder if ok else None
                probes.append(Probe((folder,), {"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"]}, (folder,), (), (),
                                    (("cuda", exe),) if ok else (), "model-runner"))
                reason = (f"the CUDA runner Ollama starts (LD_LIBRARY_PATH≈{env['LD_LIBRARY_PATH']}): "
                          + ("its libraries resolve" if ok else
                             f"{bad[0]} is not found, so the runner cannot start and Ollama falls back to the CPU runner"))
                backends.append(BackendVerdict(folder, n, True, ok, reason, {"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"]}))
            elif n.split("_")[0] == "cuda":
                why = ("discovery found no GPU" if not found else "the GPU is disabled (no AVX)" if gated
                       else f"{cuda_order[0]} is chosen first" if cuda_order else "not chosen")
                backends.append(BackendVerdict(folder, n, False, False, f"a CUDA runner, not used: {why}"))
            else:
                backends.append(BackendVerdict(folder, n, False, False, "a CPU or other runner"))
        if not names:
            notes.append(f"{runners_dir} has no runner: Ollama {version} uses its built-in CPU runner")
        predicted = "cuda" if chosen else "cpu"
    notes.append(f"{era.label} is modelled in part: see the notes; cuInit and the device queries are run-time facts")
    gpu = 1 if predicted == "cuda" else 0
    return ScanReport(version, era.letter, lib_dir, "", (), (), bool(probes), tuple(probes), tuple(backends),
                      gpu, predicted, tuple(notes), tuple(findings))
