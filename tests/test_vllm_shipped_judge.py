"""The vLLM preset's shipped DT judge: it fits the preset's pair, and retraining on the shipped
mined features reproduces it."""

import pytest
import torch

from autojudge_harness.draft_export import vllm_preset
from autojudge_harness.judge import load_judge
from autojudge_harness.resources import package_path
from autojudge_harness.training import train

FEATURES = package_path("classifiers", "data") / "smollm2-135m-vllm-draft-train.features.safetensors"


def test_vllm_preset_judge_matches_its_pair():
    preset = vllm_preset("smollm2-135m")
    judge = load_judge(preset["judge"])
    assert judge.feature_kind == "DT" and judge.target_hidden_size == 576
    assert judge.target_model == preset["target"] and judge.draft_model == f"{preset['target']}/{preset['draft']}"
    assert preset["draft"] == "layers:28" and 0.0 < judge.threshold < 1.0
    assert judge.training["keep_end_mismatches"] is False and judge.training["counts"]["end_guard_excluded"] > 0


@pytest.mark.slow
def test_training_on_the_shipped_features_reproduces_the_vllm_judge(tmp_path):
    shipped = load_judge(vllm_preset("smollm2-135m")["judge"])
    report = train(FEATURES, tmp_path / "judge.safetensors", "DT", shipped.training["target_recall"],
                   shipped.training["seed"], val_fraction=0.2)   # classifiers/README.md
    assert report["counts"] == shipped.training["counts"]
    assert report["kinds"]["DT"]["val_auc"] == pytest.approx(shipped.training["val_auc"], abs=2e-3)
    assert report["threshold"] == pytest.approx(shipped.threshold, rel=0.05)
    torch.testing.assert_close(load_judge(tmp_path / "judge.safetensors").weight, shipped.weight, rtol=1e-2, atol=1e-3)
