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


def test_optional_keys_round_trip_and_old_files_stay_valid(tmp_path):
    judge = load_judge(write_judge(tmp_path / "new.safetensors", dtype="bfloat16", target_model_id="org/t"))
    assert (judge.dtype, judge.target_model_id, judge.draft_model_id) == ("bfloat16", "org/t", None)
    old = load_judge(write_judge(tmp_path / "old.safetensors"))   # written without the optional keys
    assert (old.dtype, old.target_model_id) == (None, None)
    from autojudge_harness.resources import shipped_classifier

    shipped = load_judge(shipped_classifier("smollm2-135m-gsm8k.safetensors"))
    assert shipped.dtype is None and shipped.target_model == "embedded:SmolLM2-135M-Instruct"
    with pytest.raises(JudgeFileError, match="dtype 'int8' is not one of"):
        write_judge(tmp_path / "bad.safetensors", dtype="int8")
    with pytest.raises(JudgeFileError, match="draft_model_id must be a non-empty string"):
        write_judge(tmp_path / "bad.safetensors", draft_model_id="")


def test_local_copies_and_recorded_ids_fit_and_a_mismatch_names_the_override(tmp_path):
    from autojudge_harness.judge import model_names

    judge = load_judge(write_judge(tmp_path / "j.safetensors", target_model="org/target", draft_model="org/draft"))
    snapshot = tmp_path / "hub" / "models--org--target" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    judge.check_models(8, 6, str(snapshot), "org/draft")              # a hub-cache copy names its hub id
    named = tmp_path / "named-copy"
    named.mkdir()
    (named / "config.json").write_text(json.dumps({"_name_or_path": "org/draft"}))
    judge.check_models(8, 6, "org/target", str(named))                # so does a config's _name_or_path
    assert model_names(f"{snapshot}/layers:4+exit") >= {"org/target/layers:4+exit"}
    plain = tmp_path / "plain-copy"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(JudgeFileError, match=r"target model '.*plain-copy' != judge's 'org/target' \(a local "
                                             r"directory that names no hub id.*--target-id .*plain-copy"):
        judge.check_models(8, 6, str(plain), "org/draft")
    recorded = load_judge(write_judge(tmp_path / "r.safetensors", target_model="org/target",
                                      target_model_id=str(plain)))
    recorded.check_models(8, 6, str(plain), "d")                      # the override: a recorded model id
    recorded.check_models(8, 6, "org/target", "d")
    with pytest.raises(JudgeFileError, match="draft model 'x' != judge's 'd'"):
        recorded.check_models(8, 6, "org/target", "x")


def test_dtype_warning_and_the_vllm_check(tmp_path):
    from autojudge_harness.judge import dtype_warning
    from autojudge_harness.settings import AcceptanceSettings
    from autojudge_harness.vllm_ext.settings import load_vllm_judge

    assert dtype_warning("float32", torch.float32) is None and dtype_warning(None, torch.bfloat16) is None
    note = dtype_warning("float32", torch.bfloat16)
    assert note.startswith("the judge was trained on float32 features but the engine runs bfloat16")
    assert "dtype=float32" in note and "autojudge mine --dtype bfloat16" in note
    path = write_judge(tmp_path / "j.safetensors", dtype="float32")
    settings = AcceptanceSettings(judge=str(path))
    with pytest.warns(UserWarning, match="trained on float32 features but the engine runs bfloat16"):
        load_vllm_judge(settings, 8, 6, engine_dtype=torch.bfloat16)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_vllm_judge(settings, 8, 6, engine_dtype=torch.float32)
    wide = write_judge(tmp_path / "dd.safetensors", kind="DD-DT", training={"features": "run/features.safetensors"})
    with pytest.raises(JudgeFileError, match=r"DT judges \(target hidden states\) only: train one with autojudge "
                                             r"train --features run/features.safetensors --out .*dd-dt.safetensors "
                                             r"--feature-kind DT"):
        load_vllm_judge(AcceptanceSettings(judge=str(wide)), 8, 6)


def test_a_local_copy_naming_another_model_says_which(tmp_path):
    judge = load_judge(write_judge(tmp_path / "j.safetensors", target_model="org/target"))
    other = tmp_path / "hub" / "models--org--other" / "snapshots" / "r1"
    other.mkdir(parents=True)
    with pytest.raises(JudgeFileError, match=r"\(a local directory that names 'org/other'\)"):
        judge.check_models(8, 6, str(other), "d")
