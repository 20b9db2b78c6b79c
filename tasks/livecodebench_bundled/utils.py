"""Data for autojudge_lcb_bundled: problems.jsonl next to this file, whatever the cwd."""

from __future__ import annotations

from pathlib import Path

import datasets

from autojudge_harness.livecodebench import read_lcb_jsonl

PROBLEMS = Path(__file__).with_name("problems.jsonl")


def load_dataset(**_metadata) -> datasets.DatasetDict:
    """problems.jsonl as a DatasetDict with split "test" (lm-eval's keyword arguments are ignored)."""
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_lcb_jsonl(PROBLEMS))})
