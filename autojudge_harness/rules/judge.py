"""AutoJudge: a trained judge (a judge file) accepts a mismatch when P(important) < threshold.

Features: the target's last hidden state at the drafted token's own position (DT), with the
draft's before it for DD-DT. Threshold 0 allows nothing; the default is the judge file's own.
"""

from __future__ import annotations

import contextlib

import torch

from ..judge import Judge, load_judge
from .base import Inputs, Param, Rule


def judge_allows(judge_probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mismatches the judge lets through: probability of "important" below ``threshold``."""
    return judge_probs < threshold


@contextlib.contextmanager
def fp32_matmul():
    """Full fp32 matmuls (no TF32) inside the block, whatever an engine configured."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


class JudgeRule(Rule):
    name = "judge"
    summary = "AutoJudge: a trained classifier on hidden states, P(important) < threshold"
    params = (Param("judge", str, None, "judge file (.safetensors + JSON header; autojudge train)"),
              Param("threshold", float, None, "accept when P(important) < threshold (default: the judge file's; "
                    "0: lossless)", off=0.0, check=(lambda t: t >= 0 and t != float("inf"), "a finite number >= 0")))
    grid = ()   # thresholds come from the judge file's validation curve (the sweep asks the file)

    def __init__(self, judge: Judge | str | None = None, **values):
        super().__init__(**values, **({"judge": judge} if isinstance(judge, str) else {}))
        self.model = load_judge(judge) if isinstance(judge, str) else judge
        if self.model is None:
            raise ValueError("the judge rule needs a judge file (judge=...)")
        if self.values["threshold"] is None:
            self.values["threshold"] = float(self.model.threshold)
        self.needs = frozenset({"target_hidden"} | ({"draft_hidden"} if self.model.feature_kind == "DD-DT" else set()))

    def to(self, device) -> "JudgeRule":
        self.model = self.model.to(device)
        return self

    def probability(self, x: Inputs) -> torch.Tensor:
        """P(important) at each position, computed in fp32."""
        with fp32_matmul():
            return self.model.probability(self.model.features(x.target_hidden, x.draft_hidden))

    def local(self, x: Inputs) -> torch.Tensor:
        return judge_allows(self.probability(x), self["threshold"])
