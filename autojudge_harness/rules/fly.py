"""FLy (arXiv 2511.22972), with the reference code's window semantics.

A mismatch at window position i (0-based) of a window of K drafted tokens is accepted iff
  - the entropy gate opens: H3_i = -sum over the target's top-3 tokens of p ln p >= theta (p: the
    full-vocabulary softmax of the raw target logits, not renormalised; theta <= 0.01 disables the
    gate: it always opens), and
  - the L-1 following drafts d_{i+1} .. d_{i+L-1} are exact (the target's own tokens, judged on a
    prefix that contains d_i: the same verification pass), and
  - i < K - L (a mismatch in the last L positions is always rejected).
K is the draft length, fixed (the reference drafts K tokens every cycle): our window W, also when a
backend drafts fewer (the HF backend stops a window at a drafted EOS, and near the token cap); the
missing drafts count as not exact. Defaults: theta 0.3, L 6 (fly_config/FLy_Llama3_70b.json; their
K is 15, ours is W).
vLLM's PR counts the window differently: its window W_fly = 6 checks 6 followers (ours, the
reference's L = 6, checks 5), and it applies the gate to probabilities after temperature/top-k/top-p.
``fly_theta=inf`` never opens the gate (lossless).
"""

from __future__ import annotations

import math

import torch

from .base import Inputs, Param, Rule, softmax

GATE_DISABLED_BELOW = 0.01
TOP = 3


def top_entropy(target_logits: torch.Tensor, top: int = TOP) -> torch.Tensor:
    """H_top = -sum over the ``top`` most likely tokens of p ln p, p the full softmax (...)."""
    p = softmax(target_logits).topk(top, dim=-1).values
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(-1)


def exact_run(exact: torch.Tensor) -> torch.Tensor:
    """(..., W) the number of consecutive exact positions starting at each position."""
    run = torch.zeros_like(exact, dtype=torch.int64)
    count = torch.zeros_like(exact[..., 0], dtype=torch.int64)
    for i in range(exact.shape[-1] - 1, -1, -1):
        count = torch.where(exact[..., i], count + 1, 0)
        run[..., i] = count
    return run


class FLy(Rule):
    name = "fly"
    summary = "top-3 entropy gate + the following drafts exact (deferred window; training-free)"
    params = (Param("fly_theta", float, 0.3, "entropy gate theta (<= 0.01: gate always open; inf: lossless)",
                    off=math.inf, check=(lambda t: t >= 0, "a number >= 0")),
              Param("fly_window", int, 6, "L: the mismatch and its L-1 following drafts (reference semantics)",
                    check=(lambda n: n >= 1, "an integer >= 1")))
    needs = frozenset({"target_logits"})
    grid = tuple({"fly_theta": t} for t in (0.7, 0.5, 0.3, 0.2, 0.1))

    def local(self, x: Inputs) -> torch.Tensor:
        theta = self["fly_theta"]
        if theta <= GATE_DISABLED_BELOW:
            return torch.ones_like(x.draft_tokens, dtype=torch.bool)
        return top_entropy(x.target_logits) >= theta

    def window(self, local: torch.Tensor, exact: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(..., W): W, the window's full width, is K."""
        width = local.shape[-1]
        followers = self["fly_window"] - 1
        run = exact_run(exact & valid)
        after = torch.cat([run[..., 1:], torch.zeros_like(run[..., :1])], dim=-1)   # run starting at i+1
        position = torch.arange(width, device=local.device)
        return local & valid & (after >= followers) & (position < width - self["fly_window"])   # K = W
