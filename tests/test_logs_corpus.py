"""Every real log of ../shared/corpus comes out as its thread / recording established."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.logs import parse_file

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"

# Cases whose label cannot be read from the excerpt itself (the thread says more than the log).
GAPS = {
    "034.log": "the excerpt stops after runner extraction; the failing cudaSetDevice line named in "
               "the thread's title is not in it, so the log alone shows no failure",
}


def _cases():
    out = []
    for j in sorted((CORPUS / "issue-logs").glob("*.json")):
        out.append(pytest.param(j.with_suffix(".log"), json.loads(j.read_text()), id="issue-" + j.stem))
    labels = CORPUS / "ollama-0.24" / "labels.json"
    if labels.exists():
        for name, lab in sorted(json.loads(labels.read_text()).items()):
            out.append(pytest.param(CORPUS / "ollama-0.24" / name, lab, id="0.24-" + name))
    return out


CASES = _cases()


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("path,label", CASES)
def test_corpus_case_comes_out_as_labelled(path, label):
    if path.name in GAPS:
        pytest.xfail(GAPS[path.name])
    assert_comes_out_as_labelled(path, label, no_invented_verdict=True)


def assert_comes_out_as_labelled(path, label, no_invented_verdict=False):
    """The parser's library, gpu_used, gpu_count, version and its one error finding match the
    label of a real log (shared here with tests/test_logs_extra.py)."""
    r = parse_file(str(path))
    for key, got in (("library", r.library), ("gpu_used", r.gpu_used), ("gpu_count", r.gpu_count)):
        if label.get(key) is not None:
            assert got == label[key], f"{key}: {got!r} != {label[key]!r}"
    if no_invented_verdict and label.get("library") is None:
        # the excerpt stops before any verdict: the parser must not invent one
        assert r.library is None or label.get("gpu_used") is not None
    if r.ollama_version is not None and label.get("ollama_version"):
        assert r.ollama_version == label["ollama_version"]
    errors = [f for f in r.findings if f.severity == "error"]
    accept = label.get("accept_categories")
    if accept is None:
        return
    if accept == []:
        assert errors == [], [f.category for f in errors]
    else:
        assert errors, "expected an error finding in " + str(accept)
        assert errors[0].category in accept, (errors[0].category, accept)
        assert len(errors) == 1
        assert errors[0].evidence and all(e.startswith("line ") for e in errors[0].evidence)


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
def test_version_and_era_read_from_the_log():
    r = parse_file(str(CORPUS / "ollama-0.24" / "h200_gpu_ok.log"))
    assert (r.ollama_version, r.era) == ("0.24.0", "C")
    assert [(d.name, d.library, d.compute) for d in r.devices] == [("NVIDIA H200", "cuda", "9.0")]
    kinds = {e.kind for e in r.events}
    assert {"version", "server-config", "discovery-start", "runner-start", "bootstrap", "initial-count",
            "backend-loaded", "cuda-init", "cuda-device", "inference-compute"} <= kinds
    r = parse_file(str(CORPUS / "issue-logs" / "019.log"))
    assert (r.ollama_version, r.era) == ("0.3.10", "A")


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
def test_evidence_names_the_proof_lines():
    r = parse_file(str(CORPUS / "ollama-0.24" / "e3_llm_library_cuda_v13_on_b.log"))
    err = r.errors[0]
    assert any("skipping available library at user's request" in e for e in err.evidence)
    assert err.fix is not None and err.fix.command == "vgpu-tui fix unset OLLAMA_LLM_LIBRARY"
    r = parse_file(str(CORPUS / "issue-logs" / "028.log"))
    # "context 46time=..." is split: the C message and the Go line are two pieces of line 1
    assert r.errors[0].category == "cuda-init-failed"
    assert "46" in r.errors[0].detail
