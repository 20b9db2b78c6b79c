"""Every lenient rule the vLLM sampler can feed (the registry's rules whose ``needs`` are within
``VLLM_INPUTS``), on a real engine, fp32: at its off value it decodes exactly what vLLM's stock
speculative decoding decodes (tokens and per-request counts), and at a lenient value it decodes the
HF backend's tokens and verification steps for the same rule on the same pair. One AutoJudge engine,
its rule switched between runs by the ``autojudge_rule`` RPC; one stock engine; the HF pair."""

from __future__ import annotations

import pytest
from vllm import SamplingParams

from autojudge_harness.rules import RULES, missing_inputs, rule_class
from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext.settings import RULE_RPC, VLLM_INPUTS

from engine_tier import MAX_TOKENS, WINDOW, decode, start_engine, stop_engine

GREEDY = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)
OFF = {"top_k": {"accept_top_k": 1}, "fly": {"fly_theta": float("inf")}, "trt": {"trt_top_k": 10, "trt_delta": 0.0},
       "typical": None}
LENIENT = {"top_k": {"accept_top_k": 5}, "fly": {"fly_theta": 0.0, "fly_window": 2},
           "trt": {"trt_top_k": 10, "trt_delta": 0.9}, "typical": {"typical_temperature": 1.0}}


def test_every_target_side_rule_is_covered():
    vllm_rules = {name for name in RULES if not missing_inputs(rule_class(name), VLLM_INPUTS)} - {"judge"}
    assert vllm_rules == set(LENIENT) == set(OFF)


@pytest.fixture(scope="module")
def stock(pair):
    """vLLM's own speculative decoding: tokens, and per request what its scheduler counted (verification
    steps, drafted and accepted tokens)."""
    from vllm import TokensPrompt

    from autojudge_harness.vllm_ext.engine_check import scheduler_counts

    llm = start_engine(pair, None)
    try:
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in pair["prompts"]], GREEDY, use_tqdm=False)
        yield [list(o.outputs[0].token_ids) for o in outputs], scheduler_counts(outputs)
    finally:
        stop_engine(llm)


@pytest.fixture(scope="module")
def ours(pair, stock):   # after the stock engine has stopped: one engine at a time
    llm = start_engine(pair, AcceptanceSettings(accept_top_k=1), async_scheduling=False)
    yield llm
    stop_engine(llm)


@pytest.fixture(scope="module")
def hf_pair(pair):
    from autojudge_harness.models import load_pair

    return load_pair(pair["target"], pair["draft"], dtype="float32")


def run_rule(llm, pair, name, params):
    settings = AcceptanceSettings(name, params)
    assert llm.collective_rpc(RULE_RPC, args=(settings.to_dict(),)) == [settings.to_dict()]
    return decode(llm, pair["prompts"], GREEDY, len(pair["prompts"]))


@pytest.mark.parametrize("name", sorted(OFF))
def test_off_value_equals_stock_speculative_decoding(ours, pair, stock, name):
    if OFF[name] is None:   # typical's off value is unset: the sampler has nothing to run
        assert rule_class(name)().off
        return
    tokens, counts = run_rule(ours, pair, name, OFF[name])
    stock_tokens, scheduler = stock
    assert tokens == stock_tokens
    ours_steps = [{"cycles": c["cycles"], "drafted_tokens": c["drafted_tokens"],
                   "accepted_tokens": c["accepted_exact"] + c["accepted_lenient"]} for c in counts]
    assert ours_steps == scheduler
    assert all(c["scheduler_agrees"] and c["accepted_lenient"] == 0 for c in counts)


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_lenient_value_equals_the_hf_backend(ours, pair, hf_pair, name):
    from autojudge_harness.decoding import SpeculativeDecoder

    tokens, counts = run_rule(ours, pair, name, LENIENT[name])
    decoder = SpeculativeDecoder(hf_pair, WINDOW, AcceptanceSettings(name, LENIENT[name]))
    hf = [decoder.generate(prompt, MAX_TOKENS) for prompt in pair["prompts"]]
    eos = decoder.eos_ids
    strip = [t[:-1] if t and t[-1] in eos else t for t in tokens]
    print(f"\n{name} {LENIENT[name]}: lenient accepted vLLM {[c['accepted_lenient'] for c in counts]}, "
          f"HF {[g.stats.accepted_lenient for g in hf]}; target calls vLLM {[c['target_calls'] for c in counts]}, "
          f"HF {[g.stats.target_calls for g in hf]}")
    assert strip == [g.token_ids for g in hf]
    assert [c["target_calls"] for c in counts] == [g.stats.target_calls for g in hf]
    # at the token cap vLLM verifies a full window and counts acceptances the output then cuts off;
    # the HF backend shortens its last window (docs/vllm.md, "Statistics: per request")
    capped = [g.finish_reason == "length" for g in hf]
    assert [c["accepted_lenient"] for c, cap in zip(counts, capped) if not cap] == \
        [g.stats.accepted_lenient for g, cap in zip(hf, capped) if not cap]
    assert all(c["accepted_lenient"] >= g.stats.accepted_lenient for c, g in zip(counts, hf))
    assert sum(c["accepted_lenient"] for c in counts) > 0, f"{name} accepted nothing lenient: the test shows nothing"
