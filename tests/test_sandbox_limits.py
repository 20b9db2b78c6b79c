"""The limits in force inside the sandbox, read by the program itself (``resource.getrlimit``), and
the SIGXFSZ behaviour: writing past the file-size cap fails with EFBIG instead of killing the program."""

from __future__ import annotations

import math
import os

import pytest

from autojudge_harness import sandbox
from autojudge_harness.grading import Grader, Test

LEVELS = [pytest.param(level, marks=pytest.mark.skipif(bool(sandbox.probe(level, os.sys.executable)),
                                                       reason=f"{level} unavailable"))
          for level in ("bwrap", "unshare")] + ["guard"]
READ_LIMITS = """import errno, resource, signal
names = ["RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE"]
print([list(resource.getrlimit(getattr(resource, name))) for name in names])
print(signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN)
try:
    with open("big", "wb") as fh:
        fh.write(b"x" * (3 << 20))
    print("wrote past the cap")
except OSError as err:
    print(errno.errorcode[err.errno])
"""


@pytest.mark.parametrize("level", LEVELS)
def test_limits_in_force_and_file_size_cap(level, tmp_path):
    grader = Grader(timeout=2.5, memory_mb=700, output_mb=2, max_processes=9, isolation=level, semantics="intent",
                    tmp_root=str(tmp_path))
    cpu = math.ceil(grader.timeout) + 1
    expected = [[9, 9], [700 << 20, 700 << 20], [cpu, cpu + 1], [2 << 20, 2 << 20], [0, 0]]
    verdict = grader.grade(READ_LIMITS, [Test("", f"{expected}\nTrue\nEFBIG\n")])
    sandbox.POOL.close()
    assert verdict.status == "passed", verdict.message
