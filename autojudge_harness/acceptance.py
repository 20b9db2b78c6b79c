"""The one acceptance rule, shared by every backend and every lenient rule (pure torch, no model code).

Window position i (0-based) is accepted iff every earlier position is accepted and
    draft_tokens[i] == target_tokens[i]  or  (allowed[i] and not ends[i])
where ``allowed`` marks the mismatches a lenient rule (``autojudge_harness.rules``: the AutoJudge
judge, top-K, JuDi, FLy, ...) lets through, and ``ends`` is the end guard: positions where the target's own token ends the answer (an EOS
id, ``ends_at(target_tokens, end_ids)``; a backend may add tokens that complete a stop string).
There no lenient rule may overrule the target's decision to stop; the draft proposing an end
where the target continues stays the lenient rule's decision. No ``ends``: the paper's rule.
The first rejected position emits the target's token there, unless the rule names another
(``emitted``, the ensemble rule: its mixture's argmax; never where the guard ends the answer); a
fully accepted window emits the bonus token target_tokens[W]. No ``allowed`` is lossless greedy
speculative decoding.
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
                                (the lenient rule allowed it)
    lenient_emitted:  (...)     True where the token emitted at the rejection is the rule's, not
                                the target's
    """

    num_accepted: torch.Tensor
    tokens: torch.Tensor
    lenient_accepted: torch.Tensor
    lenient_emitted: torch.Tensor


def accept(draft_tokens: torch.Tensor, target_tokens: torch.Tensor,
           allowed: torch.Tensor | None = None, ends: torch.Tensor | None = None,
           emitted: torch.Tensor | None = None) -> Acceptance:
    """Apply the rule to ``draft_tokens`` (..., W) given the target's argmax ``target_tokens``
    (..., W+1), the lenient rule's mask ``allowed`` (..., W) (None: exact matches only), the
    end guard's mask ``ends`` (..., W) (None: no guard) and the rule's tokens to emit at a
    rejection ``emitted`` (..., W) (None, or -1 at a position: the target's)."""
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
    correction = target_tokens
    replaced = torch.zeros_like(num_accepted, dtype=torch.bool)
    if emitted is not None and width:
        keep = (emitted < 0) if ends is None else (emitted < 0) | ends
        own = torch.where(keep, target_tokens[..., :width], emitted)
        correction = torch.cat([own, target_tokens[..., width:]], dim=-1)
        at = num_accepted.clamp(max=width - 1).unsqueeze(-1)
        replaced = (num_accepted < width) & (own.gather(-1, at).squeeze(-1) != target_tokens.gather(-1, at).squeeze(-1))
    tokens = torch.where(positions == num_accepted.unsqueeze(-1), correction, tokens)
    return Acceptance(num_accepted, tokens, prefix & ~exact, replaced)


def ends_at(target_tokens: torch.Tensor, end_ids: torch.Tensor) -> torch.Tensor:
    """The end guard's mask: True where the target's token (any shape) is one of ``end_ids`` (1-D)."""
    return torch.isin(target_tokens, end_ids)
