"""The grading benchmark runs end to end on a tiny workload and reports its rows."""

from __future__ import annotations

import argparse
import json

from autojudge_harness.bench import grading as bench


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
