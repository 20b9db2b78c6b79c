"""Registers the AutoJudge models with lm-eval 0.4.13, lazily ("module:Class"), so that importing
one backend never imports another and built-in models (hf, vllm, ...) keep working.

Three ways in, none editing lm-eval: the ``autojudge_harness.pth`` start-up hook for the plain
``lm_eval`` / ``python -m lm_eval`` CLI, the ``autojudge-lm-eval`` console script, and
``register()`` before ``lm_eval.simple_evaluate`` in Python.
"""

from __future__ import annotations

import sys

MODELS = {
    "autojudge_hf": "autojudge_harness.lm_eval_models.hf:AutoJudgeHFLM",
    "autojudge_vllm": "autojudge_harness.lm_eval_models.vllm:AutoJudgeVLLM",
}


def register() -> None:
    """Register every AutoJudge model (idempotent). Imports lm_eval.models first: lm-eval fills
    its registry with the built-ins only while the registry is empty."""
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)


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
