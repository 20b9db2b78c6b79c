"""lm-eval hooks for the LiveCodeBench tasks; all logic is in ``autojudge_harness.livecodebench``
(shared with mining), ``autojudge_harness.lcb_prompts`` (the prompt per model family) and
``autojudge_harness.grading`` (the sandbox)."""

from __future__ import annotations

import dataclasses
import os

import datasets
from lm_eval.api.task import ConfigurableTask

from autojudge_harness import livecodebench as lcb
from autojudge_harness.lcb_prompts import SEPARATOR

JSONL_ENV = "AUTOJUDGE_LCB_JSONL"


def grader():
    """The task's grader (``livecodebench.task_grader``: $AUTOJUDGE_SANDBOX, $AUTOJUDGE_LCB_SEMANTICS,
    $AUTOJUDGE_LCB_TIMEOUT)."""
    return lcb.task_grader()


def load_dataset(release: str = lcb.DEFAULT_RELEASE, lcb_prompt: str = lcb.AUTO, pretrained: str | None = None,
                 preset: str | None = None, **_metadata) -> datasets.DatasetDict:
    """The docs, after checking the prompt style and that the sandbox runs here (both fail in
    seconds, before any generation): $AUTOJUDGE_LCB_JSONL (a local file with the hub's columns,
    taken whole) if set, else ``release`` of livecodebench/code_generation_lite from the hub.
    lm-eval passes the task metadata (the YAML's, ``--metadata``, and on the CLI the model args)
    as keyword arguments: ``lcb_prompt`` picks the style (``livecodebench.task_style``)."""
    style = lcb.task_style(lcb_prompt, pretrained, preset)
    lcb.check_task_sandbox()
    path = os.environ.get(JSONL_ENV)
    return lcb.task_dataset(lcb.read_lcb_jsonl(path) if path else lcb.load_hub_rows(release), style)


def doc_to_text(doc) -> str:
    """The doc's prompt as one text (system message, separator, question; see ``LiveCodeBenchTask``)."""
    return lcb.doc_prompt(doc).text()


def grade(resps, docs):
    """Filter: each response -> the sandbox verdict of its program (parallel)."""
    return lcb.grade_docs(resps, docs, grader())


def process_results(doc, results):
    return lcb.pass_at_1(results[0])


class LiveCodeBenchTask(ConfigurableTask):
    """The YAML task, with each doc's prompt built in its LiveCodeBench style: chat turns (system
    message + question) through the chat template, or one text joined by a separator without one;
    a style that is a complete text refuses a chat template. The style's stop strings are added to
    ``until``. lm-eval few-shot examples are refused (the base style carries its own example)."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(config={k: v for k, v in config.items() if k != "class"}, **kwargs)  # lm-eval's route key
        styles = sorted(set(self.eval_docs[lcb.STYLE_COLUMN]))  # one column: the docs' tests are not read
        extra = [s for name in styles for s in lcb.resolve_style(name).stop]
        until = self.config.generation_kwargs.setdefault("until", [])
        until += [s for s in extra if s not in until]

    def fewshot_context(self, doc: dict, num_fewshot: int, system_instruction: str | None = None,
                        apply_chat_template: bool = False, fewshot_as_multiturn: bool = False, chat_template=None,
                        gen_prefix: str | None = None):
        if num_fewshot:
            raise ValueError(f"{self.config.task}: LiveCodeBench prompts take no lm-eval few-shot examples "
                             f"(num_fewshot={num_fewshot}); the base style has its own one-shot example")
        prompt = lcb.doc_prompt(doc)
        if system_instruction:
            if not prompt.chat:
                raise ValueError(f"{self.config.task}: --system_instruction cannot go before a complete-text "
                                 f"LiveCodeBench prompt ({lcb.doc_style(doc).name})")
            prompt = dataclasses.replace(prompt, system=system_instruction + SEPARATOR + prompt.system)
        if apply_chat_template and chat_template:
            return chat_template(prompt.messages(), add_generation_prompt=not gen_prefix)
        return prompt.text()
