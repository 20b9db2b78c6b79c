"""Registers the AutoJudge models with lm-eval 0.4.13, lazily ("module:Class"), so that importing
one backend never imports another and built-in models (hf, vllm, ...) keep working.

Three ways in, none editing lm-eval: the ``autojudge_harness.pth`` start-up hook for the plain
``lm_eval`` / ``python -m lm_eval`` CLI, the ``autojudge-lm-eval`` console script, and
``register()`` before ``lm_eval.simple_evaluate`` in Python.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

MODELS = {
    "autojudge_hf": "autojudge_harness.lm_eval_models.hf:AutoJudgeHFLM",
    "autojudge_vllm": "autojudge_harness.lm_eval_models.vllm:AutoJudgeVLLM",
}


class DropRecords(logging.Filter):
    """A logging filter that drops the records for which ``drop(message)`` is true."""

    def __init__(self, drop: Callable[[str], bool]):
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.drop(record.getMessage())


def _custom_kwargs_hint(message: str) -> bool:
    """lm-eval's hint, logged for every task with a ``custom_dataset`` function, that such a function
    takes kwargs from ``--metadata``: the AutoJudge tasks' loaders take none."""
    return message.startswith("autojudge_") and "Custom kwargs can be passed to `--metadata`" in message


def _once(marker: str) -> Callable[[str], bool]:
    """Drop every record containing ``marker`` after the first (for a warning repeated per run)."""
    seen = set()

    def drop(message: str) -> bool:
        if marker not in message:
            return False
        repeated = marker in seen
        seen.add(marker)
        return repeated
    return drop


LOG_FILTERS = {
    "lm_eval.api.task": DropRecords(_custom_kwargs_hint),
    # one process, several evaluations (autojudge sweep): the gen_kwargs override is the same each time
    "lm_eval.evaluator": DropRecords(_once("specified through cli, these settings will update set parameters")),
}


def quiet_lm_eval_logs() -> None:
    """Install ``LOG_FILTERS`` on lm-eval's loggers (idempotent: a logger holds a filter once)."""
    for logger_name, log_filter in LOG_FILTERS.items():
        logging.getLogger(logger_name).addFilter(log_filter)


def register() -> None:
    """Register every AutoJudge model (idempotent) and ``quiet_lm_eval_logs``. Imports lm_eval.models
    first: lm-eval fills its registry with the built-ins only while the registry is empty."""
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)
    quiet_lm_eval_logs()


def is_lm_eval_cli(argv: list[str] | None = None) -> bool:
    """True when this process is the lm-eval CLI (``lm_eval ...`` or ``python -m lm_eval ...``)."""
    argv = sys.orig_argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1] in ("lm_eval", "lm_eval.__main__")
        name = arg.replace("\\", "/").rsplit("/", 1)[-1]
        if name in ("lm_eval", "lm-eval"):
            return True
    return False


def cli_output_path(argv: list[str] | None = None) -> str | None:
    """The CLI's ``--output_path`` / ``-o`` value, or None (not the CLI, or not given)."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg in ("--output_path", "-o") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--output_path="):
            return arg.split("=", 1)[1]
    return None


def cli_evaluate() -> None:
    """``autojudge-lm-eval``: lm-eval's own CLI with the AutoJudge models registered."""
    register()
    from lm_eval.__main__ import cli_evaluate as lm_eval_cli

    lm_eval_cli()
