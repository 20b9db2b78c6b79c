"""LiveCodeBench 5-fold out-of-fold protocol in one command (resumable per fold):
mine every problem once -> per fold: train a judge on the other folds' problems, decode the fold
with it through lm-eval -> one merged result JSON + PNG. Protocol: classifiers/out_of_fold.py.

    # the paper's setting on a GPU (release_v5 = 880 problems from the hub)
    python scripts/lcb_5fold.py --target meta-llama/Llama-3.1-8B-Instruct --draft meta-llama/Llama-3.2-1B-Instruct \\
        --release release_v5 --run-dir runs/lcb --window 64 --device cuda
    # CPU demo: the embedded pair on the bundled problems
    python scripts/lcb_5fold.py --preset smollm2-135m --data tasks/livecodebench_bundled/problems.jsonl \\
        --run-dir runs/lcb-demo --max-new-tokens 96 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="model pair preset, e.g. smollm2-135m (its GSM8K judge is NOT used)")
    p.add_argument("--target")
    p.add_argument("--draft")
    p.add_argument("--data", help="local LiveCodeBench JSONL (hub columns) instead of the hub")
    p.add_argument("--release", default="release_v5", help="hub release (default release_v5, the paper's 880)")
    p.add_argument("--limit", type=int, help="use the first N problems only")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="fold shuffle and classifier split seed")
    p.add_argument("--max-new-tokens", type=int, default=2048, help="mining responses and evaluation max_gen_toks")
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--threshold", type=float, help="override each fold judge's threshold")
    p.add_argument("--feature-kind", default="DD-DT", choices=("DT", "DD-DT"))
    p.add_argument("--recall", type=float, default=0.9)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--lookahead", type=int, default=8)
    p.add_argument("--no-lossless-baseline", action="store_true", help="skip the lossless run over all problems")
    p.add_argument("--timeout", type=float, default=6.0, help="grader: seconds per test")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import torch

    from autojudge_harness.grading import Grader
    from autojudge_harness.models import pair_config
    from classifiers.out_of_fold import SUMMARY_FILE, load_data, run

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = pair_config(args.preset, args.target, args.draft)
    except ValueError as err:
        raise SystemExit(f"give --preset or both --target and --draft ({err})") from None
    data = load_data(args.data, args.release, args.limit)
    summary = run(args.run_dir, data, config.target, config.draft, args.folds, args.seed, args.max_new_tokens,
                  args.window, args.threshold, args.feature_kind, args.recall, args.val_fraction, args.lookahead,
                  not args.no_lossless_baseline, args.device, Grader(timeout=args.timeout),
                  progress=not args.no_progress)
    for name, r in summary["results"].items():
        print(f"{name:22s} pass@1={r['pass@1']:.3f} ({r['passed']}/{r['problems']}) "
              f"accepted/cycle={r['accepted_per_cycle']:.2f} tokens/s={r['tokens_per_second']:.1f}")
    for f in summary["folds"]:
        print(f"fold {f['fold']}: pass@1={f['pass@1']:.3f} classifier={f['classifier_status']} "
              f"accepted/cycle={f['stats']['accepted_per_cycle']:.2f}")
    print(f"wrote {args.run_dir / SUMMARY_FILE} and lcb_5fold.png")
    print(json.dumps({"out": str(args.run_dir / SUMMARY_FILE)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
