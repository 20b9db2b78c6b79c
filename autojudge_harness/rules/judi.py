"""JuDi (arXiv 2601.04766): accept a mismatch when the target is unsure and close to the draft.

    allowed_i = max p_t <= 0.9  and  KL(p_t || p_d) < tau

p_t, p_d: full-vocabulary softmax of the raw target / draft logits at the position. The confidence
bound 0.9 is fixed (the authors' CLI refuses any other). tau = 0 (their default) allows nothing,
since KL >= 0. Their scans: tau 0.3, 0.4, 0.6 (GSM8K), 0.1-1.1 (LiveCodeBench).
"""

from __future__ import annotations

import torch

from .base import Inputs, Param, Rule, shared_vocab

CONFIDENCE = 0.9


class JuDi(Rule):
    name = "judi"
    summary = "target confidence <= 0.9 and KL(target || draft) < tau (training-free)"
    params = (Param("judi_tau", float, 0.0, "KL bound tau (0: lossless)", off=0.0,
                    check=(lambda t: t >= 0, "a number >= 0")),)
    needs = frozenset({"target_logits", "draft_logits"})
    grid = tuple({"judi_tau": t} for t in (0.1, 0.3, 0.4, 0.6, 0.9, 1.1))

    def local(self, x: Inputs) -> torch.Tensor:
        target, draft = shared_vocab(x.target_logits, x.draft_logits)
        target_logp = torch.log_softmax(target.float(), dim=-1)
        draft_logp = torch.log_softmax(draft.float(), dim=-1)
        kl = (target_logp.exp() * (target_logp - draft_logp)).sum(-1)
        confidence = target_logp.max(-1).values.exp()
        return (confidence <= CONFIDENCE) & (kl < self["judi_tau"])
