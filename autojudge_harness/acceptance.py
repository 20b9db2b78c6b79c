"""The one acceptance rule of AutoJudge, shared by every backend (pure torch, no model code).

Window position i (0-based) is accepted iff every earlier position is accepted and
    draft_tokens[i] == target_tokens[i]  or  judge_probs[i] < threshold.
The first rejected position emits the target's token there; a fully accepted window emits
the bonus token target_tokens[W]. threshold == 0 (or no judge) is lossless greedy
speculative decoding; threshold > 1 accepts every drafted token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Acceptance:
    """Result for a batch of windows (leading dims ``...``; window size W).

    num_accepted:   (...)       drafted tokens accepted, 0..W
    tokens:         (..., W+1)  accepted prefix, then the target's token; -1 after that
    judge_accepted: (..., W)    True where an accepted token differs from the target's (judge said ok)
    """

    num_accepted: torch.Tensor
    tokens: torch.Tensor
    judge_accepted: torch.Tensor


def accept(
    draft_tokens: torch.Tensor,
    target_tokens: torch.Tensor,
    judge_probs: torch.Tensor | None = None,
    threshold: float = 0.0,
) -> Acceptance:
    """Apply the rule to ``draft_tokens`` (..., W) given the target's argmax ``target_tokens``
    (..., W+1) and the judge's "important" probabilities ``judge_probs`` (..., W)."""
    width = draft_tokens.shape[-1]
    if target_tokens.shape[-1] != width + 1 or target_tokens.shape[:-1] != draft_tokens.shape[:-1]:
        raise ValueError(f"target_tokens must be (..., W+1) for draft_tokens (..., W); got "
                         f"{tuple(target_tokens.shape)} and {tuple(draft_tokens.shape)}")
    exact = draft_tokens == target_tokens[..., :width]
    ok = exact if judge_probs is None else exact | (judge_probs < threshold)
    prefix = torch.cumprod(ok.to(torch.int64), dim=-1).bool()   # accepted positions
    num_accepted = prefix.sum(-1)
    positions = torch.arange(width + 1, device=draft_tokens.device)
    padded_draft = torch.cat([draft_tokens, target_tokens[..., width:]], dim=-1)
    tokens = torch.where(positions < num_accepted.unsqueeze(-1), padded_draft, -1)
    tokens = torch.where(positions == num_accepted.unsqueeze(-1), target_tokens, tokens)
    return Acceptance(num_accepted, tokens, prefix & ~exact)
