"""Prompts of an lm-eval task as token ids, built by the task itself (its doc_to_text), so that
benchmarks, tests and mining see exactly what ``lm_eval`` sends to the model."""

from __future__ import annotations

from pathlib import Path


def task_docs_and_texts(task: str, include_path: str | Path | None = None, limit: int | None = None):
    """(docs, prompt texts) of ``task``'s evaluation split, first ``limit`` docs."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=None if include_path is None else str(include_path))
    task_obj = manager.load(task)["tasks"][task]
    docs = list(task_obj.eval_docs)[:limit]
    return docs, [task_obj.doc_to_text(doc) for doc in docs]


def encode_prompt(tokenizer, text: str, chat: bool = True) -> list[int]:
    """Token ids for ``text``: a single user turn through the chat template, or plain text."""
    if chat:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
    return tokenizer(text)["input_ids"]
