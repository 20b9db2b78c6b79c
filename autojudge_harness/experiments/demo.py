"""``autojudge demo``: the AutoJudge story on one screen.

Three lm-eval runs of ``autojudge_hf`` on one task (default: the bundled easy GSM8K-style problems,
which the embedded 135M pair can solve): lossless speculative decoding, AutoJudge with the judge
file at its own threshold, and the top-K baseline. Each run is lm-eval's Python API (chat
template) with the same model_args a user would give ``lm_eval --model autojudge_hf``. It ends
with one table, side by side, paired with lossless per problem (``sweep.combine``): accuracy and
answer agreement with lossless with 95% bootstrap intervals, accepted draft tokens per cycle, and
the cost per request (target calls with its interval, outputs that hit the token cap, output
tokens, wall time). Output in ``out_dir``:

    <point>/        lm-eval's results_<time>.json, samples_<task>_<time>.jsonl (the generated
                    texts) and autojudge_samples.jsonl (per-request statistics): ``evaluation``
    demo.json       the combined table (``sweep.combine``'s leaderboard)
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cli_args import add_pair_arguments
from .evaluation import STATS_FILE, evaluate_into, run_lm_eval, saved_run
from .sweep import LOSSLESS, PointRun, SweepPoint, combine, rule_points

DEFAULT_TASK = "autojudge_gsm8k_bundled_easy"


def demo_points(threshold: float, top_k: int, judge: str | None) -> list[SweepPoint]:
    """Lossless, the judge at ``threshold``, and top-``top_k`` (lossless first, as ``combine`` needs)."""
    if threshold < 0 or top_k < 2:
        raise ValueError(f"the demo needs a threshold >= 0 and K >= 2 (K=1 is lossless); got {threshold} and {top_k}")
    return [LOSSLESS, *rule_points("judge", [threshold], judge), *rule_points("top_k", [top_k])]


def point_model_args(point: SweepPoint, target: str, draft: str, window: int, sample_stats_path: Path) -> str:
    """``autojudge_hf`` model_args for ``point``, as typed after ``lm_eval --model_args``; ValueError
    for a value with a comma (model_args strings cannot hold one)."""
    args = {"pretrained": target, "draft": draft, "window": window, **point.model_args,
            "sample_stats_path": sample_stats_path}
    for key, value in args.items():
        if "," in str(value):
            raise ValueError(f"{key} {value!r} contains a comma, which lm-eval's model_args cannot hold")
    return ",".join(f"{key}={value}" for key, value in args.items())


def run_point(point: SweepPoint, model_args: str, task: str, point_dir: Path, **lm_eval_kwargs) -> PointRun:
    """One lm-eval run into ``point_dir`` (``evaluation.evaluate_into``'s files, an earlier run's
    removed first)."""
    for old in [*point_dir.glob("results_*.json"), *point_dir.glob("samples_*.jsonl"), point_dir / STATS_FILE]:
        old.unlink(missing_ok=True)
    evaluate_into(point_dir, lambda **tracker: run_lm_eval(model_args, task, log_samples=True, **tracker,
                                                           **lm_eval_kwargs))
    results_file, results, samples, stats = saved_run(point_dir, task)
    return PointRun(point, results, samples, stats, results_file)


def _mode_label(row: dict) -> str:
    if row["rule"] == "judge":
        return f"AutoJudge t={row['model_args']['threshold']:.3g}"
    return f"top-{row['model_args']['accept_top_k']} baseline" if row["rule"] == "top_k" else row["label"]


def _ci(interval) -> str:
    return "" if not interval else f" [{interval[0]:.2f}, {interval[1]:.2f}]"


def demo_table(combined: dict) -> str:
    """The side-by-side table (Markdown) of ``combined`` (``sweep.combine``'s leaderboard), with
    95% paired bootstrap intervals over problems."""
    lines = [f"| mode | accuracy ({combined['metric']}) [95% CI] | same answer as lossless [95% CI] | accepted/cycle | "
             "target calls/request | vs lossless [95% CI] | capped outputs | output tokens/request | wall s/request "
             "| vs lossless |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in combined["points"]:
        capped = "-" if row.get("capped") is None else str(row["capped"])
        lines.append(f"| {_mode_label(row)} | {row['metric']:.2f}{_ci(row.get('metric_ci'))} | "
                     f"{row['agreement_with_lossless']:.2f}{_ci(row.get('agreement_ci'))} | "
                     f"{row['accepted_per_cycle']:.2f} | {row['target_calls_per_request']:.1f} | "
                     f"{row['target_calls_vs_lossless']:.2f}x{_ci(row.get('target_calls_vs_lossless_ci'))} | {capped} | "
                     f"{row['generated_tokens_per_request']:.1f} | {row['wall_time_per_request_s']:.2f} | "
                     f"{row['wall_time_vs_lossless']:.2f}x |")
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
                "<mode>/ (lm-eval's results_<time>.json with the speed statistics under config.autojudge, "
                "samples_<task>_<time>.jsonl with the generated texts, autojudge_samples.jsonl with the per-request "
                "statistics), demo.json (the table's data). Every run is redone. Compare two modes' outputs: "
                "autojudge compare OUT/lossless OUT/judge_t_...")
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
    if not config.judge:
        raise SystemExit("the AutoJudge point needs a judge file (--judge, or a preset that ships one)")
    threshold = args.threshold if args.threshold is not None else load_judge(config.judge).threshold
    points = demo_points(threshold, args.top_k, config.judge)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for point in points:
        model_args = point_model_args(point, config.target, config.draft, config.window,
                                      args.out / point.slug / STATS_FILE)
        print(f"\n== {point.label}: lm_eval --model autojudge_hf --model_args {model_args} --tasks {args.task} "
              f"--include_path tasks --apply_chat_template{f' --limit {args.limit}' if args.limit else ''}"
              f"{f' --device {args.device}' if args.device else ''} --log_samples "
              f"--output_path {args.out / point.slug}/results.json",
              flush=True)
        runs.append(run_point(point, model_args, args.task, args.out / point.slug, limit=args.limit or None,
                              device=args.device))
    combined = combine(runs, args.task, args.metric)
    (args.out / "demo.json").write_text(json.dumps(combined, indent=2))
    pair = combined["pair"]
    print(f"\n{args.task}: {combined['documents']} problems, {pair['target']} / {pair['draft']}, W={pair['window']}, "
          f"judge {config.judge}\n")
    print(demo_table(combined))
    print("(95% paired bootstrap intervals over the problems; capped: outputs that hit max_gen_toks)")
    print("\nResults JSONs (lm-eval's format; statistics under config.autojudge; samples beside them):")
    for row in combined["points"]:
        print(f"  {row['results_file']}")
    print(f"Table data: {args.out / 'demo.json'}")
    return 0
