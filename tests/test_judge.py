import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from autojudge_harness.judge import JudgeFileError, load_judge, save_judge


def write_judge(path, kind="DT", target_hidden=8, draft_hidden=6, **overrides):
    size = target_hidden + (draft_hidden if kind == "DD-DT" else 0)
    rng = np.random.default_rng(0)
    args = dict(feature_kind=kind, target_hidden_size=target_hidden, draft_hidden_size=draft_hidden,
                target_model="t", draft_model="d", mean=rng.normal(size=size), scale=rng.uniform(0.5, 2, size),
                weight=rng.normal(size=size), bias=0.3, threshold=0.25,
                threshold_table=[{"threshold": 0.25, "recall": 0.9, "accepted_fraction": 0.4}],
                training={"C": 1.0})
    args.update(overrides)
    return save_judge(path, **args)


def test_folded_probabilities_equal_sklearn_pipeline(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(400, 14))
    y = (x[:, 0] + 0.5 * x[:, 3] + rng.normal(size=400) > 3.5).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.3)).fit(x, y)
    scaler, lr = pipe[0], pipe[1]
    path = save_judge(tmp_path / "j.safetensors", feature_kind="DD-DT", target_hidden_size=8, draft_hidden_size=6,
                      target_model="t", draft_model="d", mean=scaler.mean_, scale=scaler.scale_,
                      weight=lr.coef_[0], bias=float(lr.intercept_[0]), threshold=0.5, threshold_table=[],
                      training={})
    judge = load_judge(path)
    got = judge.probability(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, pipe.predict_proba(x)[:, 1], atol=1e-5)
    # DD-DT features are [draft ; target]
    feats = judge.features(torch.tensor(x[:, 6:]), torch.tensor(x[:, :6]))
    np.testing.assert_allclose(feats.numpy(), x.astype(np.float32))


def test_round_trip_metadata(tmp_path):
    judge = load_judge(write_judge(tmp_path / "j.safetensors", kind="DD-DT"))
    assert (judge.feature_kind, judge.feature_size, judge.threshold) == ("DD-DT", 14, 0.25)
    assert judge.threshold_table[0]["recall"] == 0.9 and judge.training == {"C": 1.0}


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(JudgeFileError, match="not found"):
        load_judge(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(JudgeFileError, match="not a readable safetensors"):
        load_judge(bad)
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3)}, str(plain))
    with pytest.raises(JudgeFileError, match="no 'autojudge' metadata"):
        load_judge(plain)
    broken = tmp_path / "broken.safetensors"
    save_file({"weight": torch.zeros(3)}, str(broken), metadata={"autojudge": "{not json"})
    with pytest.raises(JudgeFileError, match="not valid JSON"):
        load_judge(broken)


def test_schema_violations_are_named(tmp_path):
    good = write_judge(tmp_path / "good.safetensors")
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta, tensors = json.loads(f.metadata()["autojudge"]), {k: f.get_tensor(k) for k in f.keys()}

    def resave(name, meta_change=None, tensor_change=None):
        m, t = dict(meta), dict(tensors)
        m.update(meta_change or {})
        t.update(tensor_change or {})
        path = tmp_path / name
        save_file(t, str(path), metadata={"autojudge": json.dumps(m)})
        return path

    cases = [
        ({"feature_kind": "XX"}, None, "feature_kind"),
        ({"schema_version": 9}, None, "schema_version"),
        ({"target_hidden_size": 9}, None, "tensor 'mean' has shape"),
        (None, {"weight": torch.zeros(5)}, "tensor 'weight' has shape"),
        (None, {"scale": torch.zeros(8)}, "'scale' must be positive"),
        (None, {"mean": torch.full((8,), float("nan"))}, "non-finite"),
    ]
    for i, (meta_change, tensor_change, message) in enumerate(cases):
        with pytest.raises(JudgeFileError, match=message):
            load_judge(resave(f"c{i}.safetensors", meta_change, tensor_change))
    missing = dict(meta)
    del missing["threshold_table"]
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"autojudge": json.dumps(missing)})
    with pytest.raises(JudgeFileError, match="lacks threshold_table"):
        load_judge(path)


def test_check_models_names_mismatches(tmp_path):
    judge = load_judge(write_judge(tmp_path / "j.safetensors", kind="DD-DT"))
    judge.check_models(8, 6, "t", "d")
    with pytest.raises(JudgeFileError, match="target hidden size 16 != judge's 8"):
        judge.check_models(16, 6)
    with pytest.raises(JudgeFileError, match="draft hidden size 7 != judge's 6"):
        judge.check_models(8, 7)
    with pytest.raises(JudgeFileError, match="target model 'other'"):
        judge.check_models(8, 6, "other", "d")
