"""AutoJudge inside vLLM 0.33.0 (Model Runner V2), through its supported entry points only.

Pure modules (no vllm import; tested in CI): ``batched`` (the acceptance computation on vLLM's
flat logits rows), ``settings`` (engine settings, checks, judge loading), ``metrics`` (statistics).
vLLM subclasses (need ``pip install 'autojudge-harness[vllm]'``): ``sampler``
(``AutoJudgeRejectionSampler``), ``runner`` (``AutoJudgeModelRunner``), ``worker``
(``AutoJudgeWorker``, the ``worker_cls``).
"""
