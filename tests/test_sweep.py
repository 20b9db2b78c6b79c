"""Sweep: points from rule names, Pareto front, the paired leaderboard with intervals, the
matched-agreement table and goal line, the plot, and a real one-process run."""

import json
from pathlib import Path

import pytest

from autojudge_harness.judge import Judge
from autojudge_harness.experiments.sweep import (LOSSLESS, PointRun, SweepPoint, combine, default_thresholds,
                                                 goal_lines, matched_lines, paired_figures, pareto_front,
                                                 question_records, rule_list, rule_points, sweep_points, table_lines)
from autojudge_harness.plots import curves, plot_sweep
from autojudge_harness.resources import tasks_path
from autojudge_harness.settings import AcceptanceSettings

TASK = "autojudge_gsm8k_bundled"
JUDGE = "/abs/j.safetensors"


def test_points_are_lossless_first_then_each_rule_over_its_grid():
    points = sweep_points(["judge", "top_k"], {"judge": [0.5, 0.1, 0.5], "top_k": [4, 2]}, JUDGE)
    assert [p.label for p in points] == ["lossless", "judge t=0.1", "judge t=0.5", "top_k K=2", "top_k K=4"]
    assert [p.rule for p in points] == ["lossless", "judge", "judge", "top_k", "top_k"]
    assert points[1].model_args == {"judge": JUDGE, "threshold": 0.1} and points[1].slug == "judge_t_0.1"
    assert points[3].model_args == {"rule": "top_k", "accept_top_k": 2}
    assert points[3].settings().mode == "top_k"   # the rule's name is the one settings uses
    assert [p.label for p in rule_points("top_k")] == ["top_k K=2", "top_k K=3", "top_k K=5"]   # its own grid
    judi = rule_points("judi")   # any registered rule, over its own grid
    assert judi[0].label == "judi tau=0.1" and judi[0].model_args == {"rule": "judi", "judi_tau": 0.1}
    assert judi[0].settings().mode == "judi"
    assert rule_points("trt", [{"trt_top_k": 10, "trt_delta": 0.2}])[0].label == "trt top_k=10,delta=0.2"
    with pytest.raises(ValueError, match="judi_tau"):
        rule_points("judi", [{"judi_tau": -1.0}])
    with pytest.raises(ValueError, match="K >= 1"):
        rule_points("top_k", [0])
    with pytest.raises(ValueError, match=">= 0"):
        rule_points("judge", [-0.1], JUDGE)
    with pytest.raises(ValueError, match="needs a judge file"):
        rule_points("judge", [0.1])
    with pytest.raises(ValueError, match="unknown rule 'nope'"):
        rule_points("nope")
    assert rule_list("lossless,top_k,judge") == ["top_k", "judge"]
    with pytest.raises(ValueError, match="unknown rule"):
        rule_list("judge,top-k")


def test_oracle_and_unguarded_points(tmp_path):
    points = sweep_points(["judge", "top_k", "oracle"], {"judge": [0.2], "top_k": [2]}, JUDGE,
                          str(tmp_path / "missing.json"), unguarded=[0.2])
    assert [p.label for p in points] == ["lossless", "judge t=0.2", "judge t=0.2 no guard", "top_k K=2", "oracle"]
    assert points[2].slug == "judge_t_0.2_no_guard" and points[2].model_args["end_guard"] is False
    assert points[1].end_guard and not points[2].end_guard
    assert points[0].settings() == AcceptanceSettings()
    with pytest.raises(ValueError, match="oracle"):
        points[4].settings()
    with pytest.raises(ValueError, match="oracle file"):
        rule_points("oracle")


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


METRIC = "exact_match,strict-match"


def _run(point, calls, answers, correct, capped=None, apc=2.0, tps=10.0, judge_share=0.0, stats=True):
    """A PointRun with per-document samples and per-request statistics (``calls``: per document)."""
    n = len(calls)
    capped = capped or [False] * n
    tokens = [64 if c else 20 for c in capped]
    agg = {"accepted_per_cycle": apc, "tokens_per_cycle": apc + 1, "lenient_accepted_fraction": judge_share,
           "tokens_per_second": tps, "generated_tokens": sum(tokens), "wall_time_s": n / tps,
           "target_calls": sum(calls), "draft_calls": 200, "cycles": 25, "requests": n,
           "target_calls_per_request": sum(calls) / n, "draft_calls_per_request": 200 / n,
           "generated_tokens_per_request": sum(tokens) / n, "wall_time_per_request_s": 1 / tps}
    results = {"results": {TASK: {"alias": TASK, METRIC: sum(correct) / n, "exact_match_stderr,strict-match": 0.01}},
               "config": {"limit": n, "autojudge": {"stats": agg, "target": "T", "draft": "D", "window": 8,
                                                    "judge": JUDGE if point.rule == "judge" else None}}}
    samples = []
    for doc, (answer, right) in enumerate(zip(answers, correct)):
        samples += [{"doc_id": doc, "filter": "flexible-extract", "filtered_resps": ["other"], "resps": [[f"text {doc}"]],
                     "exact_match": 0.0},
                    {"doc_id": doc, "filter": "strict-match", "filtered_resps": [answer], "resps": [[f"text {doc}"]],
                     "exact_match": float(right)}]
    per_request = [{"task": TASK, "doc_id": doc, "target_calls": c, "finish_reason": "length" if cap else "eos",
                    "first_lenient_token": None} for doc, (c, cap) in enumerate(zip(calls, capped))] if stats else []
    return PointRun(point, results, samples, per_request, Path(f"{point.slug}.json"))


def _runs(**lossless_kwargs):
    judge = SweepPoint("judge t=0.3", "judge", {"judge": JUDGE, "threshold": 0.3})
    return [_run(LOSSLESS, [10, 10, 10, 10, 60], list("abcde"), [1, 1, 0, 0, 0], [False] * 4 + [True], **lossless_kwargs),
            _run(judge, [8, 8, 8, 8, 48], list("abcde"), [1, 1, 0, 0, 0], [False] * 4 + [True], 3.0, 12.0, 0.2),
            _run(SweepPoint("top_k K=4", "top_k", {"rule": "top_k", "accept_top_k": 4}), [9, 9, 9, 9, 54], list("abxye"),
                 [1, 1, 0, 0, 1], apc=4.0, tps=15.0, judge_share=0.5),
            _run(SweepPoint("oracle", "oracle", {"oracle": "/abs/o.json"}), [8, 8, 8, 8, 40], list("abcde"),
                 [1, 1, 0, 0, 0], [False] * 4 + [True], 3.5, 14.0, 0.3)]


def test_question_records_take_the_metrics_filter_and_sum_the_requests():
    run = _runs()[0]
    records = question_records(run.samples, run.stats + [{"doc_id": 4, "target_calls": 5, "finish_reason": "eos"}],
                               METRIC)
    assert records["0"] == {"answer": ["a"], "text": "text 0", "correct": 1.0, "target_calls": 10, "capped": False,
                            "first_lenient_token": None}
    assert records["4"]["target_calls"] == 65 and records["4"]["capped"] is True   # capped if any request was


def test_code_tasks_agree_on_the_verdict_not_the_program_text():
    def samples(programs, verdicts):
        return [{"doc_id": d, "filter": "sandbox", "filtered_resps": [p], "resps": [[p]], "pass@1": v}
                for d, (p, v) in enumerate(zip(programs, verdicts))]
    lossless = question_records(samples(["print(1)", "x=1", "y"], [1.0, 0.0, 0.0]), [], "pass@1,sandbox")
    other = question_records(samples(["print( 1 )", "x = 2", "y"], [1.0, 1.0, 0.0]), [], "pass@1,sandbox")
    assert paired_figures(other, lossless)["agreement_with_lossless"] == pytest.approx(2 / 3)   # doc 1's verdict changed


def test_combine_is_paired_with_lossless_and_carries_intervals():
    combined = combine(_runs(), TASK, judge_threshold=0.3)
    assert combined["metric"] == METRIC and combined["judge"] == JUDGE and combined["documents"] == 5
    rows = {r["label"]: r for r in combined["points"]}
    judge = rows["judge t=0.3"]
    assert judge["target_calls_vs_lossless"] == pytest.approx(0.8)
    assert judge["target_calls_vs_lossless_ci"] == pytest.approx([0.8, 0.8])   # every document saves 20%
    assert judge["median_question_ratio"] == pytest.approx(0.8)
    assert (judge["capped"], judge["lossless_capped"], judge["uncapped_questions"]) == (1, 1, 4)
    assert judge["target_calls_vs_lossless_uncapped"] == pytest.approx(0.8)
    assert judge["agreement_ci"] == [1.0, 1.0] and judge["metric"] == 0.4
    top = rows["top_k K=4"]
    assert top["agreement_with_lossless"] == pytest.approx(0.6) and top["capped"] == 0
    assert top["agreement_ci"][0] < 0.6 < top["agreement_ci"][1]
    assert top["metric_ci"][0] < 0.6 < top["metric_ci"][1]
    assert rows["oracle"]["target_calls_vs_lossless_uncapped"] == pytest.approx(0.8)
    assert rows["oracle"]["target_calls_vs_lossless"] == pytest.approx(72 / 100)
    assert judge["share_of_oracle_saving"] == pytest.approx(0.2 / 0.28)
    assert judge["wall_time_vs_lossless"] == pytest.approx(10 / 12)
    assert combined["pareto"]["agreement_with_lossless"]["target_calls_vs_lossless"] == ["oracle"]
    assert combine(_runs(), TASK, judge_family="gsm8k")["judge_cross_task"] is False
    cross = combine(_runs(), TASK, judge_family="livecodebench")   # a LiveCodeBench judge on GSM8K
    assert cross["judge_cross_task"] and cross["judge_task_family"] == "livecodebench"
    assert [r["label"] for r in cross["points"] if r["rule"] == "judge"] == ["judge t=0.3 (cross-task)"]
    assert "| judge t=0.3 (cross-task) |" in "\n".join(table_lines(cross))
    with pytest.raises(ValueError, match="lossless"):
        combine(_runs()[1:], TASK)
    with pytest.raises(ValueError, match="not in"):
        combine(_runs(), TASK, metric="pass@1,none")


def test_without_per_request_statistics_only_agreement_and_accuracy_have_intervals():
    runs = [run._replace(stats=[]) for run in _runs()]
    row = combine(runs, TASK)["points"][2]
    assert row["agreement_ci"] and "target_calls_vs_lossless_ci" not in row and row["target_calls_vs_lossless"] == 0.9
    assert "| top_k K=4 |" in "\n".join(table_lines(combine(runs, TASK)))


def test_tables_matched_agreement_and_goal_line():
    combined = combine(_runs(), TASK, judge_threshold=0.3)
    table = "\n".join(table_lines(combined))
    assert "| judge t=0.3 | 0.400 [0.00, 0.80] | 1.00 [1.00, 1.00] | 16.0 | 0.80x [0.80, 0.80] | 0.80x | 1/1 | " \
           "0.80x [0.80, 0.80] (4) |" in table
    matched = matched_lines(combined)
    assert "| 0.95 | oracle | oracle | 0.72x [" in "\n".join(matched)
    assert "| 0.95 | top_k | none reaches it | - | - | - | - | - |" in matched
    assert "| 0.95 | judge | judge t=0.3 | 0.80x [0.80, 0.80] | 0.400 | 1.00 | 1/1 | 0.80x [0.80, 0.80] |" in matched
    assert matched[-2] == ("agreement >= 0.95: judge wins (judge t=0.3, 0.80x lossless target calls, 0.80x without the "
                           "1/1 capped outputs; the only rule that reaches this agreement) (the perfect judge's ceiling: "
                           "0.72x)")   # the oracle is no rule to pick
    goals = goal_lines(combined)
    assert goals[0] == ("goal at the judge's own threshold (judge t=0.3): <= 0.85x lossless target calls at >= 0.95 "
                        "agreement, the interval's upper bound below 1.0: 0.80x [upper bound 0.80] at agreement 1.00: met")
    assert goals[1].startswith("goal, share of the perfect judge's saving in target calls: 0.71 (goal >= 0.8): not met")
    assert goal_lines({**combined, "judge_threshold": 0.5}) == []   # the judge's own threshold was not swept
    runs = _runs()
    runs[1] = _run(runs[1].point, [12, 4, 12, 4, 48], list("abcde"), [1, 1, 0, 0, 0], [False] * 4 + [True])
    wide = goal_lines(combine(runs, TASK, judge_threshold=0.3))[0]
    assert wide.endswith(": not met") and "0.80x [upper bound" in wide   # 0.80x, but its interval reaches 1.0


def test_plot_draws_one_curve_per_rule_and_skips_an_all_zero_metric(tmp_path):
    combined = combine(_runs(), TASK)
    assert list(curves(combined["points"] + [{**combined["points"][1], "end_guard": False}])) == [
        ("lossless", True), ("judge", True), ("top_k", True), ("oracle", True), ("judge", False)]
    plot_sweep(combined, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    runs = [run._replace(results={**run.results, "results": {TASK: {METRIC: 0.0}}}) for run in _runs()]
    zero = combine(runs, TASK)
    plot_sweep(zero, tmp_path / "zero.png")
    assert (tmp_path / "zero.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_sweep_on_the_embedded_pair_in_one_process(tmp_path, embedded_pair, monkeypatch):
    from lm_eval.tasks import TaskManager

    from autojudge_harness.cli import main
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM
    from autojudge_harness.models import pair_config
    from autojudge_harness.experiments.sweep import run_sweep, sweep_oracle

    loads = []
    monkeypatch.setattr("autojudge_harness.lm_eval_models.hf.load_pair",
                        lambda *a, **k: loads.append(a) or embedded_pair)
    lm = AutoJudgeHFLM(preset="smollm2-135m", window=4, device="cpu")
    judge = pair_config("smollm2-135m").judge
    oracle = sweep_oracle(embedded_pair, TASK, tasks_path(), 2, "max_gen_toks=20", True, tmp_path / "oracle")
    points = sweep_points(["judge", "top_k", "oracle"], {"judge": [0.0, 1.01], "top_k": [1, 3]}, judge, str(oracle),
                          unguarded=[1.01])
    kwargs = dict(task_manager=TaskManager(include_path=str(tasks_path())), limit=2,
                  gen_kwargs="max_gen_toks=20", apply_chat_template=True, judge_threshold=1.01)
    combined = run_sweep(lm, points, TASK, tmp_path, **kwargs)
    assert len(loads) == 1   # one model load for all the points
    rows = {r["label"]: r for r in combined["points"]}
    assert list(rows) == ["lossless", "judge t=0", "judge t=1.01", "judge t=1.01 no guard", "top_k K=1", "top_k K=3",
                          "oracle"]
    oracle_file = Path(rows["oracle"]["results_file"])
    saved = json.loads(oracle_file.read_text())
    assert saved["config"]["autojudge"]["oracle"] == str(oracle)
    assert oracle_file.name.startswith("results_") and saved["task_hashes"][TASK] and saved["model_name"]
    assert float(saved["total_evaluation_time_seconds"]) > 0   # lm-eval's own fields: its tooling reads the file
    assert rows["oracle"]["agreement_with_lossless"] == 1.0   # the perfect judge never changes an answer
    assert rows["judge t=1.01 no guard"]["end_guard"] is False
    lossless = rows["lossless"]
    assert lossless["target_calls_vs_lossless_ci"] == [1.0, 1.0] and lossless["lossless_capped"] == lossless["capped"]
    for same in ("judge t=0", "top_k K=1"):   # lossless rules: the same tokens, no judge-accepted ones
        assert rows[same]["agreement_with_lossless"] == 1.0 and rows[same]["lenient_accepted_fraction"] == 0.0
        assert rows[same]["generated_tokens"] == lossless["generated_tokens"]
        assert rows[same]["accepted_per_cycle"] == lossless["accepted_per_cycle"]
        assert rows[same]["target_calls_vs_lossless_ci"] == [1.0, 1.0]
    assert rows["judge t=1.01 no guard"]["accepted_per_cycle"] == 4.0   # every drafted token accepted
    assert rows["top_k K=3"]["accepted_per_cycle"] >= lossless["accepted_per_cycle"]
    assert all(r["target_calls_per_request"] > 0 and r["requests"] == 2 for r in rows.values())
    for row in rows.values():
        lo, hi = row["target_calls_vs_lossless_ci"]
        assert lo - 1e-9 <= row["target_calls_vs_lossless"] <= hi + 1e-9 and row["questions"] == 2
    assert json.loads((tmp_path / "sweep.json").read_text()) == combined
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert {e["level"] for e in combined["matched_agreement"]} == {0.95, 0.90}
    point_file = Path(rows["top_k K=3"]["results_file"])
    assert json.loads(point_file.read_text())["config"]["autojudge"]["accept_top_k"] == 3
    samples = [json.loads(line) for line in next(point_file.parent.glob("samples_*.jsonl")).read_text().splitlines()]
    assert all(isinstance(s["resps"][0][0], str) for s in samples)   # the generated texts are kept
    stamp = point_file.stat().st_mtime_ns
    assert run_sweep(lm, points, TASK, tmp_path, **kwargs) == combined   # resumed: nothing re-run
    assert point_file.stat().st_mtime_ns == stamp
    assert main(["compare", str(tmp_path / "points" / "lossless"), str(tmp_path / "points" / "judge_t_1.01_no_guard")]) == 0
    with pytest.raises(ValueError, match="marked as unsafe"):   # code-executing tasks need the user's consent
        run_sweep(lm, points[:1], "autojudge_lcb_bundled", tmp_path / "lcb", **kwargs)


def test_coinciding_points_share_one_label():
    from autojudge_harness.plots import point_labels

    rows = [{"label": "lossless", "rule": "lossless", "target_calls_vs_lossless": 1.0, "y": 1.0}]
    rows += [{"label": f"fly theta={t}", "rule": "fly", "target_calls_vs_lossless": 1.0, "y": 1.0} for t in (0.7, 0.5)]
    rows += [{"label": "judge t=0.1", "rule": "judge", "target_calls_vs_lossless": 1.0, "y": 1.0},
             {"label": "judge t=0.9", "rule": "judge", "target_calls_vs_lossless": 0.8, "y": 0.5}]
    rows += [{"label": f"judi tau={t}", "rule": "judi", "target_calls_vs_lossless": 0.7, "y": 0.4} for t in (1, 2, 3, 4)]
    assert point_labels(rows, "y") == [(1.0, 1.0, "fly x2; judge t=0.1"), (0.8, 0.5, "t=0.9"),
                                       (0.7, 0.4, "tau=1 .. tau=4 (4 points)")]


def test_rules_pareto_script_points_are_valid_rule_points():
    """Every ``--point`` of scripts/rules_pareto.sh (the tables of docs/sweeps.md) names a rule and
    values its settings accept, so the script cannot fail hours into a run on a typo."""
    import re

    from autojudge_harness.experiments.sweep import rule_point

    script = (Path(__file__).resolve().parents[1] / "scripts" / "rules_pareto.sh").read_text()
    specs = [rule_point(text) for text in re.findall(r"--point ([^\s)]+)", script)]
    assert len(specs) >= 15 and {rule for rule, _ in specs} == {"judi", "fly", "trt", "ensemble"}
    for rule, values in specs:
        assert len(rule_points(rule, [values])) == 1


def test_point_option_gives_one_rule_point():
    from autojudge_harness.experiments.sweep import rule_point

    assert rule_point("trt:trt_top_k=10,trt_delta=0.6") == ("trt", {"trt_top_k": "10", "trt_delta": "0.6"})
    points = sweep_points(["judi", "top_k"], {"judi": [{"judi_tau": "0.3"}], "top_k": [2]})
    assert [p.label for p in points] == ["lossless", "judi tau=0.3", "top_k K=2"]
    for bad in ("judge:threshold=0.3", "kl:x=1", "judi:judi_tau", "judi:"):
        with pytest.raises(ValueError, match="--point"):
            rule_point(bad)
