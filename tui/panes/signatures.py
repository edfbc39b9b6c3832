"""Highlighting of Ollama's discovery signatures in the live log (a table, not code).

Each row: a regex and the style of what it matches, by meaning — the GPU found (green), the
GPU lost (red), something to look at (yellow), the discovery steps (cyan).
"""
from __future__ import annotations

import re
from typing import Optional, Pattern, Tuple

from rich.highlighter import Highlighter
from rich.text import Text

GOOD, BAD, WARN, STEP = "bold green", "bold red", "yellow", "cyan"

SIGNATURES: Tuple[Tuple[str, str], ...] = (
    # the GPU was found / used
    (r'msg="inference compute".*library=(?:cuda|CUDA|rocm|ROCm|vulkan|Vulkan)\b', GOOD),
    (r"load_backend: loaded (?:CUDA|ROCm|Vulkan) backend from \S+", GOOD),
    (r"ggml_cuda_init: found [1-9]\d* CUDA devices", GOOD),
    (r"offloaded [1-9]\d*/\d+ layers to GPU", GOOD),
    (r"library=(?:CUDA|cuda|ROCm|rocm)\b", GOOD),  # also when a wrapped line splits the message
    # the GPU was lost
    (r"library=cpu\b", BAD),
    (r"initial_count=0\b", BAD),
    (r"no compatible GPUs were discovered", BAD),
    (r"failure during (?:llama-server )?GPU discovery", BAD),
    (r"ggml_cuda_init: failed to initialize CUDA[^\n]*", BAD),
    (r"failed to initialize ggml backend device", BAD),
    (r"(?:unable|failed) to load[^\n]*", BAD),
    (r"error looking up nvidia GPU memory", BAD),
    (r"watchdog timed out|failed to finish discovery before timeout", BAD),
    (r"offloaded 0/\d+ layers to GPU", BAD),
    (r"level=ERROR", BAD),
    (r"total.vram\"?=\"0 B\"", BAD),
    # worth a look
    (r"level=WARN", WARN),
    (r"user overrode visible devices", WARN),
    (r"skipping available library at users? request|skipping available library at user's request", WARN),
    (r"filtering device[^\"]*", WARN),
    (r"OLLAMA_LLM_LIBRARY:?=?\S+", WARN),
    (r"CUDA_VISIBLE_DEVICES[:=]-?\d[^\s\]]*", WARN),
    # the steps of discovery
    (r"discovering available GPUs\.\.\.", STEP),
    (r"bootstrap discovery took", STEP),
    (r"evaluating which, if any, devices to filter out", STEP),
    (r"ggml backend load all from path", STEP),
    (r'msg="starting runner"', STEP),
    (r"Listening on \S+ \(version [^)]+\)", STEP),
    (r'msg="server config"', STEP),
    (r"(?:OLLAMA_LIBRARY_PATH|LD_LIBRARY_PATH)=\S+", STEP),
    (r"level=DEBUG|level=TRACE", "dim"),
)

_COMPILED = tuple((re.compile(pattern), style) for pattern, style in SIGNATURES)

# Quick pre-check so the common request line costs one search, not thirty.
_ANY = re.compile("|".join(f"(?:{p})" for p, _ in SIGNATURES))


class SignatureHighlighter(Highlighter):
    """Styles discovery signatures and the current filter's matches in one log line."""

    def __init__(self) -> None:
        self.filter: Optional[Pattern[str]] = None

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if _ANY.search(plain):
            for pattern, style in _COMPILED:
                for m in pattern.finditer(plain):
                    text.stylize(style, m.start(), m.end())
        if self.filter is not None:
            for m in self.filter.finditer(plain):
                if m.end() > m.start():
                    text.stylize("reverse", m.start(), m.end())
