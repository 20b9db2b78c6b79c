"""A kernel sandbox serves one program after another (a fork of its driver per program): nothing of
one program reaches the next (files in its working directory or /tmp, processes, System V IPC
objects), the driver cannot be inspected or taken over by a program, and the sandbox runs whatever
interpreter the user has (a venv under /tmp included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autojudge_harness import sandbox
from autojudge_harness.grading import Grader, Test

LEVELS = [pytest.param(level, marks=pytest.mark.skipif(bool(sandbox.probe(level, sys.executable)),
                                                       reason=f"{level} unavailable"))
          for level in ("bwrap", "unshare")]
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
SUM_TESTS = [Test("3 4\n", "7\n")]
LEAVE = """import posix, time
open('/tmp/left-behind', 'w').write('secret')
open('left-behind', 'w').write('secret')
posix.mkdir('locked')
open('locked/inside', 'w').close()
posix.chmod('locked', 0)
posix.mkfifo('/tmp/fifo')
if posix.fork() == 0:
    posix.setsid()
    if posix.fork() == 0:
        open('/tmp/daemon-alive', 'w').close()
        time.sleep(1000)
    posix._exit(0)
time.sleep(0.2)
print('left')
"""
LOOK = """import os, posix
names = ('/tmp/left-behind', 'left-behind', 'locked', '/tmp/fifo', '/tmp/daemon-alive')
left = [p for p in names if os.path.lexists(p)]
others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, posix.getppid(), posix.getpid())]
print(left, others)
"""


@pytest.fixture(params=LEVELS)
def grader(request, tmp_path):
    root = tmp_path / "sandboxes"
    root.mkdir()
    yield Grader(timeout=2.0, memory_mb=512, disk_mb=16, isolation=request.param, tmp_root=str(root))
    sandbox.POOL.close()
    assert list(root.iterdir()) == [], "temporary directories left behind"


def idle_launchers() -> set[int]:
    return {box.proc.pid for boxes in sandbox.POOL._idle.values() for box in boxes}


def test_the_next_program_sees_nothing_of_the_previous_one(grader):
    assert grader.grade(LEAVE, [Test("", "left")]).status == "passed"
    reused = idle_launchers()
    assert len(reused) == 1
    verdict = grader.grade(LOOK, [Test("", "[] []")])
    assert verdict.status == "passed", verdict.message
    assert idle_launchers() == reused  # the same sandbox served both programs


def test_state_that_cannot_be_cleaned_retires_the_sandbox(grader):
    shm = ("import ctypes\nlibc = ctypes.CDLL(None)\n"
           "print(libc.shmget(0x5EED, 4096, 0o1000 | 0o666) >= 0)\n")  # IPC_CREAT: a segment outlives its process
    assert grader.grade(shm, [Test("", "True")]).status == "passed"
    assert idle_launchers() == set()  # retired, not kept
    look = "print(len(open('/proc/sysvipc/shm').read().splitlines()))\n"
    assert grader.grade(look, [Test("", "1")]).status == "passed"  # a fresh sandbox: the header line only


def test_the_driver_cannot_be_inspected_and_killing_it_only_fails_the_program(grader):
    peek = ("import posix\nseen = []\nfor name in ('mem', 'environ', 'cmdline'):\n    try:\n"
            "        open(f'/proc/{posix.getppid()}/' + name, 'rb').read(1)\n        seen.append(name)\n"
            "    except OSError:\n        pass\nprint(seen)\n")
    verdict = grader.grade(peek, [Test("", "['cmdline']")])
    assert verdict.status == "passed", verdict.message
    verdict = grader.grade("import posix\nposix.kill(posix.getppid(), 9)\nimport time\ntime.sleep(5)\n", SUM_TESTS)
    assert verdict.status in ("runtime_error", "time_limit_exceeded"), verdict
    assert grader.grade(SUM, SUM_TESTS).status == "passed"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("system_site", [False, True])
def test_an_interpreter_in_a_venv_under_tmp(level, system_site, tmp_path):
    venv = Path("/tmp") / f"autojudge-venv-{os.getpid()}-{int(system_site)}"
    args = [sys.executable, "-m", "venv", "--without-pip", str(venv)] + (["--system-site-packages"] * system_site)
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    try:
        python = str(venv / "bin" / "python")
        found = sandbox.interpreter(python)
        assert found.executable == os.path.realpath(sys._base_executable)
        assert sandbox.probe(level, python) == ""
        grader = Grader(timeout=5.0, isolation=level, python=python, tmp_root=str(tmp_path))
        assert grader.grade(SUM, SUM_TESTS).status == "passed"
        visible = "import os\nprint(os.path.isdir(os.environ['HOME']), os.path.exists('/work/wt-sandbox'))\n"
        assert grader.grade(visible, [Test("", "True False")]).status == "passed"
    finally:
        sandbox.POOL.close()
        subprocess.run(["rm", "-rf", str(venv)], check=True)
