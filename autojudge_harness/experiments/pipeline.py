"""Mine -> train -> evaluate for one model pair and a GSM8K-format dataset (resumable).

    autojudge pipeline --preset smollm2-135m --data train.jsonl --limit 60 --run-dir runs/smollm2
    autojudge pipeline --target meta-llama/Llama-3.1-8B-Instruct --draft meta-llama/Llama-3.2-1B-Instruct \
        --dataset openai/gsm8k --run-dir runs/llama --eval-task autojudge_gsm8k_cot_llama_zeroshot --device cuda

Steps: mine Algorithm 1 records into RUN/mined (rerun resumes), merge, train the judge
(RUN/judge.safetensors + report JSON/PNG), then run lm-eval's ``autojudge_hf`` on the evaluation
task losslessly and with the judge, and write RUN/pipeline.json comparing the two.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cli_args import add_pair_arguments
from ..mining.store import MERGED_FEATURES, merge
from ..settings import DEFAULT_WINDOW
from ..training import train
from .evaluation import run_lm_eval


def evaluate(model_args: str, task: str, limit: int | None, device: str) -> dict:
    """One lm-eval run of autojudge_hf; returns the task metrics and the speed statistics."""
    results = run_lm_eval(model_args, task, limit=limit, device=device)
    metrics = {k: v for k, v in results["results"][task].items() if "stderr" not in k and isinstance(v, (int, float))}
    return {"metrics": metrics, "stats": results["config"]["autojudge"]["stats"]}


def configure_parser(p) -> None:
    p.description = "Mine -> train -> evaluate (lossless vs the new judge through lm-eval) for one pair, resumable."
    p.epilog = ("Reads: a GSM8K-format JSONL (--data) or a hub dataset (--dataset); the model pair. Writes (under "
                "--run-dir): mined/ (the mining run, resumable), judge.safetensors (+ .report.json/.png), "
                "pipeline.json (mining totals, classifier, lm-eval metrics and speed of both modes).")
    add_pair_arguments(p)
    p.add_argument("--data", help="GSM8K-format JSONL to mine (question, answer '#### N')")
    p.add_argument("--dataset", help="hub dataset id instead of --data, e.g. openai/gsm8k (split train)")
    p.add_argument("--limit", type=int, default=60, help="questions to mine")
    p.add_argument("--max-new-tokens", type=int, default=192, help="mining response length cap (default 192)")
    p.add_argument("--run-dir", type=Path, required=True, help="output folder (mined run, judge, results)")
    p.add_argument("--feature-kind", default="DD-DT", choices=("DT", "DD-DT"),
                   help="judge features: DT or DD-DT (default)")
    p.add_argument("--recall", type=float, default=0.9,
                   help="recall of the important class that sets the judge's threshold (default 0.9)")
    p.add_argument("--eval-task", default="autojudge_gsm8k_bundled",
                   help="lm-eval task of the evaluation (default autojudge_gsm8k_bundled)")
    p.add_argument("--eval-limit", type=int, help="documents evaluated (default: all)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="draft tokens per cycle (W)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")


def main(args) -> int:
    from ..mining.pipeline import load_gsm8k, mine_gsm8k, select_ids
    from ..models import load_pair, pair_config

    config = pair_config(args.preset, args.target, args.draft)
    target, draft = config.target, config.draft
    mined = args.run_dir / "mined"
    rows, info = load_gsm8k(args.data, args.dataset)
    pair = load_pair(target, draft, device=args.device)
    totals = mine_gsm8k(pair, rows, info, mined, select_ids(len(rows), 0, args.limit), max_new_tokens=args.max_new_tokens)
    del pair
    merge(mined)
    judge = args.run_dir / "judge.safetensors"
    report = train(mined / MERGED_FEATURES, judge, args.feature_kind, args.recall)
    pair_args = f"pretrained={target},draft={draft},window={args.window}"
    summary = {
        "mining": totals, "classifier": {k: report[k] for k in ("counts", "kinds", "threshold", "at_threshold", "warnings")},
        "lossless": evaluate(pair_args, args.eval_task, args.eval_limit, args.device),
        "autojudge": evaluate(f"{pair_args},judge={judge}", args.eval_task, args.eval_limit, args.device),
    }
    (args.run_dir / "pipeline.json").write_text(json.dumps(summary, indent=2))
    base = summary["lossless"]["stats"]
    for mode in ("lossless", "autojudge"):
        s = summary[mode]["stats"]
        print(f"{mode:9s} metrics={summary[mode]['metrics']} target calls/request={s['target_calls_per_request']:.1f} "
              f"({s['target_calls_per_request'] / base['target_calls_per_request']:.2f}x lossless) wall s/request="
              f"{s['wall_time_per_request_s']:.2f} ({s['wall_time_per_request_s'] / base['wall_time_per_request_s']:.2f}x) "
              f"accepted/cycle={s['accepted_per_cycle']:.2f}")
    for note in report["warnings"]:
        print(f"warning (judge training): {note}")
    print(f"wrote {args.run_dir / 'pipeline.json'}")
    return 0
