"""Decoding loop on the tiny random pair: lossless equals greedy, judge paths, stops, errors."""

import pytest
import torch

from autojudge_harness.decoding import SpeculativeDecoder
from autojudge_harness.judge import JudgeFileError, load_judge, save_judge
from autojudge_harness.settings import AcceptanceSettings, SettingsError


def rule(judge=None, threshold=None, top_k=None) -> AcceptanceSettings:
    """Acceptance settings for a loaded test judge (its file), a threshold, or top-K."""
    return AcceptanceSettings(judge=judge.path if judge is not None else None, threshold=threshold, accept_top_k=top_k)


def greedy_reference(model, prompt, max_new_tokens):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=0, eos_token_id=None)
    return out[0, len(prompt):].tolist()


def make_judge(tmp_path, pair, kind="DT", bias=0.0, threshold=0.5):
    t, d = pair.target.config.hidden_size, pair.draft.config.hidden_size
    size = t + (d if kind == "DD-DT" else 0)
    path = save_judge(tmp_path / f"{kind}.safetensors", feature_kind=kind, target_hidden_size=t, draft_hidden_size=d,
                      target_model=pair.target_name, draft_model=pair.draft_name, mean=torch.zeros(size),
                      scale=torch.ones(size), weight=torch.randn(size) * 0.1, bias=bias, threshold=threshold,
                      threshold_table=[], training={})
    return load_judge(path)


@pytest.fixture()
def no_eos(  # EOS never fires, so runs last exactly max_new_tokens
tiny_pair, monkeypatch):
    monkeypatch.setattr("autojudge_harness.decoding.pair_end_ids", lambda pair: frozenset())
    return tiny_pair


@pytest.mark.parametrize("window", [1, 3, 8])
def test_lossless_equals_target_greedy(no_eos, window):
    pair = no_eos
    decoder = SpeculativeDecoder(pair, window=window)
    for seed in range(6):
        prompt = torch.randint(1, 96, (5 + seed,), generator=torch.Generator().manual_seed(seed)).tolist()
        gen = decoder.generate(prompt, max_new_tokens=40)
        assert gen.token_ids == greedy_reference(pair.target, prompt, 40)
        assert gen.finish_reason == "length" and gen.stats.generated_tokens == 40
        s = gen.stats
        assert s.accepted_lenient == 0 and s.cycles >= 1
        assert s.target_calls >= s.cycles + 1  # prefill + one verification per cycle (+ plain last steps)
        assert s.accepted_tokens + s.target_calls == 40  # each target call emits one token of its own
        assert s.draft_calls == s.drafted_tokens + 1  # one forward per drafted token, after a prefill


def test_judge_threshold_zero_is_lossless_and_above_one_accepts_all(no_eos, tmp_path):
    pair = no_eos
    prompt = [5, 17, 33, 2, 9]
    reference = greedy_reference(pair.target, prompt, 30)
    for kind in ("DT", "DD-DT"):
        judge = make_judge(tmp_path, pair, kind)
        assert SpeculativeDecoder(pair, 4, rule(judge, 0.0)).generate(prompt, 30).token_ids == reference
        s = SpeculativeDecoder(pair, 4, rule(judge, 1.5)).generate(prompt, 26).stats
        # 1 token from the prefill, then 5 windows: 4 drafted tokens all accepted + 1 bonus each
        assert (s.cycles, s.target_calls, s.accepted_tokens, s.drafted_tokens) == (5, 6, 20, 20)
        assert s.accepted_lenient > 0


def test_judge_default_threshold_comes_from_file(tiny_pair, tmp_path):
    judge = make_judge(tmp_path, tiny_pair, threshold=0.37)
    assert SpeculativeDecoder(tiny_pair, 4, rule(judge)).threshold == 0.37
    assert SpeculativeDecoder(tiny_pair, 4, rule(judge, 0.1)).threshold == 0.1
    assert SpeculativeDecoder(tiny_pair, 4).threshold is None   # lossless: no judge


def test_stop_strings_and_eos(tiny_pair):
    decoder = SpeculativeDecoder(tiny_pair, window=4)
    prompt = [3, 4, 5]
    free = decoder.generate(prompt, max_new_tokens=30)
    words = free.text.split()
    if len(words) >= 3:
        stopped = decoder.generate(prompt, max_new_tokens=30, stop=(words[2],))
        assert stopped.finish_reason == "stop"
        assert words[2] not in stopped.text.split()
    eos_prompt = prompt
    model_eos = SpeculativeDecoder(tiny_pair, window=4)
    model_eos.eos_ids = frozenset({free.token_ids[1]})
    ended = model_eos.generate(eos_prompt, max_new_tokens=30)
    assert ended.finish_reason == "eos" and ended.token_ids == free.token_ids[:1]


def test_bad_arguments(tiny_pair, tmp_path):
    for window in (0, -1, 2.5):
        with pytest.raises(ValueError, match="window must be an integer >= 1"):
            SpeculativeDecoder(tiny_pair, window=window)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SpeculativeDecoder(tiny_pair).generate([1, 2], max_new_tokens=0)
    with pytest.raises(ValueError, match="prompt_ids"):
        SpeculativeDecoder(tiny_pair).generate([], max_new_tokens=3)
    size = tiny_pair.target.config.hidden_size + 1
    path = save_judge(tmp_path / "wide.safetensors", feature_kind="DT", target_hidden_size=size, draft_hidden_size=size,
                      target_model="x", draft_model="y", mean=torch.zeros(size), scale=torch.ones(size),
                      weight=torch.zeros(size), bias=0.0, threshold=0.5, threshold_table=[], training={})
    with pytest.raises(JudgeFileError, match="target hidden size"):
        SpeculativeDecoder(tiny_pair, settings=AcceptanceSettings(judge=str(path)))


def naive_speculative(pair, prompt, max_new_tokens, window, judge=None, threshold=0.0, top_k=None, end_ids=()):
    """The protocol read literally, with no KV caches: every forward recomputes from scratch.
    ``end_ids``: the end guard (a lenient rule never overrules a target token among them)."""
    lm_head = pair.target.get_output_embeddings().weight

    @torch.no_grad()
    def hidden(model, ids):
        return model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]

    seq = list(prompt)
    seq.append(int((hidden(pair.target, seq)[-1] @ lm_head.T).argmax()))
    while len(seq) - len(prompt) < max_new_tokens:
        width = min(window, max_new_tokens - (len(seq) - len(prompt)) - 1)
        drafted = []
        for _ in range(width):
            drafted.append(int((hidden(pair.draft, seq + drafted)[-1] @ lm_head.T).argmax()))
        target_rows = hidden(pair.target, seq + drafted)[len(seq) - 1:]      # last token, d1..dW
        draft_rows = hidden(pair.draft, seq + drafted)[len(seq):]            # d1..dW
        logits = target_rows @ lm_head.T
        emitted = []
        for i, d in enumerate(drafted):
            ok = d == int(logits[i].argmax())
            guarded = int(logits[i].argmax()) in end_ids
            if not ok and judge is not None and not guarded:
                features = judge.features(target_rows[i + 1: i + 2], draft_rows[i: i + 1])
                ok = float(judge.probability(features)[0]) < threshold
            if not ok and top_k is not None and not guarded:
                ok = int((logits[i] > logits[i, d]).sum()) < top_k
            if not ok:
                break
            emitted.append(d)
        emitted.append(int(logits[len(emitted)].argmax()))
        seq += emitted
    return seq[len(prompt): len(prompt) + max_new_tokens]


@pytest.mark.parametrize("kind,threshold", [("DT", 0.5), ("DD-DT", 0.5), ("DD-DT", 0.7)])
def test_judge_decoding_equals_naive_uncached_loop(no_eos, tmp_path, kind, threshold):
    pair = no_eos
    judge = make_judge(tmp_path, pair, kind)
    decoder = SpeculativeDecoder(pair, 5, rule(judge, threshold))
    judged = 0
    for seed in range(4):
        prompt = torch.randint(1, 96, (4 + seed,), generator=torch.Generator().manual_seed(seed)).tolist()
        gen = decoder.generate(prompt, 33)
        assert gen.token_ids == naive_speculative(pair, prompt, 33, 5, judge, threshold)
        judged += gen.stats.accepted_lenient
    assert judged > 0   # the judge did accept mismatches, so the comparison covers it


def test_top_k_decoding_equals_naive_loop_and_k1_is_lossless(no_eos):
    pair = no_eos
    prompt = [7, 3, 60, 12]
    greedy = greedy_reference(pair.target, prompt, 30)
    assert SpeculativeDecoder(pair, 4, rule(top_k=1)).generate(prompt, 30).token_ids == greedy
    accepted = []
    for k in (1, 2, 5, 20):
        gen = SpeculativeDecoder(pair, 4, rule(top_k=k)).generate(prompt, 30)
        assert gen.token_ids == naive_speculative(pair, prompt, 30, 4, top_k=k)
        accepted.append(gen.stats.accepted_tokens)
    assert accepted[-1] > accepted[0]   # per-window monotonicity in K: tests/test_acceptance.py
    with pytest.raises(SettingsError, match="threshold needs a judge file"):
        rule(threshold=0.5, top_k=2)
    with pytest.raises(SettingsError, match="accept_top_k must be an integer >= 1"):
        rule(top_k=0)


def test_dd_dt_judge_pays_the_extra_draft_forward_only_when_it_matters(no_eos, tmp_path):
    """Threshold 0: the judge can never change the outcome, so a DD-DT decoder makes exactly the
    lossless decoder's draft calls, except in cycles where d1..d(W-1) matched and dW did not."""
    pair = no_eos
    prompt = [5, 17, 33, 2, 9]
    lossless = SpeculativeDecoder(pair, 4).generate(prompt, 40).stats
    judged = SpeculativeDecoder(pair, 4, rule(make_judge(tmp_path, pair, "DD-DT"), 0.0)).generate(prompt, 40).stats
    assert judged.draft_calls - lossless.draft_calls < lossless.cycles
    assert judged.target_calls == lossless.target_calls


@pytest.mark.slow   # torch.compile of the decode steps: minutes on CPU
def test_compiled_static_cache_decoding_equals_eager(no_eos, tmp_path):
    from autojudge_harness.cached_model import static_cache_croppable

    pair = no_eos
    if not static_cache_croppable():   # transformers < 5.24 (e.g. next to vLLM 0.33.0)
        with pytest.raises(ValueError, match="compile=True needs transformers >= 5.24"):
            SpeculativeDecoder(pair, 3, compile=True)
        return
    judge = make_judge(tmp_path, pair, "DD-DT")
    eager = SpeculativeDecoder(pair, 3, rule(judge, 0.5))
    compiled = SpeculativeDecoder(pair, 3, rule(judge, 0.5), compile=True)
    for prompt in ([5, 17, 33, 2, 9], [40, 41]):   # the second request reuses the static caches
        a, b = eager.generate(prompt, 20), compiled.generate(prompt, 20)
        assert a.token_ids == b.token_ids and a.stats.draft_calls == b.stats.draft_calls


def test_end_guard_never_lets_a_lenient_rule_overrule_the_targets_end(tiny_pair, tmp_path, monkeypatch):
    """Every mismatch allowed (threshold 1.5) with the end guard: wherever the target's token is an
    end token the window is cut there, exactly as the naive guarded loop does; without the guard the
    judge decides those positions too (the paper's rule)."""
    pair = tiny_pair
    prompt = [5, 17, 33, 2, 9]
    frequent = torch.tensor(greedy_reference(pair.target, prompt, 40)).bincount().argmax().item()
    monkeypatch.setattr("autojudge_harness.decoding.pair_end_ids", lambda p: frozenset({frequent}))
    judge = make_judge(tmp_path, pair)
    guarded = SpeculativeDecoder(pair, 4, rule(judge, 1.5)).generate(prompt, 40)
    expected = naive_speculative(pair, prompt, 40, 4, judge, 1.5, end_ids={frequent})
    assert guarded.token_ids == expected[: expected.index(frequent)] if frequent in expected else expected
    paper = SpeculativeDecoder(pair, 4, AcceptanceSettings(judge=judge.path, threshold=1.5, end_guard=False))
    assert paper.generate(prompt, 40).stats.accepted_tokens >= guarded.stats.accepted_tokens
