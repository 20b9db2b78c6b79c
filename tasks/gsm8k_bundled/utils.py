"""Data for the bundled GSM8K-style tasks: a JSONL file next to this file, whatever the cwd.

``problems.jsonl`` (``autojudge_gsm8k_bundled``): multi-step grade-school problems;
``easy.jsonl`` (``autojudge_gsm8k_bundled_easy``): one- and two-step problems a 135M model can solve.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from autojudge_harness.answers import read_gsm8k_jsonl

HERE = Path(__file__).parent


def load_dataset(problems: str = "problems.jsonl", **_metadata) -> datasets.DatasetDict:
    """``problems`` (a file name in this folder, from the task's ``dataset_kwargs``) as a DatasetDict
    with split "test"; lm-eval's metadata kwargs are ignored."""
    path = HERE / problems
    if path.parent != HERE or not path.is_file():
        raise ValueError(f"bundled problems file {problems!r} is not a file in {HERE}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_gsm8k_jsonl(path))})
