"""Mining (Algorithm 1) and its record store.

(a) a scripted, non-neural pair whose labels are known in advance: labels, positions, the left
    border rule, replacement of R, EOS / length / stop handling, identical results in every mode;
(b) the embedded SmolLM2 pair (slow): identical labels with and without KV-cache reuse, features
    equal to a from-scratch forward;
(c) autojudge mine killed with SIGKILL mid-run, rerun: complete records, no duplicates (slow);
(d) bad inputs: empty shard, corrupt line, another model pair, missing features -> ValueError.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zlib

import numpy as np
import pytest
import torch

from autojudge_harness.mining.algorithm import GSM8KEquivalence, Miner
from autojudge_harness.mining.store import (FEATURES, RECORDS, ShardWriter, init_run, load_merged, make_manifest,
                                            merge, parse_shard, read_shard, shard_name)
from autojudge_harness.resources import bundled_problems

EOS = 0
PROMPT = [100, 101]


# --------------------------------------------------------------------------------------------
# (a) a scripted pair

class ScriptedLM:
    """CachedModel-like fake: ``rule(response) -> next token`` (response = tokens after PROMPT).
    Hidden state of a fed token = [next token, sequence length, crc of the sequence, 1]; argmax
    reads the first entry back, so the features identify exactly where they were computed."""

    def __init__(self, rule):
        self.rule = rule
        self.tokens: list[int] = []
        self.calls = 0
        self.fed = 0

    @property
    def length(self):
        return len(self.tokens)

    def hidden_for(self, seq) -> torch.Tensor:
        seq = list(seq)
        crc = zlib.crc32(np.asarray(seq, dtype=np.int64).tobytes()) % 100003
        return torch.tensor([float(self.rule(seq[len(PROMPT):])), float(len(seq)), float(crc), 1.0])

    def feed(self, ids):
        rows = []
        for t in ids:
            self.tokens.append(int(t))
            rows.append(self.hidden_for(self.tokens))
        self.calls += 1
        self.fed += len(ids)
        return torch.stack(rows)

    def argmax(self, hidden):
        return hidden[:, 0].long()

    def crop(self, length):
        del self.tokens[length:]


BASE = [1, 2, 3, 4, 5, 6, 60, EOS]  # the target's plan; 60 is "the answer"


def target_rule(r):
    """Follow BASE by length; a 7 anywhere changes the answer to 61, a 9 to 62; past BASE: EOS."""
    if len(r) >= len(BASE):
        return EOS
    token = BASE[len(r)]
    if token == 60 and 7 in r:
        return 61
    if token == 60 and 9 in r:
        return 62
    return token


def draft_rule(r):
    """Agrees with the target except: 7 at position 1 and 5, 8 at 3, 9 at 4 once an 8 is in R, 5 at 7."""
    p = len(r)
    if p == 1 or p == 5:
        return 7
    if p == 3:
        return 8
    if p == 4 and 8 in r:
        return 9
    if p == 7:
        return 5
    return target_rule(r)


class LastBigToken:
    """Answer = the last token >= 60 in the (space-separated) text; None if there is none."""

    name = "last-big-token"

    def answer(self, text):
        big = [w for w in text.split() if int(w) >= 60]
        return big[-1] if big else None

    def equal(self, a, b):
        return a is not None and a == b


def decode(ids):
    return " ".join(str(t) for t in ids)


def scripted_miner(reuse=True, lookahead=0, max_new_tokens=32, stop=(), target=target_rule, draft=draft_rule,
                   end_guard=False):
    t, d = ScriptedLM(target), ScriptedLM(draft)
    return Miner(t, d, decode, {EOS}, LastBigToken(), max_new_tokens=max_new_tokens, stop=stop,
                 reuse_cache=reuse, lookahead=lookahead, end_guard=end_guard), t, d


MODES = [(True, 0), (True, 4), (False, 0)]


@pytest.mark.parametrize("reuse,lookahead", MODES)
def test_scripted_labels_positions_and_left_border(reuse, lookahead):
    miner, t, d = scripted_miner(reuse, lookahead)
    q = miner.mine(PROMPT)
    assert q.skipped is None and q.answer == "60"
    assert q.initial_response_ids == BASE
    got = [(m.position, m.important, m.target_token, m.draft_token) for m in q.mismatches]
    assert got == [
        (1, True, 2, 7),    # 7 changes the answer: important, R unchanged, next search from 2
        (3, False, 4, 8),   # 8 keeps it: unimportant, R := R' (1 2 3 8 5 6 60 EOS)
        (4, True, 5, 9),    # the draft now sees R' (the 8) and proposes 9: the answer changes
        (5, True, 6, 7),    # right after an important one (left = p + 1)
        (7, False, EOS, 5),  # the EOS position itself; the alternative 1 2 3 8 5 6 60 5 EOS keeps 60
    ]
    assert q.response_ids == [1, 2, 3, 8, 5, 6, 60, 5, EOS]
    # features: where d is fed at position p on the final response's prefix (exactly)
    for m in q.mismatches:
        seq = PROMPT + q.response_ids[:m.position] + [m.draft_token]
        assert torch.equal(m.target_hidden, t.hidden_for(seq))
        assert torch.equal(m.draft_hidden, d.hidden_for(seq))
        # the final R holds the draft token for unimportant mismatches, the target's for important ones
        assert q.response_ids[m.position] == (m.target_token if m.important else m.draft_token)
    assert [m.target_end for m in q.mismatches] == [False, False, False, False, True]


@pytest.mark.parametrize("reuse,lookahead", MODES)
def test_scripted_end_guard_keeps_the_targets_end(reuse, lookahead):
    """With the end guard (as decoding has it) the mismatch at the target's EOS is labelled and
    flagged, but R keeps the target's end: nothing past it is mined or decoded."""
    paper, _, _ = scripted_miner(reuse, lookahead)
    guarded, _, _ = scripted_miner(reuse, lookahead, end_guard=True)
    a, b = paper.mine(PROMPT), guarded.mine(PROMPT)
    labels = lambda q: [(m.position, m.important, m.target_token, m.draft_token, m.target_end) for m in q.mismatches]  # noqa: E731
    assert labels(b) == labels(a)             # the end mismatch is the last one either way
    assert b.response_ids == [1, 2, 3, 8, 5, 6, 60, EOS] and a.response_ids == [1, 2, 3, 8, 5, 6, 60, 5, EOS]


def test_scripted_end_guard_flags_a_token_that_completes_a_stop_string():
    draft = lambda r: 61 if len(r) == 6 else target_rule(r)  # noqa: E731  (mismatches at the 60 only)
    miner, _, _ = scripted_miner(stop=("60",), end_guard=True, draft=draft)
    q = miner.mine(PROMPT)
    assert [(m.position, m.target_token, m.draft_token, m.target_end) for m in q.mismatches] == [(6, 60, 61, True)]
    assert q.response_ids == [1, 2, 3, 4, 5, 6, 60]   # the target's stop is kept


def test_scripted_reuse_feeds_far_fewer_tokens():
    fed = {}
    for reuse, lookahead in MODES:
        miner, t, d = scripted_miner(reuse, lookahead)
        miner.mine(PROMPT)
        fed[(reuse, lookahead)] = (t.fed, d.fed)
    assert fed[(True, 0)][0] < fed[(False, 0)][0] and fed[(True, 0)][1] < fed[(False, 0)][1]
    assert fed[(True, 4)][1] == fed[(True, 0)][1]


def test_scripted_skips_question_without_target_answer():
    miner, *_ = scripted_miner(target=lambda r: [1, 2, EOS][min(len(r), 2)])
    q = miner.mine(PROMPT)
    assert q.skipped == "no_target_answer" and q.mismatches == [] and q.answer is None


@pytest.mark.parametrize("reuse,lookahead", MODES)
def test_scripted_length_budget(reuse, lookahead):
    # 7 tokens: BASE without its EOS; the alternative at position 5 is cut at the same length
    miner, *_ = scripted_miner(reuse, lookahead, max_new_tokens=7)
    q = miner.mine(PROMPT)
    assert q.initial_response_ids == BASE[:7]
    assert [m.position for m in q.mismatches] == [1, 3, 4, 5]
    assert len(q.response_ids) <= 7


@pytest.mark.parametrize("reuse,lookahead", MODES)
def test_scripted_stop_string_ends_response_and_mining(reuse, lookahead):
    # a stop string (lm-eval's ``until``) ends the response like EOS: nothing after it is mined
    plan = [1, 60, 44, 2, 3, EOS]
    miner, *_ = scripted_miner(reuse, lookahead, stop=("44",),
                               target=lambda r: plan[min(len(r), 5)],
                               draft=lambda r: 9 if len(r) >= 3 else plan[min(len(r), 5)])
    q = miner.mine(PROMPT)
    assert q.initial_response_ids == q.response_ids == [1, 60, 44]
    assert q.mismatches == []  # the draft disagrees only after the stop string: nothing is mined there


def test_scripted_eos_before_position_stops():
    # a response with an EOS inside (given by the caller's target) is never mined past the EOS
    miner, *_ = scripted_miner()
    assert miner.finished([1, EOS]) and not miner.finished([1, 2])


def test_gsm8k_equivalence_uses_task_extraction():
    eq = GSM8KEquivalence(stop=("Q:",))
    assert eq.answer("so 3+4=7. The final answer is 7") == "7"
    assert eq.answer("The final answer is 7\nQ: next. The final answer is 8") == "7"
    assert eq.answer("no answer") is None
    assert eq.equal("7", "7.0") and not eq.equal(None, None)
    assert GSM8KEquivalence(flexible=True).answer("it is 12 apples") == "12"


# --------------------------------------------------------------------------------------------
# (b) the embedded pair

@pytest.fixture(scope="module")
def gsm8k_prompts(embedded_pair):
    from autojudge_harness.mining.pipeline import gsm8k_prompts as task_prompts

    rows = [json.loads(line) for line in bundled_problems("gsm8k_bundled").read_text().splitlines()
            if line.strip()]
    prompter = task_prompts()
    return [prompter.token_ids(embedded_pair.tokenizer, r) for r in rows[:2]], prompter


@pytest.mark.slow
def test_embedded_cache_reuse_gives_identical_labels_and_features(embedded_pair, gsm8k_prompts):
    prompts, _ = gsm8k_prompts
    eq = GSM8KEquivalence(flexible=True)  # short responses: any last number is an answer
    results = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one-token steps gain nothing from 2 threads and suffer under load
    try:
        for name, kwargs in {"ref": dict(reuse_cache=False), "reuse": dict(reuse_cache=True),
                             "lookahead": dict(reuse_cache=True, lookahead=8)}.items():
            miner = Miner.for_pair(embedded_pair, eq, max_new_tokens=24, **kwargs)
            results[name] = [miner.mine(p) for p in prompts[:1]]
    finally:
        torch.set_num_threads(threads)
    total = 0
    for ref, reuse, look in zip(results["ref"], results["reuse"], results["lookahead"]):
        assert ref.skipped is None
        labels = [(m.position, m.important, m.target_token, m.draft_token) for m in ref.mismatches]
        total += len(labels)
        for other in (reuse, look):
            assert [(m.position, m.important, m.target_token, m.draft_token) for m in other.mismatches] == labels
            assert other.response_ids == ref.response_ids
            for a, b in zip(ref.mismatches, other.mismatches):
                torch.testing.assert_close(a.target_hidden, b.target_hidden, atol=1e-3, rtol=1e-3)
                torch.testing.assert_close(a.draft_hidden, b.draft_hidden, atol=1e-3, rtol=1e-3)
        # from-scratch forwards on the final response's prefix
        for m in reuse.mismatches[:3]:
            ids = torch.tensor([reuse.prompt_ids + reuse.response_ids[:m.position] + [m.draft_token]])
            with torch.inference_mode():
                th = embedded_pair.target.model(input_ids=ids).last_hidden_state[0, -1]
                dh = embedded_pair.draft.model(input_ids=ids).last_hidden_state[0, -1]
            torch.testing.assert_close(m.target_hidden, th, atol=1e-3, rtol=1e-3)
            torch.testing.assert_close(m.draft_hidden, dh, atol=1e-3, rtol=1e-3)
    assert total > 0


# --------------------------------------------------------------------------------------------
# (c) kill and resume

@pytest.mark.slow
def test_mine_script_survives_sigkill_and_resumes(tmp_path, embedded_pair):
    src = bundled_problems("gsm8k_bundled").read_text().splitlines()
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(src[:2]) + "\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "autojudge_harness", "mine", "--preset", "smollm2-135m", "--data", str(data),
           "--max-new-tokens", "16", "--answer", "flexible", "--out", str(out), "--no-progress", "--threads", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    records = out / shard_name(0, 1) / RECORDS
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    assert len(first) == 1
    done = subprocess.run(cmd + ["--merge"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    shard = read_shard(out / shard_name(0, 1))
    ids = [r["question_id"] for r in shard.records]
    assert sorted(ids) == [0, 1] and len(ids) == len(set(ids))
    assert [r["question_id"] for r in shard.records[:len(first)]] == [r["question_id"] for r in first]
    merged = load_merged(out)
    n = sum(len(r["mismatches"]) for r in merged.records)
    assert merged.arrays["features_target"].shape == (n, 576) and merged.arrays["labels"].shape == (n,)
    assert merged.features("DD-DT").shape == (n, 576 + 576)
    # rerunning a finished run mines nothing and duplicates nothing
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["questions"] == 0
    assert len(read_shard(out / shard_name(0, 1)).records) == 2


# --------------------------------------------------------------------------------------------
# (d) the store: recovery and bad inputs

def manifest(**over):
    fields = dict(target_model="t", draft_model="t/layers:2", target_hidden_size=3, draft_hidden_size=2,
                  vocab_size=10, dtype="float32", dataset="d.jsonl", dataset_sha256="x", split="file",
                  prompt="p", equivalence="gsm8k-final-answer", stop=[], max_new_tokens=8, end_guard=True)
    return make_manifest(**{**fields, **over})


def record(qid, n):
    return {"question_id": qid, "prompt_ids": [1], "initial_response_ids": [2], "response_ids": [2], "answer": "1",
            "skipped": None, "feature_row": 0,
            "mismatches": [{"position": i, "important": i % 2 == 0, "target_token": 2, "draft_token": 3, "target_end": False}
                           for i in range(n)]}


def write(run, qids_counts, index=0, count=1, m=None):
    m = m or manifest()
    init_run(run, m)
    with ShardWriter(run, index, count, m) as w:
        for qid, n in qids_counts:
            w.append(record(qid, n), np.full((n, 3), qid, np.float32), np.full((n, 2), -qid, np.float32))
    return run / shard_name(index, count)


def test_store_roundtrip_and_merge(tmp_path):
    run = tmp_path / "run"
    write(run, [(0, 2), (2, 0), (4, 3)], 0, 2)
    write(run, [(1, 1), (3, 2)], 1, 2)
    merge(run)
    ds = load_merged(run, manifest())
    assert [r["question_id"] for r in ds.records] == [0, 1, 2, 3, 4]
    assert ds.arrays["question_ids"].tolist() == [0, 0, 1, 3, 3, 4, 4, 4]
    assert ds.arrays["positions"].tolist() == [0, 1, 0, 0, 1, 0, 1, 2]
    assert ds.arrays["labels"].tolist() == [1, 0, 1, 1, 0, 1, 0, 1]
    assert ds.arrays["features_target"][:, 0].tolist() == [0, 0, 1, 3, 3, 4, 4, 4]
    assert ds.arrays["features_draft"][:, 0].tolist() == [0, 0, -1, -3, -3, -4, -4, -4]
    assert ds.features("DD-DT").shape == (8, 5) and ds.features("DT").shape == (8, 3)
    for r in ds.records:  # merged records point into the merged arrays
        assert all(ds.arrays["question_ids"][r["feature_row"] + k] == r["question_id"]
                   for k in range(len(r["mismatches"])))


def test_store_recovers_from_a_kill_between_features_and_record(tmp_path):
    run = tmp_path / "run"
    shard = write(run, [(0, 2), (1, 1)])
    with open(shard / FEATURES, "ab") as f:  # features of question 2 written, its record never
        f.write(np.ones((4, 5), np.float32).tobytes())
    with open(shard / RECORDS, "ab") as f:  # and a half-written line
        f.write(json.dumps(record(2, 4))[:25].encode())
    with pytest.warns(UserWarning, match="truncated"):
        with ShardWriter(run, 0, 1, manifest()) as w:
            assert w.question_ids == {0, 1} and w.rows == 3
            w.append(record(2, 1), np.full((1, 3), 2, np.float32), np.full((1, 2), -2, np.float32))
    s = read_shard(shard)
    assert [r["question_id"] for r in s.records] == [0, 1, 2]
    assert s.features.shape == (4, 5) and s.features[3].tolist() == [2, 2, 2, -2, -2]


def test_store_rejects_duplicates_and_second_writer(tmp_path):
    run = tmp_path / "run"
    write(run, [(0, 1)], 0, 2)
    write(run, [(0, 1)], 1, 2)
    with pytest.raises(ValueError, match="recorded twice"):
        merge(run)
    init_run(tmp_path / "r2", manifest())
    with ShardWriter(tmp_path / "r2", 0, 1, manifest()) as w:
        w.append(record(5, 0), np.zeros((0, 3)), np.zeros((0, 2)))
        with pytest.raises(ValueError, match="already recorded"):
            w.append(record(5, 0), np.zeros((0, 3)), np.zeros((0, 2)))
        with pytest.raises(ValueError, match="another process"):
            ShardWriter(tmp_path / "r2", 0, 1, manifest())


def test_bad_inputs_give_clear_errors(tmp_path):
    # empty shard directory
    run = tmp_path / "empty"
    init_run(run, manifest())
    ShardWriter(run, 0, 1, manifest()).close()
    with pytest.raises(ValueError, match="empty shard"):
        merge(run)
    with pytest.raises(ValueError, match="no shard directories"):
        merge(init_run(tmp_path / "none", manifest()))
    with pytest.raises(ValueError, match="not merged yet"):
        load_merged(tmp_path / "none")

    # corrupt line in the middle
    run = tmp_path / "corrupt"
    shard = write(run, [(0, 1), (1, 1), (2, 1)])
    lines = (shard / RECORDS).read_text().splitlines(keepends=True)
    lines[1] = lines[1][:1] + "#garbage" + lines[1][1:]
    (shard / RECORDS).write_text("".join(lines))
    with pytest.raises(ValueError, match=r"records\.jsonl:2: corrupt record"):
        read_shard(shard)
    with pytest.raises(ValueError, match="corrupt record"):
        ShardWriter(run, 0, 1, manifest())

    # a manifest from another model pair: opening, resuming, merging and loading all refuse
    run = tmp_path / "other"
    write(run, [(0, 1)])
    other = manifest(draft_model="t/layers:1")
    with pytest.raises(ValueError, match="another run/model pair -- draft_model"):
        init_run(run, other)
    with pytest.raises(ValueError, match="draft_model"):
        ShardWriter(run, 0, 1, other)
    merge(run)
    with pytest.raises(ValueError, match="draft_model"):
        load_merged(run, other)
    # a shard copied in from another run
    foreign = write(tmp_path / "foreign", [(7, 1)], m=other)
    os.rename(foreign, run / shard_name(5, 9))
    with pytest.raises(ValueError, match=r"shard-005-of-009.*draft_model"):
        merge(run)

    # features missing
    run = tmp_path / "nofeat"
    shard = write(run, [(0, 2)])
    os.truncate(shard / FEATURES, 4)
    with pytest.raises(ValueError, match="feature rows"):
        read_shard(shard)

    with pytest.raises(ValueError, match="i/n"):
        parse_shard("2/2")


def test_nothing_to_mine_leaves_no_empty_shard(tiny_pair, tmp_path):
    """A rerun whose questions are all done must not create a shard that merge would refuse."""
    from autojudge_harness.mining.pipeline import mine_gsm8k
    from autojudge_harness.mining.store import shard_dirs

    rows = [{"question": "Two plus two?", "answer": "2 + 2 = 4\n#### 4"}]
    totals = mine_gsm8k(tiny_pair, rows, {"dataset": "inline", "dataset_sha256": "0", "split": "file"},
                        tmp_path / "run", ids=[], progress=False)
    assert totals["questions"] == 0 and shard_dirs(tmp_path / "run") == []


# --------------------------------------------------------------------------------------------
# (e) watching a run: progress within a question, warnings when merging an incomplete run

@pytest.mark.parametrize("reuse,lookahead", MODES)
def test_progress_reports_every_labelled_mismatch_and_the_tokens_fed(reuse, lookahead):
    miner, _, _ = scripted_miner(reuse, lookahead)
    heard = []
    miner.on_progress = heard.append
    q = miner.mine(PROMPT)
    assert heard[0].mismatch is None  # the target's first response, before any label
    assert [p.mismatch for p in heard[1:]] == q.mismatches  # each label as soon as it is decided
    assert sum(p.tokens for p in heard) <= q.stats["target_tokens_fed"] + q.stats["draft_tokens_fed"]
    assert heard[0].tokens > 0 and all(p.tokens > 0 for p in heard[1:])


def test_merging_an_incomplete_run_warns_naming_what_is_missing(tmp_path):
    run = tmp_path / "run"
    write(run, [(0, 2), (2, 1), (6, 1)], 0, 2)  # ids 4 missing in this shard; shard 1 of 2 never ran
    with pytest.warns(UserWarning, match=r"missing: shards shard-001-of-002; question ids 1, 3-5 \(rerun"):
        merge(run)
    complete = tmp_path / "complete"
    write(complete, [(0, 1), (2, 1)], 0, 2)
    write(complete, [(1, 1), (3, 0)], 1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merge(complete)
