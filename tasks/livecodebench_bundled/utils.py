"""Data for autojudge_lcb_bundled: problems.jsonl next to this file, whatever the cwd."""

from __future__ import annotations

from pathlib import Path

import datasets

from autojudge_harness import livecodebench as lcb

PROBLEMS = Path(__file__).with_name("problems.jsonl")


def load_dataset(lcb_prompt: str = lcb.AUTO, pretrained: str | None = None, preset: str | None = None,
                 **_metadata) -> datasets.DatasetDict:
    """problems.jsonl as split "test", after the same checks as the hub tasks' loader (prompt style,
    sandbox); lm-eval's other keyword arguments are ignored."""
    style = lcb.task_style(lcb_prompt, pretrained, preset)
    lcb.check_task_sandbox()
    return lcb.task_dataset(lcb.read_lcb_jsonl(PROBLEMS), style)
