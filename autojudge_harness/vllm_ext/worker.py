"""``AutoJudgeWorker``: the ``worker_cls`` given to ``vllm.LLM`` (vLLM 0.33.0, CUDA).

It builds ``AutoJudgeModelRunner`` through ``Worker._make_model_runner`` (the override point
vLLM documents). ``AutoJudgeRPC`` (shared with the CPU worker) serves
``llm.collective_rpc("autojudge_stats")``, ``llm.collective_rpc("autojudge_requests")``, ``llm.collective_rpc("autojudge_configure", ...)`` and
``llm.collective_rpc("autojudge_rule", ...)``.
"""

from __future__ import annotations

from vllm.v1.worker.gpu_worker import Worker

from .runner import AutoJudgeModelRunner
from .settings import VLLMSettingsError


class AutoJudgeRPC:
    """The workers' AutoJudge methods (their model runner is an ``AutoJudgeModelRunner``)."""

    def autojudge_stats(self) -> dict | None:
        """This worker's cumulative AutoJudge counts (``AutoJudgeModelRunner.autojudge_stats``)."""
        return self.model_runner.autojudge_stats()

    def autojudge_requests(self) -> dict | None:
        """Per-request step records since the last call (``AutoJudgeModelRunner.autojudge_requests``)."""
        return self.model_runner.autojudge_requests()

    def autojudge_configure(self, threshold: float) -> float:
        """Set the judge threshold of the following steps (``AutoJudgeModelRunner.autojudge_configure``)."""
        return self.model_runner.autojudge_configure(threshold)

    def autojudge_rule(self, settings: dict) -> dict:
        """Switch the lenient rule of the following steps (``AutoJudgeModelRunner.autojudge_rule``)."""
        return self.model_runner.autojudge_rule(settings)


class AutoJudgeWorker(AutoJudgeRPC, Worker):
    """vLLM's GPU worker with the AutoJudge model runner (Model Runner V2 only)."""

    def _make_model_runner(self) -> AutoJudgeModelRunner:
        if not self.use_v2_model_runner:
            raise VLLMSettingsError("AutoJudge needs vLLM's Model Runner V2; it is off (VLLM_USE_V2_MODEL_RUNNER=0 "
                                    "or a feature V2 does not support): unset the variable")
        if self.vllm_config.is_mm_encoder_only:
            raise VLLMSettingsError("AutoJudge needs a generating model, not an encoder-only one")
        return AutoJudgeModelRunner(self.vllm_config, self.device)
