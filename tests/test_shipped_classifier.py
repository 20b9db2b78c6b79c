"""The shipped judge for the embedded pair: it loads against the preset pair, and retraining on
the shipped mined features reproduces its metrics and weights."""

from pathlib import Path

import pytest
import torch

from autojudge_harness.judge import load_judge
from autojudge_harness.models import PRESETS, pair_config
from autojudge_harness.resources import package_path
from autojudge_harness.training import train

SHIPPED = Path(pair_config("smollm2-135m").judge)
FEATURES = package_path("classifiers", "data") / "smollm2-135m-gsm8k-train.features.safetensors"


def test_shipped_judge_matches_the_preset_pair():
    judge = load_judge(SHIPPED)
    preset = PRESETS["smollm2-135m"]
    assert judge.target_model == preset.target
    assert judge.draft_model == f"{preset.target}/{preset.draft}"
    assert judge.target_hidden_size == judge.draft_hidden_size == 576
    assert 0.0 < judge.threshold < 1.0 and len(judge.threshold_table) == 26
    assert judge.training["counts"]["mismatches"] >= 100


@pytest.mark.slow
def test_training_on_shipped_data_reproduces_shipped_judge(tmp_path):
    shipped = load_judge(SHIPPED)
    report = train(FEATURES, tmp_path / "judge.safetensors", shipped.feature_kind,
                   shipped.training["target_recall"], shipped.training["seed"])
    assert report["counts"] == shipped.training["counts"]
    assert report["kinds"][shipped.feature_kind]["C"] == shipped.training["C"]
    assert report["kinds"][shipped.feature_kind]["val_auc"] == pytest.approx(shipped.training["val_auc"], abs=2e-3)
    assert report["threshold"] == pytest.approx(shipped.threshold, rel=0.05)
    again = load_judge(tmp_path / "judge.safetensors")
    torch.testing.assert_close(again.weight, shipped.weight, rtol=1e-2, atol=1e-3)
