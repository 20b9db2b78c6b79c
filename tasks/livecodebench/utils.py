"""lm-eval hooks for the LiveCodeBench tasks; all logic is in ``autojudge_harness.livecodebench``
(shared with mining) and ``autojudge_harness.grading`` (the sandbox)."""

from __future__ import annotations

import os

import datasets

from autojudge_harness.grading import Grader
from autojudge_harness.livecodebench import DEFAULT_RELEASE, doc_prompt, grade_docs, load_hub_rows, pass_at_1, read_lcb_jsonl

JSONL_ENV = "AUTOJUDGE_LCB_JSONL"
# The grader's isolation (auto | bwrap | unshare | guard: "guard" accepts running without kernel
# isolation) and semantics (lcb | intent); each sample's logged verdict records both.
SANDBOX_ENV, SEMANTICS_ENV = "AUTOJUDGE_SANDBOX", "AUTOJUDGE_LCB_SEMANTICS"


def grader() -> Grader:
    """The task's grader, configured by $AUTOJUDGE_SANDBOX and $AUTOJUDGE_LCB_SEMANTICS."""
    return Grader(isolation=os.environ.get(SANDBOX_ENV) or "auto", semantics=os.environ.get(SEMANTICS_ENV) or "lcb")


def load_dataset(release: str = DEFAULT_RELEASE, **_metadata) -> datasets.DatasetDict:
    """$AUTOJUDGE_LCB_JSONL (a local file with the hub's columns, taken whole) as split "test" if
    set, else ``release`` of livecodebench/code_generation_lite from the hub. lm-eval also passes
    the task metadata (and model args) as keyword arguments; they are ignored."""
    path = os.environ.get(JSONL_ENV)
    if path:
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(read_lcb_jsonl(path))})
    return datasets.DatasetDict({"test": load_hub_rows(release)})


def doc_to_text(doc):
    return doc_prompt(doc)


def grade(resps, docs):
    """Filter: each response -> the sandbox verdict of its last fenced code block (parallel)."""
    return grade_docs(resps, docs, grader())


def process_results(doc, results):
    return pass_at_1(results[0])
