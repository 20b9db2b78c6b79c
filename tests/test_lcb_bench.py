"""The grading benchmark runs end to end (a tiny workload; the differential suite) and reports its rows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autojudge_harness.bench import grading as bench

FIXTURES = Path(__file__).parent / "fixtures" / "lcb_differential"


def test_bench_runs(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    out = tmp_path / "rows.json"
    args = parser.parse_args(["--programs", "2", "--tests", "2", "--timeout", "1", "--no-hang", "--json", str(out)])
    assert bench.run(args) == 0
    [row] = json.loads(out.read_text())
    assert row["isolation"] in ("bwrap", "unshare") and row["semantics"] == "lcb" and row["programs_per_s"] > 0
    assert 0 < row["overhead_s"] < 60
    assert "| isolation |" in capsys.readouterr().out


def test_bench_times_the_differential_suite(tmp_path):
    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    out = tmp_path / "rows.json"
    assert bench.run(parser.parse_args(["--differential", "--workers", "2", "--json", str(out)])) == 0
    [row] = json.loads(out.read_text())
    recorded = json.loads((FIXTURES / "lcb_verdicts.json").read_text())
    assert row["programs"] == len(recorded["verdicts"]) and row["timeout"] == recorded["timeout"]
    assert 0 < row["passed"] < row["programs"] and row["seconds"] > 0
