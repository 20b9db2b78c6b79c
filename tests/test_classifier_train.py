"""Judge training on synthetic mined features: grid search, split by question, threshold, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from autojudge_harness.judge import load_judge
from autojudge_harness.training import C_GRID, split_by_question, threshold_for_recall, train

GRID = C_GRID[-8:]  # a short grid keeps the test quick


def write_features(path, n_questions=30, per_question=12, ht=6, hd=4, labels=None, target="t", draft="d", ends=None,
                   dtype=None, provenance=None):
    rng = np.random.default_rng(0)
    n = n_questions * per_question
    y = rng.integers(0, 2, n) if labels is None else np.asarray(labels)
    ft = rng.normal(size=(n, ht)).astype(np.float32)
    fd = rng.normal(size=(n, hd)).astype(np.float32)
    ft[:, 0] += 2.0 * y  # the target's hidden state carries the label; the draft's a little
    fd[:, 1] += 0.5 * y
    manifest = {"target_model": target, "draft_model": draft, "target_hidden_size": ht, "draft_hidden_size": hd,
                "dataset": "synthetic", "max_new_tokens": 16} | ({} if dtype is None else {"dtype": dtype})
    metadata = {"manifest": json.dumps(manifest)} | ({} if provenance is None else {"provenance": json.dumps(provenance)})
    save_file({"features_target": ft, "features_draft": fd, "labels": y.astype(np.uint8),
               "target_end": np.zeros(n, np.uint8) if ends is None else np.asarray(ends, np.uint8),
               "question_ids": np.repeat(np.arange(n_questions), per_question).astype(np.int64),
               "positions": np.tile(np.arange(per_question), n_questions).astype(np.int64)},
              str(path), metadata=metadata)
    return path


def test_train_writes_a_judge_that_reproduces_sklearn(tmp_path):
    feats = write_features(tmp_path / "f.safetensors")
    out = tmp_path / "judge.safetensors"
    report = train(feats, out, "DD-DT", recall=0.9, grid=GRID)
    assert report["kinds"]["DD-DT"]["val_auc"] > 0.8 and report["kinds"]["DT"]["val_auc"] > 0.8
    assert report["at_threshold"]["recall"] >= 0.9
    assert len(report["threshold_table"]) == 26
    judge = load_judge(out)
    assert judge.feature_kind == "DD-DT" and judge.threshold == report["threshold"]
    assert (judge.target_model, judge.draft_model) == ("t", "d")
    assert (tmp_path / "judge.report.png").stat().st_size > 10_000
    # retraining is deterministic: same metrics
    again = train(feats, tmp_path / "again.safetensors", "DD-DT", recall=0.9, grid=GRID)
    assert again["kinds"] == report["kinds"] and again["threshold"] == report["threshold"]


def test_split_is_by_question_and_seeded():
    qids = np.repeat(np.arange(20), 5)
    train_mask, val_mask = split_by_question(qids, seed=3)
    assert not set(qids[train_mask]) & set(qids[val_mask]) and len(set(qids[val_mask])) == 2
    assert (split_by_question(qids, seed=3)[1] == val_mask).all()
    with pytest.raises(ValueError, match="at least 2 questions"):
        split_by_question(np.zeros(5, dtype=int))


def test_threshold_for_recall_is_largest_keeping_recall():
    probs = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    labels = np.array([0, 1, 0, 1, 1])
    t = threshold_for_recall(probs, labels, 2 / 3)
    assert t == 0.4  # p >= 0.4 keeps 2 of 3 important; 0.9 would keep only 1


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        train(tmp_path / "none.safetensors", tmp_path / "j.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 20)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        train(tmp_path / "junk.safetensors", tmp_path / "j.safetensors")
    ones = write_features(tmp_path / "ones.safetensors", labels=np.ones(360))
    with pytest.raises(ValueError, match="all important"):
        train(ones, tmp_path / "j.safetensors", grid=GRID)
    zeros = write_features(tmp_path / "zeros.safetensors", labels=np.zeros(360))
    with pytest.raises(ValueError, match="all unimportant"):
        train(zeros, tmp_path / "j.safetensors", grid=GRID)
    other = write_features(tmp_path / "other.safetensors", target="other-model")
    with pytest.raises(ValueError, match="mined with target 'other-model'"):
        train(other, tmp_path / "j.safetensors", target_model="t", grid=GRID)


def test_end_guard_rows_are_left_out_of_training_unless_kept(tmp_path):
    from autojudge_harness.training import guarded_rows

    n_q, per = 30, 12
    y = np.random.default_rng(0).integers(0, 2, n_q * per)
    ends = np.zeros(n_q * per, np.uint8)
    ends[3] = 1; y[3] = 0        # question 0: an unimportant end at position 3 -> positions 4.. are past it
    ends[per + 5] = 1; y[per + 5] = 1   # question 1: an important end at position 5 (R was kept)
    feats = write_features(tmp_path / "f.safetensors", labels=y, ends=ends)
    arrays = {"target_end": ends, "labels": y, "question_ids": np.repeat(np.arange(n_q), per),
              "positions": np.tile(np.arange(per), n_q)}
    keep = guarded_rows(arrays)
    assert keep[:3].all() and not keep[3:per].any()             # question 0: up to the end, exclusive
    assert keep[per:per + 5].all() and not keep[per + 5] and keep[per + 6:2 * per].all()
    assert keep[2 * per:].all()
    report = train(feats, tmp_path / "j.safetensors", grid=[1.0])
    assert report["counts"]["end_mismatches"] == 2 and report["counts"]["end_guard_excluded"] == per - 3 + 1
    assert report["counts"]["mismatches"] == n_q * per - (per - 3 + 1)
    kept = train(feats, tmp_path / "k.safetensors", grid=[1.0], keep_end_mismatches=True)
    assert kept["counts"]["mismatches"] == n_q * per and kept["keep_end_mismatches"]


def test_a_tiny_training_set_warns_with_its_validation_size(tmp_path):
    feats = write_features(tmp_path / "f.safetensors", n_questions=6, per_question=10)
    with pytest.warns(UserWarning, match=r"small validation set: 10 mismatches from 1 questions"):
        report = train(feats, tmp_path / "j.safetensors", grid=[1.0], val_fraction=0.1)
    assert report["warnings"] and report["val_question_ids"] == report["val_question_ids"][:1]


def test_the_judge_records_dtype_provenance_and_model_ids(tmp_path):
    feats = write_features(tmp_path / "f.safetensors", dtype="bfloat16",
                           provenance={"source": "official", "origin": "org/data", "question_names": {"0": "q"}})
    report = train(feats, tmp_path / "j.safetensors", "DT", grid=[1.0], dtype="bfloat16", target_model_id="org/t")
    judge = load_judge(tmp_path / "j.safetensors")
    assert (judge.dtype, judge.target_model_id, judge.draft_model_id) == ("bfloat16", "org/t", None)
    assert judge.training["provenance"] == {"source": "official", "origin": "org/data"} == report["provenance"]
    judge.check_models(6, 4, "org/t", "d")
    with pytest.raises(ValueError, match=r"computed in bfloat16, not float32; mine them again with autojudge mine "
                                         r"--dtype float32"):
        train(feats, tmp_path / "k.safetensors", grid=[1.0], dtype="float32")
    unrecorded = write_features(tmp_path / "old.safetensors")    # written before dtype and provenance
    train(unrecorded, tmp_path / "old-judge.safetensors", grid=[1.0])
    old = load_judge(tmp_path / "old-judge.safetensors")
    assert old.dtype is None and old.training["provenance"] == {}


def test_the_feature_kind_defaults_to_what_the_backend_loads(tmp_path, capsys):
    from autojudge_harness.cli import main
    from autojudge_harness.training import TrainingDataError, feature_kind_for

    assert (feature_kind_for("hf", None), feature_kind_for("vllm", None), feature_kind_for("hf", "DT")) == \
        ("DD-DT", "DT", "DT")
    with pytest.raises(TrainingDataError, match=r"the vllm backend loads DT judges only, not DD-DT \(give "
                                                r"--feature-kind DT, or --backend hf for a DD-DT judge\)"):
        feature_kind_for("vllm", "DD-DT")
    feats = write_features(tmp_path / "f.safetensors", dtype="float32")
    assert main(["train", "--features", str(feats), "--out", str(tmp_path / "v.safetensors"), "--backend", "vllm"]) == 0
    assert load_judge(tmp_path / "v.safetensors").feature_kind == "DT"
    assert "(DT, float32 features, data from an unrecorded source)" in capsys.readouterr().out
    assert main(["train", "--features", str(feats), "--out", str(tmp_path / "h.safetensors")]) == 0
    assert load_judge(tmp_path / "h.safetensors").feature_kind == "DD-DT"


def test_the_cli_prints_a_small_validation_warning_once(tmp_path):
    feats = write_features(tmp_path / "f.safetensors", n_questions=6, per_question=10)
    run = subprocess.run([sys.executable, "-m", "autojudge_harness", "train", "--features", str(feats),
                          "--out", str(tmp_path / "j.safetensors"), "--val-fraction", "0.1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (run.stdout + run.stderr).count("small validation set") == 1, run.stdout + run.stderr
