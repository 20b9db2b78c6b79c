"""Sweep: point order, Pareto front, combined leaderboard, and a real one-process run."""

import json
from pathlib import Path

import pytest

from autojudge_harness.judge import Judge
from autojudge_harness.experiments.sweep import (SweepPoint, combine, default_thresholds, goal_lines, pareto_front,
                                                 plot_sweep, sweep_points)
from autojudge_harness.resources import tasks_path

TASK = "autojudge_gsm8k_bundled"


def test_points_are_lossless_first_then_sorted_and_validated():
    points = sweep_points([0.5, 0.1, 0.5], [4, 2])
    assert [p.label for p in points] == ["lossless", "judge t=0.1", "judge t=0.5", "top-2", "top-4"]
    assert points[1].slug == "judge_t_0.1"
    with pytest.raises(ValueError, match="K >= 1"):
        sweep_points([0.1], [0])
    with pytest.raises(ValueError, match=">= 0"):
        sweep_points([-0.1], [])


def test_oracle_and_unguarded_points_follow_the_judge_and_top_k_points(tmp_path):
    points = sweep_points([0.2], [2], oracle=True, unguarded=[0.2])
    assert [p.label for p in points] == ["lossless", "judge t=0.2", "judge t=0.2 no guard", "top-2", "oracle"]
    assert [p.slug for p in points][2] == "judge_t_0.2_no_guard"
    assert points[3].settings(None).end_guard and not points[2].end_guard
    with pytest.raises(ValueError, match="oracle file"):
        points[4].settings(None, str(tmp_path / "missing.json"))


def test_default_thresholds_spread_over_the_table_and_include_the_judges_own():
    table = [{"threshold": t / 100} for t in range(0, 26)]
    judge = Judge("DT", 4, 4, "t", "d", 0.137, None, None, threshold_table=table)
    assert default_thresholds(judge, 6) == [0.0, 0.06, 0.12, 0.137, 0.19, 0.25]
    assert default_thresholds(judge, 1) == [0.137]            # --table-points 1: the judge's own only
    assert default_thresholds(judge, 2) == [0.13, 0.137]
    with pytest.raises(ValueError, match=">= 1"):
        default_thresholds(judge, 0)


def test_pareto_front():
    rows = [{"label": "a", "x": 1.0, "y": 0.9}, {"label": "b", "x": 2.0, "y": 0.9},
            {"label": "c", "x": 3.0, "y": 0.5}, {"label": "d", "x": 2.5, "y": 0.4}]
    assert pareto_front(rows, "x", "y") == ["b", "c"]
    cost = [{"label": k, "target_calls_vs_lossless": x, "y": y} for k, x, y in
            [("lossless", 1.0, 1.0), ("cheap", 0.8, 0.9), ("worse", 0.9, 0.85), ("cheapest", 0.6, 0.5)]]
    assert pareto_front(cost, "target_calls_vs_lossless", "y") == ["cheapest", "cheap", "lossless"]


def _run(metric, apc, tps, judge_share=0.0, answers=None, calls=30):
    stats = {"accepted_per_cycle": apc, "tokens_per_cycle": apc + 1, "lenient_accepted_fraction": judge_share,
             "tokens_per_second": tps, "generated_tokens": 100, "wall_time_s": 100 / tps, "target_calls": calls,
             "draft_calls": 200, "cycles": 25, "requests": 2, "target_calls_per_request": calls / 2,
             "draft_calls_per_request": 100, "generated_tokens_per_request": 50, "wall_time_per_request_s": 50 / tps}
    results = {"results": {TASK: {"alias": TASK, "exact_match,strict-match": metric,
                                  "exact_match_stderr,strict-match": 0.01}},
               "config": {"limit": 2, "autojudge": {"stats": stats, "target": "T", "draft": "D", "window": 8,
                                                    "judge": "j.safetensors"}}}
    return results, answers or {"0": {"strict-match": ["1"]}, "1": {"strict-match": ["2"]}}


def test_combine_is_relative_to_lossless_and_writes_a_plot(tmp_path):
    runs = [(SweepPoint("lossless"), *_run(0.5, 2.0, 10.0, calls=40), Path("l.json")),
            (SweepPoint("judge", threshold=0.3), *_run(0.5, 3.0, 12.0, 0.2, calls=32), Path("j.json")),
            (SweepPoint("top-k", k=4), *_run(0.25, 4.0, 15.0, 0.5, {"0": {"strict-match": ["1"]},
                                                                     "1": {"strict-match": ["7"]}}, calls=36),
             Path("k.json")),
            (SweepPoint("oracle"), *_run(0.5, 3.5, 14.0, 0.3, calls=30), Path("o.json"))]
    combined = combine(runs, TASK, judge_threshold=0.3)
    assert combined["metric"] == "exact_match,strict-match" and combined["judge"] == "j.safetensors"
    rows = {r["label"]: r for r in combined["points"]}
    assert rows["lossless"]["target_calls_vs_lossless"] == 1.0 and rows["judge t=0.3"]["target_calls_vs_lossless"] == 0.8
    assert rows["judge t=0.3"]["wall_time_vs_lossless"] == pytest.approx(10 / 12)
    assert rows["judge t=0.3"]["share_of_oracle_saving"] == pytest.approx(0.8)   # saved 8 of the oracle's 10 calls
    assert rows["oracle"]["share_of_oracle_saving"] == 1.0 and rows["lossless"]["share_of_oracle_saving"] == 0.0
    assert rows["top-4"]["accepted_per_cycle_vs_lossless"] == 2.0
    assert rows["top-4"]["agreement_with_lossless"] == 0.5 and rows["judge t=0.3"]["agreement_with_lossless"] == 1.0
    assert rows["judge t=0.3"]["metric_stderr"] == 0.01
    assert combined["pareto"]["metric"]["accepted_per_cycle"] == ["oracle", "top-4"]
    assert combined["pareto"]["agreement_with_lossless"]["target_calls_vs_lossless"] == ["oracle"]
    goals = goal_lines(combined)
    assert goals[0].endswith("0.80x lossless (goal <= 0.85x) at answer agreement 1.00 (goal >= 0.9): met")
    assert goals[1] == "goal, share of the perfect judge's saving in target calls: 0.80 (goal >= 0.8): met"
    assert goal_lines({**combined, "judge_threshold": 0.5}) == []   # the judge's own threshold was not swept
    costly_oracle = combine(runs[:3] + [(SweepPoint("oracle"), *_run(0.5, 3.5, 14.0, 0.3, calls=42), Path("o.json"))],
                            TASK, judge_threshold=0.3)
    assert {r["share_of_oracle_saving"] for r in costly_oracle["points"]} == {None}
    assert goal_lines(costly_oracle)[1].startswith("goal, share of the perfect judge's saving in target calls: "
                                                   "undefined, the perfect judge saves none here (1.05x lossless")
    plot_sweep(combined, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="lossless"):
        combine(runs[1:], TASK)
    with pytest.raises(ValueError, match="not in"):
        combine(runs, TASK, metric="pass@1,none")


@pytest.mark.slow
def test_sweep_on_the_embedded_pair_in_one_process(tmp_path, embedded_pair, monkeypatch):
    from lm_eval.tasks import TaskManager

    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM
    from autojudge_harness.models import pair_config
    from autojudge_harness.experiments.sweep import run_sweep, sweep_oracle

    loads = []
    monkeypatch.setattr("autojudge_harness.lm_eval_models.hf.load_pair",
                        lambda *a, **k: loads.append(a) or embedded_pair)
    lm = AutoJudgeHFLM(preset="smollm2-135m", window=4, device="cpu")
    judge = pair_config("smollm2-135m").judge
    points = sweep_points([0.0, 1.01], [1, 3], oracle=True, unguarded=[1.01])
    oracle = sweep_oracle(embedded_pair, TASK, tasks_path(), 2, "max_gen_toks=20", True, tmp_path / "oracle")
    kwargs = dict(task_manager=TaskManager(include_path=str(tasks_path())), limit=2,
                  gen_kwargs="max_gen_toks=20", apply_chat_template=True, oracle=str(oracle))
    combined = run_sweep(lm, points, TASK, tmp_path, judge, **kwargs)
    assert len(loads) == 1   # one model load for all the points
    rows = {r["label"]: r for r in combined["points"]}
    assert list(rows) == ["lossless", "judge t=0", "judge t=1.01", "judge t=1.01 no guard", "top-1", "top-3", "oracle"]
    assert json.loads(Path(rows["oracle"]["results_file"]).read_text())["config"]["autojudge"]["oracle"] == str(oracle)
    assert rows["oracle"]["agreement_with_lossless"] == 1.0   # the perfect judge never changes an answer
    assert rows["judge t=1.01 no guard"]["end_guard"] is False
    lossless = rows["lossless"]
    for same in ("judge t=0", "top-1"):   # lossless rules: the same tokens, no judge-accepted ones
        assert rows[same]["agreement_with_lossless"] == 1.0 and rows[same]["lenient_accepted_fraction"] == 0.0
        assert rows[same]["generated_tokens"] == lossless["generated_tokens"]
        assert rows[same]["accepted_per_cycle"] == lossless["accepted_per_cycle"]
    assert rows["judge t=1.01 no guard"]["accepted_per_cycle"] == 4.0   # every drafted token accepted
    assert rows["top-3"]["accepted_per_cycle"] >= lossless["accepted_per_cycle"]
    assert all(r["target_calls_per_request"] > 0 and r["requests"] == 2 for r in rows.values())
    assert rows["lossless"]["target_calls_vs_lossless"] == 1.0
    assert json.loads((tmp_path / "sweep.json").read_text()) == combined
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    point_file = Path(rows["top-3"]["results_file"])
    assert json.loads(point_file.read_text())["config"]["autojudge"]["accept_top_k"] == 3
    stamp = point_file.stat().st_mtime_ns
    assert run_sweep(lm, points, TASK, tmp_path, judge, **kwargs) == combined   # resumed: nothing re-run
    assert point_file.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="marked as unsafe"):   # code-executing tasks need the user's consent
        run_sweep(lm, points[:1], "autojudge_lcb_bundled", tmp_path / "lcb", None, **kwargs)
