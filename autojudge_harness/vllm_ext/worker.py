"""``AutoJudgeWorker``: the ``worker_cls`` given to ``vllm.LLM`` (vLLM 0.33.0, CUDA).

It builds ``AutoJudgeModelRunner`` through ``Worker._make_model_runner`` (the override point
vLLM documents) and serves ``llm.collective_rpc("autojudge_stats")``.
"""

from __future__ import annotations

from vllm.v1.worker.gpu_worker import Worker

from .runner import AutoJudgeModelRunner
from .settings import VLLMSettingsError


class AutoJudgeWorker(Worker):
    """vLLM's GPU worker with the AutoJudge model runner (Model Runner V2 only)."""

    def _make_model_runner(self) -> AutoJudgeModelRunner:
        if not self.use_v2_model_runner:
            raise VLLMSettingsError("AutoJudge needs vLLM's Model Runner V2; it is off (VLLM_USE_V2_MODEL_RUNNER=0 "
                                    "or a feature V2 does not support): unset the variable")
        if self.vllm_config.is_mm_encoder_only:
            raise VLLMSettingsError("AutoJudge needs a generating model, not an encoder-only one")
        return AutoJudgeModelRunner(self.vllm_config, self.device)

    def autojudge_stats(self) -> dict | None:
        """This worker's cumulative AutoJudge counts (``AutoJudgeModelRunner.autojudge_stats``)."""
        return self.model_runner.autojudge_stats()
