"""``autojudge demo``: the AutoJudge story on one screen.

Three lm-eval runs of ``autojudge_hf`` on one task (default: the bundled easy GSM8K-style problems,
which the embedded 135M pair can solve): lossless speculative decoding, AutoJudge with the judge
file at its own threshold, and the top-K baseline. Each run goes through
``experiments.evaluation.run_lm_eval`` (lm-eval's Python API, chat template), with the same
model_args a user would give ``lm_eval --model autojudge_hf``. It ends with one table, side by
side: accuracy, answer agreement with lossless, accepted draft tokens per cycle, and the cost per
request (target calls, output tokens, wall time). Output in ``out_dir``:

    <point>.json            lm-eval's result JSON (config.autojudge has the settings and statistics)
    <point>.answers.json    the filtered answer per document (agreement with lossless)
    <point>.samples.jsonl   per-request statistics
    demo.json               the combined table (``sweep.combine``'s leaderboard)
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cli_args import add_pair_arguments
from .evaluation import run_lm_eval
from .sweep import SweepPoint, answers_by_doc, combine

DEFAULT_TASK = "autojudge_gsm8k_bundled_easy"


def demo_points(threshold: float, top_k: int) -> list[SweepPoint]:
    """Lossless, the judge at ``threshold``, and top-``top_k`` (lossless first, as ``combine`` needs)."""
    if threshold < 0 or top_k < 2:
        raise ValueError(f"the demo needs a threshold >= 0 and K >= 2 (K=1 is lossless); got {threshold} and {top_k}")
    return [SweepPoint("lossless"), SweepPoint("judge", threshold=threshold), SweepPoint("top-k", k=top_k)]


def point_model_args(point: SweepPoint, target: str, draft: str, window: int, judge: str | None,
                     sample_stats_path: Path) -> str:
    """``autojudge_hf`` model_args for ``point``, as typed after ``lm_eval --model_args``; ValueError
    for a value with a comma (model_args strings cannot hold one)."""
    args = {"pretrained": target, "draft": draft, "window": window}
    if point.mode == "judge":
        if not judge:
            raise ValueError("the AutoJudge point needs a judge file (--judge, or a preset that ships one)")
        args |= {"judge": judge, "threshold": point.threshold}
    elif point.mode == "top-k":
        args["accept_top_k"] = point.k
    args["sample_stats_path"] = sample_stats_path
    for key, value in args.items():
        if "," in str(value):
            raise ValueError(f"{key} {value!r} contains a comma, which lm-eval's model_args cannot hold")
    return ",".join(f"{key}={value}" for key, value in args.items())


def run_point(point: SweepPoint, model_args: str, task: str, out_dir: Path, **lm_eval_kwargs) -> tuple[dict, dict, Path]:
    """One lm-eval run; writes ``<point>.json`` and ``<point>.answers.json``; returns (results
    without samples, answers per document, result file)."""
    from lm_eval.utils import handle_non_serializable

    (out_dir / f"{point.slug}.samples.jsonl").unlink(missing_ok=True)   # the model appends to it
    results = run_lm_eval(model_args, task, log_samples=True, **lm_eval_kwargs)
    answers = answers_by_doc(results.pop("samples").get(task, []))
    result_file = out_dir / f"{point.slug}.json"
    result_file.write_text(json.dumps(results, indent=2, default=handle_non_serializable))
    (out_dir / f"{point.slug}.answers.json").write_text(json.dumps(answers, default=handle_non_serializable))
    return results, answers, result_file


def _mode_label(row: dict) -> str:
    if row["mode"] == "judge":
        return f"AutoJudge t={row['threshold']:.3g}"
    return f"top-{row['k']} baseline" if row["mode"] == "top-k" else "lossless"


def demo_table(combined: dict) -> str:
    """The side-by-side table (Markdown) of ``combined`` (``sweep.combine``'s leaderboard)."""
    lines = [f"| mode | accuracy ({combined['metric']}) | same answer as lossless | accepted/cycle | "
             "target calls/request | vs lossless | output tokens/request | wall s/request | vs lossless |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in combined["points"]:
        lines.append(f"| {_mode_label(row)} | {row['metric']:.2f} | {row['agreement_with_lossless']:.2f} | "
                     f"{row['accepted_per_cycle']:.2f} | {row['target_calls_per_request']:.1f} | "
                     f"{row['target_calls_vs_lossless']:.2f}x | {row['generated_tokens_per_request']:.1f} | "
                     f"{row['wall_time_per_request_s']:.2f} | {row['wall_time_vs_lossless']:.2f}x |")
    return "\n".join(lines)


def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def configure_parser(p) -> None:
    p.description = ("The AutoJudge story in one table: lossless vs AutoJudge (the judge at its threshold) vs the "
                     "top-K baseline, three lm-eval runs of autojudge_hf on one task.")
    p.epilog = ("Reads: the model pair (default: the embedded preset), its judge file, the lm-eval task (default: "
                f"{DEFAULT_TASK}, original problems shipped in tasks/gsm8k_bundled/easy.jsonl). Writes (under --out): "
                "<mode>.json (lm-eval's result JSON with the speed statistics), <mode>.answers.json, "
                "<mode>.samples.jsonl (per-request statistics), demo.json (the table's data). Every run is redone.")
    add_pair_arguments(p, judge_help="judge file (default: the preset's)", window=True)
    p.add_argument("--threshold", type=float, help="AutoJudge threshold (default: the judge file's)")
    p.add_argument("--top-k", type=_at_least(2), default=2, help="K of the top-K baseline")
    p.add_argument("--task", default=DEFAULT_TASK, help="lm-eval task of the three runs")
    p.add_argument("--limit", type=_at_least(0), default=10, help="documents per run (0: the whole task)")
    p.add_argument("--metric", help="'name,filter' for the accuracy column (default: the task's first metric)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")


def main(args) -> int:
    import torch

    from ..judge import load_judge
    from ..models import pair_config

    if args.threads:
        torch.set_num_threads(args.threads)
    config = pair_config(args.preset, args.target, args.draft, args.judge, args.window)
    threshold = args.threshold if args.threshold is not None else (load_judge(config.judge).threshold if config.judge else 0.0)
    points = demo_points(threshold, args.top_k)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for point in points:
        model_args = point_model_args(point, config.target, config.draft, config.window, config.judge,
                                      args.out / f"{point.slug}.samples.jsonl")
        print(f"\n== {point.label}: lm_eval --model autojudge_hf --model_args {model_args} --tasks {args.task} "
              f"--include_path tasks --apply_chat_template{f' --limit {args.limit}' if args.limit else ''}"
              f"{f' --device {args.device}' if args.device else ''} --output_path {args.out / point.slug}", flush=True)
        results, answers, result_file = run_point(point, model_args, args.task, args.out,
                                                  limit=args.limit or None, device=args.device)
        runs.append((point, results, answers, result_file))
    combined = combine(runs, args.task, args.metric)
    (args.out / "demo.json").write_text(json.dumps(combined, indent=2))
    pair = combined["pair"]
    print(f"\n{args.task}: {combined['points'][0]['requests']} problems, {pair['target']} / {pair['draft']}, W={pair['window']}, "
          f"judge {config.judge}\n")
    print(demo_table(combined))
    print("\nResults JSONs (lm-eval's format; statistics under config.autojudge):")
    for row in combined["points"]:
        print(f"  {row['results_file']}")
    print(f"Table data: {args.out / 'demo.json'}")
    return 0
