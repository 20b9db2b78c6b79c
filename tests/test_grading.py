"""The grader: verdicts for correct, wrong, crashing, looping and flooding programs under both
semantics, the comparison rules, the typed call-result encoding, the isolation levels (refusal
without kernel isolation, the explicit in-process guard), and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction

import pytest

from autojudge_harness import sandbox
from autojudge_harness.grading import (Grader, SandboxUnavailable, Verdict, compare_return, compare_stdout,
                                       compare_value, decode_value)
from autojudge_harness.grading import Test as Case

SUM_TESTS = [Case("3 4\n", "7\n"), Case("10 -5\n", "5"), Case("0 0\n", "0\n")]
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
CALL_TESTS = [Case("[1, 2]\n3", "[4, 5]"), Case("[]\n1", "[]")]
CALL = "class Solution:\n    def addAll(self, nums: List[int], k: int) -> List[int]:\n        return [x + k for x in nums]\n"


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "sandboxes"
    path.mkdir()
    yield path
    assert list(path.iterdir()) == [], "temporary directories left behind"


@pytest.fixture
def grader(root):
    return Grader(timeout=2.0, memory_mb=512, tmp_root=str(root))


def check(verdict: Verdict, status: str, passed_tests: int = 0) -> None:
    assert verdict.status == status, verdict
    assert verdict.passed is (status == "passed")
    assert verdict.tests_passed == passed_tests


def test_correct_and_wrong(grader):
    verdict = grader.grade(SUM, SUM_TESTS)
    check(verdict, "passed", 3)
    assert verdict.isolation in ("bwrap", "unshare") and verdict.semantics == "lcb"
    wrong = grader.grade("a, b = map(int, input().split())\nprint(a + b if a else 1)\n", SUM_TESTS)
    check(wrong, "wrong_answer", 2)
    assert wrong.failed_test == 2 and "expected" in wrong.message
    check(grader.grade(CALL, CALL_TESTS, "addAll"), "passed", 2)
    check(grader.grade(CALL.replace("x + k", "x - k"), CALL_TESTS, "addAll"), "wrong_answer", 0)
    check(grader.grade("def addAll(nums, k):\n    return tuple(x + k for x in nums)\n", CALL_TESTS, "addAll"),
          "passed", 2)
    check(grader.grade(SUM + "exit(3)\n", SUM_TESTS), "passed", 3)  # as in lcb_runner


def test_errors(grader):
    crash = grader.grade("raise ValueError('boom')", SUM_TESTS)
    check(crash, "runtime_error")
    assert "ValueError: boom" in crash.message
    check(grader.grade("def f(:\n", SUM_TESTS), "compile_error")
    check(grader.grade(CALL, CALL_TESTS, "missing"), "runtime_error")
    check(grader.grade("class Solution:\n    def f(self, a, b):\n        return {1}\n", CALL_TESTS, "f"), "wrong_answer")
    assert grader.grade(SUM, []).status == "no_tests"
    bad = grader.grade(CALL, [Case("[1]\n1", "not json")], "addAll")
    check(bad, "bad_test")
    assert "test 0" in bad.message


def test_state_carries_over_and_time_is_bounded(grader):
    counter = "import sys\nsys.n = getattr(sys, 'n', 0) + 1\nprint(sys.n)\n"
    check(grader.grade(counter, [Case("", "1"), Case("", "2")]), "passed", 2)  # one process per program
    start = time.monotonic()
    check(grader.grade("while True:\n    pass\n", SUM_TESTS * 10), "time_limit_exceeded")
    # the alarm stops the first test; running all 30 would take 30 x timeout. The bound is half of
    # that, generous on purpose: a loaded machine slows the sandbox's process start-up a lot
    assert time.monotonic() - start < 15 * grader.timeout
    slow = grader.grade("a, b = map(int, input().split())\nwhile a == 10:\n    pass\nprint(a + b)\n", SUM_TESTS * 10)
    check(slow, "time_limit_exceeded", 1)
    assert grader.problem_cap(30) == (grader.timeout + 1) * 30 + 5


def test_output_flood_is_capped(root):
    grader = Grader(timeout=5.0, memory_mb=512, output_mb=1, tmp_root=str(root))
    check(grader.grade("while True:\n    print('x' * 1000)\n", SUM_TESTS), "output_limit_exceeded")
    ret = "class Solution:\n    def f(self, x):\n        return 'x' * (8 << 20)\n"
    check(grader.grade(ret, [Case("1", '"x"')], "f"), "output_limit_exceeded")


def test_intent_semantics(root):
    grader = Grader(timeout=2.0, memory_mb=512, semantics="intent", tmp_root=str(root))
    lines = "import sys\nprint(sum(int(line) for line in sys.stdin))\n"  # LiveCodeBench's mock is not iterable
    check(grader.grade(lines, [Case("1\n2\n", "3")]), "passed", 1)
    check(Grader(timeout=2.0, tmp_root=str(root)).grade(lines, [Case("1\n2\n", "3")]), "runtime_error")
    pairs = "class Solution:\n    def f(self, x):\n        return [(x, x)]\n"
    check(grader.grade(pairs, [Case("1", "[[1, 1]]")], "f"), "passed", 1)  # after a JSON round trip
    counter = "import sys\nsys.n = getattr(sys, 'n', 0) + 1\nprint(sys.n)\n"
    check(grader.grade(counter, [Case("", "1"), Case("", "1")]), "passed", 2)  # a fresh process per test
    check(grader.grade("while True:\n    pass\n", SUM_TESTS), "time_limit_exceeded")
    verdict = grader.grade(SUM, SUM_TESTS)
    check(verdict, "passed", 3)
    assert verdict.semantics == "intent"


def test_grade_many_keeps_order(grader):
    jobs = [(SUM, SUM_TESTS, None), ("print(0)", SUM_TESTS, None), (CALL, CALL_TESTS, "addAll"),
            ("while True: pass", SUM_TESTS, None), ("print('sNaN')", [Case("", "1")], None)]
    assert [v.status for v in grader.grade_many(jobs, workers=3)] == \
        ["passed", "wrong_answer", "passed", "time_limit_exceeded", "wrong_answer"]


def test_no_kernel_isolation_refuses_unless_the_guard_is_accepted(monkeypatch, root):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="install_sandbox.sh.*isolation='guard'"):
            Grader(tmp_root=str(root)).grade(SUM, SUM_TESTS)
        with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
            Grader(isolation="bwrap").grade_many([(SUM, SUM_TESTS, None)] * 2)
        verdict = Grader(isolation="guard", tmp_root=str(root)).grade(SUM, SUM_TESTS)
        check(verdict, "passed", 3)
        assert verdict.isolation == "guard"
    finally:
        sandbox.probe.cache_clear()


def test_guard_level_refuses_dangerous_calls(root):
    grader = Grader(timeout=2.0, memory_mb=512, isolation="guard", tmp_root=str(root))
    for program, text in [("import posix\nposix.fork()", "os.fork is not allowed"),
                          ("import ctypes\nprint(1)", "import of ctypes"),
                          ("import socket\nsocket.create_connection(('127.0.0.1', 9))", "socket"),
                          (f"open({str(root / 'x')!r}, 'w')", "not allowed")]:
        verdict = grader.grade(program, SUM_TESTS)
        check(verdict, "runtime_error")
        assert text in verdict.message, (program, verdict.message)
    check(grader.grade("open('scratch', 'w').write('x')\n" + SUM, SUM_TESTS), "passed", 3)


def test_environment_is_minimal_and_workdir_fresh_per_program(grader, monkeypatch):
    monkeypatch.setenv("AUTOJUDGE_TEST_SECRET", "hunter2")
    program = "import os\nprint(sorted(k for k in os.environ if 'SECRET' in k or 'TOKEN' in k or 'KEY' in k))\n"
    check(grader.grade(program, [Case("", "[]")]), "passed", 1)
    where = "import os, posix\nprint(posix.getcwd() == os.environ['HOME'], os.path.exists('mark'))\nopen('mark', 'w')\n"
    check(grader.grade(where, [Case("", "True False"), Case("", "True True")]), "passed", 2)
    check(grader.grade(where, [Case("", "True False")]), "passed", 1)  # the next program starts empty


def test_compare_stdout_rules():
    assert compare_stdout("7\n", "7")
    assert compare_stdout("  1 2  \r\n3\n\n", "1 2\n3")
    assert compare_stdout("1.0 2.50", "1 2.5")  # decimal equality
    assert compare_stdout("3   4", "3 4")
    assert not compare_stdout("1 2", "1 2 3")
    assert not compare_stdout("1\n2", "1 2")  # line structure matters
    assert not compare_stdout("0.3333333", "0.33333333")  # no tolerance beyond exact decimals
    assert not compare_stdout("Yes", "yes")
    assert not compare_stdout("a  b", "a b")  # non-numeric tokens must match as strings
    assert not compare_stdout("50000000000000000", "50000000000000001")
    assert not compare_stdout("sNaN", "1")  # raises InvalidOperation inside: a failed test, no exception
    assert compare_stdout("", "")


def test_compare_return_rules():
    assert compare_return("[1, 2]", "[1, 2]")
    assert compare_return("2.0", "2")
    assert compare_return("true", "true") and not compare_return("false", "true")
    assert not compare_return("[[1, 2]]", "[[2, 1]]")
    assert not compare_return('{"1": 2}', '{"1": 3}')
    assert not compare_return("", "1") and not compare_return("[" * 100000, "1")


def encode(value, max_tokens=10 ** 6):
    sys.path.insert(0, str(sandbox.DRIVER.parent))
    try:
        import sandbox_driver
    finally:
        sys.path.pop(0)
    return sandbox_driver.encode_value(value, max_tokens)


def test_typed_results_round_trip_and_compare_like_python():
    values = [None, True, 3, -2 ** 100, 1.5, float("inf"), 1 + 2j, "s", b"\x00\xff", [1, (2, 3)], {1: "a", "b": [2]},
              frozenset({1, 2}), Decimal("1.25"), Fraction(1, 3), [], (), {}]
    for value in values:
        assert decode_value(encode(value)) == value
    assert type(decode_value(encode((1, 2)))) is tuple and type(decode_value(encode([1]))) is list
    deep = []
    for _ in range(50000):
        deep = [deep]
    assert compare_value(decode_value(encode(deep)), [[1]]) is False  # no recursion either way
    assert compare_value([(1, 2)], [[1, 2]]) is False and compare_value({1: 2}, {"1": 2}) is False
    assert compare_value(Decimal("1.5"), 1.5) and compare_value([True], [1]) and compare_value({"a": [1.0]}, {"a": [1]})
    cycle = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="more than 1000 elements"):
        encode(cycle, 1000)
    for bad in ([], [["Z"]], [["L", 2], ["N"]], [["N"], ["N"]], [["D", 1], ["L", 0], ["N"]], "x"):
        with pytest.raises(ValueError):
            decode_value(bad)


def test_bad_settings():
    with pytest.raises(ValueError, match="bad grader limits"):
        Grader(timeout=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Grader(memory_mb=1)
    with pytest.raises(ValueError, match="unknown semantics 'strict'"):
        Grader(semantics="strict")
    with pytest.raises(ValueError, match="unknown isolation 'docker'"):
        Grader(isolation="docker")


def test_install_sandbox_script_is_idempotent():
    script = sandbox.DRIVER.parents[1] / "scripts" / "install_sandbox.sh"
    if os.geteuid() != 0 and not subprocess.run(["which", "bwrap"], capture_output=True).returncode == 0:
        pytest.skip("installing bubblewrap needs root")
    for _ in range(2):
        run = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
    assert subprocess.run(["bwrap", "--version"], capture_output=True).returncode == 0
