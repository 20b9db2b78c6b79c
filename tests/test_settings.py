"""The one acceptance-settings object and the model_args checks: every bad value is refused with
its key named, before any model is loaded."""

import pytest
import torch

from autojudge_harness.judge import JudgeFileError, save_judge
from autojudge_harness.lm_eval_models.model_args import check_known
from autojudge_harness.settings import AcceptanceSettings, SettingsError, boolean, check_window, number


def write_judge(path, threshold=0.3):
    return save_judge(path, feature_kind="DT", target_hidden_size=8, draft_hidden_size=8, target_model="t",
                      draft_model="d", mean=torch.zeros(8), scale=torch.ones(8), weight=torch.ones(8), bias=0.0,
                      threshold=threshold, threshold_table=[], training={})


def test_settings_from_user_input(tmp_path, monkeypatch):
    judge = write_judge(tmp_path / "j.safetensors")
    monkeypatch.chdir(tmp_path)
    s = AcceptanceSettings.from_args("j.safetensors", "0.25")
    assert s.judge == str(judge.resolve()) and s.threshold == 0.25 and s.mode == "judge"
    assert AcceptanceSettings.from_args(str(judge), 0).threshold == 0.0
    assert AcceptanceSettings.from_args(accept_top_k="4").accept_top_k == 4
    assert AcceptanceSettings.from_args(accept_top_k=4).mode == "top_k"
    assert AcceptanceSettings.from_args().mode == "lossless"
    assert AcceptanceSettings.from_args(judge="", threshold="").mode == "lossless"
    assert AcceptanceSettings.from_args(str(judge)).build_rule()["threshold"] == 0.3   # the judge file's own
    assert AcceptanceSettings.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("kwargs,error,message", [
    ({"judge": "missing.safetensors"}, JudgeFileError, "judge file not found: missing.safetensors"),
    ({"threshold": 0.5}, SettingsError, "threshold needs a judge file"),
    ({"threshold": "abc"}, SettingsError, "threshold must be a number, got 'abc'"),
    ({"accept_top_k": 0}, SettingsError, "accept_top_k must be an integer >= 1"),
    ({"accept_top_k": "many"}, SettingsError, "accept_top_k must be an integer, got 'many'"),
    ({"accept_top_k": 2.5}, SettingsError, "accept_top_k must be an integer, got 2.5"),
])
def test_settings_errors_name_their_key(kwargs, error, message):
    with pytest.raises(error, match=message):
        AcceptanceSettings.from_args(**kwargs)


def test_one_policy_for_bad_combinations(tmp_path):
    judge = str(write_judge(tmp_path / "j.safetensors"))
    with pytest.raises(SettingsError, match="judge and top_k are alternative lenient rules"):
        AcceptanceSettings.from_args(judge, accept_top_k=2)
    with pytest.raises(SettingsError, match="threshold must be a finite number >= 0"):
        AcceptanceSettings.from_args(judge, float("nan"))
    with pytest.raises(SettingsError, match="threshold must be a finite number >= 0"):
        AcceptanceSettings.from_args(judge, -0.1)
    with pytest.raises(SettingsError, match="absolute path"):
        AcceptanceSettings(judge="j.safetensors")
    with pytest.raises(SettingsError, match=r"unknown keys \['window'\]"):
        AcceptanceSettings.from_dict({"judge": None, "window": 3})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a judge")
    with pytest.raises(JudgeFileError, match="not a readable safetensors file"):
        AcceptanceSettings.from_args(str(bad))


def test_small_parsers():
    assert check_window("8") == 8 and check_window(3) == 3
    for bad in (0, "x", 2.5, True, None):
        with pytest.raises(SettingsError, match="window must be an integer >= 1"):
            check_window(bad)
    assert boolean("True", "compile") is True and boolean("0", "compile") is False
    with pytest.raises(SettingsError, match="compile must be true or false, got 'maybe'"):
        boolean("maybe", "compile")
    assert number("1e-3", float, "threshold") == 1e-3 and number(None, int, "k") is None


def test_unknown_keys_name_the_closest_known_one():
    with pytest.raises(SettingsError, match=r"autojudge_hf: unknown model_arg 'treshold'; did you mean 'threshold'\?"):
        check_known("autojudge_hf", ["treshold"], ["threshold", "judge"], ["revision"], "lm-eval's HFLM")
    with pytest.raises(SettingsError, match=r"unknown model_arg 'frobnicate' \(its keys: judge, threshold, and x's"):
        check_known("m", ["frobnicate"], ["threshold", "judge"], [], "x")
    check_known("m", ["revision", "batch_size", "device", "max_batch_size"], ["judge"], ["revision"])


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Fail the test if the HF backend loads a model (the cheap checks must come first)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")
    monkeypatch.setattr("autojudge_harness.lm_eval_models.hf.load_pair", refuse)


@pytest.mark.parametrize("model_args,error,message", [
    ({"treshold": "0.1"}, SettingsError, r"unknown model_arg 'treshold'; did you mean 'threshold'\?"),
    ({"threshold": "abc"}, SettingsError, "threshold must be a number, got 'abc'"),
    ({"window": "many"}, SettingsError, "window must be an integer >= 1, got 'many'"),
    ({"accept_top_k": "0"}, SettingsError, "accept_top_k must be an integer >= 1"),
    ({"judge": "/nowhere/j.safetensors"}, JudgeFileError, "judge file not found: /nowhere/j.safetensors"),
    ({"pretrained": "/nowhere/model", "draft": "layers:1"}, FileNotFoundError,
     "pretrained: local path '/nowhere/model' does not exist"),
    ({"draft": "./missing-draft"}, FileNotFoundError, "draft: local path './missing-draft' does not exist"),
    ({"draft": "layers:x"}, ValueError, "bad draft reference 'layers:x'"),
    ({"compile": "yes please"}, SettingsError, "compile must be true or false"),
    ({"dtype": "int3"}, SettingsError, "dtype must be one of auto, float32"),
])
def test_autojudge_hf_model_args_errors(no_model_loads, model_args, error, message):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    with pytest.raises(error, match=message):
        AutoJudgeHFLM(**{"preset": "smollm2-135m", **model_args})


def test_autojudge_hf_threshold_without_judge_is_an_error(no_model_loads):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    with pytest.raises(SettingsError, match="threshold needs a judge file"):
        AutoJudgeHFLM(pretrained="org/target", draft="layers:1", threshold="0.1")
    with pytest.raises(SettingsError, match="threshold needs a judge file"):   # top-K replaces the preset's judge
        AutoJudgeHFLM(preset="smollm2-135m", accept_top_k="2", threshold="0.1")
