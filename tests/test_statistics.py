"""Paired bootstrap intervals and the matched-agreement table on hand-computable cases."""

import numpy as np
import pytest

from autojudge_harness.experiments.statistics import (bootstrap_indices, compare_with_lossless, matched_agreement,
                                                      mean_ci, ratio_of_totals_ci, winner_line)


def test_identical_per_question_ratios_give_a_zero_width_interval():
    lossless = [10, 40, 25, 7]
    rule = [0.8 * c for c in lossless]     # every question saves exactly 20%: every resample's ratio is 0.8
    assert ratio_of_totals_ci(rule, lossless) == pytest.approx([0.8, 0.8])
    assert mean_ci([1, 1, 1]) == [1.0, 1.0]


def test_one_expensive_question_makes_an_asymmetric_interval():
    # 9 questions at ratio 1 (10 calls each) and one long question that saves 90 of 100 calls: the ratio of
    # totals is 100/190; a resample without the long question has ratio 1, one with it twice far less
    lossless, rule = [10] * 9 + [100], [10] * 9 + [10]
    lo, hi = ratio_of_totals_ci(rule, lossless)
    point = sum(rule) / sum(lossless)
    assert lo < point < hi == 1.0          # ~35% of resamples miss the long question: the upper bound is exactly 1
    assert point - lo < hi - point         # skewed towards the cost of lossless


def test_the_interval_is_the_percentiles_of_the_resampled_ratios():
    lossless, rule = np.array([3.0, 5.0, 8.0]), np.array([2.0, 5.0, 4.0])
    indices = bootstrap_indices(3, resamples=500, seed=7)
    ratios = rule[indices].sum(1) / lossless[indices].sum(1)
    assert ratio_of_totals_ci(rule, lossless, indices) == pytest.approx(list(np.percentile(ratios, [2.5, 97.5])))
    assert (bootstrap_indices(3, 500, 7) == indices).all()   # seeded: the same resamples every run
    with pytest.raises(ValueError, match="same questions"):
        ratio_of_totals_ci([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one question"):
        bootstrap_indices(0)


def test_compare_reports_capped_outputs_and_the_ratio_without_them():
    # issue 22's shape: the saving sits in the capped outputs; without them the ratio is near 1
    lossless = [20, 20, 20, 100]
    rule = [19, 19, 19, 40]
    figures = compare_with_lossless(rule, lossless, [False, False, False, True], [False, False, False, True],
                                    agree=[True, True, True, False], correct=[1, 0, 1, 0])
    assert figures["target_calls_vs_lossless"] == pytest.approx(97 / 160)
    assert figures["median_question_ratio"] == pytest.approx(0.95)
    assert (figures["capped"], figures["lossless_capped"], figures["uncapped_questions"]) == (1, 1, 3)
    assert figures["target_calls_vs_lossless_uncapped"] == pytest.approx(0.95)
    assert figures["target_calls_vs_lossless_uncapped_ci"] == pytest.approx([0.95, 0.95])
    assert figures["agreement_with_lossless"] == 0.75 and figures["metric_mean"] == 0.5
    lo, hi = figures["agreement_ci"]
    assert 0 <= lo < 0.75 < hi <= 1
    everything_capped = compare_with_lossless([5], [10], [True], [False])
    assert everything_capped["target_calls_vs_lossless_uncapped"] is None and everything_capped["uncapped_questions"] == 0
    with pytest.raises(ValueError, match="aligned"):
        compare_with_lossless([1, 2], [1], [False], [False])


def _row(label, rule, calls, agreement, ci=None, metric=0.5):
    return {"label": label, "rule": rule, "target_calls_vs_lossless": calls, "agreement_with_lossless": agreement,
            "target_calls_vs_lossless_ci": ci, "metric": metric}


def test_matched_agreement_picks_each_rules_cheapest_point_per_level_and_names_the_winner():
    rows = [_row("lossless", "lossless", 1.0, 1.0, [1, 1]),
            _row("judge t=0.1", "judge", 0.9, 0.97, [0.85, 0.95], 0.6), _row("judge t=0.5", "judge", 0.7, 0.91, [0.6, 0.8]),
            _row("top_k K=2", "top_k", 0.8, 0.96, [0.7, 0.88], 0.55), _row("top_k K=8", "top_k", 0.5, 0.6, [0.4, 0.6])]
    table = matched_agreement(rows)
    at95 = [e for e in table if e["level"] == 0.95]
    assert [(e["rule"], e["label"]) for e in at95] == [("top_k", "top_k K=2"), ("judge", "judge t=0.1")]
    assert at95[0]["ci"] == [0.7, 0.88] and at95[0]["metric"] == 0.55
    at90 = [e for e in table if e["level"] == 0.90]
    assert [(e["rule"], e["label"]) for e in at90] == [("judge", "judge t=0.5"), ("top_k", "top_k K=2")]
    assert winner_line(at95) == ("agreement >= 0.95: top_k wins (top_k K=2, 0.80x lossless target calls; its "
                                 "interval overlaps judge's (0.90x): not a clear win)")
    assert winner_line(at90).endswith("its interval overlaps top_k's (0.80x): not a clear win)")
    clear = matched_agreement([rows[0], _row("a", "judge", 0.5, 0.99, [0.4, 0.6]), _row("b", "top_k", 0.9, 0.99, [0.8, 1.0])])
    assert winner_line(clear[:2]).endswith("its interval lies below top_k's: a clear win)")
    nobody = matched_agreement([rows[0], _row("k", "top_k", 0.5, 0.5)], levels=(0.95,))
    assert nobody[0]["label"] is None and winner_line(nobody) == "agreement >= 0.95: no rule reaches it"


def test_lcb_5fold_pairs_each_problem_with_its_lossless_run(tmp_path):
    import json

    from autojudge_harness.experiments.lcb_5fold import paired_line, paired_with_lossless

    def write(folder, rows):
        folder.mkdir()
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write(tmp_path / "fold-0", [{"doc_id": 0, "target_calls": 99, "finish_reason": "eos"},   # a rerun appended:
                                {"doc_id": 0, "target_calls": 8, "finish_reason": "eos"}])   # the last one counts
    # lm-eval numbers a samples= run's requests 0..k-1: fold-1's one request is the task's doc 1
    write(tmp_path / "fold-1", [{"doc_id": 0, "target_calls": 20, "finish_reason": "length"}])
    write(tmp_path / "lossless", [{"doc_id": 0, "target_calls": 10, "finish_reason": "eos"},
                                  {"doc_id": 1, "target_calls": 40, "finish_reason": "length"}])
    per_problem = [{"doc_id": 0, "fold": 0, "passed": True, "lossless_passed": True},
                   {"doc_id": 1, "fold": 1, "passed": False, "lossless_passed": True}]
    paired = paired_with_lossless(per_problem, tmp_path, 2)
    assert paired["target_calls_vs_lossless"] == pytest.approx(28 / 50)
    assert paired["target_calls_vs_lossless_uncapped"] == pytest.approx(0.8) and paired["capped"] == 1
    assert paired["agreement_with_lossless"] == 0.5 and paired["metric_mean"] == 0.5
    assert paired["lossless_metric_ci"] == [1.0, 1.0]
    assert "target calls 0.56x lossless [" in paired_line(paired)
    (tmp_path / "lossless" / "samples.jsonl").unlink()
    verdicts_only = paired_with_lossless(per_problem, tmp_path, 2)
    assert "target_calls_vs_lossless" not in verdicts_only and verdicts_only["agreement_ci"]
    assert paired_line(verdicts_only).endswith("no per-request statistics for the target calls")


def test_a_rule_that_saves_nothing_does_not_win():
    rows = [_row("lossless", "lossless", 1.0, 1.0), _row("judge t=0", "judge", 1.0, 1.0, [1.0, 1.0]),
            _row("top_k K=2", "top_k", 0.8, 0.5, [0.7, 0.9])]
    entries = matched_agreement(rows, levels=(0.95,))
    assert winner_line(entries) == ("agreement >= 0.95: no rule saves target calls (judge's cheapest point "
                                    "judge t=0: 1.00x lossless)")
