"""The sandbox's simulated Ollama 0.24.0: `python -m probes.sandbox.simulator serve --root DIR`.

It computes the service environment from the unit and its drop-ins (probes.systemd), runs the
discovery model (probes.sandbox.discovery) on DIR, appends to DIR/var/log/ollama/ollama.log
the lines the real 0.24.0 server writes for that outcome — same messages, keys, levels and
order as the recorded logs in ../shared/corpus/ollama-0.24/, in journald's short format,
filtered by the OLLAMA_DEBUG level of the service — updates the running-server record in
DIR/.vgpu-sandbox/run/, and exits. The log itself carries no marker: it must read like the
real one; the sandbox is labelled simulated in .vgpu-sandbox/sandbox.json and in the UI.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from probes.host import Host
from probes.sandbox import discovery as disc

LEVELS = {"TRACE": -8, "DEBUG": -4, "INFO": 0, "WARN": 4, "ERROR": 8}
DEFAULT_ORIGINS = ("[http://localhost https://localhost http://localhost:* https://localhost:* http://127.0.0.1 "
                   "https://127.0.0.1 http://127.0.0.1:* https://127.0.0.1:* http://0.0.0.0 https://0.0.0.0 "
                   "http://0.0.0.0:* https://0.0.0.0:* app://* file://* tauri://* vscode-webview://* "
                   "vscode-file://*]")
# envconfig.AsMap() of 0.24.0 (reference §5.1): key -> (kind, default)
SERVER_CONFIG = (
    ("CUDA_VISIBLE_DEVICES", "str", ""), ("GGML_VK_VISIBLE_DEVICES", "str", ""), ("GPU_DEVICE_ORDINAL", "str", ""),
    ("HIP_VISIBLE_DEVICES", "str", ""), ("HSA_OVERRIDE_GFX_VERSION", "str", ""), ("HTTPS_PROXY", "str", ""),
    ("HTTP_PROXY", "str", ""), ("NO_PROXY", "str", ""), ("OLLAMA_CONTEXT_LENGTH", "int", "0"),
    ("OLLAMA_DEBUG", "debug", "INFO"), ("OLLAMA_DEBUG_LOG_REQUESTS", "bool", "false"), ("OLLAMA_EDITOR", "str", ""),
    ("OLLAMA_FLASH_ATTENTION", "bool", "false"), ("OLLAMA_GPU_OVERHEAD", "int", "0"),
    ("OLLAMA_HOST", "host", "http://127.0.0.1:11434"), ("OLLAMA_KEEP_ALIVE", "str", "5m0s"),
    ("OLLAMA_KV_CACHE_TYPE", "str", ""), ("OLLAMA_LLM_LIBRARY", "str", ""), ("OLLAMA_LOAD_TIMEOUT", "str", "5m0s"),
    ("OLLAMA_MAX_LOADED_MODELS", "int", "0"), ("OLLAMA_MAX_QUEUE", "int", "512"),
    ("OLLAMA_MAX_TRANSFER_STREAMS", "int", "4"), ("OLLAMA_MODELS", "models", ""),
    ("OLLAMA_MULTIUSER_CACHE", "bool", "false"), ("OLLAMA_NEW_ENGINE", "bool", "false"),
    ("OLLAMA_NOHISTORY", "bool", "false"), ("OLLAMA_NOPRUNE", "bool", "false"), ("OLLAMA_NO_CLOUD", "bool", "false"),
    ("OLLAMA_NUM_PARALLEL", "int", "1"), ("OLLAMA_ORIGINS", "origins", DEFAULT_ORIGINS),
    ("OLLAMA_REMOTES", "str", "[ollama.com]"), ("OLLAMA_SCHED_SPREAD", "bool", "false"),
    ("OLLAMA_VULKAN", "bool", "false"), ("ROCR_VISIBLE_DEVICES", "str", ""), ("http_proxy", "str", ""),
    ("https_proxy", "str", ""), ("no_proxy", "str", ""),
)
# The dummy-model keys the runner looks up (identical in every 0.24.0 trace of the corpus).
GGUF_KEYS_BEFORE = (("general.alignment", "32"), ("general.alignment", "32"), ("general.file_type", "0"),
                    ("general.name", '""'), ("general.description", '""'))
GGUF_KEYS_AFTER = (
    ("llama.block_count", "0"), ("llama.pooling_type", "0"), ("llama.expert_count", "0"),
    ("tokenizer.ggml.tokens", '"&{size:0 values:[]}"'), ("tokenizer.ggml.scores", '"&{size:0 values:[]}"'),
    ("tokenizer.ggml.token_type", '"&{size:0 values:[]}"'), ("tokenizer.ggml.merges", '"&{size:0 values:[]}"'),
    ("tokenizer.ggml.add_bos_token", "true"), ("tokenizer.ggml.bos_token_id", "0"),
    ("tokenizer.ggml.add_eos_token", "false"), ("tokenizer.ggml.eos_token_id", "0"),
    ("tokenizer.ggml.eos_token_ids", '"&{size:0 values:[]}"'), ("tokenizer.ggml.pre", '""'),
    ("llama.block_count", "0"), ("llama.embedding_length", "0"), ("llama.attention.head_count", "0"),
    ("llama.attention.head_count_kv", "0"), ("llama.attention.key_length", "0"),
    ("llama.rope.dimension_count", "0"), ("llama.attention.layer_norm_rms_epsilon", "0"),
    ("llama.rope.freq_base", "100000"), ("llama.rope.scaling.factor", "1"),
)
SUBPROCESS_PREFIXES = ("OLLAMA_", "CUDA_", "ROCR_", "ROCM_", "HIP_", "GPU_", "HSA_", "GGML_", "PATH=",
                       "LD_LIBRARY_PATH=", "DYLD_LIBRARY_PATH=")
CPU_SYSTEM_ORDER = ("AVX", "AVX_VNNI", "AVX2", "F16C", "FMA", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI")


# --- formatting -------------------------------------------------------------------------------

def slog_value(v: str) -> str:
    """Go slog's TextHandler quoting: quote when empty or holding space, '=', '"' or controls."""
    if v == "" or any(c in v for c in ' ="') or any(ord(c) < 0x20 for c in v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


def go_duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "µs"
    if seconds < 1:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{int(h)}h" if h else "") + (f"{int(m)}m" if h or m else "")
    return out + f"{s:.9f}".rstrip("0").rstrip(".") + "s"


def gib(n: float) -> str:
    """Ollama's format.HumanBytes2 for the sizes it logs."""
    if n <= 0:
        return "0 B"
    return f"{n / 1024 ** 3:.1f} GiB"


def debug_level(env: Mapping[str, str]) -> int:
    v = (env.get("OLLAMA_DEBUG") or "").strip().lower()
    if v in ("", "0", "false", "f", "no", "off"):
        return 0
    if v in ("true", "t", "yes", "on"):
        return -4
    try:
        return -4 * int(v)
    except ValueError:
        return 0


def level_name(level: int) -> str:
    if level >= 0:
        return "INFO"
    return "DEBUG" if level == -4 else f"DEBUG{level + 4:+d}".replace("+", "-")


class Log:
    """Collects lines with a running clock; `text()` gives journald's short format."""

    def __init__(self, level: int, host: str, pid: int, start: dt.datetime):
        self.level, self.host, self.pid, self.now = level, host, pid, start
        self.lines: List[str] = []

    def tick(self, ms: float) -> None:
        self.now += dt.timedelta(milliseconds=ms)

    def _prefix(self) -> str:
        return f"{self.now.strftime('%b %d %H:%M:%S')} {self.host} ollama[{self.pid}]: "

    def slog(self, level: str, source: str, msg: str, *kv: Tuple[str, str], raw: str = "") -> None:
        if LEVELS[level] < self.level:
            return
        t = self.now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.now.microsecond // 1000:03d}Z"
        m = slog_value(msg) if msg != "subprocess" else msg
        parts = [f"time={t}", f"level={level}", f"source={source}", f"msg={m}"]
        parts += [f"{k}={v}" for k, v in kv]
        if raw:
            parts.append(raw)
        self.lines.append(self._prefix() + " ".join(parts))

    def raw(self, text: str, level: str = "TRACE") -> None:
        if LEVELS[level] >= self.level:
            self.lines.append(self._prefix() + text)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


# --- the server ------------------------------------------------------------------------------------

def _bool(v: Optional[str]) -> bool:
    return (v or "").strip().lower() in ("1", "true", "t", "yes", "on")


def server_config(env: Mapping[str, str]) -> str:
    home = env.get("HOME", "/usr/share/ollama")
    items = []
    for key, kind, default in SERVER_CONFIG:
        v = env.get(key)
        if kind == "bool":
            val = "true" if _bool(v) else "false"
        elif kind == "debug":
            val = level_name(debug_level(env))
        elif kind == "host":
            val = "http://" + host_addr(env)
        elif kind == "models":
            val = v or f"{home}/.ollama/models"
        elif kind == "origins":
            val = default
        else:
            val = v if v is not None else default
        items.append(f"{key}:{val}")
    return "map[" + " ".join(items) + "]"


def host_addr(env: Mapping[str, str]) -> str:
    v = (env.get("OLLAMA_HOST") or "").strip()
    for scheme in ("http://", "https://"):
        if v.startswith(scheme):
            v = v[len(scheme):]
    if not v:
        return "127.0.0.1:11434"
    if ":" not in v:
        v += ":11434"
    return v


def runner_env(env: Mapping[str, str], dirs: Sequence[str], extra: Sequence[Tuple[str, str]] = ()) -> List[str]:
    """The runner's environment: inherited, with LD_LIBRARY_PATH and OLLAMA_LIBRARY_PATH (and
    extra variables) replaced in place or appended, as llm.StartRunner builds it."""
    items = [[k, v] for k, v in env.items()]
    inherited = env.get("LD_LIBRARY_PATH")
    ld = ":".join(list(dirs) + ([inherited] if inherited else []))
    for key, value in (("LD_LIBRARY_PATH", ld), ("OLLAMA_LIBRARY_PATH", ":".join(dirs))) + tuple(extra):
        for it in items:
            if it[0] == key:
                it[1] = value
                break
        else:
            items.append([key, value])
    return [f"{k}={v}" for k, v in items]


def _list(dirs: Sequence[str]) -> str:
    return slog_value("[" + " ".join(dirs) + "]")


def _cpu_system(d: disc.Discovery, probe: disc.Probe) -> str:
    feats = set()
    if probe.cpu:
        feats = set(disc.cpu_variant_features(os.path.basename(probe.cpu)[len("libggml-cpu-"):-3]))
    parts = ["CPU.0.SSE3=1", "CPU.0.SSSE3=1"] if probe.cpu else []
    parts += [f"CPU.0.{f}=1" for f in CPU_SYSTEM_ORDER if f in feats]
    if probe.cpu:
        parts += ["CPU.0.LLAMAFILE=1", "CPU.1.LLAMAFILE=1"]
    if any(b.loaded for b in probe.cuda):
        parts += ["CUDA.0.ARCHS=" + ",".join(str(a) for a in disc.CUDA_V12_ARCHS), "CUDA.0.USE_GRAPHS=1",
                  "CUDA.0.PEER_MAX_BATCH_SIZE=128"]
    return " ".join(parts + ["compiler=cgo(gcc)"])


def _runner(log: Log, d: disc.Discovery, env: Mapping[str, str], probe: disc.Probe,
            extra: Sequence[Tuple[str, str]], rng: random.Random) -> float:
    """One runner start: INFO starting runner, DEBUG subprocess, and at TRACE its own output."""
    port = rng.randint(32768, 60999)
    log.slog("INFO", "server.go:433", "starting runner",
             ("cmd", slog_value(f"{d.exe} runner --ollama-engine --port {port}")))
    renv = runner_env(env, probe.dirs, extra)
    shown = [e for e in renv if e.startswith(SUBPROCESS_PREFIXES)]
    log.slog("DEBUG", "server.go:434", "subprocess", raw=" ".join(shown))
    started = log.now
    show = log.level <= LEVELS["TRACE"]  # runner output reaches the journal only at TRACE

    def slog(*args, **kw) -> None:
        if show:
            log.slog(*args, **kw)

    def raw(text: str) -> None:
        if show:
            log.raw(text)

    for line in d.preload_errors:
        raw(line)
    log.tick(rng.uniform(15, 25))
    slog("INFO", "runner.go:1450", "starting ollama engine")
    slog("INFO", "runner.go:1485", f"Server listening on 127.0.0.1:{port}")
    log.tick(rng.uniform(2, 6))
    slog("DEBUG", "gguf.go:604", "general.architecture", ("type", "string"))
    slog("DEBUG", "gguf.go:604", "tokenizer.ggml.model", ("type", "string"))
    for k, v in GGUF_KEYS_BEFORE:
        slog("DEBUG", "ggml.go:326", "key with type not found", ("key", k), ("default", v))
    slog("INFO", "ggml.go:144", "", ("architecture", "llama"), ("file_type", "unknown"), ("name", '""'),
             ("description", '""'), ("num_tensors", "0"), ("num_key_values", "3"))
    initialised = set()
    validating = any(k == "GGML_CUDA_INIT" for k, _ in extra)
    fate = "ok"
    for path in probe.scanned:
        log.tick(rng.uniform(0.5, 1.5))
        slog("DEBUG", "ggml.go:94", "ggml backend load all from path", ("path", slog_value(path)))
        for b in probe.cuda:
            if os.path.dirname(b.path) != path or not b.loaded:
                continue
            if b.real not in initialised:  # the same file again: dlopen reuses it, no second init
                initialised.add(b.real)
                gpu = b.gpu
                log.tick(rng.uniform(100, 250))
                raw("ggml_cuda_init: GGML_CUDA_FORCE_MMQ:    no")
                raw("ggml_cuda_init: GGML_CUDA_FORCE_CUBLAS: no")
                fate = _device_init(raw, b, gpu, validating)
                if fate != "ok":
                    break
            raw(f"load_backend: loaded CUDA backend from {b.path}")
        if fate != "ok":
            break
        if probe.cpu and os.path.dirname(probe.cpu) == path:
            log.tick(rng.uniform(5, 9))
            raw(f"load_backend: loaded CPU backend from {probe.cpu}")
    if fate == "hang":  # cuInit never returns: the server gives up after its 30 s deadline
        log.tick(RUNNER_DEADLINE_S * 1000)
        return (log.now - started).total_seconds(), fate
    if fate != "ok":    # the runner died (SIGSEGV in the shim, or ggml's abort)
        log.tick(rng.uniform(1, 3))
        return (log.now - started).total_seconds(), fate
    slog("INFO", "ggml.go:104", "system", raw=_cpu_system(d, probe))
    for k, v in GGUF_KEYS_AFTER:
        slog("DEBUG", "ggml.go:326", "key with type not found", ("key", k), ("default", v))
    slog("DEBUG", "runner.go:1421", "dummy model load took",
             ("duration", go_duration((log.now - started).total_seconds())))
    gathering = rng.uniform(0.0000007, 0.000001)
    for b in probe.cuda:
        if b.loaded and b.devices and b.nvml and not dict(b.stub).get("memory"):
            gpu = b.gpu  # NVML reports the memory, unless the shim's own figures are bent (zero)
            log.tick(rng.uniform(18, 24))
            gathering = rng.uniform(0.018, 0.024)
            raw(f"ggml_backend_cuda_device_get_memory device {gpu['uuid']} utilizing NVML memory reporting "
                    f"free: {gpu['free_memory']} total: {gpu['total_memory']}")
    slog("DEBUG", "runner.go:1379", "gathering device infos took", ("duration", go_duration(gathering)))
    log.tick(0.5)
    return (log.now - started).total_seconds() + 0.001, fate


RUNNER_DEADLINE_S = 30.0   # discover/runner.go: each first-pass probe, and the shared second pass
RUNNER_EXIT_CODE = {"crash": 2, "abort": 2}  # Go's runtime exits 2 on a fatal signal in cgo code
CUDA_ARCH_ASSERT = ("//ml/backend/ggml/ggml/src/ggml-cuda/ggml-cuda.cu:292: GGML_ASSERT("
                    "ggml_cuda_has_arch(info.devices[id].cc) && \"ggml was not compiled with support for "
                    "this arch\") failed")


def _device_init(raw, b: disc.BackendLoad, gpu: Mapping[str, object], validating: bool) -> str:
    """ggml_cuda_init's lines for one backend; returns the runner's fate."""
    if b.outcome == "hang":
        return "hang"
    if b.outcome == "crash":
        raw("SIGSEGV: segmentation violation")
        raw("PC=0x0 m=0 sigcode=1 addr=0x0")
        raw("signal arrived during cgo execution")
        return "crash"
    if not b.devices:
        raw(f"ggml_cuda_init: failed to initialize CUDA: {b.init_error}")
        return "ok"
    raw(f"ggml_cuda_init: found {b.devices} CUDA devices:")
    raw(f"  Device 0: {gpu['name']}, compute capability {gpu['compute_major']}.{gpu['compute_minor']}, "
        f"VMM: yes, ID: {gpu['uuid']}")
    if validating and not disc.compute_compiled(gpu):  # GGML_CUDA_INIT=1: ggml checks the arch
        raw(CUDA_ARCH_ASSERT)
        raw("SIGABRT: abort")
        return "abort"
    return "ok"


def _probe_end(log: Log, probe: disc.Probe, extra_envs: str, fate: str, took: float) -> None:
    """What the server logs after one probe: its failure (if any), then the deferred timing."""
    if fate == "hang":
        log.slog("INFO", "runner.go:462", "failure during GPU discovery", ("OLLAMA_LIBRARY_PATH", _list(probe.dirs)),
                 ("extra_envs", extra_envs), ("error", '"failed to finish discovery before timeout"'),
                 ("detail", '""'))
    elif fate != "ok":
        log.slog("TRACE", "runner.go:459", "runner exited", ("OLLAMA_LIBRARY_PATH", _list(probe.dirs)),
                 ("extra_envs", extra_envs), ("code", str(RUNNER_EXIT_CODE[fate])), ("detail", '""'))
    log.slog("DEBUG", "runner.go:433", "bootstrap discovery took", ("duration", go_duration(took)),
             ("OLLAMA_LIBRARY_PATH", _list(probe.dirs)), ("extra_envs", extra_envs))


def write_start(log: Log, d: disc.Discovery, env: Mapping[str, str], rng: random.Random, host: Host) -> None:
    """The lines of one `ollama serve` start, up to `vram-based default context`."""
    home = env.get("HOME", "/usr/share/ollama")
    cloud_off = _bool(env.get("OLLAMA_NO_CLOUD"))
    for line in d.preload_errors:
        log.raw(line, "INFO")
    log.slog("INFO", "routes.go:1802", "server config", ("env", slog_value(server_config(env))))
    log.slog("INFO", "routes.go:1804", f"Ollama cloud disabled: {'true' if cloud_off else 'false'}")
    log.slog("INFO", "images.go:517", "total blobs: 0")
    log.slog("INFO", "images.go:524", "total unused blobs removed: 0")
    log.tick(0.6)
    log.slog("DEBUG", "model_recommendations.go:57", "starting model recommendations cache",
             ("default_recommendations", "6"), ("refresh_interval", "4h0m0s"), ("fetch_timeout", "3s"))
    log.slog("DEBUG", "model_show_cache.go:125", "starting model show cache")
    log.slog("INFO", "routes.go:1864", f"Listening on {host_addr(env)} (version 0.24.0)")
    log.slog("DEBUG", "model_recommendations.go:244", "model recommendations snapshot not found",
             ("path", f"{home}/.ollama/cache/model-recommendations.json"))
    if cloud_off:
        log.slog("DEBUG", "model_recommendations.go:165", "skipping model recommendations refresh because cloud is disabled")
    wait = rng.uniform(3 * 3600, 4.5 * 3600)
    log.slog("INFO", "model_recommendations.go:177", "model recommendations cache sleep scheduled",
             ("wait", go_duration(wait)), ("consecutive_failures", "0"))
    if cloud_off:
        log.slog("DEBUG", "model_show_cache.go:150", "skipping model show cloud cache hydration because cloud is disabled")
    log.slog("DEBUG", "sched.go:145", "starting llm scheduler")
    begin = log.now
    log.slog("INFO", "runner.go:67", "discovering available GPUs...")
    for k, v in d.visible_overrides:
        log.slog("WARN", "runner.go:79", "user overrode visible devices", (k, slog_value(v)))
        log.slog("WARN", "runner.go:80", "if GPUs are not correctly discovered, unset and try again")
    for reason, libdir in d.skipped:
        if reason == "user":
            log.slog("DEBUG", "runner.go:98", "skipping available library at user's request",
                     ("requested", slog_value(env.get("OLLAMA_LLM_LIBRARY", ""))), ("libDir", slog_value(libdir)))
        else:
            log.slog("INFO", "runner.go:110", "experimental Vulkan support disabled.  To enable, set OLLAMA_VULKAN=1")
    for probe in d.probes:
        took, fate = _runner(log, d, env, probe, (), rng)
        _probe_end(log, probe, "map[]", fate, took)
    log.slog("DEBUG", "runner.go:123", "evaluating which, if any, devices to filter out",
             ("initial_count", str(d.initial_count)))
    gpu = d.gpu_facts
    found = []
    for probe in d.probes:
        for b in probe.cuda:
            for _ in range(b.devices if b.loaded else 0):
                found.append(probe)
    verified = []
    for probe in found:
        library = probe.libdir or d.lib_ollama
        log.slog("DEBUG", "runner.go:145", "verifying if device is supported", ("library", slog_value(library)),
                 ("description", slog_value(gpu["name"])), ("compute", f"{gpu['compute_major']}.{gpu['compute_minor']}"),
                 ("id", gpu["uuid"]), ("pci_id", gpu["pci_slot"]))
        extra = (("CUDA_VISIBLE_DEVICES", gpu["uuid"]), ("GGML_CUDA_INIT", "1"))
        took, fate = _runner(log, d, env, probe, extra, rng)
        _probe_end(log, probe, slog_value("map[" + " ".join(f"{k}:{v}" for k, v in sorted(extra)) + "]"),
                   fate, took)
        if d.compute_supported:
            verified.append(probe)
        else:
            log.slog("DEBUG", "runner.go:152", "filtering device which didn't fully initialize", ("id", gpu["uuid"]),
                     ("libdir", slog_value(library)), ("pci_id", gpu["pci_slot"]), ("library", "CUDA"))
    supported = "map[]"
    if verified:
        lib = verified[0].libdir or d.lib_ollama
        supported = f"map[CUDA:map[{lib}:map[{gpu['uuid']}:0]]]"
    log.slog("TRACE", "runner.go:173",
             "supported GPU library combinations before filtering", ("supported", slog_value(supported)))
    log.slog("DEBUG", "runner.go:40", "GPU bootstrap discovery took",
             ("duration", go_duration((log.now - begin).total_seconds() + 0.0002)))
    if verified:
        probe = verified[-1]
        libdirs = ",".join(os.path.basename(x) for x in dict.fromkeys(probe.dirs))
        log.slog("INFO", "types.go:42", "inference compute", ("id", gpu["uuid"]), ("filter_id", '""'),
                 ("library", "CUDA"), ("compute", f"{gpu['compute_major']}.{gpu['compute_minor']}"), ("name", "CUDA0"),
                 ("description", slog_value(gpu["name"])), ("libdirs", libdirs),
                 ("driver", f"{gpu['cuda_driver_api'] // 1000}.{gpu['cuda_driver_api'] % 1000 // 10}"),
                 ("pci_id", gpu["pci_slot"]), ("type", "discrete"), ("total", slog_value(gib(gpu["total_memory"]))),
                 ("available", slog_value(gib(gpu["free_memory"]))))
        total = gpu["total_memory"]
    else:
        from probes.sandbox.builder import MEM_AVAILABLE_KB, MEM_TOTAL_KB
        mem_total, mem_avail = _meminfo(host) or (MEM_TOTAL_KB, MEM_AVAILABLE_KB)
        log.slog("INFO", "types.go:60", "inference compute", ("id", "cpu"), ("library", "cpu"), ("compute", '""'),
                 ("name", "cpu"), ("description", "cpu"), ("libdirs", os.path.basename(d.lib_ollama)),
                 ("driver", '""'), ("pci_id", '""'), ("type", '""'), ("total", slog_value(gib(mem_total * 1024))),
                 ("available", slog_value(gib(mem_avail * 1024))))
        total = 0
    ctx = 262144 if total >= 47 * 1024 ** 3 else 32768 if total >= 23 * 1024 ** 3 else 4096
    log.slog("INFO", "routes.go:1914", "vram-based default context", ("total_vram", slog_value(gib(total))),
             ("default_num_ctx", str(ctx)))


def _meminfo(host: Host) -> Optional[Tuple[int, int]]:
    """(MemTotal, MemAvailable) in kB from the root's /proc/meminfo."""
    text = host.read_text("/proc/meminfo")
    if not text:
        return None
    vals = {}
    for line in text.splitlines():
        k, _, rest = line.partition(":")
        if rest.split():
            vals[k] = int(rest.split()[0])
    if "MemTotal" in vals:
        return vals["MemTotal"], vals.get("MemAvailable", vals["MemTotal"])
    return None


# --- the service ---------------------------------------------------------------------------------

def service(root: str) -> Tuple[str, Dict[str, str], str]:
    """(ExecStart binary, environment, user) of ollama.service in the sandbox."""
    from probes.sandbox import builder
    vm = builder.load_vm(root) if os.path.isfile(os.path.join(root, ".vgpu-sandbox", "sandbox.json")) \
        else builder.SandboxVM(root=os.path.abspath(root))
    env = builder.service_env(vm)
    exe = builder.service_binary(vm)
    user = builder.SERVICE_USER
    try:
        from probes.systemd import load_service
        unit = load_service(Host(root), "ollama.service")
        if unit is not None and unit.user:
            user = unit.user
    except ImportError:  # pragma: no cover
        pass
    return exe, env, user


MODEL_USED = {"last": None}  # which model decided the last start: "scanner" or "internal"


def discover(host: Host, exe: str, env: Mapping[str, str], user: str) -> disc.Discovery:
    """The project's scanner model decides which backends load; the simulator's own model
    (probes.sandbox.discovery) stands in when the scanner cannot answer."""
    try:
        d = disc.discover_with_scanner(host, exe, env, user)
        MODEL_USED["last"] = "scanner"
        return d
    except Exception:  # noqa: BLE001 - any failure of the scanner: the simulator still runs
        MODEL_USED["last"] = "internal"
        return disc.discover(host, exe, env, user)


def serve(root: str, now: Optional[dt.datetime] = None, seed: Optional[int] = None,
          env_override: Optional[Mapping[str, str]] = None) -> str:
    """Simulate one start of the service in `root`; returns the lines appended to the log."""
    from probes.sandbox import builder
    root = os.path.abspath(root)
    host = Host(root)
    exe, env, user = service(root)
    if env_override is not None:
        env = dict(env_override)
    rng = random.Random(seed)
    d = discover(host, exe, env, user)
    hostname = (host.read_text("/etc/hostname") or builder.HOSTNAME).strip() or builder.HOSTNAME
    pid = os.getpid()
    start = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    log = Log(debug_level(env), hostname, pid, start)
    write_start(log, d, env, rng, host)
    text = log.text()
    vm = builder.SandboxVM(root=root)
    real_log = vm.real(vm.log)
    os.makedirs(os.path.dirname(real_log), exist_ok=True)
    with open(real_log, "a", encoding="utf-8") as fh:
        fh.write(text)
    builder.set_running_env(vm, env, exe, None)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m probes.sandbox.simulator",
                                description="vgpu-tui's simulated Ollama 0.24.0 for sandbox VMs (not a real Ollama)")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("serve", help="simulate one start of ollama.service in a sandbox root, append its log, exit")
    s.add_argument("--root", required=True, help="the sandbox root folder")
    args = p.parse_args(argv)
    if args.cmd != "serve":
        p.print_help()
        return 2
    if not os.path.isdir(os.path.join(args.root, ".vgpu-sandbox")):
        print(f"{args.root}: not a vgpu-tui sandbox (no .vgpu-sandbox/)", file=sys.stderr)
        return 2
    serve(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
