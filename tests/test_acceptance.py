import random

import pytest
import torch

from autojudge_harness.acceptance import accept, ends_at
from autojudge_harness.rules.judge import judge_allows
from autojudge_harness.rules.top_k import top_k_allows


def naive_accept(draft, target, probs, threshold):
    """Literal reading of the rule, one position at a time."""
    out, judged = [], []
    for i, d in enumerate(draft):
        exact = d == target[i]
        if exact or (probs is not None and probs[i] < threshold):
            out.append(d)
            judged.append(not exact)
        else:
            return len(out), out + [target[i]], judged
    return len(out), out + [target[len(draft)]], judged


@pytest.mark.parametrize("seed", range(4))
def test_matches_naive_reference_on_random_cases(seed):
    rng = random.Random(seed)
    for _ in range(1500):
        width = rng.randint(1, 12)
        vocab = rng.choice([2, 3, 5, 50])  # small vocabularies force long exact runs
        draft = [rng.randrange(vocab) for _ in range(width)]
        target = [rng.randrange(vocab) for _ in range(width + 1)]
        probs = [rng.random() for _ in range(width)] if rng.random() < 0.7 else None
        threshold = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0, 1.5])
        n, tokens, judged = naive_accept(draft, target, probs, threshold)
        got = accept(torch.tensor(draft), torch.tensor(target),
                     None if probs is None else judge_allows(torch.tensor(probs), threshold))
        assert int(got.num_accepted) == n
        assert got.tokens[: n + 1].tolist() == tokens
        assert (got.tokens[n + 1:] == -1).all()
        assert got.lenient_accepted[:n].tolist() == judged
        assert not got.lenient_accepted[n:].any()


def test_batched_rows_equal_single_rows():
    torch.manual_seed(0)
    draft = torch.randint(0, 3, (64, 7))
    target = torch.randint(0, 3, (64, 8))
    probs = torch.rand(64, 7)
    batched = accept(draft, target, judge_allows(probs, 0.4))
    for b in range(64):
        single = accept(draft[b], target[b], judge_allows(probs[b], 0.4))
        assert torch.equal(batched.tokens[b], single.tokens)
        assert torch.equal(batched.num_accepted[b], single.num_accepted)
        assert torch.equal(batched.lenient_accepted[b], single.lenient_accepted)


def test_threshold_zero_is_lossless_and_above_one_accepts_all():
    draft, target = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 9, 3, 4, 5])
    probs = torch.tensor([0.0, 0.0, 0.0, 0.0])
    assert accept(draft, target, judge_allows(probs, 0.0)).tokens.tolist() == [1, 9, -1, -1, -1]
    full = accept(draft, target, judge_allows(torch.rand(4), 1.01))
    assert full.tokens.tolist() == [1, 2, 3, 4, 5] and full.lenient_accepted.tolist() == [False, True, False, False]


def test_full_window_emits_bonus_and_shape_errors():
    assert accept(torch.tensor([7]), torch.tensor([7, 8])).tokens.tolist() == [7, 8]
    assert accept(torch.tensor([], dtype=torch.long), torch.tensor([8])).tokens.tolist() == [8]
    with pytest.raises(ValueError, match="W\\+1"):
        accept(torch.tensor([1, 2]), torch.tensor([1, 2]))


def test_top_k_one_is_lossless_and_larger_k_never_accepts_fewer():
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        width, vocab = int(torch.randint(1, 9, (1,), generator=gen)), int(torch.randint(2, 12, (1,), generator=gen))
        logits = torch.randint(0, 4, (width + 1, vocab), generator=gen).float()  # many ties
        target = logits.argmax(-1)
        draft = torch.where(torch.rand(width, generator=gen) < 0.5, target[:width],
                            torch.randint(0, vocab, (width,), generator=gen))
        lossless = accept(draft, target)
        top1 = accept(draft, target, top_k_allows(draft, logits[:width], 1))
        assert torch.equal(top1.tokens, lossless.tokens) and not top1.lenient_accepted.any()
        counts = [int(accept(draft, target, top_k_allows(draft, logits[:width], k)).num_accepted)
                  for k in range(1, vocab + 1)]
        assert counts == sorted(counts) and counts[-1] == width   # K = V accepts everything


def test_top_k_rank_matches_sorting():
    logits = torch.tensor([[0.1, 3.0, 2.0, 3.0, -1.0]])
    ranks = {tok: next(k for k in range(1, 6) if top_k_allows(torch.tensor([tok]), logits, k)) for tok in range(5)}
    assert ranks == {1: 1, 3: 2, 2: 3, 0: 4, 4: 5}


def test_end_guard_keeps_the_targets_end_and_leaves_early_ends_to_the_judge():
    eos = torch.tensor([0])
    draft = torch.tensor([5, 6, 7, 8])
    target = torch.tensor([5, 0, 7, 8, 9])          # the target ends at position 1; the draft goes on
    everything = torch.ones(4, dtype=torch.bool)   # a lenient rule that allows every mismatch
    paper = accept(draft, target, everything)
    assert int(paper.num_accepted) == 4 and paper.lenient_accepted.tolist() == [False, True, False, False]
    guarded = accept(draft, target, everything, ends_at(target[:4], eos))
    assert int(guarded.num_accepted) == 1 and guarded.tokens.tolist() == [5, 0, -1, -1, -1]
    assert not guarded.lenient_accepted.any()
    early = accept(torch.tensor([5, 0, 7]), torch.tensor([5, 6, 7, 8]), torch.ones(3, dtype=torch.bool),
                   ends_at(torch.tensor([5, 6, 7]), eos))   # the DRAFT proposes the end: the judge decides
    assert int(early.num_accepted) == 3 and early.lenient_accepted.tolist() == [False, True, False]
    exact_end = accept(torch.tensor([5, 0]), torch.tensor([5, 0, 3]), None, ends_at(torch.tensor([5, 0]), eos))
    assert int(exact_end.num_accepted) == 2   # an exact match of the end is accepted as always


@pytest.mark.parametrize("seed", range(2))
def test_end_guard_matches_a_naive_reference(seed):
    rng = random.Random(seed)
    for _ in range(1000):
        width, vocab = rng.randint(1, 8), rng.choice([2, 3, 6])
        draft = [rng.randrange(vocab) for _ in range(width)]
        target = [rng.randrange(vocab) for _ in range(width + 1)]
        allowed = [rng.random() < 0.6 for _ in range(width)]
        n = 0
        while n < width and (draft[n] == target[n] or (allowed[n] and target[n] != 0)):
            n += 1
        got = accept(torch.tensor(draft), torch.tensor(target), torch.tensor(allowed),
                     ends_at(torch.tensor(target[:width]), torch.tensor([0])))
        assert int(got.num_accepted) == n
        assert got.tokens[n].item() == target[n]
