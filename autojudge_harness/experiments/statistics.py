"""Paired statistics over questions: one acceptance rule against lossless on the same documents.

Every comparison (sweep, demo, ``bench decoding``, lcb-5fold) reports per rule, from per-question
records: target calls relative to lossless as the ratio of totals with a 95% paired bootstrap
interval and the median per-question ratio beside it; how many outputs hit the token cap in each
mode and the ratio of totals without those questions; agreement with lossless (and accuracy)
with their intervals. Paired: one resample of question indices (seeded, ``RESAMPLES`` of them)
is applied to both modes, so question difficulty cancels out of the ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95


def bootstrap_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``resamples`` x ``n`` question indices drawn with replacement (seeded)."""
    if n < 1:
        raise ValueError(f"a bootstrap needs at least one question, got {n}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> list[float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (NaNs dropped)."""
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
    return [float(lo), float(hi)]


def ratio_of_totals_ci(numerators: Sequence[float], denominators: Sequence[float],
                       indices: np.ndarray | None = None, level: float = LEVEL) -> list[float]:
    """Paired bootstrap interval of sum(numerators) / sum(denominators) over questions
    (``indices``: the resamples, default ``bootstrap_indices``)."""
    num, den = np.asarray(numerators, float), np.asarray(denominators, float)
    if num.shape != den.shape:
        raise ValueError(f"paired values need the same questions: {num.shape} vs {den.shape}")
    indices = bootstrap_indices(len(num)) if indices is None else indices
    totals = den[indices].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(totals > 0, num[indices].sum(axis=1) / totals, np.nan)
    return percentile_interval(ratios, level)


def mean_ci(values: Sequence[float], indices: np.ndarray | None = None, level: float = LEVEL) -> list[float]:
    """Bootstrap interval of the mean of per-question ``values`` (agreement 0/1, accuracy)."""
    values = np.asarray(values, float)
    indices = bootstrap_indices(len(values)) if indices is None else indices
    return percentile_interval(values[indices].mean(axis=1), level)


def compare_with_lossless(calls: Sequence[float], lossless_calls: Sequence[float], capped: Sequence[bool],
                          lossless_capped: Sequence[bool], agree: Sequence[bool] | None = None,
                          correct: Sequence[float] | None = None, resamples: int = RESAMPLES,
                          seed: int = SEED) -> dict:
    """The paired figures of one rule against lossless, per question aligned (same order in every
    argument): ``calls`` target calls, ``capped`` whether the output hit max_gen_toks, ``agree``
    whether the answer equals lossless's, ``correct`` the task metric (None: not reported)."""
    calls, base = np.asarray(calls, float), np.asarray(lossless_calls, float)
    capped, base_capped = np.asarray(capped, bool), np.asarray(lossless_capped, bool)
    n = len(calls)
    if not (len(base) == len(capped) == len(base_capped) == n) or n == 0:
        raise ValueError(f"per-question records must be non-empty and aligned: {n} target calls, {len(base)} "
                         f"lossless, {len(capped)} and {len(base_capped)} cap flags")
    indices = bootstrap_indices(n, resamples, seed)
    uncapped = ~(capped | base_capped)
    figures = {
        "questions": n,
        "target_calls_vs_lossless": _ratio(calls.sum(), base.sum()),
        "target_calls_vs_lossless_ci": ratio_of_totals_ci(calls, base, indices),
        "median_question_ratio": float(np.median(calls / base)) if (base > 0).all() else None,
        "capped": int(capped.sum()), "lossless_capped": int(base_capped.sum()),
        "uncapped_questions": int(uncapped.sum()),
        "target_calls_vs_lossless_uncapped": _ratio(calls[uncapped].sum(), base[uncapped].sum()) if uncapped.any() else None,
        "target_calls_vs_lossless_uncapped_ci": (ratio_of_totals_ci(calls[uncapped], base[uncapped],
                                                                    bootstrap_indices(int(uncapped.sum()), resamples, seed))
                                                 if uncapped.any() else None),
    }
    if agree is not None:
        agree = np.asarray(agree, float)
        figures |= {"agreement_with_lossless": float(agree.mean()), "agreement_ci": mean_ci(agree, indices)}
    if correct is not None:
        correct = np.asarray(correct, float)
        figures |= {"metric_mean": float(correct.mean()), "metric_ci": mean_ci(correct, indices)}
    return figures


def _ratio(value: float, base: float) -> float | None:
    return float(value / base) if base else None


def matched_agreement(rows: list[dict], levels: Sequence[float] = (0.95, 0.90)) -> list[dict]:
    """Per agreement ``level``, each rule's cheapest point (lowest target calls relative to lossless)
    among its points with agreement >= level; ``rows``: the sweep's points (label, rule,
    agreement_with_lossless, target_calls_vs_lossless, its _ci, metric). Lossless is not a rule here.
    Each entry: level, rule, label, calls, ci, metric, agreement, and the same ratio without the
    questions where either mode hit the token cap (``uncapped_calls``, ``uncapped_ci``,
    ``capped``: "here/lossless"); the rule's fields None when no point of it reaches the level.
    Sorted cheapest first."""
    rules = list(dict.fromkeys(r["rule"] for r in rows if r["rule"] != "lossless"))
    table = []
    for level in levels:
        entries = []
        for rule in rules:
            ok = [r for r in rows if r["rule"] == rule and r["agreement_with_lossless"] is not None
                  and r["target_calls_vs_lossless"] is not None and r["agreement_with_lossless"] >= level - 1e-9]
            best = min(ok, key=lambda r: r["target_calls_vs_lossless"], default=None)
            entries.append({"level": level, "rule": rule, "label": best and best["label"],
                            "calls": best and best["target_calls_vs_lossless"],
                            "ci": best and best.get("target_calls_vs_lossless_ci"),
                            "metric": best and best.get("metric"), "agreement": best and best["agreement_with_lossless"],
                            "uncapped_calls": best and best.get("target_calls_vs_lossless_uncapped"),
                            "uncapped_ci": best and best.get("target_calls_vs_lossless_uncapped_ci"),
                            "capped": (f"{best['capped']}/{best['lossless_capped']}"
                                       if best and best.get("capped") is not None else None)})
        table += sorted(entries, key=lambda e: (e["calls"] is None, e["calls"] or 0))
    return table


def winner_line(entries: list[dict]) -> str:
    """Who wins at one agreement level (``matched_agreement`` entries of that level, cheapest first):
    the cheapest deployable rule (the oracle, the perfect judge, is a ceiling and named as such), and
    whether its interval clears the runner-up's (else: not a clear win); no winner when no rule
    reaches the level or the cheapest point saves nothing."""
    level = entries[0]["level"] if entries else None
    oracle = next((e for e in entries if e["rule"] == "oracle" and e["calls"] is not None), None)
    ceiling = "" if oracle is None else f" (the perfect judge's ceiling: {oracle['calls']:.2f}x)"
    reached = [e for e in entries if e["calls"] is not None and e["rule"] != "oracle"]
    if not reached:
        return f"agreement >= {level:.2f}: no rule reaches it{ceiling}"
    best = reached[0]
    if best["calls"] >= 1 - 1e-9:
        return (f"agreement >= {level:.2f}: no rule saves target calls ({best['rule']}'s cheapest point "
                f"{best['label']}: {best['calls']:.2f}x lossless){ceiling}")
    head = f"agreement >= {level:.2f}: {best['rule']} wins ({best['label']}, {best['calls']:.2f}x lossless target calls"
    if best.get("uncapped_calls") is not None and best.get("capped") not in (None, "0/0"):
        head += f", {best['uncapped_calls']:.2f}x without the {best['capped']} capped outputs"
    if len(reached) == 1:
        return head + f"; the only rule that reaches this agreement){ceiling}"
    second = reached[1]
    if best["ci"] and second["ci"] and best["ci"][1] < second["ci"][0]:
        return head + f"; its interval lies below {second['rule']}'s: a clear win){ceiling}"
    return head + f"; its interval overlaps {second['rule']}'s ({second['calls']:.2f}x): not a clear win){ceiling}"
