"""The AutoJudge acceptance computation on vLLM's flat verification rows (pure torch, no vllm).

Row layout (vLLM 0.33.0 Model Runner V2, one verification step or one chunk of it): request j
owns the contiguous logits rows ``cu_num_logits[j] .. cu_num_logits[j+1]-1`` (n_j rows,
1 <= n_j <= W+1). ``draft_inputs[r]`` is the input token of row r (-1: a placeholder that must
never be accepted). Row r (not the request's last) *verifies* the draft token
``draft_inputs[r+1]``; the request's last row gives the bonus token. A request with n_j = 1
(prefill, no drafts) only samples that token.

Per-row quantities that concern a draft token are indexed by its verifier row. A lenient rule
(``autojudge_harness.rules``) reads, for the draft token verified by row r, the processed target
logits of row r and the target's hidden state at row r+1 (the state produced when that token is
fed in, as in the HF backend). ``rule_allowed_rows`` computes its position-local
mask by verifier row (the inputs: ``settings.VLLM_INPUTS``); ``verify_windows`` pads the rows into per-request windows, applies the
rule's window step and the one acceptance function, ``acceptance.accept``.
"""

from __future__ import annotations

import torch

from ..acceptance import Acceptance, accept, ends_at
from ..rules import Inputs, Rule


def window_index(cu_num_logits: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, W+1) flat row of window position i of request j (0 where absent) and (R, W+1) presence
    (i < n_j). Requests must have at most W+1 rows."""
    starts = cu_num_logits[:-1].long()
    counts = cu_num_logits[1:].long() - starts
    positions = torch.arange(width + 1, device=cu_num_logits.device)
    present = positions < counts.unsqueeze(-1)
    index = torch.where(present, starts.unsqueeze(-1) + positions, 0)
    return index, present


def next_row(values: torch.Tensor, fill) -> torch.Tensor:
    """``values`` moved up one row (out[r] = values[r+1]; the last row gets ``fill``): aligns a
    per-input-row quantity with the verifier row of that input."""
    tail = values.new_full((min(len(values), 1), *values.shape[1:]), fill)
    return torch.cat([values[1:], tail])


def to_windows(target_tokens: torch.Tensor, draft_inputs: torch.Tensor, cu_num_logits: torch.Tensor,
               width: int, allowed_rows: torch.Tensor | None = None):
    """Pad flat rows into windows: drafts (R, W) (-1 where the request has no draft there),
    target tokens (R, W+1) (-1 past its rows) and the lenient mask (R, W) (``allowed_rows`` by
    verifier row; False where there is no valid draft). ``accept`` never reads past a request's
    last row: its draft slot there is -1, which differs from every target token."""
    index, present = window_index(cu_num_logits, width)
    target = torch.where(present, target_tokens.long()[index], -1)
    has_draft = present[:, 1:]
    draft = torch.where(has_draft, draft_inputs.long()[index[:, 1:]], -1)
    allowed = None
    if allowed_rows is not None:
        allowed = allowed_rows[index[:, :-1]] & has_draft & (draft >= 0)
    return draft, target, allowed


def verify_windows(target_tokens: torch.Tensor, draft_inputs: torch.Tensor, cu_num_logits: torch.Tensor,
                   width: int, allowed_rows: torch.Tensor | None = None,
                   end_ids: torch.Tensor | None = None, rule: Rule | None = None) -> Acceptance:
    """``acceptance.accept`` on every request of the rows: ``tokens`` (R, W+1) is what vLLM's
    sampler returns as ``sampled`` (accepted drafts, then the target's token; -1 after) and
    ``num_accepted + 1`` its ``num_sampled``. ``target_tokens`` (N,) are the rows' argmax;
    ``allowed_rows`` the rule's position-local mask by verifier row, to which ``rule.window``
    (the rule's look at the rest of the window) is applied; ``end_ids`` (1-D): the end guard's
    token ids (None: the guard is off)."""
    draft, target, allowed = to_windows(target_tokens, draft_inputs, cu_num_logits, width, allowed_rows)
    if allowed is not None and rule is not None:
        valid = draft >= 0
        allowed = rule.window(allowed, draft == target[:, :width], valid) & valid
    ends = None if end_ids is None else ends_at(target[:, :width], end_ids)
    return accept(draft, target, allowed, ends)


RULE_CHUNK_ELEMENTS = 1 << 22


def rule_allowed_rows(rule: Rule, logits: torch.Tensor, draft_inputs: torch.Tensor,
                      hidden_rows: torch.Tensor | None = None,
                      chunk_elements: int = RULE_CHUNK_ELEMENTS) -> torch.Tensor:
    """(N,) by verifier row: ``rule.local`` lets that row's draft token through (and the token is
    permitted: ``draft_permitted_rows``). ``logits`` (N, V) are the processed target logits,
    ``hidden_rows`` (N, H) the target's last hidden states (for a rule that needs them). Computed
    over row chunks of at most ``chunk_elements`` logits, so a rule's (rows x V) temporaries stay
    bounded (vLLM's memory profiling never runs the rejection sampler, so nothing is reserved)."""
    if "target_hidden" in rule.needs and (hidden_rows is None or hidden_rows.shape[0] != logits.shape[0]):
        raise ValueError(f"the {rule.name} rule needs one target hidden state per logits row")
    draft = next_row(draft_inputs.long(), -1).clamp(min=0)
    hidden = next_row(hidden_rows, 0) if "target_hidden" in rule.needs else None
    rows = max(1, chunk_elements // max(1, logits.shape[-1]))
    parts = []
    for i in range(0, len(draft), rows):
        chunk = slice(i, i + rows)
        x = Inputs(draft[chunk], logits[chunk].argmax(-1), logits[chunk],
                   target_hidden=hidden[chunk] if hidden is not None else None)
        parts.append(rule.local(x))
    allowed = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=logits.device)
    return allowed & draft_permitted_rows(logits, draft_inputs)


def draft_permitted_rows(logits: torch.Tensor, draft_inputs: torch.Tensor) -> torch.Tensor:
    """(N,) by verifier row: the draft token is valid and keeps a finite logit after vLLM's logits
    processing (grammar bitmask, bad words, min_tokens, top-k/top-p masks). Only such tokens may be
    let through by a lenient rule; an exact match needs no permission."""
    draft = next_row(draft_inputs.long(), -1)
    logit = logits.gather(-1, draft.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (draft >= 0) & (logit > float("-inf"))


def merge_greedy(greedy: torch.Tensor, result: Acceptance, sampled: torch.Tensor,
                 num_sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sampled, num_sampled) with the rows of greedy requests (``greedy`` (R,)) taken from
    ``result`` and the others kept from vLLM's own sampler output."""
    tokens = torch.where(greedy.unsqueeze(-1), result.tokens.to(sampled.dtype), sampled)
    counts = torch.where(greedy, (result.num_accepted + 1).to(num_sampled.dtype), num_sampled)
    return tokens, counts


class AcceptanceCounters:
    """Running totals of the sampler's verdicts, kept on the device (no host sync per step).

    accepted_exact / accepted_lenient: accepted draft tokens of greedy requests equal to / differing
    from the target's argmax; judge_accepted_per_position: the latter by window position;
    stock_cycles: windows (requests with >= 1 draft row) of non-greedy requests, left to vLLM;
    rejected_windows: greedy windows that rejected a draft; end_stops: those of them whose emitted
    target token is an end token (where the end guard may have stopped a lenient rule)."""

    KEYS = ("accepted_exact", "accepted_lenient", "stock_cycles", "rejected_windows", "end_stops")

    def __init__(self, width: int, device):
        self.totals = torch.zeros(len(self.KEYS), dtype=torch.int64, device=device)
        self.judge_per_position = torch.zeros(width, dtype=torch.int64, device=device)

    def add(self, greedy: torch.Tensor, cu_num_logits: torch.Tensor, result: Acceptance | None = None,
            end_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Count one chunk: ``greedy`` (R,), its ``cu_num_logits``, the rule's ``result`` (None when
        the chunk has no greedy request) and the end guard's ``end_ids`` (None: guard off). Returns
        (R,) the lenient-accepted tokens of each request of the chunk."""
        num_drafts = (cu_num_logits[1:] - cu_num_logits[:-1]).long() - 1
        stock = ((num_drafts > 0) & ~greedy).sum()
        if result is None:
            self.totals[2] += stock
            return torch.zeros_like(num_drafts)
        judged = result.lenient_accepted & greedy.unsqueeze(-1)
        judge = judged.sum()
        exact = (result.num_accepted * greedy).sum() - judge
        rejected = greedy & (result.num_accepted < num_drafts)
        emitted = result.tokens.gather(-1, result.num_accepted.unsqueeze(-1)).squeeze(-1)
        ends = rejected & ends_at(emitted, end_ids) if end_ids is not None else torch.zeros_like(rejected)
        self.totals += torch.stack([exact, judge, stock, rejected.sum(), ends.sum()])
        self.judge_per_position += judged.sum(0)
        return judged.sum(-1)

    def snapshot(self) -> dict:
        """Cumulative counts as plain ints (synchronises with the device)."""
        return {**dict(zip(self.KEYS, self.totals.tolist())), "judge_accepted_per_position": self.judge_per_position.tolist()}
