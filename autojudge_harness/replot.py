"""Redraw judge report PNGs from their report JSON and mined features, without retraining the
judge (each feature kind refitted at its reported C, checked against the reported AUC):

    python -m autojudge_harness.replot autojudge_harness/classifiers/smollm2-135m-gsm8k.report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .plots import plot_report
from .training import (FEATURE_KINDS, _subset, fit_grid, guarded_rows, load_features, small_validation,
                       split_by_question)


def replot_report(report_path: Path, features: Path | None = None) -> Path:
    """Redraw ``report_path``'s PNG (beside it) from the report and its mined features (default: the
    report's ``features``, relative to the working directory): each kind refitted at its reported C on
    the reported validation questions; ValueError when the split or an AUC differs from the report."""
    report_path = Path(report_path)
    report = json.loads(report_path.read_text())
    if report.get("question_subset") is not None:
        raise ValueError(f"{report_path}: trained on a question subset, which the report does not list")
    arrays, _ = load_features(features or report["features"])
    if not report["keep_end_mismatches"]:
        arrays = _subset(arrays, guarded_rows(arrays))
    labels = arrays["labels"].astype(int)
    train_mask, val_mask = split_by_question(arrays["question_ids"], report["val_fraction"], report["seed"])
    val_questions = sorted(int(q) for q in np.unique(arrays["question_ids"][val_mask]))
    if val_questions != report["val_question_ids"]:
        raise ValueError(f"{report_path}: the features split into other validation questions than the report's")
    results = {}
    for kind in FEATURE_KINDS:
        x = arrays["features_target"] if kind == "DT" else np.concatenate(
            [arrays["features_draft"], arrays["features_target"]], axis=1)
        results[kind] = fit_grid(x[train_mask], labels[train_mask], x[val_mask], labels[val_mask],
                                 [report["kinds"][kind]["C"]], report["seed"])
        if abs(results[kind]["val_auc"] - report["kinds"][kind]["val_auc"]) > 1e-6:
            raise ValueError(f"{report_path}: {kind} refits to validation AUC {results[kind]['val_auc']:.6f}, "
                             f"the report says {report['kinds'][kind]['val_auc']:.6f}")
    pair = report["pair"]
    title = (f"judge {report_path.name.removesuffix('.report.json')} ({report['feature_kind']}): "
             f"{pair['target_model']} / {pair['draft_model']}, mined on {Path(pair['dataset']).name}")
    path = report_path.with_name(report_path.name.removesuffix(".json") + ".png")
    plot_report(results, labels[val_mask], report["threshold_table"], report["at_threshold"], path,
                len(val_questions), title, small_validation(len(val_questions), int(val_mask.sum())))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redraw judge report PNGs from their report JSON, without "
                                                 "retraining the judge.")
    parser.add_argument("reports", nargs="+", type=Path, help="NAME.report.json files")
    parser.add_argument("--features", type=Path, help="the mined features (default: the report's own path)")
    args = parser.parse_args(argv)
    for report in args.reports:
        print(f"wrote {replot_report(report, args.features)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
