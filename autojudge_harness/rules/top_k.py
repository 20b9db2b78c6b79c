"""Top-K: accept a mismatching draft token that is among the target's K most likely tokens."""

from __future__ import annotations

import torch

from .base import Inputs, Param, Rule


def top_k_allows(draft_tokens: torch.Tensor, target_logits: torch.Tensor, k: int) -> torch.Tensor:
    """True where the draft token (...) is among the target's ``k`` best tokens by ``target_logits``
    (..., V). Ties rank the lower token id first, as argmax does, so ``k == 1`` allows exactly the
    target's argmax (lossless)."""
    draft_logit = target_logits.gather(-1, draft_tokens.unsqueeze(-1))
    vocab_ids = torch.arange(target_logits.shape[-1], device=target_logits.device)
    ahead = (target_logits > draft_logit) | ((target_logits == draft_logit) & (vocab_ids < draft_tokens.unsqueeze(-1)))
    return ahead.sum(-1) < k


class TopK(Rule):
    name = "top_k"
    summary = "draft token among the target's K best (a baseline)"
    params = (Param("accept_top_k", int, None, "K: accept a mismatch among the target's K best tokens", off=1,
                    check=(lambda k: k >= 1, "an integer >= 1")),)
    needs = frozenset({"target_logits"})
    grid = tuple({"accept_top_k": k} for k in (2, 3, 5))

    def local(self, x: Inputs) -> torch.Tensor:
        return top_k_allows(x.draft_tokens, x.target_logits, self["accept_top_k"])
