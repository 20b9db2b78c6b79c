"""Ensemble verification (transformers' ``assistant_ensemble_weight``), greedy.

nu_i = w p_t + (1 - w) p_d (softmax of the target's / draft's logits). A draft token is accepted
while it is argmax nu_i; at the first rejection the emitted token is argmax nu_i (not the
target's argmax); the bonus token after a fully accepted window is the target's. w in (0, 1);
the authors' default (None) is off; their docs' example is 0.7. Needs a draft model's logits.
With a greedy draft (d_i = argmax p_d) an exact match is always argmax nu_i too.
"""

from __future__ import annotations

import torch

from .base import Inputs, Param, Rule, shared_vocab, softmax


class Ensemble(Rule):
    name = "ensemble"
    summary = "accept while the draft token is argmax of w*p_target + (1-w)*p_draft; emit that argmax"
    params = (Param("ensemble_w", float, None, "w, the target's weight in the mixture, in (0, 1) (unset: off)",
                    check=(lambda w: 0 < w < 1, "in the open interval (0, 1)")),)
    needs = frozenset({"target_logits", "draft_logits"})
    grid = tuple({"ensemble_w": w} for w in (0.9, 0.8, 0.7, 0.6, 0.5))

    @property
    def off(self) -> bool:
        return self["ensemble_w"] is None

    def mixture_argmax(self, x: Inputs) -> torch.Tensor:
        target, draft = shared_vocab(x.target_logits, x.draft_logits)
        w = self["ensemble_w"]
        return (w * softmax(target) + (1 - w) * softmax(draft)).argmax(-1)

    def local(self, x: Inputs) -> torch.Tensor:
        return self.mixture_argmax(x) == x.draft_tokens

    def emitted(self, x: Inputs) -> torch.Tensor:
        return self.mixture_argmax(x)
