"""The batched miner (mining/batched.py) against the sequential one.

(a) BatchedLM: rows at different lengths, cropped rows and rows left out of a forward give the
    hidden states of a batch-1 forward (float tolerance);
(b) BatchedMiner on the tiny random pair: labels, positions, target_end, initial and final
    responses identical to ``Miner.mine`` for several batch sizes, look-ahead on and off, the end
    guard on and off; features within float tolerance; more questions than slots;
(c) answers computed in a thread pool while other questions decode: same labels;
(d) the store through ``mine_questions``: same records for batch size 1 and 3;
(e) the embedded pair (slow): 3 GSM8K questions, batch 3 vs sequential;
(f) bad inputs.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from autojudge_harness.cached_model import CachedModel
from autojudge_harness.mining.algorithm import GSM8KEquivalence, Miner
from autojudge_harness.mining.batched import BatchedLM, BatchedMiner
from autojudge_harness.mining.store import load_merged, make_manifest, merge
from autojudge_harness.bench.mining import cpu_seconds, labels, parse_batch_sizes


class LastWord:
    """Answer = the last word of the text (None if empty): a random model's answers then change
    with most swapped tokens, and stay with some."""

    name = "last-word"

    def __init__(self):
        self.threads: set[str] = set()

    def answer(self, text):
        self.threads.add(threading.current_thread().name)
        words = text.split()
        return words[-1] if words else None

    def equal(self, a, b):
        return a is not None and a == b


def prompts(count=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 96, (int(n),), generator=g).tolist() for n in torch.randint(2, 30, (count,), generator=g)]


def assert_same(sequential, batched):
    assert labels(batched) == labels(sequential)
    for a, b in zip(sequential.mismatches, batched.mismatches):
        torch.testing.assert_close(b.target_hidden, a.target_hidden, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(b.draft_hidden, a.draft_hidden, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# (a) BatchedLM

@torch.inference_mode()
def test_batched_lm_rows_match_batch_one_forwards(tiny_pair):
    model = tiny_pair.target
    lm = BatchedLM(model, 4)
    seqs = prompts(4, seed=3)
    outs = lm.forward([(s, 0, seqs[s]) for s in range(4)])  # prefill, different lengths, padded
    for s in range(4):
        ref = CachedModel(model).feed(seqs[s])
        torch.testing.assert_close(outs[s], ref, atol=1e-5, rtol=1e-5)
    # slot 1 is left out (a padded row in the range 0..3), slot 2 rolls back 2 tokens, others append
    new = {0: [5, 6], 2: [7], 3: [8, 9, 10]}
    keep = {0: len(seqs[0]), 2: len(seqs[2]) - 2, 3: len(seqs[3])}
    outs = lm.forward([(s, keep[s], new[s]) for s in (0, 2, 3)])
    for (s, out) in zip((0, 2, 3), outs):
        ref = CachedModel(model).feed(seqs[s][:keep[s]] + new[s])[-len(new[s]):]
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert lm.lengths == [len(seqs[0]) + 2, len(seqs[1]), len(seqs[2]) - 1, len(seqs[3]) + 3]
    out = lm.forward([(1, len(seqs[1]), [11])])[0]  # the left-out row kept its cache
    torch.testing.assert_close(out, CachedModel(model).feed(seqs[1] + [11])[-1:], atol=1e-5, rtol=1e-5)


def test_batched_lm_grows_its_buffers(tiny_pair):
    lm = BatchedLM(tiny_pair.target, 2)
    with torch.inference_mode():
        lm.forward([(0, 0, list(range(1, 60)))])
        first = lm.capacity
        out = lm.forward([(0, 59, list(range(1, 80))), (1, 0, [3])])[0]
        ref = CachedModel(tiny_pair.target).feed(list(range(1, 60)) + list(range(1, 80)))[-79:]
    assert lm.capacity > first >= 59
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# (b) BatchedMiner = Miner

@pytest.mark.parametrize("batch_size,lookahead,end_guard", [(1, 0, True), (3, 0, True), (3, 4, False), (8, 4, True)])
def test_batched_miner_equals_sequential(tiny_pair, batch_size, lookahead, end_guard):
    eq = LastWord()
    seqs = prompts(7)
    sequential = Miner.for_pair(tiny_pair, eq, max_new_tokens=40, lookahead=lookahead, end_guard=end_guard)
    expected = [sequential.mine(p) for p in seqs]
    assert sum(len(q.mismatches) for q in expected) >= 10  # the comparison has something to compare
    assert {m.important for q in expected for m in q.mismatches} == {True, False}
    batched = BatchedMiner.for_pair(tiny_pair, eq, batch_size, max_new_tokens=40, lookahead=lookahead,
                                    end_guard=end_guard)
    got = dict(batched.mine_many((f"q{i}", p, None) for i, p in enumerate(seqs)))
    assert sorted(got) == sorted(f"q{i}" for i in range(len(seqs)))  # every question once
    for i, q in enumerate(expected):
        assert_same(q, got[f"q{i}"])
    if batch_size > 1:  # fewer forwards than the sequential miner's
        assert batched.lms["target"].forwards < sum(q.stats["target_forwards"] for q in expected)


def test_batched_miner_reports_the_same_progress_as_sequential(tiny_pair):
    eq = LastWord()
    seqs = prompts(5)
    heard = {"sequential": [], "batched": []}
    sequential = Miner.for_pair(tiny_pair, eq, max_new_tokens=40)
    sequential.on_progress = heard["sequential"].append
    expected = [sequential.mine(p) for p in seqs]
    batched = BatchedMiner.for_pair(tiny_pair, eq, 3, max_new_tokens=40)
    batched.on_progress = heard["batched"].append
    list(batched.mine_many((i, p, None) for i, p in enumerate(seqs)))
    for name, events in heard.items():
        labelled = [p.mismatch for p in events if p.mismatch is not None]
        assert len(events) - len(labelled) == len(seqs), name  # one first-response report per question
        assert sorted((m.position, m.important) for m in labelled) == \
            sorted((m.position, m.important) for q in expected for m in q.mismatches), name


def test_batched_miner_stop_strings(tiny_pair):
    eq = LastWord()
    stop = ("w7", "w13")
    seqs = prompts(5, seed=1)
    sequential = Miner.for_pair(tiny_pair, eq, max_new_tokens=30, stop=stop)
    batched = BatchedMiner.for_pair(tiny_pair, eq, 4, max_new_tokens=30, stop=stop)
    got = dict(batched.mine_many((i, p, None) for i, p in enumerate(seqs)))
    for i, p in enumerate(seqs):
        assert_same(sequential.mine(p), got[i])


# --------------------------------------------------------------------------------------------
# (c) answers in a pool

def test_answers_in_a_pool_give_the_same_labels(tiny_pair):
    seqs = prompts(6, seed=2)
    expected = [Miner.for_pair(tiny_pair, LastWord(), max_new_tokens=30).mine(p) for p in seqs]
    eq = LastWord()
    batched = BatchedMiner.for_pair(tiny_pair, eq, 3, max_new_tokens=30, answer_workers=2)
    got = dict(batched.mine_many((i, p, eq) for i, p in enumerate(seqs)))
    for i, q in enumerate(expected):
        assert_same(q, got[i])
    assert eq.threads and threading.current_thread().name not in eq.threads  # answered by the pool only


# --------------------------------------------------------------------------------------------
# (d) the store

def test_store_records_identical_for_batch_sizes(tiny_pair, tmp_path):
    from autojudge_harness.mining.pipeline import make_miner, mine_questions, mined_record

    seqs = prompts(5, seed=4)
    eq = LastWord()
    manifest = make_manifest(target_model="tiny", draft_model="tiny/layers:2", target_hidden_size=32,
                             draft_hidden_size=32, vocab_size=96, dtype="float32", dataset="inline",
                             dataset_sha256="0", split="file", prompt="random", equivalence=eq.name, stop=[],
                             max_new_tokens=30, end_guard=True)
    merged = {}
    for size in (1, 3):
        run = tmp_path / f"b{size}"
        miner = make_miner(tiny_pair, eq, size, 30, ())
        totals = mine_questions(miner, manifest, run, list(range(len(seqs))), lambda q: seqs[q], lambda q: eq,
                                lambda q, mined: mined_record(q, mined), progress=False)
        assert totals["questions"] == len(seqs)
        merge(run)
        merged[size] = load_merged(run, manifest)
    strip = lambda r: {k: v for k, v in r.items() if k != "stats"}  # noqa: E731
    assert [strip(r) for r in merged[3].records] == [strip(r) for r in merged[1].records]
    assert merged[1].arrays["labels"].size > 0
    np.testing.assert_array_equal(merged[3].arrays["labels"], merged[1].arrays["labels"])
    np.testing.assert_allclose(merged[3].features("DD-DT"), merged[1].features("DD-DT"), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# (e) the embedded pair

@pytest.mark.slow
def test_embedded_batched_equals_sequential(embedded_pair):
    from autojudge_harness.answers import read_gsm8k_jsonl
    from autojudge_harness.mining.pipeline import gsm8k_prompts
    from autojudge_harness.resources import bundled_problems

    prompter = gsm8k_prompts()
    rows = read_gsm8k_jsonl(bundled_problems("gsm8k_bundled"))[:3]
    seqs = [prompter.token_ids(embedded_pair.tokenizer, r) for r in rows]
    eq = GSM8KEquivalence(prompter.stop, flexible=True)  # short responses: any last number is an answer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sequential = Miner.for_pair(embedded_pair, eq, max_new_tokens=32, stop=prompter.stop, lookahead=8)
        expected = [sequential.mine(p) for p in seqs]
        batched = BatchedMiner.for_pair(embedded_pair, eq, 3, max_new_tokens=32, stop=prompter.stop)
        got = dict(batched.mine_many((i, p, None) for i, p in enumerate(seqs)))
    finally:
        torch.set_num_threads(threads)
    assert sum(len(q.mismatches) for q in expected) > 0
    for i, q in enumerate(expected):
        assert labels(got[i]) == labels(q)
        for a, b in zip(q.mismatches, got[i].mismatches):
            torch.testing.assert_close(b.target_hidden, a.target_hidden, atol=1e-3, rtol=1e-3)
            torch.testing.assert_close(b.draft_hidden, a.draft_hidden, atol=1e-3, rtol=1e-3)


# --------------------------------------------------------------------------------------------
# (f) bad inputs

def test_bad_inputs(tiny_pair):
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        BatchedLM(tiny_pair.target, 0)
    lm = BatchedLM(tiny_pair.target, 2)
    with torch.inference_mode(), pytest.raises(ValueError, match="cannot keep 3 of 0"):
        lm.forward([(0, 3, [1])])
    with pytest.raises(ValueError, match="one request per slot"):
        lm.forward([(0, 0, [1]), (0, 0, [2])])
    config = tiny_pair.target.config
    old = getattr(config, "layer_types", None)
    config.layer_types = ["sliding_attention"] * config.num_hidden_layers
    try:
        with pytest.raises(ValueError, match="full-attention layers.*sliding_attention"):
            BatchedLM(tiny_pair.target, 2)
    finally:
        config.layer_types = old
    with pytest.raises(ValueError, match="--batch-sizes must be integers >= 2"):
        parse_batch_sizes("1,4")
    with pytest.raises(ValueError, match="comma-separated integers"):
        parse_batch_sizes("4,x")
    from autojudge_harness.mining.pipeline import make_miner

    with pytest.raises(ValueError, match="--batch-size must be >= 1"):
        make_miner(tiny_pair, LastWord(), 0, 8, ())


def test_cpu_seconds_include_a_live_child_process():
    """bench mining's CPU column counts an engine's work done in a child process."""
    import subprocess
    import sys

    import psutil

    before = cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nend = time.process_time() + 0.5\n"
                              "while time.process_time() < end: pass\nsys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        while sum(psutil.Process(child.pid).cpu_times()[:2]) < 0.5:
            time.sleep(0.05)
        assert cpu_seconds() - before >= 0.5
    finally:
        child.communicate(b"")
