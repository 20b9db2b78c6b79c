"""The one prompt builder: an lm-eval task's prompts as token ids, built by the task itself
(``fewshot_context`` with the task's own shot count, then the tokenizer's chat template), so that
decoding benchmarks, mining, sweeps and tests see exactly what ``lm_eval --apply_chat_template``
sends to the model."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .resources import tasks_path


@contextmanager
def environment(**values: str | None):
    """Set (or unset, for None) environment variables for the duration of the block."""
    previous = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_task(task: str, include_path: str | Path | None = None, data_env: dict[str, str] | None = None):
    """The lm-eval task object ``task`` from ``include_path`` (default: the installed task folder),
    falling back to lm-eval's built-in tasks. ``data_env``: environment variables set (unless already
    set) while the task is constructed, e.g. a local data file the task reads its docs from."""
    from lm_eval.tasks import TaskManager

    folder = str(include_path or tasks_path())
    with environment(**{key: os.environ.get(key) or value for key, value in (data_env or {}).items()}):
        manager = TaskManager(include_path=folder, include_defaults=False)
        if task not in manager.all_tasks:
            manager = TaskManager(include_path=folder)
        if task not in manager.all_tasks:
            raise ValueError(f"unknown task {task!r} (not in {folder} nor among lm-eval's tasks)")
        return manager.load([task])["tasks"][task]


class TaskPrompts:
    """Prompts of one lm-eval task. ``chat``: through the chat template (``--apply_chat_template``,
    few-shot examples as turns) or plain text. ``stop``: the task's stop strings (``until``)."""

    def __init__(self, task: str, include_path: str | Path | None = None, data_env: dict[str, str] | None = None,
                 chat: bool = True):
        self.task_name = task
        self.task = load_task(task, include_path, data_env)
        self.chat = chat
        self.num_fewshot = self.task.config.num_fewshot or 0
        self.stop = tuple(self.task.config.generation_kwargs.get("until", ()))

    def docs(self, limit: int | None = None) -> list[dict]:
        """The task's evaluation docs (the first ``limit``)."""
        return list(self.task.eval_docs)[:limit]

    def messages(self, doc: dict) -> list[dict]:
        """The chat messages lm-eval builds for ``doc``."""
        return self.task.fewshot_context(doc, num_fewshot=self.num_fewshot, apply_chat_template=True,
                                         fewshot_as_multiturn=True,
                                         chat_template=lambda msgs, add_generation_prompt=True: msgs)

    def token_ids(self, tokenizer, doc: dict) -> list[int]:
        """Token ids of ``doc``'s prompt for ``tokenizer``."""
        if self.chat:
            return tokenizer.apply_chat_template(self.messages(doc), add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)
        text = self.task.fewshot_context(doc, num_fewshot=self.num_fewshot)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
