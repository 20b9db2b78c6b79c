"""One lm-eval run of an AutoJudge model through lm-eval's Python API, as the experiment drivers
use it: the installed task folder, the chat template, and the run's speed statistics.

``evaluate_into`` keeps every output of a run in one folder, in lm-eval's own files (what
``lm_eval --output_path DIR/results.json --log_samples`` writes, so lm-eval's tooling reads them):

    results_<timestamp>.json           results, config (config.autojudge: settings and statistics),
                                       model_name, task_hashes, total_evaluation_time_seconds ...
    samples_<task>_<timestamp>.jsonl   one line per document and filter, with the generated text
    autojudge_samples.jsonl            the per-request decoding statistics (``STATS_FILE``)
"""

from __future__ import annotations

import json
from pathlib import Path

from ..jsonl import iter_jsonl_objects

STATS_FILE = "autojudge_samples.jsonl"


def run_lm_eval(model_args: str, task: str, model: str = "autojudge_hf", **kwargs) -> dict:
    """``lm_eval.simple_evaluate`` of ``model`` with ``model_args`` on ``task`` (chat template
    applied); ``kwargs`` go to simple_evaluate (limit, samples, device, gen_kwargs, log_samples...)."""
    import lm_eval

    from ..lm_eval_models.registration import register
    from ..resources import tasks_path

    register()
    return lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=[task],
                                   task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_path())),
                                   apply_chat_template=True, **kwargs)


def evaluate_into(out_dir: Path, evaluate, model_name: str | None = None) -> Path:
    """Run ``evaluate(evaluation_tracker=...)`` (a ``simple_evaluate`` call with ``log_samples``)
    and write lm-eval's results and samples files into ``out_dir``; returns the results file.
    ``model_name``: recorded when lm-eval cannot read one from model_args (a model object)."""
    from lm_eval.loggers import EvaluationTracker

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = EvaluationTracker(output_path=str(out_dir / "results.json"))
    results = evaluate(evaluation_tracker=tracker)
    config = tracker.general_config_tracker
    if model_name and config.model_source == "CUSTOM":
        config.model_name = config.model_name_sanitized = model_name
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    results_file = out_dir / f"results_{tracker.date_id}.json"
    if not results_file.is_file():
        raise OSError(f"lm-eval did not write {results_file} (see its warning above)")
    return results_file


def saved_run(out_dir: Path, task: str) -> tuple[Path, dict, list[dict], list[dict]] | None:
    """The newest run ``evaluate_into`` left in ``out_dir``: (results file, results, lm-eval's
    samples of ``task``, per-request statistics); None when it holds no complete run."""
    out_dir = Path(out_dir)
    results_files = sorted(out_dir.glob("results_*.json"))
    if not results_files:
        return None
    stamp = results_files[-1].name.removeprefix("results_").removesuffix(".json")
    samples_file = out_dir / f"samples_{task}_{stamp}.jsonl"
    if not samples_file.is_file():
        return None
    return (results_files[-1], json.loads(results_files[-1].read_text()), read_jsonl(samples_file),
            read_jsonl(out_dir / STATS_FILE))


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; [] when it does not exist."""
    return [row for _, _, row in iter_jsonl_objects(path)] if Path(path).is_file() else []
