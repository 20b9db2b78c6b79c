"""Trying mining on a few questions (docs/mining.md): when the split by question leaves one class on a
side, the training error says how many more questions are likely needed."""

import numpy as np
import pytest
from test_classifier_train import write_features

from autojudge_harness.training import TrainingDataError, questions_needed, train


def test_questions_needed_grows_as_the_rarer_class_gets_rarer():
    ids = np.repeat(np.arange(4), 2)
    half = questions_needed(ids, np.array([1, 0, 1, 0, 0, 0, 0, 0]), 0.1)   # 2 of 4 questions hold an important one
    quarter = questions_needed(ids, np.array([1, 0, 0, 0, 0, 0, 0, 0]), 0.1)
    assert half == 40   # 4 validation questions leave both out with chance 0.5**4 < 0.1; at 10%: 40 questions
    assert quarter == 90 and questions_needed(ids, np.array([1, 0] * 4), 0.1) == 4   # both classes everywhere


def test_a_one_class_split_says_how_many_more_questions_to_mine(tmp_path):
    labels = [1, 0, 0, 0] + [0] * 8   # 3 questions, one of them with an important mismatch
    feats = write_features(tmp_path / "f.safetensors", n_questions=3, per_question=4, labels=labels)
    with pytest.raises(TrainingDataError, match=r"split has only one class \(3 questions, 1 of 12 mismatches "
                                                r"important\); mine about 57 more questions \(docs/mining.md\)"):
        train(feats, tmp_path / "j.safetensors", grid=[1.0])
