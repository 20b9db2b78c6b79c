"""Sandboxed program runner for LiveCodeBench: the one grader used by the task's scoring AND by
mining's equivalence check.

Contract: ``Grader.grade(program, tests, fn_name)`` runs ``program`` (Python source) on ``tests``
in order and stops at the first test that does not pass (as LiveCodeBench does). ``fn_name=None``
is a stdin/stdout problem (the test input is the program's stdin, its stdout is compared with
``compare_stdout``); otherwise a call-based problem (LeetCode ``class Solution``: the input is one
JSON value per line, the arguments of ``Solution().<fn_name>``, and the return value is compared
with ``compare_return``). Returns a ``Verdict``. ``Grader.grade_many`` grades several programs in
parallel (a pool of threads, each driving one subprocess at a time).

Each test runs in a fresh ``python -I -B autojudge_harness/sandbox_driver.py`` process that is
the leader of a new session, with
- a wall-clock limit per test (default 6 s, LiveCodeBench's) that includes interpreter start-up,
  and a cap on the whole problem, ``(timeout + 1) * tests + 5`` s (LiveCodeBench's global cap);
- RLIMIT_CPU (timeout + 1 s), RLIMIT_AS (``memory_mb``, default 2048), RLIMIT_FSIZE (the output
  cap, default 64 MiB, also for stdout: larger output is an error), no core dumps;
- a fresh temporary working directory (also HOME and TMPDIR), removed afterwards;
- a minimal environment (PATH, LANG, HOME, TMPDIR, thread-count variables and a per-test token):
  nothing of the caller's environment (tokens, keys) is inherited;
- the LiveCodeBench prelude (``from collections import *`` etc., recursion limit 50000);
- an in-process guard, a ``sys.addaudithook`` hook (cannot be removed by the program) that
  refuses process creation (fork, exec, spawn, system, subprocess), signals, sockets, ctypes,
  ``_posixsubprocess``, raising resource limits, hard/soft links, and every filesystem change
  (open for writing, remove, rename, chmod, mkdir, ...) outside the working directory;
- an OS-level process watchdog that works as root too (where RLIMIT_NPROC is not enforced, and
  it would count every process of the user anyway): every process of the test is found in
  /proc by its process group, its session or the token in its environment (which survives
  ``setsid``), the test is stopped when it has more than ``max_processes`` processes, and when the
  test ends (any way) every such process is SIGKILLed, repeatedly until none is left.

NOT enforced (this is not a security boundary; run untrusted code in a container/VM): reading
files (anything the grader's user can read, e.g. caches that hold test data), writes through
extension modules' native code, network access from native code, CPU use of other processes
outside the time limit, total memory across the test's processes (RLIMIT_AS is per process),
processes that both leave the session and exec with a new environment (possible only past the
guard, i.e. from native code), and zombies of killed grandchildren are reaped by init, not here.
Outputs are compared in this process; expected outputs are never written where the program runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

DRIVER = Path(__file__).with_name("sandbox_driver.py")
# Expected outputs may hold integers longer than Python's default 4300-digit parsing limit;
# lcb_runner raises the process-wide limit the same way.
if 0 < sys.get_int_max_str_digits() < 50000:
    sys.set_int_max_str_digits(50000)
DEFAULT_TIMEOUT = 6.0
DEFAULT_MEMORY_MB = 2048
DEFAULT_OUTPUT_MB = 64
DEFAULT_MAX_PROCESSES = 16
# exit codes of sandbox_driver.py
RUNTIME_ERROR, COMPILE_ERROR, MEMORY_ERROR, BAD_CALL = 1, 2, 3, 4

STATUSES = ("passed", "wrong_answer", "runtime_error", "compile_error", "time_limit_exceeded",
            "memory_limit_exceeded", "output_limit_exceeded", "process_limit_exceeded", "no_tests",
            "no_code")  # no_code: set by callers that found no program to run (livecodebench.NO_CODE)


@dataclass(frozen=True)
class Test:
    """One test: the input (stdin text, or JSON values one per line for call-based problems) and
    the expected output (stdout text, or the JSON of the return value)."""

    input: str
    output: str


@dataclass(frozen=True)
class Verdict:
    """A program's result on a problem. ``passed`` iff every test passed; ``status`` is one of
    ``STATUSES`` (the first failing test's); ``failed_test`` is its 0-based index or None."""

    passed: bool
    status: str
    tests_passed: int
    tests_total: int
    failed_test: int | None = None
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# -- comparison (LiveCodeBench's rules) --------------------------------------------------------------


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except (InvalidOperation, ValueError):
        return None


def compare_stdout(output: str, expected: str) -> bool:
    """LiveCodeBench's stdin/stdout rule: both texts stripped and split on "\\n", each line
    stripped; the line counts must agree and each line pair must be equal as strings or, split on
    whitespace, as lists of ``Decimal`` numbers (so "1.0" == "1", "3  4" == "3 4", no tolerance
    beyond exact decimal equality)."""
    got, want = _stripped_lines(output), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if a == b:
            continue
        da, db = _decimals(a), _decimals(b)
        if da is None or db is None or da != db:
            return False
    return True


def compare_return(value_json: str, expected_json: str) -> bool:
    """LiveCodeBench's call-based rule: the return value (as JSON; a tuple was already turned into
    a list) equals ``json.loads(expected)`` under Python ``==``."""
    return json.loads(value_json) == json.loads(expected_json)


# -- processes ------------------------------------------------------------------------------------------


def _clock_ticks_now() -> int:
    with open("/proc/uptime") as fh:
        return int(float(fh.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, process group, session, start time in clock ticks) of ``pid``, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[2]), int(fields[3]), int(fields[19])


def _has_token(pid: int, token: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return token in fh.read()
    except OSError:
        return False


def test_processes(leader: int, token: bytes, since_ticks: int) -> list[int]:
    """Live processes of one test: in ``leader``'s process group or session, or started at or
    after ``since_ticks`` with ``token`` in their environment (this catches ``setsid`` escapes)."""
    found, me = [], os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        info = _stat(pid)
        if info is None or info[0] in ("Z", "X"):
            continue
        _, pgrp, session, start = info
        if pgrp == leader or session == leader or (start >= since_ticks and _has_token(pid, token)):
            found.append(pid)
    return found


def _kill_test(proc: subprocess.Popen, token: bytes, since_ticks: int, budget_s: float = 5.0) -> None:
    """SIGKILL the test's whole process group, then every process still found, until none is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    end = time.monotonic() + budget_s
    while time.monotonic() < end:
        pids = test_processes(proc.pid, token, since_ticks)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    try:
        proc.wait(timeout=max(0.1, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass


def _remove_tree(path: Path) -> None:
    """rmtree that first restores permissions a program may have taken away."""

    def fix(func, p, _exc):
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        func(p)

    if path.exists():
        shutil.rmtree(path, onerror=fix)


# -- the grader ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grader:
    """Grading settings (see the module docstring). ``guard=False`` runs programs without the
    in-process audit-hook guard -- only the OS-level limits and the watchdog then apply (tests use
    it to check that containment alone). ``tmp_root`` is where the temporary directories go
    (default: the system's)."""

    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    output_mb: int = DEFAULT_OUTPUT_MB
    max_processes: int = DEFAULT_MAX_PROCESSES
    guard: bool = True
    tmp_root: str | None = None
    python: str = sys.executable

    def __post_init__(self):
        if not self.timeout > 0 or self.memory_mb < 64 or self.output_mb < 1 or self.max_processes < 1:
            raise ValueError(f"bad grader limits: timeout={self.timeout} s (> 0), memory_mb={self.memory_mb} "
                             f"(>= 64), output_mb={self.output_mb} (>= 1), max_processes={self.max_processes} (>= 1)")

    def problem_cap(self, tests: int) -> float:
        """Wall-clock cap on a whole problem (LiveCodeBench's global timeout)."""
        return (self.timeout + 1) * tests + 5

    def grade(self, program: str, tests: Sequence[Test], fn_name: str | None = None) -> Verdict:
        """Run ``program`` on ``tests`` (stop at the first failure); see the module docstring."""
        start = time.monotonic()
        tests = list(tests)
        if not tests:
            return Verdict(False, "no_tests", 0, 0, None, "the problem has no tests")
        deadline = start + self.problem_cap(len(tests))
        root = Path(tempfile.mkdtemp(prefix="autojudge-grade-", dir=self.tmp_root))
        try:
            program_path = root / "solution.py"
            program_path.write_text(program, encoding="utf-8")
            for index, test in enumerate(tests):
                limit = min(self.timeout, deadline - time.monotonic())
                status, message = self._run_test(root, index, program_path, test, fn_name, limit)
                if status != "passed":
                    return Verdict(False, status, index, len(tests), index, message, time.monotonic() - start)
            return Verdict(True, "passed", len(tests), len(tests), None, "", time.monotonic() - start)
        finally:
            _remove_tree(root)

    def grade_many(self, jobs: Sequence[tuple[str, Sequence[Test], str | None]], workers: int | None = None,
                   progress: bool = False) -> list[Verdict]:
        """Verdicts of ``(program, tests, fn_name)`` jobs, graded in parallel by ``workers`` threads
        (default: the number of CPUs), in the order given."""
        workers = workers or os.cpu_count() or 1
        if len(jobs) <= 1 or workers == 1:
            return [self.grade(*job) for job in jobs]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self.grade, *job) for job in jobs]
            if progress:
                from tqdm import tqdm

                for _done in tqdm(as_completed(futures), total=len(futures), desc="grading", dynamic_ncols=True):
                    pass
            return [f.result() for f in futures]

    def _run_test(self, root: Path, index: int, program_path: Path, test: Test, fn_name: str | None,
                  limit: float) -> tuple[str, str]:
        if limit <= 0:
            return "time_limit_exceeded", "the problem's total time cap was reached"
        workdir = root / f"work-{index}"
        workdir.mkdir(mode=0o700)
        stdin_path, stdout_path, stderr_path, result_path = (root / f"{k}-{index}" for k in
                                                              ("stdin", "stdout", "stderr", "result"))
        call = fn_name is not None
        stdin_path.write_text("" if call else test.input, encoding="utf-8")
        spec = {"mode": "call" if call else "stdio", "program": str(program_path), "workdir": str(workdir),
                "result": str(result_path), "fn_name": fn_name, "args": test.input if call else None,
                "memory_bytes": self.memory_mb << 20, "cpu_seconds": int(math.ceil(self.timeout)) + 1,
                "file_bytes": self.output_mb << 20, "guard": self.guard}
        spec_path = root / f"spec-{index}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        token = f"AUTOJUDGE_SANDBOX_{uuid.uuid4().hex}"
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(workdir),
               "TMPDIR": str(workdir), "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "AUTOJUDGE_SANDBOX": token}
        since = _clock_ticks_now() - 1
        with open(stdin_path, "rb") as fin, open(stdout_path, "wb") as fout, open(stderr_path, "wb") as ferr:
            proc = subprocess.Popen([self.python, "-I", "-B", str(DRIVER), str(spec_path)], stdin=fin, stdout=fout,
                                    stderr=ferr, cwd=workdir, env=env, start_new_session=True, close_fds=True)
        verdict = None
        try:
            verdict = self._watch(proc, token.encode(), since, limit)
        finally:
            _kill_test(proc, token.encode(), since)
        if verdict is not None:
            return verdict
        return self._judge(proc.returncode, test, stdout_path, stderr_path, result_path, call)

    def _watch(self, proc: subprocess.Popen, token: bytes, since: int, limit: float) -> tuple[str, str] | None:
        """Wait for the test's process; a (status, message) if it had to be stopped, else None."""
        deadline = time.monotonic() + limit
        interval = 0.01
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "time_limit_exceeded", f"no result within {limit:.2f} s"
            try:
                proc.wait(timeout=min(interval, remaining))
                return None
            except subprocess.TimeoutExpired:
                pass
            count = len(test_processes(proc.pid, token, since))
            if count > self.max_processes:
                return "process_limit_exceeded", f"{count} processes (limit {self.max_processes})"
            interval = min(2 * interval, 0.2)

    def _judge(self, returncode: int, test: Test, stdout_path: Path, stderr_path: Path, result_path: Path,
               call: bool) -> tuple[str, str]:
        out_cap = self.output_mb << 20
        stderr = stderr_path.read_bytes()[-2000:].decode("utf-8", "replace")
        if stdout_path.stat().st_size >= out_cap:
            return "output_limit_exceeded", f"output reached the {self.output_mb} MiB cap"
        if returncode == COMPILE_ERROR:
            return "compile_error", stderr
        if returncode == MEMORY_ERROR:
            return "memory_limit_exceeded", f"MemoryError (limit {self.memory_mb} MiB)"
        if returncode == -signal.SIGXCPU:
            return "time_limit_exceeded", "CPU time limit"
        if returncode != 0:
            return "runtime_error", stderr or f"exit status {returncode}"
        if call:
            value = result_path.read_text(encoding="utf-8", errors="replace") if result_path.exists() else ""
            try:
                same = compare_return(value, test.output)
            except ValueError:  # not JSON (an empty result file: the program ended it early)
                same = False
            return ("passed", "") if same else ("wrong_answer", f"returned {value[:200]!r}, expected {test.output[:200]!r}")
        output = stdout_path.read_bytes().decode("utf-8", "replace")
        if compare_stdout(output, test.output):
            return "passed", ""
        return "wrong_answer", f"printed {output[:200]!r}, expected {test.output[:200]!r}"
