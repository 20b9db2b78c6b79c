"""The vLLM backend's acceptance computation (autojudge_harness.vllm_ext.batched), pure torch:
batched rows == the naive per-request rule, threshold 0 == vLLM 0.33.0's greedy kernel, judge
math == sklearn, chunking, counters. No vllm needed."""

import numpy as np
import pytest
import torch

from autojudge_harness.judge import load_judge, save_judge
from autojudge_harness.vllm_ext import batched
from autojudge_harness.rules import Inputs
from autojudge_harness.rules.judge import JudgeRule
from autojudge_harness.rules.top_k import TopK
from autojudge_harness.vllm_ext.batched import (AcceptanceCounters, draft_permitted_rows, merge_greedy, next_row,
                                                rule_allowed_rows, verify_windows)


def first_argmax(row) -> int:
    """Index of the first maximum (vLLM's kernels and torch.argmax break ties to the lowest id)."""
    values = row.tolist()
    return values.index(max(values))


def random_batch(gen: torch.Generator, width: int, vocab: int = 6, max_reqs: int = 6, hidden: int = 0):
    """Rows of 1..6 requests with 1..W+1 rows each; integer logits (many ties); drafts that often
    equal the previous row's argmax, sometimes -1 placeholders; a few -inf (masked) logits."""
    def rand(*shape, high):
        return torch.randint(0, high, shape, generator=gen)

    counts = [int(rand(1, high=width + 1)) + 1 for _ in range(int(rand(1, high=max_reqs)) + 1)]
    cu = torch.tensor([0] + np.cumsum(counts).tolist(), dtype=torch.int32)
    n = int(cu[-1])
    logits = rand(n, vocab, high=4).float()
    logits[torch.rand(n, vocab, generator=gen) < 0.1] = float("-inf")
    drafts = rand(n, high=vocab)
    for r in range(1, n):
        if float(torch.rand(1, generator=gen)) < 0.6:
            drafts[r] = first_argmax(logits[r - 1])
    drafts[torch.rand(n, generator=gen) < 0.08] = -1
    allowed = torch.rand(n, generator=gen) < 0.3
    hidden_rows = torch.randn(n, hidden, generator=gen) if hidden else None
    return cu, logits, drafts.to(torch.int32), allowed, hidden_rows


def naive_request(targets, drafts, allowed):
    """The protocol per request, literally: accept d_i while it is a valid draft and (equal to the
    target's token or allowed); then the target's token. Returns (emitted tokens, judge-accepted)."""
    out, judged = [], 0
    for i, d in enumerate(drafts):
        if d < 0 or not (d == targets[i] or allowed[i]):
            break
        out.append(d)
        judged += d != targets[i]
    return out + [targets[len(out)]], judged


def naive_batch(cu, logits, drafts, allowed_rows):
    results = []
    for j in range(len(cu) - 1):
        s, e = int(cu[j]), int(cu[j + 1])
        targets = [first_argmax(logits[r]) for r in range(s, e)]
        req_drafts = [int(drafts[r]) for r in range(s + 1, e)]
        req_allowed = [bool(allowed_rows[r]) if allowed_rows is not None else False for r in range(s, e - 1)]
        results.append(naive_request(targets, req_drafts, req_allowed))
    return results


def stock_greedy_kernel(cu, logits, drafts, width):
    """vLLM 0.33.0's greedy verification, transcribed from rejection_sampler_utils.py:
    ``_rejection_kernel`` (is_greedy branch, FLY_WINDOW_SIZE == 0, no synthetic rates) followed by
    ``_insert_resampled_kernel`` (greedy: only the bonus row is resampled, as its argmax).
    Returns (sampled (R, W+1) with unwritten slots None, num_sampled (R,))."""
    sampled, num_sampled = [], []
    for req in range(len(cu) - 1):
        start, end = int(cu[req]), int(cu[req + 1])
        row = [None] * (width + 1)
        accepted_length, verifying = 0, True
        for i in range(end - start - 1):
            logit_idx = start + i
            draft = int(drafts[logit_idx + 1])
            is_valid_draft = draft >= 0
            draft = max(0, draft)
            if verifying:
                target_argmax = first_argmax(logits[logit_idx])
                accepted = target_argmax == draft and is_valid_draft
                verifying = accepted
                accepted_length += accepted
                row[i] = target_argmax if not accepted else draft
        n = accepted_length                       # rejected_steps_ptr -> num_sampled
        if start + n == end - 1:                  # _insert_resampled_kernel: bonus row
            row[n] = first_argmax(logits[end - 1])
        sampled.append(row)
        num_sampled.append(n + 1)
    return sampled, num_sampled


def check_against(result, expected):
    for j, (tokens, judged) in enumerate(expected):
        n = len(tokens)
        assert int(result.num_accepted[j]) + 1 == n
        assert result.tokens[j, :n].tolist() == tokens
        assert (result.tokens[j, n:] == -1).all()
        assert int(result.lenient_accepted[j].sum()) == judged


def test_batched_rows_equal_naive_rule_and_chunking_is_invisible():
    gen = torch.Generator().manual_seed(0)
    judged = placeholders = 0
    for trial in range(2500):
        width = 1 + trial % 6
        cu, logits, drafts, allowed, _ = random_batch(gen, width)
        expected = naive_batch(cu, logits, drafts, allowed)
        whole = verify_windows(logits.argmax(-1), drafts, cu, width, allowed)
        check_against(whole, expected)
        # vLLM verifies in chunks of whole requests, each with its own cu_num_logits
        reqs = len(cu) - 1
        bounds = sorted({0, reqs, *torch.randint(0, reqs + 1, (2,), generator=gen).tolist()})
        parts = []
        for a, b in zip(bounds, bounds[1:]):
            lo, hi = int(cu[a]), int(cu[b])
            parts.append(verify_windows(logits[lo:hi].argmax(-1), drafts[lo:hi], cu[a:b + 1] - lo, width,
                                        allowed[lo:hi]))
        assert torch.equal(torch.cat([p.tokens for p in parts]), whole.tokens)
        assert torch.equal(torch.cat([p.num_accepted for p in parts]), whole.num_accepted)
        judged += sum(j for _, j in expected)
        placeholders += int((drafts < 0).sum())
    assert judged > 1000 and placeholders > 1000   # the cases the comparison is about did occur


def test_threshold_zero_and_no_rule_reproduce_vllm_greedy_kernel(tmp_path):
    gen = torch.Generator().manual_seed(1)
    hidden = 8
    path = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=hidden, draft_hidden_size=4,
                      target_model="t", draft_model="d", mean=torch.zeros(hidden), scale=torch.ones(hidden),
                      weight=torch.randn(hidden, generator=gen), bias=-3.0, threshold=0.5, threshold_table=[],
                      training={})
    rule = JudgeRule(load_judge(path), threshold=0.0)
    full_windows = 0
    for trial in range(1500):
        width = 1 + trial % 5
        cu, logits, drafts, _, hidden_rows = random_batch(gen, width, hidden=hidden)
        sampled, num_sampled = stock_greedy_kernel(cu, logits, drafts, width)
        for allowed in (None, rule_allowed_rows(rule, logits, drafts, hidden_rows)):
            result = verify_windows(logits.argmax(-1), drafts, cu, width, allowed)
            assert (result.num_accepted + 1).tolist() == num_sampled
            for j, n in enumerate(num_sampled):
                assert result.tokens[j, :n].tolist() == sampled[j][:n]
        full_windows += sum(n == int(cu[j + 1] - cu[j]) for j, n in enumerate(num_sampled))
    assert full_windows > 500   # bonus tokens were compared too


def test_threshold_above_one_accepts_every_valid_permitted_draft(tmp_path):
    gen = torch.Generator().manual_seed(2)
    path = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=4, draft_hidden_size=4,
                      target_model="t", draft_model="d", mean=torch.zeros(4), scale=torch.ones(4),
                      weight=torch.randn(4, generator=gen), bias=0.0, threshold=0.5, threshold_table=[], training={})
    rule = JudgeRule(load_judge(path), threshold=1.01)
    for _ in range(300):
        cu, logits, drafts, _, hidden_rows = random_batch(gen, 4, hidden=4)
        allowed = rule_allowed_rows(rule, logits, drafts, hidden_rows)
        assert torch.equal(allowed, draft_permitted_rows(logits, drafts))
        result = verify_windows(logits.argmax(-1), drafts, cu, 4, allowed)
        for j in range(len(cu) - 1):
            s, e = int(cu[j]), int(cu[j + 1])
            ok = [bool(drafts[r] >= 0 and logits[r - 1, drafts[r]] > float("-inf")) for r in range(s + 1, e)]
            expected = ok.index(False) if False in ok else len(ok)
            assert int(result.num_accepted[j]) == expected


def test_judge_rule_reads_the_hidden_state_of_the_drafted_token(tmp_path):
    """Row r verifies draft_inputs[r+1]; its judge feature is hidden[r+1] (the state produced when
    that token is fed), as in the HF backend."""
    gen = torch.Generator().manual_seed(3)
    path = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=6, draft_hidden_size=6,
                      target_model="t", draft_model="d", mean=torch.randn(6, generator=gen),
                      scale=torch.rand(6, generator=gen) + 0.5, weight=torch.randn(6, generator=gen), bias=0.1,
                      threshold=0.5, threshold_table=[], training={})
    judge = load_judge(path)
    rule = JudgeRule(judge, threshold=0.5)
    for _ in range(200):
        cu, logits, drafts, _, hidden_rows = random_batch(gen, 5, hidden=6)
        allowed = rule_allowed_rows(rule, logits, drafts, hidden_rows)
        for r in range(len(drafts)):
            expected = False
            if r + 1 < len(drafts) and drafts[r + 1] >= 0 and logits[r, drafts[r + 1]] > float("-inf"):
                prob = torch.sigmoid(hidden_rows[r + 1].double() @ judge.weight.double() + float(judge.bias))
                expected = bool(prob < 0.5)
            assert bool(allowed[r]) == expected
    with pytest.raises(ValueError, match="one target hidden state per logits row"):
        rule_allowed_rows(rule, logits, drafts, hidden_rows[:-1])


def test_judge_probabilities_equal_sklearn_pipeline_in_fp32(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 3.0, size=(600, 24))
    y = (x[:, 2] - 0.7 * x[:, 9] + rng.normal(size=600) > 1.0).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(x, y)
    path = save_judge(tmp_path / "dt.safetensors", feature_kind="DT", target_hidden_size=24, draft_hidden_size=16,
                      target_model="t", draft_model="d", mean=pipe[0].mean_, scale=pipe[0].scale_,
                      weight=pipe[1].coef_[0], bias=float(pipe[1].intercept_[0]), threshold=0.5,
                      threshold_table=[], training={})
    rule = JudgeRule(load_judge(path), threshold=0.5).to("cpu")
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")   # vLLM may lower it; the judge must not follow
    try:
        for dtype in (torch.float32, torch.bfloat16):
            hidden = torch.tensor(x, dtype=dtype)
            got = rule.probability(Inputs(None, None, target_hidden=hidden))
            assert got.dtype == torch.float32
            want = pipe.predict_proba(hidden.float().double().numpy())[:, 1]
            np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(previous)


def top_k_rank_ok(row, token, k):
    """Naive top-K: fewer than k tokens rank before ``token`` (higher logit, or equal and lower id)."""
    ahead = sum(1 for v, x in enumerate(row.tolist()) if x > row[token] or (x == row[token] and v < token))
    return ahead < k


def test_top_k_rule_equals_naive_rank_and_k1_is_lossless():
    gen = torch.Generator().manual_seed(5)
    for trial in range(600):
        k = 1 + trial % 4
        cu, logits, drafts, _, _ = random_batch(gen, 4)
        allowed = rule_allowed_rows(TopK(accept_top_k=k), logits, drafts)
        for r in range(len(drafts)):
            d = int(drafts[r + 1]) if r + 1 < len(drafts) else -1
            expected = d >= 0 and logits[r, d] > float("-inf") and top_k_rank_ok(logits[r], d, k)
            assert bool(allowed[r]) == expected
        if k == 1:
            lossless = verify_windows(logits.argmax(-1), drafts, cu, 4)
            top1 = verify_windows(logits.argmax(-1), drafts, cu, 4, allowed)
            assert torch.equal(lossless.tokens, top1.tokens) and not top1.lenient_accepted.any()
    # a masked (-inf) draft token is never let through, however large K
    logits = torch.tensor([[0.0, float("-inf"), 1.0], [0.0, 0.0, 0.0]])
    assert not rule_allowed_rows(TopK(accept_top_k=3), logits, torch.tensor([2, 1], dtype=torch.int32))[0]


def test_end_guard_keeps_the_targets_end_and_leaves_the_drafts_end_to_the_rule():
    gen = torch.Generator().manual_seed(11)
    eos = 2
    for _ in range(300):
        cu, logits, drafts, allowed, _ = random_batch(gen, 4, vocab=5)
        targets = logits.argmax(-1)
        guarded = verify_windows(targets, drafts, cu, 4, allowed, torch.tensor([eos]))
        # the naive rule with the guard: a mismatch is allowed only where the target's token is not EOS
        expected = naive_batch(cu, logits, drafts, allowed & (targets != eos))
        check_against(guarded, expected)
        unguarded = verify_windows(targets, drafts, cu, 4, allowed)
        check_against(unguarded, naive_batch(cu, logits, drafts, allowed))
    # one request: the target ends at position 1 where the draft goes on; the rule allows every mismatch
    cu = torch.tensor([0, 4], dtype=torch.int32)
    targets = torch.tensor([7, eos, 5, 6])
    drafts = torch.tensor([0, 8, 9, 3], dtype=torch.int32)   # verified: 9 vs EOS at row 1
    allowed = torch.ones(4, dtype=torch.bool)
    assert verify_windows(targets, drafts, cu, 3, allowed).num_accepted.tolist() == [3]
    guarded = verify_windows(targets, drafts, cu, 3, allowed, torch.tensor([eos]))
    assert guarded.num_accepted.tolist() == [1] and guarded.tokens.tolist() == [[8, eos, -1, -1]]
    drafts_end = torch.tensor([0, eos, 9, 3], dtype=torch.int32)   # the draft proposing EOS: the rule's call
    assert verify_windows(targets, drafts_end, cu, 3, allowed, torch.tensor([eos])).num_accepted.tolist() == [1]


def test_rules_run_in_row_chunks_that_bound_their_temporaries(monkeypatch):
    gen = torch.Generator().manual_seed(12)
    logits = torch.randint(0, 5, (37, 11), generator=gen).float()
    drafts = torch.randint(0, 11, (37,), generator=gen)
    rule = TopK(accept_top_k=3)
    whole = rule_allowed_rows(rule, logits, drafts)
    shapes = []
    real = TopK.local
    monkeypatch.setattr(TopK, "local", lambda self, x: shapes.append(tuple(x.target_logits.shape)) or real(self, x))
    chunked = rule_allowed_rows(rule, logits, drafts, chunk_elements=50)
    assert torch.equal(chunked, whole)
    assert max(rows * vocab for rows, vocab in shapes) <= 50 and sum(rows for rows, _ in shapes) == 37
    assert rule_allowed_rows(rule, logits[:0], drafts[:0]).shape == (0,)


def test_rules_the_sampler_cannot_feed_are_refused(tmp_path):
    from autojudge_harness.settings import AcceptanceSettings
    from autojudge_harness.vllm_ext.settings import VLLMSettingsError, refuse_missing_inputs

    for name, params in (("judi", {"judi_tau": 0.3}), ("ensemble", {"ensemble_w": 0.7})):
        with pytest.raises(VLLMSettingsError, match=f"rule {name} needs draft_logits, which vLLM's rejection sampler"):
            refuse_missing_inputs(AcceptanceSettings(name, params))
    with pytest.raises(VLLMSettingsError, match="rule oracle needs request"):
        refuse_missing_inputs(AcceptanceSettings(oracle=str(tmp_path / "o.json")))
    for name, params in (("fly", {}), ("trt", {"trt_top_k": 10, "trt_delta": 0.6}), ("top_k", {"accept_top_k": 2})):
        refuse_missing_inputs(AcceptanceSettings(name, params))


def test_fly_window_over_padded_vllm_rows():
    """FLy's window step sees each request's own drafts: a mismatch needs its following drafts exact and
    must lie before K - L, K the window W (also for a request with fewer drafts)."""
    from autojudge_harness.rules.fly import FLy

    cu = torch.tensor([0, 5, 10, 13], dtype=torch.int32)       # two requests with 4 drafts, one with 2
    targets = torch.tensor([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3])
    drafts = torch.tensor([0, 9, 2, 3, 4, 0, 1, 2, 9, 4, 0, 9, 2], dtype=torch.int32)
    allowed = torch.ones(13, dtype=torch.bool)
    rule = FLy(fly_theta=0.0, fly_window=2)                    # 1 follower; i < K - 2 with K = W = 4
    result = verify_windows(targets, drafts, cu, 4, allowed, None, rule)
    # request 0: mismatch at 0, follower exact -> all 4; request 1: mismatch at 2 is not < 2 -> 2;
    # request 2 (2 drafts, K still 4): mismatch at 0, follower exact -> both
    assert result.num_accepted.tolist() == [4, 2, 2]


def test_merge_greedy_and_counters():
    gen = torch.Generator().manual_seed(6)
    width = 3
    counters = AcceptanceCounters(width, "cpu")
    totals = {"exact": 0, "judge": 0, "stock": 0, "rejected": 0, "ends": 0}
    per_position = [0] * width
    eos = 1
    for _ in range(200):
        cu, logits, drafts, allowed, _ = random_batch(gen, width)
        reqs = len(cu) - 1
        greedy = torch.rand(reqs, generator=gen) < 0.7
        result = verify_windows(logits.argmax(-1), drafts, cu, width, allowed)
        stock_sampled = torch.full((reqs, width + 1), 777, dtype=torch.int64)
        stock_num = torch.full((reqs,), 9, dtype=torch.int32)
        sampled, num = merge_greedy(greedy, result, stock_sampled, stock_num)
        assert num.dtype == torch.int32 and sampled.dtype == torch.int64
        for j in range(reqs):
            if greedy[j]:
                assert torch.equal(sampled[j], result.tokens[j]) and int(num[j]) == int(result.num_accepted[j]) + 1
                judged = result.lenient_accepted[j]
                totals["judge"] += int(judged.sum())
                totals["exact"] += int(result.num_accepted[j]) - int(judged.sum())
                per_position = [a + int(b) for a, b in zip(per_position, judged)]
                accepted = int(result.num_accepted[j])
                if accepted < int(cu[j + 1] - cu[j]) - 1:   # a draft was rejected: the target's token is emitted
                    totals["rejected"] += 1
                    totals["ends"] += int(result.tokens[j, accepted]) == eos
            else:
                assert (sampled[j] == 777).all() and int(num[j]) == 9
                totals["stock"] += int(cu[j + 1] - cu[j]) > 1
        counters.add(greedy, cu, result, torch.tensor([eos]))
        counters.add(torch.zeros(reqs, dtype=torch.bool), cu)   # a chunk without greedy requests
        totals["stock"] += sum(int(cu[j + 1] - cu[j]) > 1 for j in range(reqs))
    snap = counters.snapshot()
    assert snap == {"accepted_exact": totals["exact"], "accepted_lenient": totals["judge"],
                    "stock_cycles": totals["stock"], "rejected_windows": totals["rejected"], "end_stops": totals["ends"],
                    "judge_accepted_per_position": per_position}
    assert totals["judge"] > 0 and totals["exact"] > 0 and 0 < totals["ends"] < totals["rejected"]


def test_next_row_handles_empty_and_fill():
    assert next_row(torch.tensor([1, 2, 3]), -1).tolist() == [2, 3, -1]
    assert next_row(torch.zeros(0, dtype=torch.long), -1).shape == (0,)
