"""The CPU's vector extensions, from the inspected system's /proc/cpuinfo.

Why it matters: Ollama 0.1.23-0.5.1 refused every GPU when the CPU lacked AVX (a
Proxmox/QEMU CPU type such as kvm64 hides it), and ggml's CPU backend picks its
libggml-cpu-* variant from the same flags. Both facts are tables below, not code.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

from probes.facts import Finding
from probes.host import Host

# /proc/cpuinfo flag -> the name ggml and Ollama use for it.
FEATURE_FLAGS = (
    ("sse4_2", "SSE42"),
    ("avx", "AVX"),
    ("f16c", "F16C"),
    ("fma", "FMA"),
    ("bmi2", "BMI2"),
    ("avx2", "AVX2"),
    ("avx_vnni", "AVX_VNNI"),
    ("avx512f", "AVX512"),
    ("avx512vbmi", "AVX512_VBMI"),
    ("avx512_vnni", "AVX512_VNNI"),
    ("avx512_bf16", "AVX512_BF16"),
    ("amx_int8", "AMX_INT8"),
)

# Ollama versions that disabled the GPU without AVX (gpu/gpu.go, read at each tag:
# "CPU does not have AVX or AVX2, disabling GPU support." v0.1.23-v0.1.44;
# "CPU does not have minimum vector extensions, GPU inference disabled" v0.1.45-v0.5.1).
AVX_GPU_GATE = (
    {"first": (0, 1, 23), "last": (0, 1, 44), "requires": "AVX",
     "log": "CPU does not have AVX or AVX2, disabling GPU support."},
    {"first": (0, 1, 45), "last": (0, 5, 1), "requires": "AVX",
     "log": "CPU does not have minimum vector extensions, GPU inference disabled"},
)

# ggml's score bits (ggml-cpu/arch/x86/cpu-feats.cpp): a variant scores 1 + the bits of the
# features it was built with, when the CPU has them all; the highest score is loaded.
GGML_SCORE_BITS = {"FMA": 1, "F16C": 2, "SSE42": 4, "BMI2": 8, "AVX": 16, "AVX2": 32, "AVX_VNNI": 64,
                   "AVX512": 128, "AVX512_VBMI": 256, "AVX512_BF16": 512, "AVX512_VNNI": 1024,
                   "AMX_INT8": 2048}

# Ollama's x86 libggml-cpu-* variants and the features each is built with.
GGML_CPU_VARIANTS = (
    ("alderlake", ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2", "AVX_VNNI")),
    ("icelake", ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2", "AVX512", "AVX512_VBMI", "AVX512_VNNI")),
    ("skylakex", ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2", "AVX512")),
    ("haswell", ("SSE42", "AVX", "F16C", "FMA", "BMI2", "AVX2")),
    ("sandybridge", ("SSE42", "AVX")),
    ("sse42", ("SSE42",)),
    ("x64", ()),
)


@dataclasses.dataclass(frozen=True)
class CpuFacts:
    source: Optional[str]  # inspected path read, None when unreadable
    model: Optional[str]
    vendor: Optional[str]
    count: int  # logical processors listed
    hypervisor: bool
    features: Tuple[str, ...]  # ggml names present, in FEATURE_FLAGS order
    avx: Optional[bool]
    avx2: Optional[bool]
    avx512: Optional[bool]
    ggml_cpu_variants: Tuple[str, ...]  # the variants this CPU can run, highest ggml score first


def parse_cpuinfo(text: str, source: Optional[str] = "/proc/cpuinfo") -> CpuFacts:
    """Facts from the text of /proc/cpuinfo (the first processor's flags)."""
    first: Dict[str, str] = {}
    count = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            count += 1
        if count <= 1 and key not in first:
            first[key] = value.strip()
    flags = set(first.get("flags", "").split())
    if not flags:
        return CpuFacts(source, first.get("model name"), first.get("vendor_id"), count,
                        False, (), None, None, None, ())
    present = tuple(name for flag, name in FEATURE_FLAGS if flag in flags)
    usable = [(1 + sum(GGML_SCORE_BITS[n] for n in needs), v) for v, needs in GGML_CPU_VARIANTS
              if all(n in present for n in needs)]
    variants = tuple(v for _, v in sorted(usable, reverse=True))
    return CpuFacts(
        source=source,
        model=first.get("model name"),
        vendor=first.get("vendor_id"),
        count=count,
        hypervisor="hypervisor" in flags,
        features=present,
        avx="AVX" in present,
        avx2="AVX2" in present,
        avx512="AVX512" in present,
        ggml_cpu_variants=variants,
    )


def collect(host: Host) -> CpuFacts:
    text = host.read_text("/proc/cpuinfo", limit=4 * 1024 * 1024)
    if text is None:
        return CpuFacts(None, None, None, 0, False, (), None, None, None, ())
    return parse_cpuinfo(text)


def gpu_gate(version: Tuple[int, ...]) -> Optional[dict]:
    """The AVX rule of this Ollama version, or None when it uses the GPU without AVX."""
    for rule in AVX_GPU_GATE:
        if rule["first"] <= tuple(version)[:3] <= rule["last"]:
            return rule
    return None


def findings(cpu: CpuFacts) -> Tuple[Finding, ...]:
    if cpu.avx is not False:
        return ()
    gates = ", ".join("%s-%s" % (".".join(map(str, r["first"])), ".".join(map(str, r["last"])))
                      for r in AVX_GPU_GATE)
    return (Finding(
        id="cpu-lacks-avx",
        category="cpu-lacks-avx",
        severity="warning",
        title="The (virtual) CPU does not report AVX",
        detail=("Ollama %s disables every GPU without AVX; newer versions still use the GPU but "
                "run the CPU parts on the slowest ggml variant (%s). In a VM, give the guest the "
                "host's CPU type (e.g. Proxmox/QEMU 'host', libvirt host-passthrough)."
                % (gates, cpu.ggml_cpu_variants[0] if cpu.ggml_cpu_variants else "x64")),
        evidence=("%s: flags lack avx (model %s)" % (cpu.source, cpu.model or "unknown"),),
    ),)
