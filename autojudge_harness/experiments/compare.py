"""``autojudge compare A B``: the documents whose answers differ between two runs of one task.

A and B are run folders written by ``evaluation.evaluate_into`` (a sweep's points/<point>/, a
demo's <mode>/, or ``lm_eval --output_path DIR/results.json --log_samples``): lm-eval's newest
results_<time>.json and its samples file, plus the per-request statistics where the backend writes
them. For each document whose filtered answer differs it prints both answers, where each run's
first lenient acceptance happened (output token index, from the per-request statistics) and both
generated texts.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from .evaluation import saved_run
from .sweep import primary_metric, question_records


def load_run(run_dir: Path, task: str | None = None, metric: str | None = None) -> tuple[str, dict[str, dict]]:
    """(task, per-document records: ``sweep.question_records``) of the run in ``run_dir``; the task
    defaults to the run's only one; ValueError naming what is missing."""
    run_dir = Path(run_dir)
    results_files = sorted(run_dir.glob("results_*.json"))
    if not results_files:
        raise ValueError(f"{run_dir}: no results_*.json (a run folder of autojudge sweep or demo, or lm_eval "
                         "--output_path DIR/results.json --log_samples)")
    tasks = sorted(json.loads(results_files[-1].read_text())["results"])
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"{run_dir} holds tasks {', '.join(tasks)}: name one with --task")
        task = tasks[0]
    saved = saved_run(run_dir, task)
    if saved is None:
        raise ValueError(f"{run_dir}: no samples of {task} beside {results_files[-1].name} (run with log_samples)")
    _, results, samples, stats = saved
    return task, question_records(samples, stats, metric or primary_metric(results["results"][task]))


def differing(a: dict[str, dict], b: dict[str, dict]) -> list[str]:
    """Document ids (in A's order, then B's extra ones) whose answers differ between ``a`` and ``b``."""
    docs = list(dict.fromkeys([*a, *b]))
    return [d for d in docs if a.get(d, {}).get("answer") != b.get(d, {}).get("answer")]


def _where(record: dict) -> str:
    token = record.get("first_lenient_token")
    if token is None:
        return "no lenient acceptance" if record.get("target_calls") is not None else "not recorded"
    return f"first lenient acceptance at output token {token}"


def report(a_dir: Path, b_dir: Path, task: str | None = None, metric: str | None = None, width: int = 100) -> str:
    """The text ``autojudge compare`` prints."""
    task, a = load_run(a_dir, task, metric)
    _, b = load_run(b_dir, task, metric)
    docs = differing(a, b)
    lines = [f"{task}: {len(docs)} of {len(set(a) | set(b))} documents answer differently (A: {a_dir}, B: {b_dir})"]
    for doc in docs:
        ra, rb = a.get(doc, {}), b.get(doc, {})
        lines += ["", f"== document {doc}: A answers {ra.get('answer')} ({_where(ra)}), "
                      f"B answers {rb.get('answer')} ({_where(rb)})"]
        for name, record in (("A", ra), ("B", rb)):
            lines.append(f"-- {name}:")
            lines += textwrap.wrap(str(record.get("text")), width, initial_indent="   ", subsequent_indent="   ",
                                   replace_whitespace=False) or ["   (empty)"]
    return "\n".join(lines)


def configure_parser(p) -> None:
    p.description = "The documents whose answers differ between two runs, with both texts."
    p.epilog = ("Reads: two run folders (a sweep's points/<point>/, a demo's <mode>/, or lm_eval --output_path "
                "DIR/results.json --log_samples): the newest results_*.json, its samples file and, where present, "
                "autojudge_samples.jsonl (where the first lenient acceptance happened). Writes: stdout only.")
    p.add_argument("a", type=Path, help="run folder A (e.g. OUT/points/lossless)")
    p.add_argument("b", type=Path, help="run folder B (e.g. OUT/points/judge_t_0.5)")
    p.add_argument("--task", help="the task (default: the runs' only one)")
    p.add_argument("--metric", help="'name,filter' whose filter's answers are compared (default: the task's first)")


def main(args) -> int:
    try:
        print(report(args.a, args.b, args.task, args.metric))
    except ValueError as err:
        raise SystemExit(f"autojudge compare: {err}") from None
    return 0
