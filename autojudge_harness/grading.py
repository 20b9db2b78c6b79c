"""The grader of LiveCodeBench programs: the one used by the task's scoring AND by mining's
equivalence check. Programs run in a kernel sandbox (``autojudge_harness.sandbox``) through
``sandbox_driver.py``; outputs are compared here, and expected outputs never enter the sandbox.

Contract: ``Grader.grade(program, tests, fn_name)`` -> ``Verdict`` for ``program`` (Python source)
on ``tests`` in order, stopping at the first test that does not pass. ``fn_name=None``: a
stdin/stdout problem (``compare_stdout``); else call-based (each test input is one JSON value per
line, the arguments; the expected output is one JSON value). ``grade_many`` grades several jobs in
parallel. Neither raises because of a program: every outcome is a Verdict (``STATUSES``);
``SandboxUnavailable`` (before anything runs) and ``ValueError`` for bad settings are the only
errors.

Semantics (``SEMANTICS``):
- ``lcb`` (default): LiveCodeBench's runner (see ``sandbox_driver``): one sandboxed process per
  (problem, program) running the tests in order with state carried over; a per-test alarm of
  ``timeout`` s in the process and a cap of ``(timeout + 1) * tests + 5`` s on the whole problem;
  the import prelude and recursion limit 50000; integers up to 50000 digits; stdin/stdout through
  LiveCodeBench's function wrapping with mocked stdin and captured stdout; call-based results
  compared with Python ``==`` against the decoded expected value (a tuple result becomes a list;
  no JSON round trip: a list of tuples or an int-keyed dict is not the JSON value, a numpy scalar
  or Decimal that ``==`` it is). Known difference: a result of a type the program defines (or any
  type not listed in ``sandbox_driver.encode_value``) is never equal (LiveCodeBench would call
  its ``__eq__``; here that code stays in the sandbox).
- ``intent``: each test in a fresh sandboxed process, the program run as ``__main__`` with its
  real stdin/stdout, ``timeout`` s per test; call-based results compared after a JSON round trip
  (``compare_return``). Judges what a program does rather than how LiveCodeBench's harness
  happens to run it.
Isolation (``Grader.isolation``): "auto" (bwrap, else unshare; SandboxUnavailable if neither
works), "bwrap", "unshare", or "guard" (no kernel isolation, only the in-process guard: must be
asked for). The level used is in every Verdict (``isolation``). A kernel sandbox is kept for the next
program (``sandbox.POOL``): each program runs in a fresh fork of its driver, and the sandbox is
restored (processes killed, /work and /tmp emptied) or retired in between.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

from .sandbox import POOL, Limits, Sandbox, SandboxUnavailable, interpreter, resolve_isolation

__all__ = ["Grader", "Test", "Verdict", "SandboxUnavailable", "compare_stdout", "compare_return", "compare_value",
           "decode_value", "STATUSES", "SEMANTICS"]

# Expected outputs may hold integers longer than Python's default 4300-digit parsing limit;
# LiveCodeBench's evaluation raises the process-wide limit to 50000 the same way.
INT_MAX_STR_DIGITS = 50000
if 0 < sys.get_int_max_str_digits() < INT_MAX_STR_DIGITS:
    sys.set_int_max_str_digits(INT_MAX_STR_DIGITS)
DEFAULT_TIMEOUT = 6.0
DEFAULT_MEMORY_MB = 2048
DEFAULT_OUTPUT_MB = 64
DEFAULT_DISK_MB = 64
DEFAULT_MAX_PROCESSES = 16
SEMANTICS = ("lcb", "intent")
STATUSES = ("passed", "wrong_answer", "runtime_error", "compile_error", "time_limit_exceeded",
            "memory_limit_exceeded", "output_limit_exceeded", "process_limit_exceeded", "sandbox_violation",
            "bad_test", "no_tests", "grader_error",
            "no_code")  # no_code: set by callers that found no program to run (livecodebench.NO_CODE)
DRIVER_STATUSES = {"compile_error", "runtime_error", "time_limit_exceeded", "memory_limit_exceeded",
                   "output_limit_exceeded"}


@dataclass(frozen=True)
class Test:
    """One test: the input (stdin text, or JSON values one per line for call-based problems) and
    the expected output (stdout text, or the JSON of the return value)."""

    input: str
    output: str


@dataclass(frozen=True)
class Verdict:
    """A program's result on a problem. ``passed`` iff every test passed; ``status`` is one of
    ``STATUSES`` (the first failing test's); ``tests_passed`` the tests passed before it;
    ``failed_test`` its 0-based index or None; ``isolation`` and ``semantics`` how it was graded."""

    passed: bool
    status: str
    tests_passed: int
    tests_total: int
    failed_test: int | None = None
    message: str = ""
    seconds: float = 0.0
    isolation: str = ""
    semantics: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# -- comparison ----------------------------------------------------------------------------------------------


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except (ArithmeticError, ValueError):
        return None


def compare_stdout(output: str, expected: str) -> bool:
    """LiveCodeBench's stdin/stdout rule: both texts stripped and split on "\\n", each line
    stripped; the line counts must agree and each line pair must be equal as strings or, split on
    whitespace, as lists of ``Decimal`` numbers (so "1.0" == "1", "3  4" == "3 4", no tolerance
    beyond exact decimal equality). A comparison that raises (``sNaN``) is not equal, as it fails
    the test in LiveCodeBench."""
    got, want = _stripped_lines(output), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if a == b:
            continue
        da, db = _decimals(a), _decimals(b)
        try:
            if da is None or db is None or da != db:
                return False
        except ArithmeticError:  # decimal.InvalidOperation: a signalling NaN
            return False
    return True


def compare_return(value_json: str, expected_json: str) -> bool:
    """The ``intent`` call-based rule: the return value's JSON (a tuple was already turned into a
    list) equals the expected JSON under Python ``==`` after both are decoded. Undecodable -> False."""
    try:
        return json.loads(value_json) == json.loads(expected_json)
    except (ValueError, RecursionError):
        return False


class Opaque:
    """A result value of a type the grader does not rebuild: equal to nothing."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name} object>"


SCALARS = {"N": lambda t: None, "B": lambda t: bool(t[1]), "I": lambda t: int(t[1], 16),
           "F": lambda t: float.fromhex(t[1]), "C": lambda t: complex(float.fromhex(t[1]), float.fromhex(t[2])),
           "S": lambda t: str(t[1]), "Y": lambda t: str(t[1]).encode("latin-1"), "M": lambda t: Decimal(str(t[1])),
           "Q": lambda t: Fraction(int(t[1], 16), int(t[2], 16)), "O": lambda t: Opaque(str(t[1]))}
CONTAINERS = {"L": list, "T": tuple, "E": frozenset}


def _array(items):
    try:
        import numpy
    except ImportError:
        return Opaque("numpy.ndarray")
    return numpy.array(items[0])


def decode_value(tokens) -> object:
    """The value of ``sandbox_driver.encode_value``'s tokens, rebuilt without recursion.
    ValueError for a malformed token list."""
    if not isinstance(tokens, list) or not tokens:
        raise ValueError("the result is not a token list")
    frames: list[list] = [["root", 1, []]]  # [kind, items still needed, items]
    for token in tokens:
        if not frames:
            raise ValueError("tokens after the end of the value")
        if not isinstance(token, list) or not token or not isinstance(token[0], str):
            raise ValueError(f"bad token {str(token)[:80]}")
        kind = token[0]
        try:
            if kind in SCALARS:
                value = SCALARS[kind](token)
            elif kind in CONTAINERS or kind in ("D", "A"):
                count = 1 if kind == "A" else int(token[1]) * (2 if kind == "D" else 1)
                if count < 0:
                    raise ValueError("negative length")
                frames.append([kind, count, []])
                if count:
                    continue
                value = None  # an empty container: built below
            else:
                raise ValueError(f"unknown token kind {kind!r}")
        except (IndexError, TypeError, ArithmeticError, OverflowError) as err:
            raise ValueError(f"bad token {str(token)[:80]}: {err}") from None
        if kind in CONTAINERS or kind in ("D", "A"):
            value = _build(frames.pop())
        frames[-1][2].append(value)
        frames[-1][1] -= 1
        while frames[-1][1] == 0 and frames[-1][0] != "root":
            value = _build(frames.pop())
            frames[-1][2].append(value)
            frames[-1][1] -= 1
        if frames[-1][0] == "root" and frames[-1][1] == 0:
            frames.pop()
    if frames:
        raise ValueError("the token list ends inside a value")
    return value


def _build(frame):
    kind, _, items = frame
    try:
        if kind == "D":
            return dict(zip(items[0::2], items[1::2]))
        if kind == "A":
            return _array(items)
        return CONTAINERS[kind](items)
    except TypeError as err:  # an unhashable key or set element
        raise ValueError(f"bad {kind} value: {err}") from None


def compare_value(value, expected) -> bool:
    """Python's ``value == expected`` (lcb call-based rule) for rebuilt values, without recursion:
    lists/tuples and dicts structurally, everything else with ``==`` (which may raise, e.g. for a
    numpy array of several elements: LiveCodeBench counts that as a runtime error)."""
    pending = [(value, expected)]
    while pending:
        a, b = pending.pop()
        if type(a) in (list, tuple) and type(b) in (list, tuple):
            if type(a) is not type(b) or len(a) != len(b):
                return False
            pending.extend(zip(a, b))
        elif type(a) is dict and type(b) is dict:
            if len(a) != len(b):
                return False
            for key, item in a.items():
                if key not in b:
                    return False
                pending.append((item, b[key]))
        elif not (a == b):
            return False
    return True


# -- the grader ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grader:
    """Grading settings (see the module docstring): per-test ``timeout`` (s), ``memory_mb`` (per
    process, and with the tmpfs sizes the cgroup cap of all of a program's processes),
    ``output_mb`` (captured output and file size), ``disk_mb`` (the working directory and /tmp
    each), ``max_processes``, ``isolation``, ``semantics``, ``tmp_root`` (the host directory for
    the sandboxes' temporary directories), ``python`` (the interpreter that runs programs)."""

    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    output_mb: int = DEFAULT_OUTPUT_MB
    max_processes: int = DEFAULT_MAX_PROCESSES
    disk_mb: int = DEFAULT_DISK_MB
    isolation: str = "auto"
    semantics: str = "lcb"
    tmp_root: str | None = None
    python: str = sys.executable

    def __post_init__(self):
        if not self.timeout > 0 or self.memory_mb < 64 or self.output_mb < 1 or self.max_processes < 1 \
                or self.disk_mb < 1:
            raise ValueError(f"bad grader limits: timeout={self.timeout} s (> 0), memory_mb={self.memory_mb} "
                             f"(>= 64), output_mb={self.output_mb} (>= 1), max_processes={self.max_processes} "
                             f"(>= 1), disk_mb={self.disk_mb} (>= 1)")
        if self.semantics not in SEMANTICS:
            raise ValueError(f"unknown semantics {self.semantics!r}; one of {', '.join(SEMANTICS)}")
        if self.isolation not in ("auto", "bwrap", "unshare", "guard"):
            raise ValueError(f"unknown isolation {self.isolation!r}; one of auto, bwrap, unshare, guard")

    def level(self) -> str:
        """The isolation level programs run under; SandboxUnavailable if it cannot run here."""
        return resolve_isolation(self.isolation, self.python)

    def problem_cap(self, tests: int) -> float:
        """Wall-clock cap on a whole problem (LiveCodeBench's global timeout)."""
        return (self.timeout + 1) * tests + 5

    def grade(self, program: str, tests: Sequence[Test], fn_name: str | None = None) -> Verdict:
        """The verdict of ``program`` on ``tests`` (see the module docstring); never raises because
        of the program (an internal failure is a ``grader_error`` verdict)."""
        level = self.level()
        start = time.monotonic()
        tests = list(tests)
        try:
            if not tests:
                verdict = Verdict(False, "no_tests", 0, 0, None, "the problem has no tests")
            elif self.semantics == "lcb":
                verdict = self._grade_lcb(level, program, tests, fn_name)
            else:
                verdict = self._grade_intent(level, program, tests, fn_name)
        except Exception as err:  # noqa: BLE001 -- a batch must get one verdict per program
            verdict = Verdict(False, "grader_error", 0, len(tests), None, f"{type(err).__name__}: {err}")
        return replace(verdict, seconds=time.monotonic() - start, isolation=level, semantics=self.semantics)

    def grade_many(self, jobs: Sequence[tuple[str, Sequence[Test], str | None]], workers: int | None = None,
                   progress: bool = False) -> list[Verdict]:
        """Verdicts of ``(program, tests, fn_name)`` jobs, graded in parallel by ``workers`` threads
        (default: the number of CPUs), in the order given."""
        self.level()  # a missing sandbox is reported once, before anything runs
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

    # -- internals --

    def _limits(self) -> Limits:
        return Limits(memory_mb=self.memory_mb, file_mb=self.output_mb, disk_mb=self.disk_mb,
                      processes=self.max_processes)

    def _setup(self, box: Sandbox, program: str, fn_name: str | None, cpu_seconds: int) -> dict:
        limits = box.limits
        workdir = box.workdir
        return {"setup": {
            "semantics": self.semantics, "kind": "stdio" if fn_name is None else "call", "program": program,
            "fn_name": fn_name, "timeout": self.timeout, "output_bytes": self.output_mb << 20,
            "limits": {"memory_bytes": limits.memory_mb << 20, "cpu_seconds": cpu_seconds,
                       "file_bytes": limits.file_mb << 20, "processes": limits.processes},
            "int_max_str_digits": INT_MAX_STR_DIGITS, "sys_path": list(interpreter(self.python).import_paths),
            "guard": workdir if box.isolation == "guard" else None,
            "stdout_file": (workdir if box.isolation == "guard" else "/tmp") + "/.stdout"}}

    def _reply_cap(self) -> int:
        return 6 * (self.output_mb << 20) + 65536  # JSON escapes may grow text up to 6 times

    def _expected_values(self, tests: list[Test]) -> list | Verdict:
        values = []
        for index, test in enumerate(tests):
            try:
                values.append(json.loads(test.output))
            except (ValueError, RecursionError) as err:
                return Verdict(False, "bad_test", 0, len(tests), index,
                               f"test {index}: the expected output is not one JSON value ({type(err).__name__})")
        return values

    def _grade_lcb(self, level: str, program: str, tests: list[Test], fn_name: str | None) -> Verdict:
        expected = self._expected_values(tests) if fn_name is not None else None
        if isinstance(expected, Verdict):
            return expected
        cap = self.problem_cap(len(tests))
        return self._in_sandbox(level, program, fn_name, tests, expected, time.monotonic() + cap, cap)

    def _in_sandbox(self, level: str, program: str, fn_name: str | None, tests: list[Test], expected,
                    deadline: float, seconds: float, first: int = 0) -> Verdict:
        """One session (``_session``) in a sandbox of the pool, classified after it ended; cleanup
        problems are appended to the message."""
        box = self._session_box(level)
        try:
            verdict = self._session(box, program, fn_name, tests, expected, deadline, int(math.ceil(seconds)) + 1,
                                    first)
            status = box.end()
            verdict = self._limited(box, verdict)
            if verdict.status == "lost":
                verdict = self._lost(box, verdict, status)
        except BaseException:
            box.reusable = False
            raise
        finally:
            problem = POOL.release(box)
        return replace(verdict, message=f"{verdict.message}; cleanup: {problem}" if problem else verdict.message)

    def _session_box(self, level: str) -> Sandbox:
        """A sandbox from the pool with a session started; a fresh one if an idle one's driver is gone."""
        for _ in range(2):
            box = POOL.acquire(level, self._limits(), self.python, self.tmp_root)
            if box.start():
                return box
            box.reusable = False
            POOL.release(box)
        raise RuntimeError(f"the sandbox's driver did not start a session: {box.launch_errors().strip()[-500:]}")

    @staticmethod
    def _limited(box: Sandbox, verdict: Verdict) -> Verdict:
        """A failure caused by the sandbox's memory or process cap is reported as that."""
        if verdict.passed or verdict.status not in ("lost", "runtime_error", "time_limit_exceeded"):
            return verdict
        if box.memory_exceeded():
            return replace(verdict, status="memory_limit_exceeded", message=f"memory cap reached; {verdict.message}")
        if box.processes_exceeded():
            return replace(verdict, status="process_limit_exceeded", message=f"process cap reached; {verdict.message}")
        return verdict

    def _session(self, box: Sandbox, program: str, fn_name: str | None, tests: list[Test], expected, deadline: float,
                 cpu_seconds: int, first: int = 0) -> Verdict:
        """Setup, then ``tests`` one by one over ``box``; a "lost" verdict when the sandbox stopped
        answering (classified by ``_lost`` after the session ended)."""
        total = first + len(tests)
        if not box.send(self._setup(box, program, fn_name, cpu_seconds), deadline):
            return Verdict(False, "lost", first, total, first, "eof")
        reply, why = box.receive(deadline, self._reply_cap())
        if reply is None:
            return Verdict(False, "lost", first, total, first, why)
        if not reply.get("ready"):
            return self._failed(reply, first, total)
        for offset, test in enumerate(tests):
            index = first + offset
            if not box.send({"test": test.input}, deadline):
                return Verdict(False, "lost", index, total, index, "eof" if time.monotonic() < deadline else "timeout")
            reply, why = box.receive(deadline, self._reply_cap())
            if reply is None:
                return Verdict(False, "lost", index, total, index, why)
            status, message = self._judge(reply, test, expected[offset] if expected is not None else None, fn_name)
            if status != "passed":
                return Verdict(False, status, index, total, index, message)
        return Verdict(True, "passed", total, total, None, "")

    @staticmethod
    def _failed(reply: dict, index: int, total: int) -> Verdict:
        status = reply.get("status")
        if status not in DRIVER_STATUSES:
            return Verdict(False, "sandbox_violation", index, total, index, f"unexpected reply {str(reply)[:200]}")
        return Verdict(False, status, index, total, index, str(reply.get("message", ""))[-4000:])

    def _lost(self, box: Sandbox, verdict: Verdict, returncode: int | None) -> Verdict:
        """Why the sandbox stopped answering (``verdict.message`` is ``Sandbox.receive``'s reason;
        ``returncode`` the session process's exit status)."""
        why, stderr = verdict.message, box.stderr_tail().strip()
        if why == "timeout":
            status, message = "time_limit_exceeded", "no result within the time limit"
        elif why == "overflow":
            status, message = "output_limit_exceeded", f"output over the {self.output_mb} MiB cap"
        elif why == "processes":
            status, message = "process_limit_exceeded", f"more than {self.max_processes} processes"
        elif why == "garbled":
            status, message = "sandbox_violation", "the program wrote into the grader's channel"
        elif box.memory_exceeded() or "MemoryError" in stderr:
            status, message = "memory_limit_exceeded", f"memory cap ({self.memory_mb} MiB) reached"
        elif returncode == -signal.SIGXCPU or "CPU time limit" in stderr:
            status, message = "time_limit_exceeded", "CPU time limit"
        else:
            status, message = "runtime_error", f"the program's process ended (exit status {returncode})"
        if stderr:
            message += f"\n{stderr[-2000:]}"
        return replace(verdict, status=status, message=message)

    def _judge(self, reply: dict, test: Test, expected, fn_name: str | None) -> tuple[str, str]:
        if "status" in reply:
            failed = self._failed(reply, 0, 0)
            return failed.status, failed.message
        if "output" in reply and fn_name is None:
            output = str(reply["output"])
            if compare_stdout(output, test.output):
                return "passed", ""
            return "wrong_answer", f"printed {output[:200]!r}, expected {test.output[:200]!r}"
        if "value" in reply and fn_name is not None:
            try:
                value = decode_value(reply["value"])
            except ValueError as err:
                return "sandbox_violation", f"undecodable result: {err}"
            try:
                same = compare_value(value, expected)
            except Exception as err:  # noqa: BLE001 -- e.g. ValueError: truth value of an array is ambiguous
                return "runtime_error", f"comparing the result raised {type(err).__name__}: {str(err)[:200]}"
            if same:
                return "passed", ""
            return "wrong_answer", f"returned {_short(value)}, expected {test.output[:200]!r}"
        if "json" in reply and fn_name is not None:
            if compare_return(str(reply["json"]), test.output):
                return "passed", ""
            return "wrong_answer", f"returned {str(reply['json'])[:200]!r}, expected {test.output[:200]!r}"
        return "sandbox_violation", f"unexpected reply {str(reply)[:200]}"

    def _grade_intent(self, level: str, program: str, tests: list[Test], fn_name: str | None) -> Verdict:
        total = len(tests)
        overall = time.monotonic() + self.problem_cap(total)
        for index, test in enumerate(tests):
            deadline = min(overall, time.monotonic() + self.timeout)
            verdict = self._in_sandbox(level, program, fn_name, [test], [test.output], deadline, self.timeout,
                                       first=index)
            if not verdict.passed:
                return replace(verdict, tests_total=total)
        return Verdict(True, "passed", total, total, None, "")


def _short(value) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 -- RecursionError for deep values
        text = f"<{type(value).__name__}>"
    return text[:200]

