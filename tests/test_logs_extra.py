"""More real logs from public issue threads (tests/data/issue-logs-extra): each comes out as
the thread established. Same label rules as ../shared/corpus/issue-logs (see its README):
`library`/`gpu_used`/`gpu_count` are checked when labelled; `accept_categories` [] means no
error finding, a list means the first error finding's category is one of them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_logs_corpus import assert_comes_out_as_labelled


DATA = Path(__file__).resolve().parent / "data" / "issue-logs-extra"

# Cases whose label cannot be read from the excerpt itself (reason shown by pytest).
GAPS: dict = {}
# Cases the parser gets wrong for now (being fixed): strict xfail, so a fix shows up.
TODO: set = set()


def _cases():
    out = []
    for j in sorted(DATA.glob("*.json")):
        name = j.stem + ".log"
        marks = [pytest.mark.xfail(strict=True, reason="parser fix pending")] if name in TODO else []
        out.append(pytest.param(j.with_suffix(".log"), json.loads(j.read_text()), id="extra-" + j.stem,
                                marks=marks))
    return out


CASES = _cases()


def test_every_case_has_a_public_source():
    assert len(CASES) >= 25
    for p in CASES:
        path, label = p.values
        assert path.exists(), path
        assert label["source"].startswith("https://github.com/"), path
        assert set(label) >= {"library", "gpu_used", "gpu_count", "accept_categories"}


@pytest.mark.parametrize("path,label", CASES)
def test_extra_case_comes_out_as_labelled(path, label):
    if path.name in GAPS:
        pytest.xfail(GAPS[path.name])
    assert_comes_out_as_labelled(path, label)
