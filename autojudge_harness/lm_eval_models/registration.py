"""Registers the AutoJudge models with lm-eval 0.4.13, lazily ("module:Class"), so that importing
one backend never imports another and built-in models (hf, vllm, ...) keep working.

Three ways in, none editing lm-eval: the ``autojudge_harness.pth`` start-up hook for the plain
``lm_eval`` / ``python -m lm_eval`` CLI, the ``autojudge-lm-eval`` console script, and
``register()`` before ``lm_eval.simple_evaluate`` in Python.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
    """Register every AutoJudge model (idempotent), ``quiet_lm_eval_logs`` and ``install_results_hook``.
    Imports lm_eval.models first: lm-eval fills its registry with the built-ins only while the registry
    is empty."""
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)
    quiet_lm_eval_logs()
    install_results_hook()


def is_lm_eval_cli(argv: list[str] | None = None) -> bool:
    """True when this process is the lm-eval CLI (``lm_eval ...``, ``python -m lm_eval ...`` or
    ``autojudge-lm-eval ...``)."""
    argv = sys.orig_argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1] in ("lm_eval", "lm_eval.__main__")
        name = arg.replace("\\", "/").rsplit("/", 1)[-1]
        if name in ("lm_eval", "lm-eval", "autojudge-lm-eval"):
            return True
    return False


def cli_option(names: tuple[str, ...], argv: list[str] | None = None) -> str | None:
    """The value of the lm-eval CLI option ``names`` (``--opt VALUE`` or ``--opt=VALUE``), or None
    (not the CLI, or not given)."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


def cli_output_path(argv: list[str] | None = None) -> str | None:
    """The CLI's ``--output_path`` / ``-o`` value, or None (not the CLI, or not given)."""
    return cli_option(("--output_path", "-o"), argv)


def pending_stats_path() -> Path | None:
    """Where a model writes its per-request statistics in a CLI run with --output_path: a pending file
    there, which ``place_stats_file`` moves beside the results file once lm-eval saves it; else None."""
    out = cli_output_path()
    if out is None:
        return None
    folder = Path(out).parent if Path(out).suffix == ".json" else Path(out)
    return folder / f"autojudge_samples_{time.strftime('%Y-%m-%dT%H-%M-%S')}_{os.getpid()}{PENDING_SUFFIX}"


def check_cli_output_path() -> None:
    """``paths.PathError`` unless the CLI's --output_path (if any) can be written: a folder, or a ``.json``
    file name (checked before a model loads, so that the results are not lost after the run)."""
    from ..paths import check_writable

    out = cli_output_path()
    if out:
        check_writable(out, "--output_path", folder=Path(out).suffix != ".json")


def sampling_source(task: str, argv: list[str] | None = None) -> str:
    """Who asked for sampling in a request of ``task``: the CLI's ``--gen_kwargs`` when it names
    do_sample or temperature, else the task's generation_kwargs."""
    given = cli_option(("--gen_kwargs",), argv) or ""
    if "do_sample" in given or "temperature" in given:
        return f"--gen_kwargs ({given})"
    return f"task {task!r}"


# an autojudge_hf statistics file written during a CLI run, renamed after the results file once that is saved
PENDING_SUFFIX = ".partial.jsonl"


def results_file(output_path: str | Path, model_folder: str, date_id: str) -> Path:
    """The results JSON that lm-eval 0.4.13's ``EvaluationTracker.save_results_aggregated`` writes."""
    path = Path(output_path)
    if path.suffix == ".json":
        return path.with_name(f"{path.stem}_{date_id}.json")
    return path / model_folder / f"results_{date_id}.json"


def stats_file_for(results: Path) -> Path:
    """The per-request statistics file beside ``results`` (``results_<date>.json``), with its date:
    ``autojudge_samples_<date>.jsonl``, as lm-eval names ``samples_<task>_<date>.jsonl``."""
    return results.with_name(f"autojudge_samples_{results.stem.rsplit('_', 1)[-1]}.jsonl")


def place_stats_file(info: dict, results: Path) -> None:
    """Move a pending statistics file (``info["sample_stats_file"]``) beside the saved ``results`` and
    record its final path in ``info`` and in the results file."""
    pending = info.get("sample_stats_file")
    if not (pending and pending.endswith(PENDING_SUFFIX) and Path(pending).is_file() and results.is_file()):
        return
    final = stats_file_for(results)
    shutil.move(pending, final)
    info["sample_stats_file"] = str(final)
    saved = json.loads(results.read_text(encoding="utf-8"))
    saved["config"]["autojudge"]["sample_stats_file"] = str(final)
    results.write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")


def summary(info: dict) -> str:
    """The terminal summary of a run's ``results["config"]["autojudge"]``: cost per request,
    accepted tokens per cycle, lenient acceptances, and the statistics file."""
    stats = info.get("stats") or {}
    params = info.get("rule_params") or {key: info.get(key) for key in ("threshold", "accept_top_k")}
    numbers = [f"{key}={value:g}" for key, value in params.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)]   # file paths left out
    rule = " ".join([info.get("mode", "?"), *numbers])
    head = f"AutoJudge ({rule}, window {info.get('window')}): {stats.get('requests', 0)} generate_until requests"
    if not stats.get("requests"):
        return head
    stats_file = info.get("sample_stats_file") or "not written (give --output_path)"
    return "\n".join([
        head,
        f"  per request: {stats['target_calls_per_request']:.1f} target calls, {stats['draft_calls_per_request']:.1f} "
        f"draft calls, {stats['generated_tokens_per_request']:.1f} tokens, {stats['wall_time_per_request_s']:.2f} s",
        f"  accepted per cycle: {stats['accepted_per_cycle']:.2f} draft tokens ({stats['tokens_per_cycle']:.2f} tokens "
        f"per cycle with the target's own); acceptance rate {stats['acceptance_rate']:.1%}",
        f"  lenient acceptances: {stats['accepted_lenient']} ({stats['lenient_accepted_fraction']:.1%} of accepted "
        "draft tokens)",
        f"  per-request statistics: {stats_file}"])


def install_results_hook() -> None:
    """Wrap lm-eval's ``EvaluationTracker.save_results_aggregated`` (idempotent): after it saves an AutoJudge
    run's results, ``place_stats_file``; in the CLI, also print ``summary`` when the process ends (after
    lm-eval's table)."""
    from lm_eval.loggers import EvaluationTracker

    save = EvaluationTracker.save_results_aggregated
    if getattr(save, "autojudge", False):
        return

    def save_results_aggregated(self, results: dict, samples: dict | None = None) -> None:
        save(self, results, samples)
        info = results.get("config", {}).get("autojudge")
        if info is None:
            return
        if self.output_path and getattr(self, "date_id", None):
            place_stats_file(info, results_file(self.output_path, self.general_config_tracker.model_name_sanitized,
                                                self.date_id))
        if is_lm_eval_cli():
            atexit.register(print, "\n" + summary(info))

    save_results_aggregated.autojudge = True
    EvaluationTracker.save_results_aggregated = save_results_aggregated


def cli_evaluate() -> None:
    """``autojudge-lm-eval``: lm-eval's own CLI with the AutoJudge models registered."""
    register()
    from lm_eval.__main__ import cli_evaluate as lm_eval_cli

    lm_eval_cli()
