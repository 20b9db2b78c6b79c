"""``AutoJudgeRejectionSampler``: vLLM 0.33.0's rejection sampler with the AutoJudge rule for
greedy requests (the math is in ``batched``; this class only routes rows).

Per verification chunk, ``_verify`` first runs vLLM's own ``_verify`` (logits processing and the
stock kernels) for every request. For the greedy requests (temperature 0) it then recomputes the
result with ``acceptance.accept`` on the padded windows: target argmax of the processed logits,
the drafts (``verify_draft_sampled``: -1 for placeholders and grammar-invalid drafts), the
lenient rule's mask (``rules``: the judge on the target hidden states of the chunk's rows, top-K,
FLy, TensorRT-LLM relaxed: the rules whose inputs the sampler has) and the end guard's token ids (``end_ids``; None: the guard is off). Rows of
non-greedy requests keep vLLM's result (probabilistic rejection sampling, unchanged).
"""

from __future__ import annotations

import numpy as np
import torch
from vllm.v1.worker.gpu.spec_decode.rejection_sampler import RejectionSampler

from ..rules import Rule
from .batched import AcceptanceCounters, merge_greedy, rule_allowed_rows, verify_windows


class AutoJudgeRejectionSampler(RejectionSampler):
    """RejectionSampler + ``rule`` for greedy requests. The model runner sets ``hidden_rows``
    (the target's last hidden states of the logits rows, (N, H)) before each call when the rule
    needs them, and clears it after."""

    def __init__(self, sampler, spec_config, device: torch.device, *, rule: Rule,
                 end_ids: tuple[int, ...] | None = None, watermark_key: int | None = None):
        super().__init__(sampler, spec_config, device, watermark_key=watermark_key)
        self.rule = rule.to(device)
        self.end_ids = None if end_ids is None else torch.tensor(end_ids, dtype=torch.long, device=device)
        self.counters = AcceptanceCounters(self.num_speculative_steps, device)
        self.hidden_rows: torch.Tensor | None = None
        self.needs_hidden = "target_hidden" in rule.needs
        self._next_row = 0
        self.step_lenient: list[torch.Tensor] = []   # per chunk of the last step: (R_chunk,) lenient-accepted tokens

    def _verify_in_chunks(self, logits: torch.Tensor, input_batch, *args, **kwargs):
        """vLLM's chunk loop; chunks cover the rows in order, so ``_verify`` finds its rows in
        ``hidden_rows`` by a running offset."""
        if self.needs_hidden and (self.hidden_rows is None or self.hidden_rows.shape[0] != logits.shape[0]):
            raise RuntimeError("AutoJudgeRejectionSampler: the judge needs the target hidden states of the "
                               f"{logits.shape[0]} logits rows (set by AutoJudgeModelRunner.sample)")
        self._next_row = 0
        self.step_lenient = []
        return super()._verify_in_chunks(logits, input_batch, *args, **kwargs)

    def _verify(self, logits: torch.Tensor, draft_logits: torch.Tensor | None, draft_sampled: torch.Tensor,
                pos: torch.Tensor, cu_num_logits: torch.Tensor, idx_mapping: torch.Tensor,
                idx_mapping_np: np.ndarray, expanded_idx_mapping: torch.Tensor,
                expanded_local_pos: torch.Tensor, seq_lens_upper_bound_np: np.ndarray,
                verify_draft_sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        processed, sampled, num_sampled = super()._verify(
            logits, draft_logits, draft_sampled, pos, cu_num_logits, idx_mapping, idx_mapping_np,
            expanded_idx_mapping, expanded_local_pos, seq_lens_upper_bound_np, verify_draft_sampled)
        start = self._next_row
        self._next_row += logits.shape[0]
        states = self.sampler.sampling_states
        greedy = states.temperature.gpu[idx_mapping] == 0.0
        if not states.any_greedy(idx_mapping_np):
            self.step_lenient.append(self.counters.add(greedy, cu_num_logits))
            return processed, sampled, num_sampled
        hidden = self.hidden_rows[start:self._next_row] if self.needs_hidden else None
        allowed = rule_allowed_rows(self.rule, processed, verify_draft_sampled, hidden)
        # vLLM's kernels take the target argmax over the draft's vocabulary when draft logits exist
        vocab = processed.shape[-1] if draft_logits is None else min(processed.shape[-1], draft_logits.shape[-1])
        result = verify_windows(processed[:, :vocab].argmax(-1), verify_draft_sampled, cu_num_logits,
                                self.num_speculative_steps, allowed, self.end_ids, self.rule)
        self.step_lenient.append(self.counters.add(greedy, cu_num_logits, result, self.end_ids))
        sampled, num_sampled = merge_greedy(greedy, result, sampled, num_sampled)
        return processed, sampled, num_sampled
