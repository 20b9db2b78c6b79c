"""Grading throughput benchmark: programs graded per second on ``--tests`` fast tests, the
per-program sandbox overhead (seconds per program and worker for a one-test program: sandbox start
or session, teardown and one round trip), and the time a hanging program takes, for each isolation
level and semantics asked for. Each row starts with no sandbox running. ``--differential`` instead
times the grading of the LiveCodeBench differential suite's programs
(``tests/fixtures/lcb_differential/time_lcb_runner.py`` times LiveCodeBench's own runner on them).

    python -m autojudge_harness.bench.grading --isolation bwrap unshare guard --semantics lcb intent

Prints one table row per (isolation, semantics); ``--json PATH`` also writes the rows."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from autojudge_harness.grading import Grader, SandboxUnavailable, Test
from autojudge_harness.sandbox import POOL

FAST = "a, b = map(int, input().split())\nprint(a + b)\n"
HANG = "while True:\n    pass\n"
DEAF = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Grading throughput (programs per second), the per-program sandbox overhead and the time "
                          "bound for hanging programs.")
    parser.epilog = "Reads: nothing (its own generated programs and tests). Writes: the table on stdout."
    parser.add_argument("--isolation", nargs="+", default=["auto"], choices=["auto", "bwrap", "unshare", "guard"],
                        help="isolation levels to measure (default auto: the best available)")
    parser.add_argument("--semantics", nargs="+", default=["lcb"], choices=["lcb", "intent"],
                        help="grading semantics to measure: lcb (LiveCodeBench's) and/or intent (default lcb)")
    parser.add_argument("--programs", type=int, default=40, help="fast programs graded per row (default 40)")
    parser.add_argument("--tests", type=int, default=20, help="tests per problem (default 20)")
    parser.add_argument("--workers", type=int, default=None, help="grading threads (default: CPUs)")
    parser.add_argument("--timeout", type=float, default=6.0, help="per-test timeout in s (default 6, LiveCodeBench's)")
    parser.add_argument("--no-hang", action="store_true", help="skip the hanging-program timings")
    parser.add_argument("--differential", action="store_true",
                        help="instead: the wall time of grading the LiveCodeBench differential suite's programs "
                             "(tests/fixtures/lcb_differential, a repository checkout; its recorded per-test timeout)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")


def _row(isolation: str, semantics: str, args: argparse.Namespace, tmp: str) -> dict:
    grader = Grader(timeout=args.timeout, isolation=isolation, semantics=semantics, tmp_root=tmp)
    tests = [Test(f"{i} {i + 1}\n", f"{2 * i + 1}\n") for i in range(args.tests)]
    row = {"isolation": grader.level(), "semantics": semantics, "programs": args.programs, "tests": args.tests}
    start = time.monotonic()
    verdicts = grader.grade_many([(FAST, tests, None)] * args.programs, workers=args.workers)
    row["programs_per_s"] = round(args.programs / (time.monotonic() - start), 2)
    workers = args.workers or os.cpu_count() or 1
    start = time.monotonic()
    verdicts += grader.grade_many([(FAST, tests[:1], None)] * args.programs, workers=workers)
    row["overhead_s"] = round((time.monotonic() - start) * workers / args.programs, 3)
    if not all(v.passed for v in verdicts):
        raise RuntimeError(f"a fast program failed: {next(v for v in verdicts if not v.passed)}")
    if not args.no_hang:
        for name, program in (("hang_s", HANG), ("signal_ignoring_hang_s", DEAF)):
            start = time.monotonic()
            verdict = grader.grade(program, tests)
            row[name] = round(time.monotonic() - start, 2)
            row[name.replace("_s", "_status")] = verdict.status
    POOL.close()
    return row


def _differential_row(isolation: str, args: argparse.Namespace, tmp: str) -> dict:
    """Grade the differential suite's cases (as ``tests/test_lcb_differential.py``) and time it."""
    fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "lcb_differential"
    if not (fixtures / "cases.py").is_file():
        raise RuntimeError(f"--differential needs the repository's {fixtures}")
    spec = importlib.util.spec_from_file_location("lcb_differential_cases", fixtures / "cases.py")
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    timeout = json.loads((fixtures / "lcb_verdicts.json").read_text())["timeout"]
    grader = Grader(timeout=timeout, isolation=isolation, tmp_root=tmp)
    jobs = [(c["program"], [Test(i, o) for i, o in c["tests"]], c["fn_name"]) for c in cases.CASES]
    row = {"isolation": grader.level(), "semantics": "lcb", "programs": len(jobs), "timeout": timeout}
    start = time.monotonic()
    verdicts = grader.grade_many(jobs, workers=args.workers, progress=True)
    row["seconds"] = round(time.monotonic() - start, 2)
    row["passed"] = sum(v.passed for v in verdicts)
    POOL.close()
    return row


def run(args: argparse.Namespace) -> int:
    """Benchmark every (isolation, semantics) pair; 1 if a level is unavailable or a program failed."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="autojudge-bench-") as tmp:
        for isolation in args.isolation:
            for semantics in ["lcb"] if args.differential else args.semantics:
                try:
                    rows.append(_differential_row(isolation, args, tmp) if args.differential
                                else _row(isolation, semantics, args, tmp))
                except (SandboxUnavailable, RuntimeError) as err:
                    print(f"{isolation}/{semantics}: {err}", file=sys.stderr)
                    return 1
                print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autojudge_harness.bench.grading", description=__doc__.split("\n\n")[0])
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
