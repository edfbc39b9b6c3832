"""The simulated Ollama writes what the real 0.24.0 wrote on the same layouts.

The real logs are ../shared/corpus/ollama-0.24/ (recorded with OLLAMA_DEBUG=2 and =1 on a
machine without GPU, and on a real H200 VM). Each case rebuilds that layout as a sandbox,
runs the simulator with the recorded environment and compares the normalized message
sequence: level, message and keys of every line (values that depend on time, ports and
paths dropped), exactly after `discovering available GPUs...`, as a multiset before (the
server's start-up goroutines race there).
"""
from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from probes.sandbox import builder, simulator

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "ollama-0.24"
JOURNAL = re.compile(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \S+ ollama\[\d+\]: ")
KV = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/ollama-0.24 not present")


def normalize(text: str):
    """[(level, msg, keys)] of a log; raw runner lines become ("RAW", their first words, ())."""
    out = []
    for line in text.splitlines():
        line = JOURNAL.sub("", line)
        if not line.strip() or line.startswith("[GIN]"):
            continue
        if not line.startswith("time="):
            words = line.split()
            head = " ".join(words[:3]) if words[0].startswith("load_backend") else " ".join(words[:2])
            out.append(("RAW", head, ()))
            continue
        pairs = KV.findall(line)
        d = dict(pairs)
        msg = d.get("msg", "").strip('"')
        if msg.startswith("Server listening on") or msg.startswith("Listening on"):
            msg = msg.split(" on ")[0]
        if msg.startswith("Ollama cloud disabled"):
            msg = "Ollama cloud disabled"
        keys = tuple(k for k, _ in pairs if k not in ("time", "level", "source", "msg"))
        if msg == "subprocess" or msg == "system":
            keys = ()  # their keys are the environment / the feature list
        out.append((d.get("level"), msg, keys))
    return out


SHUTDOWN = {"stopping model recommendations cache", "shutting down scheduler pending loop",
            "shutting down scheduler completed loop"}


def split(seq):
    seq = [x for x in seq if x[1] not in SHUTDOWN]
    i = next(i for i, x in enumerate(seq) if x[1] == "discovering available GPUs...")
    return collections.Counter(seq[:i]), seq[i:]


def corpus_env(level: str, extra=()) -> dict:
    env = {"OLLAMA_MODELS": "/usr/share/ollama/models", "OLLAMA_NO_CLOUD": "1",
           "OLLAMA_HOST": "127.0.0.1:11555", "OLLAMA_DEBUG": level,
           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/usr/share/ollama"}
    env.update(extra)
    return env


def _layout_a(vm):
    builder.remove(vm, vm.backend_dir)


def _layout_b(vm):
    builder.write_file(vm, vm.backend_dir + "/libggml-cuda.so", "this is not an ELF file; it stands in for a broken download\n")


def _layout_c(vm):
    builder.remove(vm, vm.backend_dir + "/libggml-cuda.so")
    builder.symlink(vm, vm.backend_dir + "/libggml-cuda.so", "/nonexistent/libggml-cuda.so")


CASES = {
    # corpus file stem: (layout, extra env, no GPU on the machine)
    "a_installed": (_layout_a, {}, True),
    "b_fake_cuda_v12": (_layout_b, {}, True),
    "c_dangling_symlink": (_layout_c, {}, True),
    "e3_llm_library_cuda_v13_on_b": (_layout_b, {"OLLAMA_LLM_LIBRARY": "cuda_v13"}, True),
    "f_library_path_somedir": (_layout_a, {"OLLAMA_LIBRARY_PATH": "/opt/extra/somedir"}, True),
    "h200_gpu_ok": (None, {}, False),
}
FILES = [(stem, stem + ".log", "2") for stem in CASES] + [
    (stem, stem + (".debug.log" if stem != "h200_gpu_ok" else "_debug1.log"), "1") for stem in CASES]


def simulate(tmp_path, stem, level):
    layout, extra, no_gpu = CASES[stem]
    vm = builder.build_vm(str(tmp_path / "vm"), faults=("no-gpu",) if no_gpu else ())
    if layout:
        layout(vm)
    return simulator.serve(vm.root, env_override=corpus_env(level, extra), seed=1)


@pytest.mark.parametrize("stem,name,level", FILES, ids=[f[1] for f in FILES])
def test_same_messages_as_real_ollama(tmp_path, stem, name, level):
    real = (CORPUS / name).read_text()
    ours = simulate(tmp_path, stem, level)
    real_start, real_seq = split(normalize(real))
    our_start, our_seq = split(normalize(ours))
    assert our_start == real_start
    assert our_seq == real_seq


def test_cpu_verdict_lines_match_corpus_text(tmp_path):
    ours = simulate(tmp_path, "a_installed", "1")
    assert 'msg="evaluating which, if any, devices to filter out" initial_count=0' in ours
    assert ('msg="inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama '
            'driver="" pci_id="" type=""') in ours
    assert "OLLAMA_LIBRARY_PATH=[/usr/local/lib/ollama] extra_envs=map[]" in ours
