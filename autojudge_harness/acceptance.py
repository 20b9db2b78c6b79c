"""The one acceptance rule of AutoJudge, shared by every backend (pure torch, no model code).

Window position i (0-based) is accepted iff every earlier position is accepted and
    draft_tokens[i] == target_tokens[i]  or  (allowed[i] and not ends[i])
where ``allowed`` marks the mismatches a lenient rule lets through:
    judge:  ``judge_allows(judge_probs, threshold)``  (probability "important" < threshold)
    top-K:  ``top_k_allows(draft_tokens, target_logits, k)``  (draft token in the target's top K)
and ``ends`` is the end guard: positions where the target's own token ends the answer (an EOS
id, ``ends_at(target_tokens, end_ids)``; a backend may add tokens that complete a stop string).
There no lenient rule may overrule the target's decision to stop; the draft proposing an end
where the target continues stays the lenient rule's decision. No ``ends``: the paper's rule.
The first rejected position emits the target's token there; a fully accepted window emits
the bonus token target_tokens[W]. No ``allowed`` (or judge threshold 0, or top-K with K=1) is
lossless greedy speculative decoding; a judge threshold > 1 accepts every drafted token
(except where the guard stops it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Acceptance:
    """Result for a batch of windows (leading dims ``...``; window size W).

    num_accepted:   (...)       drafted tokens accepted, 0..W
    tokens:         (..., W+1)  accepted prefix, then the target's token; -1 after that
    lenient_accepted: (..., W)  True where an accepted token differs from the target's
                                (the lenient rule: judge, top-K or oracle, allowed it)
    """

    num_accepted: torch.Tensor
    tokens: torch.Tensor
    lenient_accepted: torch.Tensor


def accept(draft_tokens: torch.Tensor, target_tokens: torch.Tensor,
           allowed: torch.Tensor | None = None, ends: torch.Tensor | None = None) -> Acceptance:
    """Apply the rule to ``draft_tokens`` (..., W) given the target's argmax ``target_tokens``
    (..., W+1), the lenient rule's mask ``allowed`` (..., W) (None: exact matches only) and the
    end guard's mask ``ends`` (..., W) (None: no guard)."""
    width = draft_tokens.shape[-1]
    if target_tokens.shape[-1] != width + 1 or target_tokens.shape[:-1] != draft_tokens.shape[:-1]:
        raise ValueError(f"target_tokens must be (..., W+1) for draft_tokens (..., W); got "
                         f"{tuple(target_tokens.shape)} and {tuple(draft_tokens.shape)}")
    exact = draft_tokens == target_tokens[..., :width]
    lenient = allowed if allowed is None or ends is None else allowed & ~ends
    ok = exact if lenient is None else exact | lenient
    prefix = torch.cumprod(ok.to(torch.int64), dim=-1).bool()   # accepted positions
    num_accepted = prefix.sum(-1)
    positions = torch.arange(width + 1, device=draft_tokens.device)
    padded_draft = torch.cat([draft_tokens, target_tokens[..., width:]], dim=-1)
    tokens = torch.where(positions < num_accepted.unsqueeze(-1), padded_draft, -1)
    tokens = torch.where(positions == num_accepted.unsqueeze(-1), target_tokens, tokens)
    return Acceptance(num_accepted, tokens, prefix & ~exact)


def ends_at(target_tokens: torch.Tensor, end_ids: torch.Tensor) -> torch.Tensor:
    """The end guard's mask: True where the target's token (any shape) is one of ``end_ids`` (1-D)."""
    return torch.isin(target_tokens, end_ids)


def judge_allows(judge_probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mismatches the judge lets through: probability of "important" below ``threshold``."""
    return judge_probs < threshold


def top_k_allows(draft_tokens: torch.Tensor, target_logits: torch.Tensor, k: int) -> torch.Tensor:
    """Top-K baseline: True where the draft token (..., W) is among the target's ``k`` best
    tokens by ``target_logits`` (..., W, V). Ties rank the lower token id first, as argmax does,
    so ``k == 1`` allows exactly the target's argmax (lossless)."""
    if k < 1:
        raise ValueError(f"top-K needs k >= 1, got {k}")
    draft_logit = target_logits.gather(-1, draft_tokens.unsqueeze(-1))
    vocab_ids = torch.arange(target_logits.shape[-1], device=target_logits.device)
    ahead = (target_logits > draft_logit) | ((target_logits == draft_logit) & (vocab_ids < draft_tokens.unsqueeze(-1)))
    return ahead.sum(-1) < k
