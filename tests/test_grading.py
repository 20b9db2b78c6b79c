"""The sandboxed grader: verdicts for correct, wrong, crashing, looping, forking, memory-hogging and
file-writing programs; nothing left running or on disk afterwards; bounded time for hostile
suites; LiveCodeBench's comparison rules."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from autojudge_harness.grading import Grader, Verdict, compare_return, compare_stdout
from autojudge_harness.grading import Test as Case

SUM_TESTS = [Case("3 4\n", "7\n"), Case("10 -5\n", "5"), Case("0 0\n", "0\n")]
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
CALL_TESTS = [Case("[1, 2]\n3", "[4, 5]"), Case("[]\n1", "[]")]
CALL = "class Solution:\n    def addAll(self, nums: List[int], k: int) -> List[int]:\n        return [x + k for x in nums]\n"


def leftovers(root: Path) -> list[str]:
    """Live processes whose command line mentions ``root`` (every test process does: its spec file)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if str(root).encode() in cmdline and state not in (b"Z", b"X"):
            found.append(f"{name}: {cmdline!r}")
    return found


@pytest.fixture
def grader(tmp_path):
    root = tmp_path / "sandbox"
    root.mkdir()
    yield Grader(timeout=2.0, memory_mb=512, tmp_root=str(root))
    assert leftovers(root) == [], "processes left running"
    assert list(root.iterdir()) == [], "temporary directories left behind"


def check(verdict: Verdict, status: str, passed_tests: int = 0) -> None:
    assert verdict.status == status, verdict
    assert verdict.passed is (status == "passed")
    assert verdict.tests_passed == passed_tests


def test_correct_and_wrong(grader):
    check(grader.grade(SUM, SUM_TESTS), "passed", 3)
    wrong = grader.grade("a, b = map(int, input().split())\nprint(a + b if a else 1)\n", SUM_TESTS)
    check(wrong, "wrong_answer", 2)
    assert wrong.failed_test == 2 and "expected" in wrong.message
    check(grader.grade(CALL, CALL_TESTS, "addAll"), "passed", 2)
    check(grader.grade(CALL.replace("x + k", "x - k"), CALL_TESTS, "addAll"), "wrong_answer", 0)
    # the LiveCodeBench prelude: List without an import; a tuple answers a list; a module-level function works
    check(grader.grade("def addAll(nums, k):\n    return tuple(x + k for x in nums)\n", CALL_TESTS, "addAll"),
          "passed", 2)
    # exit() ends a stdin/stdout program normally, as in lcb_runner
    check(grader.grade(SUM + "exit(3)\n", SUM_TESTS), "passed", 3)


def test_errors(grader):
    crash = grader.grade("raise ValueError('boom')", SUM_TESTS)
    check(crash, "runtime_error")
    assert "ValueError: boom" in crash.message
    check(grader.grade("def f(:\n", SUM_TESTS), "compile_error")
    check(grader.grade(CALL, CALL_TESTS, "missing"), "runtime_error")
    check(grader.grade("class Solution:\n    def f(self, a, b):\n        return {1}\n", CALL_TESTS, "f"), "runtime_error")
    assert grader.grade(SUM, []).status == "no_tests"


def test_output_flood_is_capped(tmp_path):
    root = tmp_path / "sb"
    root.mkdir()
    grader = Grader(timeout=5.0, memory_mb=512, output_mb=1, tmp_root=str(root))
    check(grader.grade("while True:\n    print('x' * 1000)\n", SUM_TESTS), "output_limit_exceeded")
    assert leftovers(root) == [] and list(root.iterdir()) == []


def test_infinite_loop_and_hostile_suite_time_is_bounded(grader):
    start = time.monotonic()
    check(grader.grade("while True:\n    pass\n", SUM_TESTS * 10), "time_limit_exceeded")
    assert time.monotonic() - start < grader.timeout + 3  # stops at the first failing test
    start = time.monotonic()  # passes the first test, then hangs: still one timeout
    slow = grader.grade("a, b = map(int, input().split())\nwhile a == 10:\n    pass\nprint(a + b)\n", SUM_TESTS * 10)
    check(slow, "time_limit_exceeded", 1)
    assert time.monotonic() - start < grader.timeout + 4
    assert grader.problem_cap(30) == (grader.timeout + 1) * 30 + 5


def test_fork_is_refused_in_process(grader):
    verdict = grader.grade("import os\nwhile True:\n    os.fork()\n", SUM_TESTS)
    check(verdict, "runtime_error")
    assert "os.fork is not allowed" in verdict.message
    for program, text in [("import subprocess\nsubprocess.run(['sleep', '100'])", "subprocess.Popen"),
                          ("import ctypes", "import of ctypes"), ("import _posixsubprocess", "_posixsubprocess"),
                          ("import socket\nsocket.create_connection(('127.0.0.1', 9))", "socket"),
                          ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))", "resource.setrlimit"),
                          ("import os\nos.kill(1, 9)", "os.kill")]:
        verdict = grader.grade(program, SUM_TESTS)
        check(verdict, "runtime_error")
        assert text in verdict.message, (program, verdict.message)


def test_os_level_containment_without_the_guard(tmp_path):
    """With the in-process guard off, the watchdog still stops a fork bomb, and processes that left the
    session (setsid) or outlived the test are killed: nothing stays behind."""
    root = tmp_path / "sb"
    root.mkdir()
    grader = Grader(timeout=3.0, memory_mb=512, guard=False, max_processes=16, tmp_root=str(root))
    start = time.monotonic()
    bomb = grader.grade("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                        SUM_TESTS)
    check(bomb, "process_limit_exceeded")
    assert time.monotonic() - start < 10
    assert leftovers(root) == []
    escape = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(100)\n" + SUM
    check(grader.grade(escape, SUM_TESTS), "passed", 3)
    assert leftovers(root) == []
    check(grader.grade("import os, time\nfor _ in range(3):\n    os.fork()\ntime.sleep(100)\n", SUM_TESTS),
          "time_limit_exceeded")
    assert leftovers(root) == [] and list(root.iterdir()) == []


def test_memory_hog(tmp_path):
    root = tmp_path / "sb"
    root.mkdir()
    grader = Grader(timeout=20.0, memory_mb=256, tmp_root=str(root))  # generous time: the machine may be busy
    check(grader.grade("x = bytearray(1 << 30)\n", SUM_TESTS), "memory_limit_exceeded")
    check(grader.grade("a = []\nwhile True:\n    a.append([0] * 100000)\n", SUM_TESTS), "memory_limit_exceeded")
    assert leftovers(root) == [] and list(root.iterdir()) == []


def test_file_writing(grader, tmp_path):
    outside = tmp_path / "outside.txt"
    inside = ("import os\nopen('scratch.txt', 'w').write('x')\nos.mkdir('d')\nos.remove('scratch.txt')\n"
              "open('d/y', 'w').write('y')\n" + SUM)
    check(grader.grade(inside, SUM_TESTS), "passed", 3)  # its working directory is writable (and removed)
    verdict = grader.grade(f"open({str(outside)!r}, 'w').write('x')\n" + SUM, SUM_TESTS)
    check(verdict, "runtime_error")
    assert "not allowed" in verdict.message and not outside.exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    for program in (f"import os\nos.remove({str(victim)!r})", f"import os\nos.rename({str(victim)!r}, 'v')",
                    f"import os\nfd = os.open({str(victim)!r}, os.O_WRONLY | os.O_TRUNC)",
                    f"import os\nos.link({str(victim)!r}, 'hard')", f"import shutil\nshutil.rmtree({str(tmp_path)!r})"):
        check(grader.grade(program, SUM_TESTS), "runtime_error")
    assert victim.read_text() == "keep"
    # a fresh working directory per test: a file from test 0 is gone in test 1
    fresh = "import os\nprint(int(os.path.exists('mark')))\nopen('mark', 'w').close()\n"
    check(grader.grade(fresh, [Case("", "0"), Case("", "0")]), "passed", 2)


def test_environment_is_minimal(grader, monkeypatch):
    monkeypatch.setenv("AUTOJUDGE_TEST_SECRET", "hunter2")
    program = "import os\nprint(sorted(k for k in os.environ if 'SECRET' in k or 'TOKEN' in k or 'KEY' in k))\n"
    check(grader.grade(program, [Case("", "[]")]), "passed", 1)
    check(grader.grade("import os\nprint(os.getcwd() == os.environ['HOME'])\n", [Case("", "True")]), "passed", 1)


def test_grade_many_keeps_order(grader):
    jobs = [(SUM, SUM_TESTS, None), ("print(0)", SUM_TESTS, None), (CALL, CALL_TESTS, "addAll"),
            ("while True: pass", SUM_TESTS, None)]
    assert [v.status for v in grader.grade_many(jobs, workers=3)] == \
        ["passed", "wrong_answer", "passed", "time_limit_exceeded"]


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
    assert compare_stdout("", "")


def test_compare_return_rules():
    assert compare_return("[1, 2]", "[1, 2]")
    assert compare_return("2.0", "2")
    assert compare_return("true", "true") and not compare_return("false", "true")
    assert not compare_return("[[1, 2]]", "[[2, 1]]")
    assert not compare_return('{"1": 2}', '{"1": 3}')


def test_bad_limits():
    with pytest.raises(ValueError, match="bad grader limits"):
        Grader(timeout=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Grader(memory_mb=1)
