"""lm-eval hooks for the GSM8K tasks: data loading, answer filters and scoring.

Answer extraction and comparison live in ``autojudge_harness.answers`` (shared with mining);
this module only adapts them to lm-eval's call conventions.
"""

from __future__ import annotations

import os

import datasets

from autojudge_harness.answers import (
    answers_equal,
    extract_final_answer,
    extract_last_number,
    gold_answer,
    read_gsm8k_jsonl,
)

JSONL_ENV = "AUTOJUDGE_GSM8K_JSONL"


def load_dataset(**_metadata) -> datasets.DatasetDict:
    """The evaluation data: $AUTOJUDGE_GSM8K_JSONL as split "test" if set, else openai/gsm8k "main".

    A malformed local file raises ValueError naming the file and line. lm-eval passes the task metadata (and model args) as keyword arguments; they are ignored.
    """
    path = os.environ.get(JSONL_ENV)
    if path:
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_gsm8k_jsonl(path))})
    return datasets.load_dataset("openai/gsm8k", "main")


def strict_match(resps, docs):
    """Filter: each response -> the number after its last "The final answer is" (or None)."""
    return [[extract_final_answer(r) for r in rs] for rs in resps]


def flexible_extract(resps, docs):
    """Filter: each response -> its last number (or None)."""
    return [[extract_last_number(r) for r in rs] for rs in resps]


def process_results(doc, results):
    """exact_match = 1 iff the filtered answer equals the gold "#### N" numerically."""
    return {"exact_match": int(answers_equal(results[0], gold_answer(doc["answer"])))}
