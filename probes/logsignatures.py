"""The table of Ollama log signatures, every era (v0.1.x – v0.33): message pattern -> event kind.

Knowledge is data: each row says which message (reference ../shared/reference/
ollama-discovery.md §5) becomes which typed event, and which named regex groups become
the event's fields. probes.logs does the line handling (prefixes, ANSI, run-together lines)
and the verdict; this module only says what the messages mean.

A pattern is matched (``re.search``) against the *body* of a line: the `msg` of a
`time=… level=… msg=…` line, the text after `file.go:NN:` of an old Go-logger line, the
`message` of a llama.cpp JSON line, or the whole text of a raw line (ggml, the C discovery
code, llama-server). Rows are tried in order; the first match wins, so specific rows come
before general ones.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Pattern, Tuple

# kind -> (group, what it means). The group drives the TUI's highlight colour:
# "verdict" (what discovery concluded), "error", "warning", "discovery" (progress),
# "runner" (runner/backend lines), "config" (version, environment), "load" (model load).
KINDS: Dict[str, Tuple[str, str]] = {
    # startup and configuration
    "version": ("config", "the server's version line (Listening on … (version X))"),
    "server-config": ("config", "the server's environment dump (server config env=map[…])"),
    "runners-list": ("config", "the runner variants this build carries (Dynamic LLM libraries)"),
    "total-vram": ("verdict", "total VRAM the server will plan with (0 B means no GPU)"),
    "nvidia-smi-failed": ("error", "pre-0.1.17: nvidia-smi failed, GPU support disabled"),
    "lib-dir-missing": ("warning", "the lib/ollama folder was not found"),
    # discovery, eras A/B (cgo in the server)
    "discovery-start": ("discovery", "GPU discovery starts"),
    "lib-search": ("discovery", "searching for the NVIDIA driver / runtime libraries"),
    "libs-discovered": ("discovery", "the driver/runtime library candidates found"),
    "driver-lib-error": ("error", "a driver or runtime library candidate failed to load or initialise"),
    "cuda-error-code": ("error", "a raw CUDA/NVML error code printed by the C discovery code"),
    "dlsym-error": ("error", "a symbol the discovery code needs is missing from the library"),
    "driver-mismatch": ("error", "cuInit: driver and library versions do not match (35/803)"),
    "no-nvidia-devices": ("error", "cuInit: no NVIDIA device (100)"),
    "cuda-unknown-error": ("error", "cuInit: unknown error (999)"),
    "skip-32bit": ("warning", "a 32-bit library candidate was skipped"),
    "gpus-detected": ("discovery", "the driver library reported GPUs"),
    "gpu-memory-error": ("error", "context creation / memory query failed: the device is dropped"),
    "gpu-too-old": ("error", "the GPU's compute capability is below what Ollama supports"),
    "compute-detected": ("discovery", "pre-0.1.34: the CUDA compute capability detected"),
    "old-cuda-driver": ("warning", "the CUDA driver is old; an older CUDA variant is used"),
    "no-gpus": ("verdict", "discovery found no compatible GPU"),
    "gpu-detected": ("discovery", "pre-0.1.34: a GPU was detected"),
    "cpu-no-avx": ("error", "the CPU lacks AVX, so GPU support is disabled"),
    "cpu-features": ("discovery", "the CPU's vector extensions"),
    "llm-library-request": ("config", "OLLAMA_LLM_LIBRARY asked for a runner / library folder"),
    "llm-library-invalid": ("error", "OLLAMA_LLM_LIBRARY names a runner that does not exist"),
    "compatible-libs": ("discovery", "the CUDA library folders handed to the model runner"),
    "gpu-lib-added": ("discovery", "a GPU library folder was added to the runner's path"),
    # discovery, eras C/D (runner / llama-server)
    "visible-devices-override": ("warning", "a *_VISIBLE_DEVICES variable restricts the GPUs"),
    "library-skipped": ("warning", "a library folder was skipped because of OLLAMA_LLM_LIBRARY"),
    "vulkan-disabled": ("discovery", "the Vulkan folder was skipped (OLLAMA_VULKAN off)"),
    "jetpack-skipped": ("discovery", "a JetPack folder was skipped"),
    "runner-start": ("runner", "a runner / llama-server process is started"),
    "runner-env": ("runner", "the environment given to a runner (subprocess)"),
    "bootstrap": ("discovery", "one discovery probe finished: which folders it probed"),
    "discovery-failure": ("error", "a discovery probe failed (timeout, crash, error)"),
    "runner-exited": ("warning", "a discovery runner exited"),
    "initial-count": ("verdict", "how many GPUs the first discovery pass found"),
    "verify-device": ("discovery", "a found device is re-probed for support"),
    "device-filtered": ("error", "a device was dropped: it did not fully initialise"),
    "device-overlap": ("discovery", "a duplicate device / overlapping library was dropped"),
    "refresh-failed": ("warning", "free-memory refresh failed"),
    "discovery-watchdog": ("error", "llama-server discovery timed out"),
    "compute-unsupported": ("error", "a CUDA device's compute capability is not compiled in"),
    "driver-too-old": ("error", "the NVIDIA driver is too old for this CUDA runtime"),
    "driver-unverified": ("warning", "the NVIDIA driver version could not be checked"),
    "igpu-dropped": ("discovery", "an integrated GPU was dropped"),
    "zero-memory-device": ("error", "a device reporting zero memory was skipped"),
    "llama-server-missing": ("error", "the llama-server binary was not found / could not start"),
    "native-probe-failed": ("warning", "the native GPU probe failed"),
    "list-devices-failed": ("error", "llama-server --list-devices failed"),
    "inference-compute": ("verdict", "a device discovery settled on (one line per device, or the CPU)"),
    # runner and ggml
    "backend-path": ("runner", "the runner scans a folder for ggml backends"),
    "backend-path-skipped": ("warning", "a backend search path was ignored (not part of ollama)"),
    "library-path-unset": ("runner", "OLLAMA_LIBRARY_PATH not set in the runner"),
    "backend-loaded": ("runner", "ggml loaded a backend library"),
    "backend-load-failed": ("error", "ggml failed to load a backend library"),
    "backend-search-missing": ("warning", "a ggml backend search path does not exist"),
    "cuda-init": ("runner", "ggml-cuda initialised and counted its devices"),
    "cuda-device": ("runner", "one CUDA device as ggml-cuda sees it"),
    "cuda-init-failed": ("error", "ggml-cuda could not initialise CUDA"),
    "ggml-system": ("runner", "the features of the loaded ggml backends"),
    "backend-device-init-failed": ("error", "a ggml backend device failed to initialise (runner panics)"),
    "nvml-error": ("warning", "NVML could not be loaded or initialised"),
    "nvml-memory": ("runner", "free memory read through NVML"),
    "llama-server-devices": ("runner", "a device listed by llama-server"),
    "llama-server-archs": ("runner", "the CUDA architectures llama-server was built for"),
    # model load, offload, VRAM and crashes
    "model-runner-library": ("load", "the runner library a model is loaded with"),
    "offload": ("load", "how many layers go to the GPU"),
    "offloaded": ("load", "layers actually offloaded to the GPU"),
    "cpu-only-runner": ("error", "the runner was built without GPU offload support"),
    "num-gpu-zero": ("load", "the accelerated runner was skipped (num_gpu=0)"),
    "vram-insufficient": ("error", "not enough VRAM for the model"),
    "out-of-memory": ("error", "an allocation failed: out of memory"),
    "runner-crash": ("error", "the runner process crashed or terminated"),
    "runner-exec-failed": ("error", "the runner could not start: a shared library it needs did not load"),
    "cuda-error": ("error", "a CUDA error inside the runner"),
    "ggml-assert": ("error", "a GGML_ASSERT failed"),
    "panic": ("error", "a Go panic or fatal signal"),
    "container-error": ("error", "the container runtime could not hand the GPU to the container"),
    "install-no-gpu": ("error", "the installer found no NVIDIA GPU"),
    "preload-error": ("error", "a library named in LD_PRELOAD or /etc/ld.so.preload could not be preloaded"),
    "device-node-error": ("error", "an NVIDIA device node is missing or not accessible"),
    "model-loaded": ("load", "the model finished loading"),
}

# Error-looking kinds, for the TUI's highlight and the severity of an event.
ERROR_KINDS = frozenset(k for k, (g, _) in KINDS.items() if g == "error")

# (kind, pattern). Named groups become fields. Order matters: first match wins.
_P = r"(?P<path>\S+)"
SIGNATURES: Tuple[Tuple[str, str], ...] = (
    # -- crashes and runner errors first: they can appear inside any message ----------------
    ("ggml-assert", r"GGML_ASSERT\((?P<expr>.*?)\) failed|GGML_ASSERT"),
    ("cuda-error", r"CUDA error: (?P<error>.*)|CUDA error (?P<code>\d+) at "),
    ("container-error", r"nvidia-container-cli|could not select device driver .* with capabilities: \[\[gpu\]\]"
                        r"|Failed to initialize NVML: Unknown Error"),
    ("install-no-gpu", r"No NVIDIA(?:/AMD)? GPU detected"),
    ("preload-error", r"ld\.so: object '?(?P<path>[^' ]+)'? from (?P<origin>\S+) cannot be preloaded"),
    ("device-node-error", r"(?P<path>/dev/nvidia[\w-]*)\S*:? (?:No such file or directory|Permission denied|cannot open|"
                          r"Operation not permitted)|failed to open (?P<path2>/dev/nvidia[\w-]*)"),
    ("out-of-memory", r"cudaMalloc failed: out of memory|out of memory|failed to allocate (?:CUDA|compute) (?:buffer|pp buffers)"
                      r"|unable to allocate (?:CUDA\d*|backend|ROCm\d*) buffer"),
    ("runner-crash", r"llama runner process (?:has terminated|no longer running)(?:: (?P<error>.*))?"
                     r"|runner process has terminated|llama runner terminated|status=\"?llm server error"
                     r"|error loading llama server|unable to load model|runner crashed"),
    # the dynamic loader refusing to start a runner binary (a missing or corrupt library)
    ("runner-exec-failed", r"error while loading shared libraries: (?P<path>[^\s:]+): (?P<error>.*)"),
    ("panic", r"^panic: (?P<error>.*)|^fatal error: (?P<fatal>.*)|SIG(?:SEGV|ABRT|BUS|ILL): |signal arrived during cgo execution"),
    # -- startup --------------------------------------------------------------------------
    ("version", r"Listening on (?P<addr>\S+) \(version (?P<version>[^)\s]+)\)"
                r"|^ollama version is (?P<cli_version>\d+\.\d+\.\d+\S*)"),
    ("server-config", r"^(?:INFO )?server config"),
    ("runners-list", r"^Dynamic LLM libraries(?: \[(?P<inline>[^\]]*)\])?"),
    ("total-vram", r"^entering low vram mode|^vram-based default context"),
    ("nvidia-smi-failed", r"[Gg][Pp][Uu] support may not (?:be )?enabled|nvidia-smi command failed|permissions to run nvidia-smi"),
    ("lib-dir-missing", r"unable to locate gpu dependency libraries"),
    # -- era A/B discovery ----------------------------------------------------------------------
    ("discovery-start", r"^(?:looking for compatible GPUs|Detecting GPU type|Detecting GPUs|discovering available GPUs)"),
    ("lib-search", r"^(?:Searching for GPU (?:management )?library|gpu library search|searching for GPU discovery libraries)"),
    ("libs-discovered", r"^(?:discovered|Discovered) GPU libraries(?::? \[(?P<inline>[^\]]*)\])?"),
    ("driver-mismatch", r"version mismatch between driver and cuda driver library"),
    ("no-nvidia-devices", r"^no nvidia devices detected"),
    ("cuda-unknown-error", r"unknown error initializing cuda driver library"),
    ("skip-32bit", r"skipping 32bit library"),
    ("gpu-memory-error", r"error looking up nvidia GPU memory|failed to get device context(?: (?P<code>\d+))?"
                         r"|device memory info lookup failure(?: (?P<code2>\d+))?"),
    ("driver-lib-error", r"^(?:Unable to load (?:cudart|nvcuda|nvml|cuda|CUDA|oneapi)|unable to load cuda driver library"
                         r"|Unable to load cudart CUDA management library|Unable to load CUDA management library"
                         r"|Unable to load NVML management library|nvidia-ml loaded|cuda driver library init failure"
                         r"|unable to get device count)"
                         r"(?: (?P<library>/\S+?):? (?P<error>.*))?"),
    # 0.1.x (before 0.1.2x): gpu.go's one-line verdict, "CUDA not detected: <why>"
    ("driver-lib-error", r"^CUDA not detected: (?P<error>.*)"),
    ("dlsym-error", r"^dlerr: (?P<error>.*)|symbol lookup for (?P<symbol>\w+) failed"),
    ("cuda-error-code", r"^(?P<call>cuInit|cudaSetDevice|cudaGetDeviceCount|cuDeviceGetCount|nvmlInit_v2|nvmlInit|cudaDriverGetVersion|cuDriverGetVersion) err: (?P<code>-?\d+)"),
    ("gpu-too-old", r"CUDA GPU is too old\. (?:Falling back to CPU mode\. )?Compute Capability detected: (?P<compute>\d+\.\d+)"),
    ("compute-detected", r"^CUDA Compute Capability detected: (?P<compute>\d+\.\d+)"),
    ("old-cuda-driver", r"old CUDA driver detected"),
    ("no-gpus", r"^no compatible GPUs were discovered|^no GPU detected"),
    ("gpu-detected", r"^(?P<vendor>Nvidia|Radeon|AMD) GPU detected"),
    ("cpu-no-avx", r"CPU does not have (?:minimum )?(?:vector extensions|AVX)"),
    ("cpu-features", r"^CPU has (?P<features>\S+)"),
    ("llm-library-invalid", r"Invalid OLLAMA_LLM_LIBRARY (?P<requested>\S+)"),
    ("llm-library-request", r"^using requested gpu library|^user override"),
    ("compatible-libs", r"^compatible gpu libraries"),
    ("gpu-lib-added", r"^adding gpu (?:library|dependency paths)"),
    ("gpus-detected", r"^detected GPUs"),
    # -- era C/D discovery ------------------------------------------------------------------------
    ("visible-devices-override", r"^user overrode visible devices"),
    ("library-skipped", r"^skipping available library at users?'?s? request"),
    ("vulkan-disabled", r"^experimental Vulkan support disabled"),
    ("jetpack-skipped", r"^jetpack not detected"),
    ("runner-start", r"^(?:starting (?:llama server|llama runner|runner|llama-server)(?: for device discovery)?"
                     r"|running llama-server for discovery|Loading Dynamic llm server: (?P<lib>\S+))"),
    ("runner-env", r"^subprocess\b"),
    ("bootstrap", r"^(?:bootstrap|llama-server device) discovery took"),
    ("discovery-failure", r"^failure during (?:llama-server )?GPU discovery"),
    ("runner-exited", r"^runner exited"),
    ("initial-count", r"^evaluating which, if any, devices to filter out|^filtering out unsupported or overlapping GPU library combinations"),
    ("verify-device", r"^verifying (?:if device|GPU) is supported"),
    ("device-filtered", r"^filtering device which didn't fully initialize"),
    ("device-overlap", r"^(?:filtering device with overlapping libraries|dropping duplicate device|removing unsupported or overlapping GPU combination)"),
    ("refresh-failed", r"unable to refresh free memory"),
    ("discovery-watchdog", r"GPU discovery watchdog timed out|discovery: timed out waiting for server startup"),
    ("compute-unsupported", r"compute capability not in compiled architectures"),
    ("driver-too-old", r"^NVIDIA driver too old"),
    ("driver-unverified", r"^could not verify NVIDIA driver compatibility"),
    ("igpu-dropped", r"^dropping integrated GPU"),
    ("zero-memory-device", r"^skipping pseudo-device with zero memory"),
    ("llama-server-missing", r"llama-server not available for device discovery|llama-server binary not found"
                             r"|llama-server discovery: failed to start"),
    ("native-probe-failed", r"^native GPU discovery failed"),
    ("list-devices-failed", r"llama-server --list-devices failed"),
    ("inference-compute", r"^inference compute"),
    # -- runner and ggml -------------------------------------------------------------------------
    ("backend-path", r"^ggml backend load all from path"),
    ("backend-path-skipped", r"^skipping path which is not part of ollama"),
    ("library-path-unset", r"^OLLAMA_LIBRARY_PATH not set"),
    ("backend-loaded", r"load_backend: loaded (?P<backend>\S+) backend from (?P<path>\S+)"),
    ("backend-load-failed", r"load_backend: failed to (?:load|find) (?P<path>[^\s:]+)(?::\s*(?P<error>.*))?"
                            r"|ggml_backend_load_best: failed to load (?P<path2>\S+)"),
    ("backend-search-missing", r"ggml_backend_load_best: search path (?P<path>\S+) does not exist"),
    # (the function name is matched loosely: pasted quotes lose characters, "gml_cuda_init")
    ("cuda-init-failed", r"_(?:cuda_init|init_cublas): failed to initialize CUDA: (?P<error>.*)"
                         r"|no CUDA-capable device is detected"),
    ("cuda-init", r"(?:ggml_cuda_init|ggml_init_cublas): found (?P<count>\d+) (?P<backend>CUDA|ROCm|MUSA) devices"),
    ("cuda-device", r"^\s*Device (?P<index>\d+): (?P<name>.+?), compute capability (?P<compute>\d+\.\d+)"
                    r"(?:, VMM: (?P<vmm>\w+))?(?:, ID: (?P<id>\S+))?(?:, VRAM: (?P<vram>\d+) MiB)?"),
    ("ggml-system", r"^system\b|^system info"),
    ("backend-device-init-failed", r"failed to initialize ggml backend device"),
    ("nvml-error", r"ggml_nvml_init unable to (?P<error>.*)"),
    ("nvml-memory", r"utilizing NVML memory reporting"),
    ("llama-server-archs", r"system_info:.*CUDA : ARCHS = (?P<archs>[\d,]+)"),
    ("llama-server-devices", r"^\s*(?P<dev>(?:CUDA|ROCm|Vulkan)\d+): (?P<name>.+) \((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)"),
    # -- model load -------------------------------------------------------------------------------
    ("offloaded", r"offloaded (?P<offloaded>\d+)/(?P<layers>\d+) layers to GPU"),
    ("offload", r"^offload(?: to (?P<library>\w+))?$|^offload\b|^load$"
                r"|(?P<vram>\d+) MB VRAM available, loading up to (?P<gpu_layers>\d+) GPU layers"),
    ("cpu-only-runner", r"Not compiled with GPU offload support|not compiled with GPU offload support"),
    ("num-gpu-zero", r"skipping accelerated runner because num_gpu=0"),
    ("vram-insufficient", r"insufficient VRAM|not enough vram available|model requires more (?:gpu )?memory"),
    ("model-loaded", r"llama runner started in|^model loaded|llama runner started"),
)

COMPILED: Tuple[Tuple[str, Pattern[str]], ...] = tuple((k, re.compile(p)) for k, p in SIGNATURES)

# Every row's pattern in one alternation: a line that fails it needs no further look.
ANY: Pattern[str] = re.compile("|".join("(?:%s)" % re.sub(r"\(\?P<\w+>", "(?:", p) for _, p in SIGNATURES))

# The era each version range belongs to (reference §0), newest first: (min version, era).
ERAS: Tuple[Tuple[Tuple[int, int, int], str], ...] = (
    ((0, 30, 0), "D"),
    ((0, 12, 4), "C"),
    ((0, 5, 8), "B"),
    ((0, 1, 34), "A"),
    ((0, 0, 0), "A0"),
)

# Kinds that only some eras print: used to guess the era when no version line is there.
# Values are the eras the message exists in.
ERA_HINTS: Dict[str, Tuple[str, ...]] = {
    "runners-list": ("A0", "A"),
    "compute-detected": ("A0",),
    "gpu-detected": ("A0",),
    "nvidia-smi-failed": ("A0",),
    "num-gpu-zero": ("A0",),
    "driver-lib-error": ("A0", "A", "B"),
    "libs-discovered": ("A0", "A", "B"),
    "lib-search": ("A0", "A", "B"),
    "no-gpus": ("A", "B"),
    "compatible-libs": ("B",),
    "gpu-lib-added": ("B",),
    "backend-path": ("B", "C"),
    "library-skipped": ("C", "D"),
    "bootstrap": ("C", "D"),
    "initial-count": ("C", "D"),
    "discovery-failure": ("C", "D"),
    "verify-device": ("C", "D"),
    "device-filtered": ("C", "D"),
    "compute-unsupported": ("D",),
    "discovery-watchdog": ("D",),
    "driver-too-old": ("D",),
    "llama-server-missing": ("D",),
    "llama-server-devices": ("D",),
    "zero-memory-device": ("D",),
}

# Text inside a line -> the eras that print it (paths and commands changed between eras).
TEXT_ERA_HINTS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("llama_server.go", ("D",)),
    ("failure during llama-server GPU discovery", ("D",)),
    ("failure during GPU discovery", ("C",)),
    ("--ollama-engine", ("B", "C")),
    ("/runners/", ("A0", "A")),
    ("libext_server", ("A0",)),
    ("ollama_llama_server", ("A0", "A")),
)

# Message text -> era, for discovery-start (the wording changed between eras).
START_ERAS: Dict[str, Tuple[str, ...]] = {
    "looking for compatible GPUs": ("A", "B"),
    "Detecting GPU type": ("A0",),
    "Detecting GPUs": ("A0", "A"),
    "discovering available GPUs": ("C", "D"),
}

# Text of a VRAM message that says the model went to the CPU entirely (0.1.x).
CPU_FALLBACK_TEXTS: Tuple[str, ...] = ("falling back to CPU",)

# Libraries that mean a GPU (the `library` field, lower-cased).
GPU_LIBRARIES = frozenset(("cuda", "rocm", "vulkan", "metal", "oneapi", "musa", "sycl", "hip"))

# CUDA driver error codes (cuda.h CUresult / cudaError_t) that show up in discovery lines.
CUDA_CODES: Dict[int, str] = {
    3: "not initialized",
    35: "the driver is older than the CUDA runtime (insufficient driver)",
    46: "device unavailable (busy or exclusive-process mode)",
    100: "no CUDA-capable device is visible",
    101: "invalid device ordinal",
    222: "the PTX was compiled with an unsupported toolchain",
    304: "an OS call failed (device nodes or permissions)",
    500: "not found (a driver entry point or symbol is missing)",
    801: "operation not supported",
    802: "system not yet initialized (fabric manager)",
    803: "the kernel driver and libcuda versions do not match",
    999: "unknown error (often a broken nvidia_uvm after suspend)",
}


# A CUDA error that means CUDA could not be initialised at all (codes 3, 35, 46, 100, 802, 803,
# 999 of cuda.h / cuda_runtime_api.h, or their texts), as opposed to one raised while computing:
# printed by the runner at start, it is a CUDA init failure, not a crash of a working GPU runner.
CUDA_INIT_ERROR = (r"CUDA error:? (?:3|35|46|100|802|803|999)\b|initialization error|no CUDA-capable device"
                   r"|driver version is insufficient|unsupported display driver|system not yet initialized"
                   r"|busy or unavailable")


# -- a cheap pre-check for unstructured lines ------------------------------------------------
# Slog lines are classified once per distinct message (memoised); raw lines (ggml, llama.cpp,
# the C discovery code, old Go-logger lines) vary, so they first pass two literal checks.
# Chatty llama.cpp loader / context lines are skipped unless they carry an alert word.
RAW_NOISE_PREFIXES: Tuple[str, ...] = (
    "llama_model_loader:", "print_info:", "llm_load_print_meta:", "llm_load_vocab:", "llama_context:",
    "llama_kv_cache", "llama_new_context_with_model:", "load:", "llama_model_load_from_file",
    "clip_model_loader:", "graph_reserve:", "init_tokenizer:", "llama_init_from_model:", "srv ", "slot ",
    "que ", "main:", "build_info:", "llm_load_tensors:", "load_tensors:", "ggml_gallocr", "goroutine ",
    "\t", "created by ", "rax ", "rbx ", "rcx ", "rdx ", "rdi ", "rsi ", "rbp ", "rsp ", "r8 ", "r9 ",
    "r1", "rip ", "rflags ", "cs ", "fs ", "gs ",
)
RAW_NOISE_ALERTS: Tuple[str, ...] = ("rror", "ail", "out of memory", "offloaded", "ASSERT", "CUDA", "VRAM")
# Every signature that can match an unstructured body contains one of these literals
# (tests/test_logs_formats.py checks this against every row's examples and the corpus).
RAW_NEEDLES: Tuple[str, ...] = (
    "GGML_ASSERT", "CUDA error", "cannot be preloaded", "/dev/nvidia", "out of memory", "nable to allocate", "failed to allocate", "llama runner",
    "runner process", "llm server error", "error loading", "unable to load model", "runner crashed", "panic:",
    "fatal error:", "SIG", "signal arrived", "nvidia-container-cli", "with capabilities", "Failed to initialize NVML",
    "GPU detected", "Listening on", "ollama version is", "server config", "Dynamic LLM libraries", "vram", "gpu support may not",
    "nvidia-smi", "support may not", "unable to locate gpu", "looking for compatible", "Detecting GPU", "discovering available",
    "GPU library", "GPU management library", "library search", "discovery libraries", "GPU libraries",
    "version mismatch", "no nvidia devices", "unknown error initializing", "32bit", "nvidia GPU memory",
    "device context", "memory info lookup", "Unable to load", "unable to load", "nvidia-ml loaded", "init failure",
    "device count", "dlerr:", "symbol lookup", " err: ", "GPU is too old", "Compute Capability", "old CUDA driver",
    "no compatible GPUs", "no GPU detected", "CPU does not have", "CPU has", "OLLAMA_LLM_LIBRARY",
    "using requested gpu", "user override", "compatible gpu libraries", "adding gpu", "detected GPUs",
    "visible devices", "skipping available library", "Vulkan support", "jetpack", "starting ", "running llama-server",
    "Loading Dynamic", "subprocess", "discovery took", "GPU discovery", "runner exited", "devices to filter",
    "overlapping", "is supported", "fully initialize", "duplicate device", "refresh free memory", "watchdog",
    "timed out waiting", "compiled architectures", "driver too old", "driver compatibility", "integrated GPU",
    "pseudo-device", "llama-server", "native GPU discovery", "inference compute", "backend load all",
    "not part of ollama", "OLLAMA_LIBRARY_PATH", "load_backend:", "ggml_backend_load_best",
    "initialize CUDA", "CUDA-capable", "found ", "Device ", "system", "ggml backend device", "ggml_nvml_init",
    "NVML memory", "MiB free)", "layers to GPU", "offload", "VRAM available", "GPU offload support",
    "num_gpu=0", "insufficient VRAM", "not enough vram", "CUDA not detected", "shared libraries", "requires more", "runner started", "model loaded",
)


def raw_candidate(body: str) -> bool:
    """False when an unstructured line certainly matches no signature (the fast path)."""
    if body.startswith(RAW_NOISE_PREFIXES):
        return any(a in body for a in RAW_NOISE_ALERTS)
    return any(n in body for n in RAW_NEEDLES)


def classify_raw(body: str) -> Optional[Tuple[str, Dict[str, str]]]:
    """classify() for an unstructured line, with the cheap pre-check first."""
    return classify(body) if raw_candidate(body) else None


def classify(body: str) -> Optional[Tuple[str, Dict[str, str]]]:
    """(kind, named fields) of the first signature matching `body`, or None."""
    if not ANY.search(body):
        return None
    for kind, rx in COMPILED:
        m = rx.search(body)
        if m is not None:
            return kind, {k: v for k, v in m.groupdict().items() if v is not None}
    return None  # pragma: no cover - ANY and COMPILED agree


def era_of(version: Optional[str]) -> Optional[str]:
    """The era letter of an Ollama version string ("0.24.0", "v0.12.4-rc7"), or None."""
    t = version_tuple(version)
    if t is None:
        return None
    for floor, era in ERAS:
        if t >= floor:
            return era
    return None


def version_tuple(version: Optional[str]) -> Optional[Tuple[int, int, int]]:
    if not version:
        return None
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def list_kinds() -> List[str]:
    return list(KINDS)
