"""Per-request counts on a real engine: exact at any batch size, under async scheduling, through
preemption and through steps dropped after a stop string; multi-chunk verification; a mixed greedy +
sampling batch; the threshold RPC. Two engines: AutoJudge with the preset's DT judge, scheduled
synchronously; and the same with async scheduling, a 192-token context and a KV cache of 8 blocks of
32 tokens (one request fits, four do not: batch 4 preempts)."""

from __future__ import annotations

import time

import pytest
from vllm import SamplingParams

from autojudge_harness.judge import load_judge
from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext.settings import CONFIGURE_RPC

from engine_tier import (CHUNK_LOGITS, MAX_TOKENS, ON_CPU, WINDOW, decode, engine_metric, sampler_stats, start_engine,
                      stop_engine)

GREEDY = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)
COUNT_KEYS = ("generated_tokens", "target_calls", "draft_calls", "cycles", "drafted_tokens", "accepted_exact",
              "accepted_lenient")


def same_counts(counts) -> list[tuple]:
    return [tuple(c[k] for k in COUNT_KEYS) for c in counts]


@pytest.fixture(scope="module")
def judge_settings(pair):
    return AcceptanceSettings.from_args(pair["judge"])


@pytest.fixture(scope="module")
def sync_engine(pair, judge_settings):
    llm = start_engine(pair, judge_settings, async_scheduling=False)
    yield llm
    stop_engine(llm)


@pytest.fixture(scope="module")
def batch_one(sync_engine, pair):
    """The prompts one at a time (one verification chunk per step), and the wall time."""
    start = time.perf_counter()
    tokens, counts = decode(sync_engine, pair["prompts"], GREEDY, 1)
    return tokens, counts, time.perf_counter() - start


def test_batch_of_four_over_several_chunks_gives_the_per_request_counts_of_batch_one(sync_engine, pair, batch_one):
    tokens_one, counts_one, _ = batch_one
    forwards = sampler_stats(sync_engine)["target_forwards"]
    tokens, counts = decode(sync_engine, pair["prompts"], GREEDY, 4)
    batched_forwards = sampler_stats(sync_engine)["target_forwards"] - forwards
    print("\nper-request (" + ", ".join(COUNT_KEYS) + ")\nbatch 1:", same_counts(counts_one), "\nbatch 4:",
          same_counts(counts), f"\nbatched target forwards at batch 4: {batched_forwards}")
    assert tokens == tokens_one
    assert same_counts(counts) == same_counts(counts_one)
    assert all(c["scheduler_agrees"] for c in counts + counts_one)
    assert sum(c["cycles"] for c in counts) > 0
    assert batched_forwards < sum(c["target_calls"] for c in counts)   # one forward serves several requests
    if ON_CPU:   # W+1 = 5 rows per request, at most CHUNK_LOGITS per chunk: four chunks per step
        assert WINDOW + 1 > CHUNK_LOGITS


def test_threshold_rpc_switches_the_rule_between_runs(sync_engine, pair):
    try:
        assert sync_engine.collective_rpc(CONFIGURE_RPC, args=(0.0,)) == [0.0]
        _, zero = decode(sync_engine, pair["prompts"], GREEDY, 4)
        before = sampler_stats(sync_engine)
        assert sync_engine.collective_rpc(CONFIGURE_RPC, args=(2.0,)) == [2.0]
        _, over = decode(sync_engine, pair["prompts"], GREEDY, 4)
        after = sampler_stats(sync_engine)
    finally:   # back to the judge file's threshold, which the other tests use
        sync_engine.collective_rpc(CONFIGURE_RPC, args=(load_judge(pair["judge"]).threshold,))
    assert sum(c["accepted_lenient"] for c in zero) == 0
    rejected, end_stops = (after[k] - before[k] for k in ("rejected_windows", "end_stops"))
    assert sum(c["accepted_lenient"] for c in over) > 0
    assert rejected == end_stops   # above 1 every draft passes, except where the end guard keeps the target's EOS
    if end_stops == 0:
        assert all(c["accepted_exact"] + c["accepted_lenient"] == c["drafted_tokens"] for c in over)
    assert all(c["scheduler_agrees"] for c in zero + over)


def test_mixed_greedy_and_sampling_batch(sync_engine, pair, batch_one):
    """Greedy requests follow AutoJudge exactly as alone; sampled ones keep vLLM's rejection sampling."""
    tokens_one, counts_one, _ = batch_one
    sampled = SamplingParams(temperature=0.8, seed=1, max_tokens=MAX_TOKENS)
    stock_before = sampler_stats(sync_engine)["stock_cycles"]
    tokens, counts = decode(sync_engine, pair["prompts"], [GREEDY, sampled, GREEDY, sampled], 4)
    assert [tokens[0], tokens[2]] == [tokens_one[0], tokens_one[2]]
    assert same_counts([counts[0], counts[2]]) == same_counts([counts_one[0], counts_one[2]])
    assert counts[1]["accepted_lenient"] == counts[3]["accepted_lenient"] == 0
    assert sampler_stats(sync_engine)["stock_cycles"] > stock_before
    assert all(c["scheduler_agrees"] for c in counts)


def test_requests_ended_by_a_stop_string_count_only_the_steps_they_received(sync_engine, pair):
    """The driver aborts a request at its stop string; if the engine has already run its next step,
    vLLM's scheduler counts that step but the request never receives it. The kept counts leave it out
    (``dropped_steps``; whether such a step runs depends on timing, so only its bookkeeping is checked)."""
    stop = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, stop=["."])
    outputs_tokens, counts = decode(sync_engine, pair["prompts"], stop, 4)
    stopped = [c for c in counts if c["scheduler_agrees"] is None]
    assert stopped, "no request ended at its stop string"
    print("\ndropped steps per request after a stop string:", [c["dropped_steps"] for c in counts])
    assert all(c["generated_tokens"] <= MAX_TOKENS and c["target_calls"] >= c["cycles"] + 1 for c in counts)
    assert all(c["scheduler_agrees"] for c in counts if c not in stopped)


@pytest.fixture(scope="module")
def async_engine(pair, judge_settings, sync_engine):
    llm = start_engine(pair, judge_settings, async_scheduling=True, max_model_len=192, block_size=32,
                       num_gpu_blocks_override=8)
    assert llm.llm_engine.vllm_config.scheduler_config.async_scheduling
    yield llm
    stop_engine(llm)


def test_async_scheduling_gives_the_counts_of_synchronous_scheduling(async_engine, pair, batch_one):
    tokens_one, counts_one, sync_wall = batch_one
    start = time.perf_counter()
    tokens, counts = decode(async_engine, pair["prompts"], GREEDY, 1)
    async_wall = time.perf_counter() - start
    print(f"\nbatch 1, {len(tokens)} prompts: synchronous {sync_wall:.1f} s, async {async_wall:.1f} s; dropped steps "
          f"under async: {sum(c['dropped_steps'] for c in counts)}\nasync:", same_counts(counts))
    assert tokens == tokens_one
    assert same_counts(counts) == same_counts(counts_one)
    assert all(c["scheduler_agrees"] for c in counts)
    # a request that ends at its EOS has its next step scheduled already: run, recorded, dropped
    assert sum(c["dropped_steps"] for c in counts) > 0


def test_preemption_under_async_scheduling_keeps_counts_exact(async_engine, pair, batch_one):
    tokens_one, counts_one, _ = batch_one
    preempted = engine_metric(async_engine, "vllm:num_preemptions")
    tokens, counts = decode(async_engine, pair["prompts"], GREEDY, 4)
    preemptions = engine_metric(async_engine, "vllm:num_preemptions") - preempted
    print(f"\npreemptions: {preemptions}; per-request:", same_counts(counts))
    assert preemptions > 0
    assert all(c["scheduler_agrees"] for c in counts)
    assert tokens == tokens_one
    assert [c["generated_tokens"] for c in counts] == [c["generated_tokens"] for c in counts_one]
    # a preempted request is prefilled again: one more target call each time
    assert sum(c["target_calls"] for c in counts) >= sum(c["target_calls"] for c in counts_one)
