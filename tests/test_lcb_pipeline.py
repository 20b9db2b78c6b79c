"""LiveCodeBench mining and the 5-fold out-of-fold protocol: folds, the pass/fail equivalence,
training on a subset of questions, and the whole pipeline on the bundled problems (embedded pair,
slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from autojudge_harness.grading import Grader
from autojudge_harness.livecodebench import problem_from_row, read_lcb_jsonl
from autojudge_harness.experiments.lcb_5fold import file_sha256, folds_document, make_folds, write_or_check_folds
from autojudge_harness.mining.lcb import LCBEquivalence
from autojudge_harness.resources import tasks_path

BUNDLED = tasks_path() / "livecodebench_bundled" / "problems.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}


def test_folds_are_deterministic_partitions(tmp_path):
    ids = [f"q{i:02d}" for i in range(23)]
    folds = make_folds(ids, 5, seed=0)
    assert sorted(q for f in folds for q in f) == sorted(ids)
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert make_folds(list(reversed(ids)), 5, seed=0) == folds  # independent of the data order
    assert make_folds(ids, 5, seed=1) != folds
    with pytest.raises(ValueError, match="duplicate"):
        make_folds(["a", "a", "b"], 2)
    with pytest.raises(ValueError, match="at least k problems"):
        make_folds(["a", "b"], 5)
    path = tmp_path / "folds.json"
    doc = folds_document(ids, 5, 0, {"dataset": "x"})
    assert write_or_check_folds(path, doc) == doc and write_or_check_folds(path, doc) == doc
    with pytest.raises(ValueError, match="folds differ"):
        write_or_check_folds(path, folds_document(ids, 5, 1, {"dataset": "x"}))


def test_lcb_equivalence_is_pass_fail_with_a_verdict_cache(tmp_path):
    problem = problem_from_row(read_lcb_jsonl(BUNDLED)[0])  # A + B
    eq = LCBEquivalence(problem, Grader(timeout=10.0, tmp_root=str(tmp_path)), stop=("<|im_end|>",))
    good = "Sure:\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert eq.answer(good) == "pass"
    assert eq.answer(good + "\nThat is all.") == "pass" and len(eq.verdicts) == 1  # same program: cached
    assert eq.answer("```python\nprint(7)\n```") == "fail"
    assert eq.answer("```python\nprint(7)\n```<|im_end|>```python\nprint(1)\n```") == "fail"  # cut at stop
    assert eq.answer("I cannot write code.") is None
    assert eq.equal("pass", "pass") and eq.equal("fail", "fail") and not eq.equal("pass", "fail")
    assert not eq.equal(None, None) and not eq.equal("fail", None)
    assert eq.name.startswith("lcb-pass-fail")


def test_train_on_a_subset_of_questions(tmp_path):
    from autojudge_harness.training import train

    rng = np.random.default_rng(0)
    n_q, per = 30, 10
    y = rng.integers(0, 2, n_q * per)
    qids = np.repeat(np.arange(n_q), per).astype(np.int64)
    y[qids >= 25] = 1  # questions 25..29 only have important mismatches
    ft = rng.normal(size=(len(y), 6)).astype(np.float32)
    ft[:, 0] += 2 * y
    manifest = {"target_model": "t", "draft_model": "d", "target_hidden_size": 6, "draft_hidden_size": 4,
                "dataset": "synthetic", "max_new_tokens": 8}
    feats = tmp_path / "f.safetensors"
    save_file({"features_target": ft, "features_draft": rng.normal(size=(len(y), 4)).astype(np.float32),
               "labels": y.astype(np.uint8), "target_end": np.zeros(len(y), np.uint8), "question_ids": qids,
               "positions": np.tile(np.arange(per), n_q).astype(np.int64)}, str(feats), metadata={"manifest": json.dumps(manifest)})
    report = train(feats, tmp_path / "j.safetensors", question_ids=range(0, 20), val_fraction=0.25, grid=[0.1, 1.0])
    assert report["counts"]["questions"] == 20 and report["counts"]["mismatches"] == 200
    assert report["counts"]["val_questions"] == 5 and report["question_subset"] == 20
    with pytest.raises(ValueError, match="all important"):
        train(feats, tmp_path / "k.safetensors", question_ids=[25, 26, 27], grid=[1.0])
    with pytest.raises(ValueError, match="no mined mismatches among the 2 selected"):
        train(feats, tmp_path / "k.safetensors", question_ids=[100, 101], grid=[1.0])


@pytest.mark.slow
def test_five_fold_pipeline_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "autojudge_harness", "lcb-5fold", "--preset", "smollm2-135m", "--data", str(BUNDLED),
           "--run-dir", str(run_dir), "--max-new-tokens", "40", "--window", "8", "--threads", "1",
           "--val-fraction", "0.25", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    summary = json.loads((run_dir / "lcb_5fold.json").read_text())
    ids = [r["question_id"] for r in read_lcb_jsonl(BUNDLED)]

    folds_doc = json.loads((run_dir / "folds.json").read_text())
    assert folds_doc["folds"] == make_folds(ids, 5, 0)  # deterministic by question id and seed
    assert summary["folds_file"]["sha256"] == file_sha256(run_dir / "folds.json")

    per_problem = summary["per_problem"]
    assert sorted(p["question_id"] for p in per_problem) == sorted(ids)  # every problem decoded exactly once
    for p in per_problem:  # ... in its own fold, i.e. with a judge that never saw it
        assert p["question_id"] in folds_doc["folds"][p["fold"]]
    overall = summary["results"]["autojudge_out_of_fold"]
    assert overall["problems"] == 10 and overall["pass@1"] == pytest.approx(sum(p["passed"] for p in per_problem) / 10)
    fold_stats = [f["stats"] for f in summary["folds"]]
    assert overall["generated_tokens"] == sum(s["generated_tokens"] for s in fold_stats) > 0
    assert overall["cycles"] == sum(s["cycles"] for s in fold_stats)
    assert overall["accepted_per_cycle"] == pytest.approx(
        sum(s["accepted_exact"] + s["accepted_lenient"] for s in fold_stats) / overall["cycles"])
    lossless = summary["results"]["lossless"]
    assert lossless["problems"] == 10 and lossless["accepted_lenient"] == 0
    assert lossless["target_calls_vs_lossless"] == 1.0   # the cost axis: target calls per request vs lossless
    assert overall["target_calls_vs_lossless"] == pytest.approx(
        overall["target_calls_per_request"] / lossless["target_calls_per_request"])
    assert all("lossless_passed" in p for p in per_problem)
    paired = overall["paired"]   # per problem against lossless, with 95% bootstrap intervals
    assert paired["questions"] == 10 and paired["metric_mean"] == overall["pass@1"]
    assert paired["target_calls_vs_lossless"] == pytest.approx(overall["target_calls_vs_lossless"])
    lo, hi = paired["target_calls_vs_lossless_ci"]
    assert lo <= paired["target_calls_vs_lossless"] <= hi and "paired over 10 problems" in run.stdout
    for entry in summary["classifiers"]:
        fold_ids = folds_doc["folds"][entry["fold"]]
        if entry["status"] == "trained":
            assert entry["sha256"] == file_sha256(entry["judge"]) and 0 <= entry["threshold"]
            assert entry["counts"]["questions"] <= 10 - len(fold_ids)  # trained on the other folds only
        else:
            assert entry["status"] == "untrainable" and entry["reason"] and entry["decoded"].startswith("lossless")
            fold = next(f for f in summary["folds"] if f["fold"] == entry["fold"])
            assert fold["stats"]["accepted_lenient"] == 0
    mined = [json.loads(line) for line in (run_dir / "mined" / "merged.jsonl").read_text().splitlines()]
    assert sorted(r["lcb_question_id"] for r in mined) == sorted(ids)  # each problem mined once
    assert (run_dir / "lcb_5fold.png").stat().st_size > 10_000

    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("fold-*/result.json")}
    assert len(stamps) == 5
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("fold-*/result.json")} == stamps  # folds skipped
    resumed = json.loads((run_dir / "lcb_5fold.json").read_text())
    assert resumed["results"] == summary["results"]
    assert resumed["mining"]["questions"] == 0 and resumed["mining"]["already_done"] == len(ids)  # nothing re-mined
