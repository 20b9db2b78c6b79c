"""The differential suite: the grader's default (lcb) semantics gives LiveCodeBench's own verdicts
(recorded in tests/fixtures/lcb_differential/lcb_verdicts.json) on the project's 118 cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from autojudge_harness.grading import Grader, Test

FIXTURES = Path(__file__).parent / "fixtures" / "lcb_differential"
sys.path.insert(0, str(FIXTURES))
from cases import CASES, DIVERGES  # noqa: E402

RECORDED = json.loads((FIXTURES / "lcb_verdicts.json").read_text())


def leading_passes(results: list) -> int:
    count = 0
    for entry in results:
        if entry is not True:
            break
        count += 1
    return count


def no_detail(record: dict, tests: int) -> bool:
    """LiveCodeBench's result list says nothing about which test failed: its process died or hit the
    global cap (every test then counts as failed), or a comparison that raised left both the
    compared value and the error code in the list (one entry more than tests were run)."""
    return (record["error"] == "TestRunnerError" or all(r == -1 for r in record["results"])
            or len(record["results"]) > tests)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    grader = Grader(timeout=RECORDED["timeout"], tmp_root=str(tmp_path_factory.mktemp("diff")))
    jobs = [(c["program"], [Test(i, o) for i, o in c["tests"]], c["fn_name"]) for c in CASES]
    return dict(zip([c["id"] for c in CASES], grader.grade_many(jobs)))


def test_suite_is_complete():
    assert len(CASES) >= 60
    assert set(RECORDED["verdicts"]) == {c["id"] for c in CASES}, "re-record lcb_verdicts.json (fixtures README)"
    assert set(DIVERGES) <= {c["id"] for c in CASES}


def test_verdicts_agree_with_livecodebench(verdicts):
    disagree = []
    for case in CASES:
        record, verdict = RECORDED["verdicts"][case["id"]], verdicts[case["id"]]
        assert verdict.isolation in ("bwrap", "unshare") and verdict.semantics == "lcb"
        same = verdict.passed == record["passed"]
        if same and not record["passed"] and not no_detail(record, len(case["tests"])):
            same = verdict.tests_passed == leading_passes(record["results"])
        if not same and case["id"] not in DIVERGES:
            disagree.append(f"{case['id']}: LiveCodeBench {record['results']} {record['error'][:60]!r}; "
                            f"here {verdict.status} after {verdict.tests_passed}: {verdict.message[-300:]!r}")
    agree = len(CASES) - len(disagree)
    print(f"\nagreement with LiveCodeBench: {agree}/{len(CASES)}")
    assert not disagree, "\n".join(disagree)
