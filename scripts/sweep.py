"""Sweep acceptance rules for one pair, task and judge: lossless, judge thresholds, top-K.

    python scripts/sweep.py --preset smollm2-135m --task autojudge_gsm8k_bundled --top-k 2,4,8 --out runs/sweep
    python scripts/sweep.py --target meta-llama/Llama-3.1-8B-Instruct --draft meta-llama/Llama-3.2-1B-Instruct \
        --judge classifiers/llama.safetensors --thresholds 0.05,0.1,0.2 --task autojudge_gsm8k_cot_llama_zeroshot \
        --device cuda --out runs/llama-sweep

The models are loaded once. Writes one lm-eval result JSON per point, OUT/sweep.json (the
combined leaderboard) and OUT/sweep.png (Pareto plots); a rerun skips finished points.
Thresholds default to the judge's own plus --table-points spread over its threshold table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def number_list(kind):
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


def print_table(combined: dict) -> None:
    print(f"\n{combined['task']} ({combined['metric']}), {combined['pair']['target']} / {combined['pair']['draft']}, "
          f"W={combined['pair']['window']}, judge={combined['judge']}")
    print("| point | metric | agreement w/ lossless | accepted/cycle | vs lossless | tok/s | speed vs lossless | judge-accepted share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in combined["points"]:
        print(f"| {r['label']} | {r['metric']:.3f} | {r['agreement_with_lossless']:.2f} | {r['accepted_per_cycle']:.2f} | "
              f"{r['accepted_per_cycle_vs_lossless']:.2f}x | {r['tokens_per_second']:.1f} | {r['speed_vs_lossless']:.2f}x | "
              f"{r['judge_accepted_fraction']:.2f} |")
    for y, fronts in combined["pareto"].items():
        print(f"Pareto front, {y} vs accepted/cycle: {', '.join(fronts['accepted_per_cycle'])}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smollm2-135m", help="named pair; '' to use --target/--draft only")
    p.add_argument("--target")
    p.add_argument("--draft")
    p.add_argument("--judge", help="judge file (default: the preset's)")
    p.add_argument("--window", type=int)
    p.add_argument("--thresholds", type=number_list(float), help="comma-separated judge thresholds")
    p.add_argument("--table-points", type=int, default=6,
                   help="without --thresholds: this many thresholds from the judge's threshold table")
    p.add_argument("--top-k", type=number_list(int), default=[], help="comma-separated K for the top-K baseline")
    p.add_argument("--task", default="autojudge_gsm8k_bundled")
    p.add_argument("--include-path", type=Path, default=REPO / "tasks")
    p.add_argument("--metric", help="'name,filter' (default: the task's first metric)")
    p.add_argument("--limit", type=float)
    p.add_argument("--gen-kwargs", help="lm-eval gen_kwargs override, e.g. max_gen_toks=128")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--confirm_run_unsafe_code", action="store_true",
                   help="allow tasks that execute model-written code (LiveCodeBench), as lm_eval's flag")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--compile", action="store_true", help="static KV cache + torch.compile (GPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import torch
    from lm_eval.tasks import TaskManager

    from autojudge_harness.judge import load_judge
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM
    from autojudge_harness.models import pair_config
    from autojudge_harness.sweep import default_thresholds, run_sweep, sweep_points

    if args.threads:
        torch.set_num_threads(args.threads)
    judge = pair_config(args.preset, args.target, args.draft, args.judge, args.window).judge
    thresholds = args.thresholds
    if thresholds is None:
        thresholds = default_thresholds(load_judge(judge), args.table_points) if judge else []
    points = sweep_points(thresholds, args.top_k)
    lm = AutoJudgeHFLM(pretrained=args.target, draft=args.draft, window=args.window, preset=args.preset,
                       device=args.device, dtype=args.dtype, compile=args.compile)
    limit = int(args.limit) if args.limit and args.limit >= 1 else args.limit
    combined = run_sweep(lm, points, args.task, args.out, judge,
                         task_manager=TaskManager(include_path=str(args.include_path)),
                         limit=limit, gen_kwargs=args.gen_kwargs, apply_chat_template=not args.no_chat,
                         metric=args.metric, confirm_run_unsafe_code=args.confirm_run_unsafe_code)
    print_table(combined)
    print(f"\nwrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")


if __name__ == "__main__":
    main()
