"""The DT judge over vLLM's n-gram proposer (prompt lookup, no draft model), through
``autojudge check-vllm``'s own engine runner and checks: threshold 0 equals stock n-gram speculative
decoding token for token and count for count; a threshold above 1 accepts every drafted token
(except where the end guard keeps the target's EOS); each request's counts equal vLLM's scheduler's."""

from __future__ import annotations

import json

from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext import engine_check

from engine_tier import MAX_TOKENS, ON_CPU, WINDOW


def run(pair, settings, runs, path) -> dict:
    config = {"target": pair["target"], "draft": pair["draft"], "window": WINDOW, "prompts": pair["prompts"],
              "tensor_parallel_size": 1, "max_tokens": MAX_TOKENS, "gpu_memory_utilization": 0.5,
              "max_model_len": 1024, "enforce_eager": ON_CPU, "batch_size": len(pair["prompts"]), "method": "ngram",
              "async_scheduling": None, "settings": settings, "runs": runs}
    engine_check.run_engine(config, str(path))
    return json.loads(path.read_text())


def test_dt_judge_over_ngram_lookup(pair, tmp_path):
    results = run(pair, "stock", {engine_check.STOCK: None}, tmp_path / "stock.json")
    judge = AcceptanceSettings.from_args(pair["judge"], 0.0).to_dict()
    results.update(run(pair, judge, {engine_check.ZERO: 0.0, engine_check.OVER: engine_check.OVER_ONE},
                       tmp_path / "ours.json"))
    print("\n" + engine_check.table(results))
    assert engine_check.check_results(results) == []
    over = results[engine_check.OVER]["stats"]
    assert over["drafted_tokens"] > 0 and over["accepted_lenient"] > 0
    assert over["draft_calls"] == 0   # n-gram lookup runs no draft model
