"""The lenient rules (``autojudge_harness.rules``): each mask on hand-computed cases, the off values
(nothing allowed, so ``accept`` equals lossless bit for bit), the end guard over every rule, the
ensemble's emitted token, the registry and the settings that build the rules."""

import math

import pytest
import torch

from autojudge_harness.acceptance import accept
from autojudge_harness.rules import RULES, Inputs, RuleError, missing_inputs, param_owner, rule_class
from autojudge_harness.rules.fly import exact_run, top_entropy
from autojudge_harness.settings import AcceptanceSettings, SettingsError


def logits_of(*probs):
    """Logits whose softmax is each row of ``probs``."""
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def test_judi_hand_computed():
    # position 0: target unsure (max 0.5) and KL(p_t || p_d) small; position 1: target confident (0.95)
    target = logits_of([0.5, 0.3, 0.2], [0.95, 0.03, 0.02])
    draft = logits_of([0.3, 0.5, 0.2], [0.03, 0.95, 0.02])
    kl0 = 0.5 * math.log(0.5 / 0.3) + 0.3 * math.log(0.3 / 0.5)    # = 0.1022
    x = Inputs(torch.tensor([1, 1]), torch.tensor([0, 0]), target, draft)
    judi = rule_class("judi")
    assert judi(judi_tau=kl0 + 1e-3).local(x).tolist() == [True, False]    # confident: never
    assert judi(judi_tau=kl0 - 1e-3).local(x).tolist() == [False, False]
    assert judi().off and judi(judi_tau=0.0).local(x).tolist() == [False, False]   # KL >= 0


def test_fly_entropy_and_window():
    p = torch.tensor([[0.5, 0.3, 0.1, 0.1]])
    h3 = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert top_entropy(torch.log(p)).item() == pytest.approx(h3, rel=1e-5)
    assert exact_run(torch.tensor([True, True, False, True])).tolist() == [2, 1, 0, 1]
    fly = rule_class("fly")(fly_theta=0.3, fly_window=3)   # L = 3: 2 following exact drafts, i < K - 3
    local = torch.ones(8, dtype=torch.bool)
    exact = torch.tensor([False, True, True, False, True, True, True, True])
    valid = torch.ones(8, dtype=torch.bool)
    # K = W = 8: i < 5; i=0 followers 1,2 exact -> yes; i=3 followers 4,5 exact -> yes (3 < 5)
    allowed_mismatch = lambda v: (fly.window(local, exact, v) & ~exact).tolist()   # noqa: E731
    assert allowed_mismatch(valid) == [True, False, False, True, False, False, False, False]
    short = valid.clone()
    short[5:] = False    # drafted 5 of W = 8 (K stays 8): i=3's followers 4 (exact) and 5 (missing)
    assert allowed_mismatch(short)[:4] == [True, False, False, False]
    gate = rule_class("fly")(fly_theta=h3 + 0.01)
    x = Inputs(torch.tensor([1]), torch.tensor([0]), torch.log(p))
    assert gate.local(x).tolist() == [False]
    assert rule_class("fly")(fly_theta=0.005).local(x).tolist() == [True]     # <= 0.01: gate disabled
    assert rule_class("fly")(fly_theta=math.inf).off


def test_trt_in_probabilities():
    target = logits_of([0.5, 0.3, 0.15, 0.05])
    x = lambda d: Inputs(torch.tensor([d]), torch.tensor([0]), target)   # noqa: E731
    trt = rule_class("trt")
    assert [trt(trt_top_k=10, trt_delta=0.25).local(x(d)).item() for d in (1, 2, 3)] == [True, False, False]
    assert [trt(trt_top_k=2, trt_delta=0.5).local(x(d)).item() for d in (1, 2)] == [True, False]   # top-2 only
    assert trt().off and trt(trt_top_k=10).off and trt(trt_delta=0.6).off


def test_ensemble_accepts_and_emits_the_mixture_argmax():
    target = logits_of([0.6, 0.4, 0.0001])
    draft = logits_of([0.1, 0.9, 0.0001])
    ens = rule_class("ensemble")
    x = Inputs(torch.tensor([1]), torch.tensor([0]), target, draft)
    # w=0.7: nu = [0.45, 0.55] -> argmax 1 = the draft: accepted; w=0.9: nu = [0.55, 0.45] -> rejected, emits 0
    assert ens(ensemble_w=0.7).local(x).tolist() == [True]
    assert ens(ensemble_w=0.9).local(x).tolist() == [False] and ens(ensemble_w=0.9).emitted(x).tolist() == [0]
    third = Inputs(torch.tensor([2]), torch.tensor([0]), logits_of([0.4, 0.35, 0.25]), logits_of([0.0001, 0.45, 0.55]))
    # nu(w=0.5) = [0.2, 0.4, 0.4]: argmax (lowest id among ties) 1, neither the draft (2) nor the target (0)
    assert ens(ensemble_w=0.5).emitted(third).tolist() == [1]
    result = accept(torch.tensor([2, 5]), torch.tensor([0, 5, 6]), ens(ensemble_w=0.5).local(third).repeat(2) & False,
                    None, torch.tensor([1, -1]))
    assert result.tokens.tolist() == [1, -1, -1] and result.lenient_emitted.item()
    guarded = accept(torch.tensor([2, 5]), torch.tensor([0, 5, 6]), torch.tensor([False, False]),
                     torch.tensor([True, False]), torch.tensor([1, -1]))
    assert guarded.tokens.tolist() == [0, -1, -1] and not guarded.lenient_emitted.item()   # the guard keeps an end
    assert ens().off
    with pytest.raises(RuleError, match=r"ensemble_w must be in the open interval \(0, 1\), got 1"):
        ens.params[0].convert(1)


def test_top_k_and_judge_masks():
    logits = torch.tensor([[0.1, 3.0, 2.0, 3.0, -1.0]])
    x = Inputs(torch.tensor([2]), torch.tensor([1]), logits)
    assert rule_class("top_k")(accept_top_k=3).local(x).tolist() == [True]
    assert rule_class("top_k")(accept_top_k=2).local(x).tolist() == [False]
    assert rule_class("top_k")(accept_top_k=1).off


@pytest.mark.parametrize("name", ["judi", "fly", "trt", "ensemble", "top_k"])
def test_every_rule_respects_the_end_guard(name):
    """A mismatch the rule allows is rejected where the target's token is an end token."""
    rule = rule_class(name)(**{"judi": {"judi_tau": 10.0}, "fly": {"fly_theta": 0.0, "fly_window": 1},
                               "trt": {"trt_top_k": 5, "trt_delta": 1.0}, "ensemble": {"ensemble_w": 0.01},
                               "top_k": {"accept_top_k": 5}}[name])
    width = 3
    target_logits = logits_of(*[[0.45, 0.3, 0.15, 0.1]] * width)
    draft_logits = logits_of(*[[0.1, 0.6, 0.2, 0.1]] * width)
    draft = torch.tensor([1, 1, 1])
    target = torch.tensor([0, 0, 0, 0])
    x = Inputs(draft, target[:width], target_logits, draft_logits)
    exact = draft == target[:width]
    allowed = rule.window(rule.local(x), exact, torch.ones(width, dtype=torch.bool))
    assert bool(allowed[0]), f"{name} should allow this mismatch"
    free = accept(draft, target, allowed, None, rule.emitted(x))
    ends = torch.tensor([True, False, False])
    guarded = accept(draft, target, allowed, ends, rule.emitted(x))
    assert int(free.num_accepted) >= 1 and int(guarded.num_accepted) == 0
    assert guarded.tokens.tolist()[0] == 0    # the target's end token is emitted


@pytest.mark.parametrize("name,values", [("judi", {}), ("trt", {}), ("ensemble", {}), ("top_k", {"accept_top_k": 1}),
                                         ("fly", {"fly_theta": math.inf}), ("judi", {"judi_tau": 0.0})])
def test_off_values_are_lossless(name, values):
    rule = rule_class(name)(**values)
    assert rule.off
    gen = torch.Generator().manual_seed(3)
    target_logits = torch.randn(6, 4, 11, generator=gen)
    draft_logits = torch.randn(6, 4, 11, generator=gen)
    draft = draft_logits.argmax(-1)
    target = torch.cat([target_logits.argmax(-1), torch.zeros(6, 1, dtype=torch.long)], -1)
    x = Inputs(draft, target[:, :4], target_logits, draft_logits)
    allowed = rule.window(rule.local(x), draft == target[:, :4], torch.ones_like(draft, dtype=torch.bool)) \
        if name != "ensemble" else torch.zeros_like(draft, dtype=torch.bool)
    assert not (allowed & (draft != target[:, :4])).any()   # exact positions need no permission
    lossless = accept(draft, target)
    assert torch.equal(accept(draft, target, allowed).tokens, lossless.tokens)


def test_registry_and_settings():
    assert {"judge", "top_k", "oracle", "judi", "fly", "trt", "ensemble"} <= set(RULES)
    owners = param_owner()
    assert owners["judi_tau"] == "judi" and owners["accept_top_k"] == "top_k" and owners["threshold"] == "judge"
    s = AcceptanceSettings.from_args(rule="judi", judi_tau="0.3")
    assert s.mode == "judi" and s.param("judi_tau") == 0.3 and AcceptanceSettings.from_dict(s.to_dict()) == s
    assert AcceptanceSettings.from_args(trt_top_k="10", trt_delta="0.6").rule == "trt"
    assert AcceptanceSettings.from_args(rule="fly").build_rule().values == {"fly_theta": 0.3, "fly_window": 6}
    with pytest.raises(SettingsError, match="unknown rule 'kl'; known rules: judge, top_k"):
        AcceptanceSettings.from_args(rule="kl")
    with pytest.raises(SettingsError, match="judi and trt are alternative lenient rules"):
        AcceptanceSettings.from_args(judi_tau=0.3, trt_delta=0.5)
    with pytest.raises(SettingsError, match="rule=fly does not take judi_tau"):
        AcceptanceSettings.from_args(rule="fly", judi_tau=0.3)
    with pytest.raises(SettingsError, match="judi_tau must be a number >= 0, got '-1'"):
        AcceptanceSettings.from_args(judi_tau="-1")
    assert missing_inputs(rule_class("judi"), {"target_logits", "target_hidden"}) == ["draft_logits"]
    assert missing_inputs(rule_class("fly"), {"target_logits"}) == []


LENIENT = {"judi": {"judi_tau": 2.0}, "fly": {"fly_theta": 0.0, "fly_window": 2}, "trt": {"trt_top_k": 10, "trt_delta": 0.9},
           "ensemble": {"ensemble_w": 0.5}, "top_k": {"accept_top_k": 20}}
OFF = {"judi": {"judi_tau": 0.0}, "fly": {"fly_theta": math.inf}, "trt": {"trt_top_k": 10, "trt_delta": 0.0},
       "ensemble": {}, "top_k": {"accept_top_k": 1}}


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_hf_backend_runs_every_rule_and_its_off_value_is_lossless(tiny_pair, name):
    """On the tiny pair (draft = its first 2 layers): the off value decodes the lossless tokens with the
    same counts; a lenient value accepts mismatches, and the counts add up."""
    from autojudge_harness.decoding import SpeculativeDecoder

    prompt = [3, 4, 5, 6]
    lossless = SpeculativeDecoder(tiny_pair, 4).generate(prompt, 40)
    off = SpeculativeDecoder(tiny_pair, 4, AcceptanceSettings(name, OFF[name])).generate(prompt, 40)
    assert off.token_ids == lossless.token_ids
    assert (off.stats.target_calls, off.stats.cycles) == (lossless.stats.target_calls, lossless.stats.cycles)
    lenient = SpeculativeDecoder(tiny_pair, 4, AcceptanceSettings(name, LENIENT[name], end_guard=False)).generate(prompt, 40)
    s = lenient.stats
    assert s.accepted_lenient + s.lenient_emitted > 0, f"{name} changed nothing on the tiny pair"
    assert s.accepted_exact + s.accepted_lenient <= s.drafted_tokens
    assert lenient.token_ids != lossless.token_ids or s.target_calls != lossless.stats.target_calls


def test_vllm_refuses_rules_needing_the_draft():
    """The vLLM sampler has target-side inputs only (no draft logits or hidden states)."""
    from autojudge_harness.vllm_ext.settings import VLLM_INPUTS

    for name in ("judi", "ensemble"):
        assert missing_inputs(rule_class(name), VLLM_INPUTS) == ["draft_logits"]
    for name in ("fly", "trt", "top_k"):
        assert missing_inputs(rule_class(name), VLLM_INPUTS) == []
