"""Medusa's typical acceptance (``rules/typical.py``) on hand-computed cases."""

import math

import pytest
import torch

from autojudge_harness.rules import Inputs, rule_class
from autojudge_harness.settings import AcceptanceSettings, SettingsError


def test_typical_hand_computed():
    probs = torch.tensor([0.6, 0.3, 0.1])
    entropy = -sum(p * math.log(p + 1e-5) for p in probs.tolist())          # 0.898
    bound = min(0.09, 0.3 * math.exp(-entropy))                             # 0.1222 -> 0.09
    x = lambda d: Inputs(torch.tensor([d]), torch.tensor([0]), torch.log(probs).unsqueeze(0))   # noqa: E731
    typical = rule_class("typical")(typical_temperature=1.0)
    assert bound == 0.09
    assert [typical.local(x(d)).item() for d in (1, 2)] == [True, True]     # 0.3 and 0.1 > 0.09
    strict = rule_class("typical")(typical_temperature=1.0, typical_eps=0.2)
    assert [strict.local(x(d)).item() for d in (1, 2)] == [True, False]     # bound min(0.2, 0.1222)
    assert rule_class("typical")().off
    assert AcceptanceSettings.from_args(typical_temperature="0.7").rule == "typical"
    with pytest.raises(SettingsError, match="typical_temperature must be a number > 0, got '0'"):
        AcceptanceSettings.from_args(typical_temperature="0")
