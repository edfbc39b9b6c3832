"""Ollama's eras and the version-dependent rules the scanner model needs, as data.

Source: ../shared/reference/ollama-discovery.md §0 (era map, milestones), §1 (LibOllamaPath),
§2 (discovery per era), §3 (ggml loader), §6 (environment). Adding a version is an edit of
ERAS or RULES; code asks `rule(name, version)` instead of comparing versions itself.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, Optional, Tuple

Version = Tuple[int, int, int]

# A version after every known one: the upper bound of open ranges.
OPEN: Version = (999, 0, 0)


@dataclasses.dataclass(frozen=True)
class Era:
    letter: str
    first: str
    last: str  # inclusive; "" = open-ended
    discovery: str
    loading: str
    shown_last: str = ""  # how the end of the range is written for people

    @property
    def label(self) -> str:
        hi = self.shown_last or (f"v{self.last}" if self.last else "HEAD")
        return f"era {self.letter} (v{self.first}–{hi})"


ERAS: Tuple[Era, ...] = (
    Era("A0", "0.0.1", "0.1.33", "NVML/cudart through cgo in the server",
        "llama.cpp runners extracted from the binary to a temporary folder"),
    Era("A", "0.1.34", "0.5.7", "libcuda then libcudart through cgo in the server",
        "ollama_llama_server runner executables (payloads, then lib/ollama/runners)"),
    Era("B", "0.5.8", "0.12.3", "libcuda/cudart through cgo in the server",
        "`ollama runner` with ggml dynamic backends lib/ollama[/cuda_vXX]/libggml-*.so"),
    Era("C", "0.12.4", "0.29.99", "`ollama runner --ollama-engine` probes per lib/ollama/*/ folder (GET /info)",
        "the vendored ggml loader in `ollama runner`, from OLLAMA_LIBRARY_PATH", "v0.24.x"),
    Era("D", "0.30.0", "", "upstream llama-server --list-devices plus `ollama gpu-discover`",
        "upstream llama-server with GGML_BACKEND_PATH and LD_LIBRARY_PATH"),
)

# (rule, first version, last version inclusive or "" for open, value). First match wins.
RULES: Tuple[Tuple[str, str, str, Any], ...] = (
    # §1.2 LibOllamaPath candidates, in order; "{exe}" = dir of the resolved executable.
    ("libollama_candidates", "0.3.7", "0.5.1",
     ("{exe}/lib/ollama", "{exe}/../lib/ollama", "{cwd}/lib/ollama",
      "{exe}/../linux-amd64/lib/ollama", "{exe}/../dist/linux-amd64/lib/ollama")),
    ("libollama_candidates", "0.5.2", "0.5.7", ("{exe}/../lib/ollama",)),
    ("libollama_candidates", "0.5.8", "0.29.99",
     ("{exe}/../lib/ollama", "{exe}/build/lib/ollama", "{cwd}/build/lib/ollama")),
    ("libollama_candidates", "0.30.0", "",
     ("{exe}/../lib/ollama", "{exe}/lib/ollama", "{exe}/build/lib/ollama",
      "{exe}/dist/linux-{arch}/lib/ollama", "{exe}/dist/linux_{arch}/lib/ollama",
      "{cwd}/build/lib/ollama", "{cwd}/dist/linux-{arch}/lib/ollama", "{cwd}/dist/linux_{arch}/lib/ollama")),
    # What LibOllamaPath is when no candidate matches: "{exe}", or "" (none found).
    ("libollama_fallback", "0.3.7", "0.5.7", ""),
    ("libollama_fallback", "0.5.8", "", "{exe}"),
    # A candidate counts when os.Stat succeeds (any type) or only when it is a directory.
    ("libollama_must_be_dir", "0.0.1", "0.29.99", False),
    ("libollama_must_be_dir", "0.30.0", "", True),
    # §1.3: where the runner looks for ggml backends.
    ("runner_search_env", "0.5.8", "0.6.6", "LD_LIBRARY_PATH"),
    ("runner_search_env", "0.6.7", "0.29.99", "OLLAMA_LIBRARY_PATH"),
    ("runner_skips_non_lib_ollama", "0.5.9", "0.29.99", True),
    # §2.2: discovery by probe runners over the glob of lib/ollama/*/*ggml-*.
    ("runner_discovery", "0.12.4", "", True),
    ("llm_library_filters_discovery", "0.12.4", "", True),
    ("llm_library_mlx_exempt", "0.20.4", "", True),
    ("llm_library_skip_message", "0.12.4", "0.12.11", "skipping available library at users request"),
    ("llm_library_skip_message", "0.13.0", "", "skipping available library at user's request"),
    ("jetpack_dir_needs_detection", "0.13.1", "", True),
    ("vulkan", "0.12.11", "0.29.99", "opt-in"),  # needs OLLAMA_VULKAN=1
    ("vulkan", "0.30.0", "", "default-on"),  # OLLAMA_VULKAN=0/false skips
    # Probe runner LD_LIBRARY_PATH layout (§2.2 table).
    ("probe_ld_path", "0.12.4", "0.12.6", "libollama+dirs+rocm+inherited"),
    ("probe_ld_path", "0.12.7", "0.29.99", "dirs+inherited"),
    ("probe_ld_path", "0.30.0", "", "server-dir+gpu-dirs+inherited"),
    ("starting_runner_logged", "0.12.7", "0.29.99", True),
    ("model_runner_always_has_libollama", "0.12.9", "", True),
    # §2.1 Era B: the model runner's choice of folder (llm/server.go NewLlamaServer).
    ("model_runner_family_match", "0.5.8", "0.12.3", True),
    # "all": compatible = exact match + every family match (runner uses compatible[0]);
    # "first-per-gpu": compatible = the first match of each GPU (d5a0d8d90).
    ("model_runner_compatible", "0.5.8", "0.11.4", "all"),
    ("model_runner_compatible", "0.11.5", "0.12.3", "first-per-gpu"),
    # The runner's LD_LIBRARY_PATH, as a list of parts: dep = the GPU's DependencyPath
    # (LibOllamaPath/cuda_<variant> when it exists), compat = the chosen folder, lib =
    # LibOllamaPath, inherited = the server's LD_LIBRARY_PATH entries (when set).
    ("model_runner_ld_path", "0.5.8", "0.6.7", ("dep", "inherited", "compat", "lib")),
    ("model_runner_ld_path", "0.6.8", "0.12.3", ("dep", "compat", "lib", "inherited", "lib")),  # 6a74bba7e
    # OLLAMA_LIBRARY_PATH given to the model runner (718eda1b3): LibOllamaPath + compat.
    ("model_runner_olp", "0.6.7", "0.12.3", ("lib", "compat")),
    # discover/cuda_common.go cudaVariant: checks in order, the first that holds gives the
    # variant; cc_below = compute capability (major, minor) below, driver_below = the CUDA
    # driver API version (cuDriverGetVersion; 0.0 when discovery used cudart) below.
    ("cuda_variant", "0.3.7", "0.5.12",  # 4fe3a556f: cuda_v11/cuda_v12 runners
     {"checks": ({"cc_below": (6, 0), "variant": "v11"}, {"driver_below": (12, 1), "variant": "v11"}),
      "default": "v12"}),
    ("cuda_variant", "0.5.13", "0.11.10",
     {"checks": ({"driver_below": (12, 1), "variant": "v11"},), "default": "v12"}),
    ("cuda_variant", "0.11.11", "0.11.11",
     {"checks": ({"driver_below": (13, 0), "variant": "v12"},), "default": "v13"}),
    ("cuda_variant", "0.12.0", "0.12.3",
     {"checks": ({"cc_below": (7, 5), "variant": "v12"}, {"driver_below": (13, 0), "variant": "v12"}),
      "default": "v13"}),
    # Era A/B cgo discovery: a GPU of compute capability below this is unsupported
    # ("CUDA GPU is too old. Compute Capability detected: X.Y").
    ("cgo_min_compute", "0.1.34", "0.12.3", (5, 0)),
    # Era A/B cgo discovery: the bundled folder is searched first for libcuda.so*/libcudart.so*
    # from v0.3.7 (LibraryDir); the extra bundled cudart glob of era B.
    ("cgo_bundled_search", "0.3.7", "0.12.3", True),
    ("cudart_bundled_glob", "0.5.8", "0.12.3", "{lib}/cuda_v*/libcudart.so*"),
    # Era A runners: "payload" = embedded in the binary, extracted at run time (not visible
    # to a static look); "runners-dir" = {lib}/runners/<name>/ollama_llama_server (4879a234c).
    ("era_a_runners", "0.1.34", "0.5.1", "payload"),
    ("era_a_runners", "0.5.2", "0.5.7", "runners-dir"),
    # Era A/B libcuda symbols the cgo discovery dlsym's (discover/gpu_info_nvcuda.c), required.
    ("nvcuda_symbols", "0.1.34", "0.1.34",
     ("cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetAttribute",
      "cuDeviceGetUuid", "cuCtxCreate_v3", "cuMemGetInfo_v2", "cuCtxDestroy")),
    ("nvcuda_symbols", "0.1.35", "0.12.3",
     ("cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetAttribute",
      "cuDeviceGetUuid", "cuDeviceGetName", "cuCtxCreate_v3", "cuMemGetInfo_v2", "cuCtxDestroy")),
    # §3: ggml loader.
    ("ggml_silent_load_failures", "0.5.8", "0.29.99", True),
    ("ggml_backend_path_env", "0.5.13", "", True),
    ("ggml_backend_path_set_by_ollama", "0.30.0", "", True),
    # Backend names ggml_backend_load_all_from_path tries, in order (v0.24.0's list).
    ("ggml_backend_names", "0.5.8", "0.5.12",
     ("blas", "cann", "cuda", "hip", "kompute", "metal", "rpc", "sycl", "vulkan", "opencl", "musa", "cpu")),
    ("ggml_backend_names", "0.5.13", "",
     ("blas", "zendnn", "cann", "cuda", "hip", "metal", "rpc", "sycl", "vulkan", "opencl",
      "hexagon", "musa", "cpu")),
    # CUDA folders the release tarball ships (§7).
    ("bundled_cuda_dirs", "0.5.8", "0.9.2", ("cuda_v11", "cuda_v12")),
    ("bundled_cuda_dirs", "0.9.3", "0.11.10", ("cuda_v12",)),
    ("bundled_cuda_dirs", "0.11.11", "", ("cuda_v12", "cuda_v13")),
    # NVML used for free VRAM on Linux (§4.2).
    ("nvml_linux", "0.12.6", "0.29.99", True),
    # -- era D (§2.3; llm/llama_binary.go, llm/llama_server.go, discover/cuda_compat.go) --
    # Where FindLlamaServer looks for llama-server, in order (os.Stat only: any file type, the
    # execute bit is not checked). "{lib}" = LibOllamaPath, "{exe}" = dir of the resolved
    # executable, "{cwd}" = the server's working directory; entries with "*" are globs of
    # build outputs (llama-server-cuda/rocm/darwin ranked first, then by name).
    ("llama_server_candidates", "0.30.0", "",
     ("{lib}/llama-server", "{exe}/../lib/ollama/llama-server", "{exe}/build/lib/ollama/llama-server",
      "{exe}/dist/linux-{arch}/lib/ollama/llama-server", "{exe}/dist/linux_{arch}/lib/ollama/llama-server",
      "{cwd}/build/lib/ollama/llama-server", "{cwd}/dist/linux-{arch}/lib/ollama/llama-server",
      "{cwd}/dist/linux_{arch}/lib/ollama/llama-server",
      "{exe}/build/llama-server-*/bin/llama-server", "{cwd}/build/llama-server-*/bin/llama-server")),
    # GGML_BACKEND_PATH = first (sorted) match in the first GPU dir that is not LibOllamaPath,
    # skipping names starting with these prefixes (compared lower-cased).
    ("ggml_backend_path_pattern", "0.30.0", "", "libggml-*.so*"),
    ("ggml_backend_path_excluded", "0.30.0", "", ("libggml-base", "libggml-cpu")),
    # llama/server/CMakeLists.txt: CMAKE_INSTALL_RPATH "$ORIGIN" for llama-server and its libraries.
    ("ggml_rpath_origin", "0.30.0", "", True),
    # discover/runner.go: a JetPack whose cuda_jetpackN folder is missing is ignored (624cada95).
    ("jetpack_missing_dir_fallback", "0.31.2", "", True),
    # filterIntegratedGPUs: integrated devices dropped unless OLLAMA_IGPU_ENABLE (CUDA allowed
    # by default; an explicit OLLAMA_IGPU_ENABLE decides for every library).
    ("igpu_filter", "0.30.0", "", ("CUDA",)),
    ("probe_failure_message", "0.12.4", "0.29.99", "failure during GPU discovery"),
    ("probe_failure_message", "0.30.0", "", "failure during llama-server GPU discovery"),
    # filterOldCUDADriver, applied to devices found through a folder named cuda_v12. The NVIDIA
    # driver major comes from NVML (nvmlSystemGetDriverVersion in `ollama gpu-discover`); the
    # runtime version from the highest libcudart.so.MAJOR.MINOR in the probe's dirs, else the
    # folder name cuda_vN (= N.0). Each check drops a device when every condition holds:
    # runtime_major/runtime_minor_min (the runtime), driver_below, cc_major_below (the GPU).
    # "needs" = what must hold before the driver is even asked ("old-compute": some CUDA device
    # of compute major < 7; "cuda": any CUDA device); "unknown" = the WARN when NVML gives none.
    ("cuda_driver_filter", "0.30.0", "0.30.10",
     {"dir": "cuda_v12", "needs": "old-compute",
      "unknown": "could not verify NVIDIA driver compatibility for an older NVIDIA GPU",
      "checks": ({"driver_below": 570, "cc_major_below": 7, "required": "570 or newer"},)}),
    ("cuda_driver_filter", "0.30.11", "",
     {"dir": "cuda_v12", "needs": "cuda",
      "unknown": "could not verify NVIDIA driver compatibility for CUDA",
      "checks": ({"runtime_major": 12, "runtime_minor_min": 4, "driver_below": 550, "required": "550 or newer"},
                 {"runtime_major": 12, "runtime_minor_min": 8, "driver_below": 570, "cc_major_below": 7,
                  "required": "570 or newer"})}),
    # Keys of required.json "eras" (per-era dlsym lists), for the shim check.
    ("symbol_era", "0.1.18", "0.1.29", "v0.1.18-v0.1.29"),
    ("symbol_era", "0.1.30", "0.1.33", "v0.1.30-v0.1.33"),
    ("symbol_era", "0.1.34", "0.1.44", "v0.1.34-v0.1.44"),
    ("symbol_era", "0.1.45", "0.3.14", "v0.1.45-v0.3.14"),
    ("symbol_era", "0.4.0", "0.12.3", "v0.4.0-v0.12.3"),
    ("symbol_era", "0.12.4", "0.12.5", "v0.12.4-v0.12.5"),
    ("symbol_era", "0.12.6", "0.29.99", "v0.12.6-v0.25"),
    ("symbol_era", "0.30.0", "", "v0.30-head"),
)

# The era whose rules apply when the version is unknown: the user's (documented assumption).
DEFAULT_ERA_VERSION = "0.24.0"


def parse_version(text: Optional[str]) -> Optional[Version]:
    """(major, minor, patch) of "0.24.0", "v0.12.4-rc7", "0.5.7+dirty"; None if not a version.

    A pre-release belongs to the range of its release (0.12.4-rc7 has 0.12.4's rules).
    "0.0.0" (a development build without -X) is not a usable version.
    """
    if not text:
        return None
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    v = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    return None if v == (0, 0, 0) else v


def _in(v: Version, first: str, last: str) -> bool:
    lo = parse_version(first) or (0, 0, 0)
    hi = parse_version(last) if last else OPEN
    return lo <= v <= hi


def era_for(version: Optional[str]) -> Optional[Era]:
    """The era of a version string, or None when it cannot be parsed."""
    v = parse_version(version)
    if v is None:
        return None
    for era in ERAS:
        if _in(v, era.first, era.last):
            return era
    return None


def era_by_letter(letter: str) -> Era:
    for era in ERAS:
        if era.letter == letter:
            return era
    raise KeyError(letter)


def rule(name: str, version: Optional[str], default: Any = None) -> Any:
    """The value of a rule for a version (DEFAULT_ERA_VERSION when unknown)."""
    v = parse_version(version) or parse_version(DEFAULT_ERA_VERSION)
    for rname, first, last, value in RULES:
        if rname == name and _in(v, first, last):
            return value
    return default


def rules_for(version: Optional[str]) -> Dict[str, Any]:
    """Every rule that applies to a version, by name (for reports and --json)."""
    out: Dict[str, Any] = {}
    for rname, _, _, _ in RULES:
        if rname not in out:
            value = rule(rname, version)
            if value is not None:
                out[rname] = value
    return out
