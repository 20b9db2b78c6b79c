"""Mining a dataset into a run directory: questions -> prompts (built by the lm-eval task itself)
-> Algorithm 1 -> shard records. ``mine_questions`` is the dataset-independent loop; GSM8K is wired
here (``autojudge mine`` is its CLI), LiveCodeBench in ``mining/lcb.py``."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tqdm import tqdm

from ..prompts import TaskPrompts
from ..resources import bundled_problems
from .store import ShardWriter, done_question_ids, init_run, make_manifest

if TYPE_CHECKING:  # the miners import torch: imported where a miner is made (``autojudge <job> --help`` stays light)
    from .algorithm import MinedQuestion

GSM8K_TASK = "autojudge_gsm8k_cot_llama_zeroshot"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_gsm8k(data: str | None = None, dataset: str | None = None, split: str = "train") -> tuple[list[dict], dict]:
    """(rows {"question", "answer"}, {"dataset", "dataset_sha256", "split"}) from a local GSM8K
    JSONL file or the hub (``openai/gsm8k``, config "main")."""
    from autojudge_harness.answers import read_gsm8k_jsonl

    if (data is None) == (dataset is None):
        raise ValueError("give exactly one of --data PATH.jsonl or --dataset HUB_ID")
    if data is not None:
        path = Path(data).resolve()
        return read_gsm8k_jsonl(path), {"dataset": str(path), "dataset_sha256": file_sha256(path), "split": "file"}
    import datasets

    rows = [{"question": r["question"], "answer": r["answer"]} for r in datasets.load_dataset(dataset, "main", split=split)]
    digest = hashlib.sha256("\n".join(r["question"] for r in rows).encode()).hexdigest()
    return rows, {"dataset": dataset, "dataset_sha256": digest, "split": split}


def gsm8k_prompts() -> TaskPrompts:
    """Prompts of ``autojudge_gsm8k_cot_llama_zeroshot`` (the task reads the bundled problems while it
    is constructed, so that building prompts never needs the hub; the docs themselves are not used)."""
    return TaskPrompts(GSM8K_TASK, data_env={"AUTOJUDGE_GSM8K_JSONL": str(bundled_problems("gsm8k_bundled"))})


def select_ids(total: int, offset: int = 0, limit: int | None = None, shard: tuple[int, int] = (0, 1)) -> list[int]:
    """Question ids offset..offset+limit-1 (clipped to the data) that belong to ``shard`` (id % n == i)."""
    end = total if limit is None else min(total, offset + limit)
    index, count = shard
    return [q for q in range(max(0, offset), end) if q % count == index]


def run_manifest(pair, data_info: dict, prompter: TaskPrompts, equivalence, max_new_tokens: int,
                 dtype: str = "float32", end_guard: bool = True) -> dict:
    return make_manifest(target_model=pair.target_name, draft_model=pair.draft_name,
                         target_hidden_size=pair.target.config.hidden_size,
                         draft_hidden_size=pair.draft.config.hidden_size,
                         vocab_size=pair.target.config.vocab_size, dtype=dtype, prompt=f"{prompter.task_name} (chat)",
                         equivalence=equivalence.name, stop=list(prompter.stop), max_new_tokens=max_new_tokens,
                         end_guard=end_guard, **data_info)


def mined_record(qid: int, mined: MinedQuestion, **fields) -> dict:
    """The store's record of one mined question (see mining/store.py) plus dataset-specific ``fields``."""
    return {"question_id": qid, **fields, "prompt_ids": mined.prompt_ids,
            "initial_response_ids": mined.initial_response_ids, "response_ids": mined.response_ids,
            "answer": mined.answer, "skipped": mined.skipped, "feature_row": 0,
            "mismatches": [{"position": m.position, "important": m.important, "target_token": m.target_token,
                            "draft_token": m.draft_token, "target_end": m.target_end} for m in mined.mismatches],
            "stats": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in mined.stats.items()}}


def question_record(qid: int, row: dict, mined: MinedQuestion) -> dict:
    from autojudge_harness.answers import gold_answer

    return mined_record(qid, mined, question_sha1=hashlib.sha1(row["question"].encode()).hexdigest(),
                        gold=gold_answer(row["answer"]))


def make_miner(pair, equivalence, batch_size: int | None, max_new_tokens: int, stop: Sequence[str],
               lookahead: int | None = None, end_guard: bool = True, answer_workers: int = 0, generate=None):
    """The miner for ``batch_size`` questions at a time: 1 = the sequential ``Miner``, more = a
    ``BatchedMiner`` (same labels); None = ``default_batch_size`` of the pair's device. ``lookahead``
    None = ``default_lookahead`` of the batch size. ``generate`` (an engine's greedy generation,
    ``mining.vllm_engine``): an ``EngineMiner`` instead, at any batch size, without look-ahead."""
    from .algorithm import Miner
    from .batched import BatchedMiner, default_batch_size, default_lookahead

    batch_size = default_batch_size(pair.target.device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if generate is not None:
        from .vllm_engine import EngineMiner

        if lookahead:
            raise ValueError("the engine miner takes no look-ahead (its continuations are whole generations)")
        return EngineMiner.for_pair(pair, generate, equivalence, batch_size, max_new_tokens, stop, end_guard,
                                    answer_workers)
    lookahead = default_lookahead(batch_size) if lookahead is None else lookahead
    if batch_size == 1:
        return Miner.for_pair(pair, equivalence, max_new_tokens, stop, lookahead=lookahead, end_guard=end_guard)
    return BatchedMiner.for_pair(pair, equivalence, batch_size, max_new_tokens, stop, lookahead, end_guard,
                                 answer_workers)


def mine_gsm8k(pair, rows: Sequence[dict], data_info: dict, out: str | Path, ids: Sequence[int],
               shard: tuple[int, int] = (0, 1), max_new_tokens: int = 192, lookahead: int | None = None,
               dtype: str = "float32", progress: bool = True, flexible: bool = False, end_guard: bool = True,
               prompter: TaskPrompts | None = None, batch_size: int | None = None, generate=None) -> dict:
    """Mine questions ``ids`` of ``rows`` into shard ``shard`` of run ``out``; resumes (skips ids
    already recorded in any shard of the run). Returns totals of this call. ``prompter``: the task
    whose prompts are mined (default: zero-shot GSM8K, ``gsm8k_prompts``); ``batch_size``: see
    ``make_miner`` (``lookahead`` and ``generate`` too)."""
    from .algorithm import GSM8KEquivalence

    prompter = prompter or gsm8k_prompts()
    equivalence = GSM8KEquivalence(prompter.stop, flexible=flexible)
    manifest = run_manifest(pair, data_info, prompter, equivalence, max_new_tokens, dtype, end_guard)
    miner = make_miner(pair, equivalence, batch_size, max_new_tokens, prompter.stop, lookahead, end_guard,
                       generate=generate)
    return mine_questions(miner, manifest, out, ids, lambda qid: prompter.token_ids(pair.tokenizer, rows[qid]), lambda qid: equivalence,
                          lambda qid, mined: question_record(qid, rows[qid], mined), shard, progress)


def mine_questions(miner, manifest: dict, out: str | Path, ids: Sequence[int], prompt_ids, equivalence,
                   record, shard: tuple[int, int] = (0, 1), progress: bool = True) -> dict:
    """Mine question ids ``ids`` into shard ``shard`` of run ``out`` (created with ``manifest``, or
    checked against it), skipping ids already recorded in any shard. ``miner``: a ``Miner`` or
    ``BatchedMiner`` (records are written in the order questions finish). Per question id:
    ``prompt_ids(qid)`` -> token ids, ``equivalence(qid)`` -> its Equivalence, ``record(qid, mined)``
    -> the store record. Returns totals of this call (``seconds``: its wall time)."""
    out = init_run(Path(out), manifest)
    done = done_question_ids(out, manifest)
    todo = [q for q in ids if q not in done]
    totals = {"questions": 0, "skipped": 0, "mismatches": 0, "important": 0, "seconds": 0.0,
              "already_done": len(ids) - len(todo)}
    if not todo:  # all done: opening a writer would leave an empty shard behind
        return totals
    start = time.perf_counter()
    with ShardWriter(out, shard[0], shard[1], manifest) as writer:
        bar = tqdm(total=len(todo), desc=f"mining into {out} (shard {shard[0]}/{shard[1]})", unit="q",
                   disable=not progress, dynamic_ncols=True)
        miner.on_progress = LiveCounts(bar)
        with bar:
            for qid, mined in miner.mine_many((qid, prompt_ids(qid), equivalence(qid)) for qid in todo):
                target_features, draft_features = mined.feature_arrays()
                writer.append(record(qid, mined), target_features.numpy(), draft_features.numpy())
                totals["questions"] += 1
                totals["skipped"] += mined.skipped is not None
                totals["mismatches"] += len(mined.mismatches)
                totals["important"] += sum(m.important for m in mined.mismatches)
                totals["seconds"] = time.perf_counter() - start
                bar.update()
    return totals


class LiveCounts:
    """A miner's ``on_progress`` that shows, on ``bar``, the mismatches labelled (important among them)
    and the tokens fed to the two models so far, questions in flight included; redrawn at most every
    ``interval`` seconds, so a long question shows it is moving."""

    def __init__(self, bar, interval: float = 1.0):
        self.bar, self.interval = bar, interval
        self.labelled = self.important = self.tokens = 0
        self.start = self.drawn = time.perf_counter()

    def __call__(self, progress) -> None:
        self.tokens += progress.tokens
        if progress.mismatch is not None:
            self.labelled += 1
            self.important += progress.mismatch.important
        now = time.perf_counter()
        if now - self.drawn >= self.interval:
            minutes = (now - self.start) / 60
            self.bar.set_postfix(labelled=self.labelled, important=self.important, tokens=self.tokens,
                                 labelled_per_min=f"{self.labelled / minutes:.1f}")
            self.drawn = now
