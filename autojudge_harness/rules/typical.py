"""Medusa's typical acceptance, applied to greedy decoding with its own temperature.

    allowed_i = p(d_i) > min(eps, delta * exp(-H)),   H = -sum_v p(v) log(p(v) + 1e-5)

p = softmax(target logits / T) over the full vocabulary. Defaults eps = 0.09 (``posterior_threshold``),
delta = 0.3 (``posterior_alpha``), as Medusa and vLLM's typical acceptance sampler. At T = 0 Medusa
(and vLLM) fall back to exact matching, so the rule needs its own T > 0 here: unset is off.
"""

from __future__ import annotations

import torch

from .base import Inputs, Param, Rule


class Typical(Rule):
    name = "typical"
    summary = "Medusa typical acceptance at temperature T: p(d) > min(eps, delta * exp(-entropy))"
    params = (Param("typical_temperature", float, None, "T of the acceptance distribution, > 0 (unset: off)",
                    check=(lambda t: t > 0, "a number > 0")),
              Param("typical_eps", float, 0.09, "eps, the posterior threshold", check=(lambda e: 0 <= e <= 1, "in [0, 1]")),
              Param("typical_alpha", float, 0.3, "delta, the entropy-scaled threshold", check=(lambda a: a >= 0, ">= 0")))
    needs = frozenset({"target_logits"})
    grid = tuple({"typical_temperature": t} for t in (0.5, 0.7, 1.0))

    @property
    def off(self) -> bool:
        return self["typical_temperature"] is None

    def local(self, x: Inputs) -> torch.Tensor:
        p = torch.softmax(x.target_logits.float() / self["typical_temperature"], dim=-1)
        entropy = -(p * torch.log(p + 1e-5)).sum(-1)
        bound = torch.clamp(self["typical_alpha"] * torch.exp(-entropy), max=self["typical_eps"])
        return p.gather(-1, x.draft_tokens.unsqueeze(-1)).squeeze(-1) > bound
