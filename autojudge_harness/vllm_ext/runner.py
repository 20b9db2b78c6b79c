"""``AutoJudgeModelRunner``: vLLM 0.33.0's Model Runner V2 that installs the AutoJudge rejection
sampler and hands it the target's last hidden states of the verified rows.

- ``__init__`` checks the settings shipped in ``additional_config`` and the speculative config.
- ``load_model`` (after vLLM's) loads the judge on this worker, checks it against the models'
  hidden sizes (their identities are checked on the driver), and replaces vLLM's rejection sampler
  by ours with the end guard's token ids (last pipeline rank only; the other ranks have no sampler).
- ``autojudge_configure`` changes the judge threshold between runs of one engine (an RPC).
- ``sample`` keeps ``hidden_states[input_batch.logits_indices]`` (last layer after the final
  norm, the rows vLLM computes logits from) for the sampler, counts batched forward passes and
  records each request's step in the ``RequestLedger`` (read by the ``autojudge_requests`` RPC).
"""

from __future__ import annotations

import torch
from vllm.v1.worker.gpu.model_runner import GPUModelRunner
from vllm.v1.worker.gpu.spec_decode.rejection_sampler import RejectionSampler

from ..endings import end_token_ids
from ..settings import AcceptanceSettings
from ..rules import Rule
from ..rules.judge import JudgeRule
from .ledger import RequestLedger, step_rows
from .sampler import AutoJudgeRejectionSampler
from .settings import (VLLMSettingsError, check_speculative_config, from_additional_config, installed_vllm,
                       load_vllm_judge, refuse_missing_inputs)


class AutoJudgeModelRunner(GPUModelRunner):
    """GPUModelRunner (V2) with AutoJudge verification for greedy requests."""

    def __init__(self, vllm_config, device: torch.device):
        installed_vllm()
        self.autojudge = from_additional_config(vllm_config.additional_config)
        check_speculative_config(vllm_config.speculative_config, self.autojudge)
        if self.autojudge.mode != "lossless" and vllm_config.parallel_config.enable_batch_sharded_sampling:
            raise VLLMSettingsError("enable_batch_sharded_sampling splits the verification rows across ranks, and "
                                    f"each rank would count only its own; it cannot be combined with {self.autojudge.mode}")
        super().__init__(vllm_config, device)
        self.autojudge_calls = {"target_forwards": 0, "draft_forwards": 0}
        self.autojudge_ledger = RequestLedger()

    def load_model(self, load_dummy_weights: bool = False, *args, model=None, **kwargs) -> None:
        super().load_model(load_dummy_weights, *args, model=model, **kwargs)
        if self.rejection_sampler is None or self.autojudge.mode == "lossless":
            return
        if type(self.rejection_sampler) is not RejectionSampler:
            raise VLLMSettingsError(f"this model brings its own rejection sampler "
                                    f"({type(self.rejection_sampler).__name__}); AutoJudge cannot replace it")
        self.rejection_sampler = AutoJudgeRejectionSampler(
            self.sampler, self.speculative_config, self.device, rule=self._lenient_rule(),
            end_ids=self._end_ids(), watermark_key=self.rejection_sampler.watermark_key)

    def _end_ids(self) -> tuple[int, ...] | None:
        """The end guard's token ids (the target's EOS ids: config and generation config), or None
        when the guard is off."""
        if not self.autojudge.end_guard:
            return None
        generation = self.model_config.try_get_generation_config() or {}
        ids = end_token_ids(getattr(self.model_config.hf_text_config, "eos_token_id", None),
                            generation.get("eos_token_id"))
        if not ids:
            raise VLLMSettingsError(f"the end guard needs the target's EOS token id; {self.model_config.model} "
                                    "names none (give end_guard=false for the paper's rule)")
        return ids

    def _lenient_rule(self) -> Rule:
        """The settings' rule, built on this worker (a judge checked against the models first)."""
        settings = self.autojudge
        if settings.rule != "judge":
            return settings.build_rule()
        draft_config = self.speculative_config.draft_model_config
        draft_hidden = draft_config.get_hidden_size() if draft_config is not None else None
        judge = load_vllm_judge(settings, self.model_config.get_hidden_size(), draft_hidden,
                                engine_dtype=self.model_config.dtype)
        return JudgeRule(judge, threshold=settings.threshold)

    def sample(self, hidden_states: torch.Tensor, input_batch, grammar_output):
        sampler = self.rejection_sampler
        ours = isinstance(sampler, AutoJudgeRejectionSampler)
        self.autojudge_calls["target_forwards"] += 1
        if self.speculator is not None and self.speculative_config.method != "ngram":
            self.autojudge_calls["draft_forwards"] += self.num_speculative_steps   # drafting follows: W forwards
        verified = input_batch.num_draft_tokens > 0 and self.rejection_sampler is not None
        if ours and sampler.needs_hidden and verified:
            sampler.hidden_rows = hidden_states[input_batch.logits_indices]
        try:
            output = super().sample(hidden_states, input_batch, grammar_output)
        finally:
            if ours:
                sampler.hidden_rows = None
        num_reqs = len(input_batch.req_ids)
        lenient = torch.cat(sampler.step_lenient) if ours and verified and sampler.step_lenient else None
        self.autojudge_ledger.add(list(input_batch.req_ids),
                                  step_rows(output[1][:num_reqs], input_batch.cu_num_logits[:num_reqs + 1], lenient))
        return output

    def autojudge_configure(self, threshold) -> float:
        """Set the judge threshold for the following steps (same judge, no recompilation); returns it."""
        if self.autojudge.mode != "judge":
            raise VLLMSettingsError(f"autojudge_configure changes a judge's threshold; this engine runs "
                                    f"{self.autojudge.mode}")
        settings = AcceptanceSettings.from_dict({**self.autojudge.to_dict(), "threshold": threshold})
        self.autojudge = settings
        sampler = self.rejection_sampler
        if isinstance(sampler, AutoJudgeRejectionSampler):
            sampler.rule = JudgeRule(sampler.rule.model, threshold=settings.threshold)
        return settings.threshold

    def autojudge_rule(self, settings: dict) -> dict:
        """Switch the sampler to another rule or parameters (``AcceptanceSettings.to_dict``) for the
        following steps: same engine, no recompilation; the end guard stays as built. Returns the
        settings in force. The engine must have been built with a lenient rule (AutoJudge's sampler)."""
        new = AcceptanceSettings.from_dict(settings)
        sampler = self.rejection_sampler
        if not isinstance(sampler, AutoJudgeRejectionSampler) or new.rule is None:
            raise VLLMSettingsError("autojudge_rule switches between lenient rules of an engine built with one "
                                    f"(this one runs {self.autojudge.mode}; to switch to {new.mode}, build another)")
        if new.end_guard != self.autojudge.end_guard:
            raise VLLMSettingsError("end_guard is fixed when the engine is built")
        refuse_missing_inputs(new)
        self.autojudge = new
        sampler.rule = self._lenient_rule().to(self.device)
        sampler.needs_hidden = "target_hidden" in sampler.rule.needs
        return new.to_dict()

    def autojudge_requests(self) -> dict | None:
        """The ledger's records since the last call, by request id (None on ranks that do not sample)."""
        return None if self.sampler is None else self.autojudge_ledger.take()

    def autojudge_stats(self) -> dict | None:
        """Cumulative counts of this worker (None on ranks that do not sample): batched forward passes,
        the sampler's exact/judge-accepted tokens, and windows left to vLLM's own sampler."""
        if self.sampler is None:
            return None
        stats = {"mode": self.autojudge.mode, **self.autojudge_calls}
        if isinstance(self.rejection_sampler, AutoJudgeRejectionSampler):
            stats.update(self.rejection_sampler.counters.snapshot())
        return stats
