"""probes.eras: the era map and version rules of ollama-discovery.md §0–§3, as data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.eras import ERAS, era_for, parse_version, rule, rules_for

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.parametrize("version,letter", [
    ("0.1.20", "A0"), ("0.1.34", "A"), ("v0.5.7", "A"), ("0.5.8", "B"), ("0.12.3", "B"),
    ("0.12.4-rc7", "C"), ("0.12.4", "C"), ("0.24.0", "C"), ("0.25.0-rc0", "C"),
    ("0.30.0", "D"), ("0.33.0-rc2", "D"),
])
def test_era_map(version, letter):
    assert era_for(version).letter == letter


def test_unknown_versions():
    assert parse_version("0.0.0") is None  # dev build without -X
    assert era_for("garbage") is None and era_for(None) is None


def test_rules_follow_milestones():
    assert rule("runner_search_env", "0.6.6") == "LD_LIBRARY_PATH"
    assert rule("runner_search_env", "0.6.7") == "OLLAMA_LIBRARY_PATH"
    assert rule("vulkan", "0.12.10") is None and rule("vulkan", "0.12.11") == "opt-in"
    assert rule("vulkan", "0.30.0") == "default-on"
    assert rule("llm_library_skip_message", "0.24.0") == "skipping available library at user's request"
    assert rule("libollama_must_be_dir", "0.24.0") is False
    assert rule("libollama_candidates", "0.24.0")[0] == "{exe}/../lib/ollama"
    assert "cuda" in rule("ggml_backend_names", "0.24.0")
    assert len(rule("ggml_backend_names", "0.24.0")) == 13  # a_installed: lib/ollama read 13 times


def test_eras_contiguous():
    for a, b in zip(ERAS, ERAS[1:]):
        assert parse_version(a.last) < parse_version(b.first)


def test_symbol_era_keys_exist_in_required_json():
    req = SHARED / "data" / "symbols" / "required.json"
    if not req.exists():
        pytest.skip("shared data not present")
    eras = json.loads(req.read_text())["eras"]
    for v in ("0.1.20", "0.3.0", "0.9.6", "0.12.5", "0.24.0", "0.33.0"):
        assert rule("symbol_era", v) in eras
    assert rules_for("0.24.0")["symbol_era"] == "v0.12.6-v0.25"


def test_era_d_and_b_rules_follow_their_tags():
    # filterOldCUDADriver: f22ec2ec4 (v0.30.11) replaced the old-compute-only check.
    assert rule("cuda_driver_filter", "0.30.10")["needs"] == "old-compute"
    assert rule("cuda_driver_filter", "0.30.11")["checks"][0]["driver_below"] == 550
    assert rule("cuda_driver_filter", "0.24.0") is None
    assert rule("jetpack_missing_dir_fallback", "0.31.1") is None and rule("jetpack_missing_dir_fallback", "0.31.2")
    assert rule("llama_server_candidates", "0.30.0")[0] == "{lib}/llama-server"
    # Era B runner layouts: 718eda1b3 (v0.6.7) and 6a74bba7e (v0.6.8).
    assert rule("model_runner_olp", "0.6.6") is None and rule("model_runner_olp", "0.6.7") == ("lib", "compat")
    assert rule("model_runner_ld_path", "0.6.7")[1] == "inherited"
    assert rule("model_runner_ld_path", "0.6.8")[:3] == ("dep", "compat", "lib")
    assert rule("model_runner_compatible", "0.11.5") == "first-per-gpu"
    # cudaVariant: v11 until v0.11.10, v13 from v0.11.11, the compute check from v0.12.0.
    assert rule("cuda_variant", "0.5.12")["checks"][0]["cc_below"] == (6, 0)
    assert rule("cuda_variant", "0.11.11")["default"] == "v13"
    assert "cc_below" in rule("cuda_variant", "0.12.0")["checks"][0]
    assert rule("cuda_variant", "0.3.6") is None
    assert "cuDeviceGetName" not in rule("nvcuda_symbols", "0.1.34")
    assert rule("era_a_runners", "0.5.1") == "payload" and rule("era_a_runners", "0.5.2") == "runners-dir"
