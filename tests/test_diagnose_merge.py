"""How the diagnosis joins what several probes say about one problem: one finding, the best
fix, all the evidence; and how the log's and the probe's findings join the rules' ones.
(Findings are built here directly: this is the merging logic, not a probe.)
"""
from probes import diagnose
from probes.facts import Finding, Fix


def F(id, category, severity="error", title="", evidence=(), fix=None):
    return Finding(id, category, severity, title or id, "", tuple(evidence), fix)


SYMLINK = Fix("symlink", {"link": "/usr/local/lib/ollama/libcuda.so.1", "target": "/opt/vgpu/lib/libcuda.so.1"},
              "vgpu-tui fix symlink /usr/local/lib/ollama/libcuda.so.1 /opt/vgpu/lib/libcuda.so.1")
MANUAL = Fix("manual", {"hint": "relink the shim"})


def test_the_same_id_twice_is_one_finding_with_both_evidence_and_the_worse_severity():
    a = F("ldcache-stale", "driver-lib-not-found", "warning", evidence=("a",), fix=Fix("ldconfig", {}, "vgpu-tui fix ldconfig"))
    b = F("ldcache-stale", "driver-lib-not-found", "error", evidence=("b",), fix=Fix("ldconfig", {}, "vgpu-tui fix ldconfig"))
    (one,) = diagnose.merge([a, b])
    assert one.severity == "error" and set(one.evidence) == {"a", "b"}


def test_a_probe_finding_without_fix_joins_the_rule_that_explains_the_same_library():
    rule = F("shim-wrong-soname", "shim-incomplete", title="The shim /opt/vgpu/lib/libcuda.so.1 has SONAME 'libcuda.so'",
             fix=SYMLINK)
    probe = F("libcuda-not-found", "driver-lib-not-found", title="libcuda.so.1 cannot be found",
              evidence=("tried /usr/local/lib/ollama/libcuda.so.1",))
    relink = F("shim-wrong-soname-libcuda", "shim-incomplete", title="/opt/vgpu/lib/libcuda.so.1 has SONAME libcuda.so",
               fix=MANUAL)
    merged = diagnose.merge([rule, probe, relink])
    assert len(merged) == 1
    assert merged[0].id == "shim-wrong-soname" and merged[0].fix == SYMLINK
    assert "tried /usr/local/lib/ollama/libcuda.so.1" in merged[0].evidence


def test_two_problems_of_one_category_about_different_things_stay_two():
    a = F("backend-needs-cublas", "backend-lib-missing", title="/usr/local/lib/ollama/cuda_v12/libggml-cuda.so needs libcublas.so.12")
    b = F("ggml-cuda-dangling", "backend-lib-missing", title="/usr/local/lib/ollama/cuda_v13/libggml-cuda.so is dangling")
    assert len(diagnose.merge([a, b])) == 2


def test_two_applicable_fixes_are_never_merged_away():
    a = F("one", "driver-lib-not-found", title="libcuda.so.1 x", fix=SYMLINK)
    b = F("two", "driver-lib-not-found", title="libcuda.so.1 y", fix=Fix("ldconfig", {}, "vgpu-tui fix ldconfig"))
    assert [x.id for x in diagnose.merge([a, b])] == ["one", "two"]


def test_a_log_finding_of_an_explained_category_becomes_evidence():
    rule = F("llm-library-no-match", "wrong-library-override", fix=Fix("unset", {"name": "OLLAMA_LLM_LIBRARY"}))
    log = F("log-llm-library-override", "wrong-library-override", evidence=("line 12: skipping available library",))
    (one,) = diagnose.fold([rule], log, demote=True)
    assert one.id == "llm-library-no-match" and "line 12: skipping available library" in one.evidence


def test_a_log_error_of_another_category_is_a_warning_once_the_files_explain_the_cpu():
    rule = F("ggml-cuda-dangling", "backend-lib-missing")
    log = F("log-cuda-init-failed", "cuda-init-failed")
    out = diagnose.fold([rule], log, demote=True)
    assert [(x.id, x.severity) for x in out] == [("ggml-cuda-dangling", "error"), ("log-cuda-init-failed", "warning")]
    out = diagnose.fold([], log, demote=False)
    assert out[0].severity == "error"  # nothing else explains it: the log's word stands
