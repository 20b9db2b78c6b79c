"""``autojudge bench drafts``: its arguments and entry point. The measurement itself is
``bench.drafts`` (torch, the models), imported when the job runs, so that ``--help`` stays light."""

from __future__ import annotations

import json
import time
from pathlib import Path


def configure_parser(p) -> None:
    p.description = ("Measure derived drafts of the embedded target (agreement with its greedy tokens, accepted "
                     "tokens per cycle, step cost), or fit an exit head.")
    p.epilog = ("Reads: --data, a GSM8K-format JSONL (fit and evaluation questions). Writes: with --fit-exit-head K, "
                "the exit head (--out, + .json); else the table on stdout and --out-json.")
    p.add_argument("--data", required=True, help="GSM8K-format JSONL (e.g. GSM8K train)")
    p.add_argument("--fit-exit-head", type=int, metavar="K", help="fit and save the exit head for layer K, then exit")
    p.add_argument("--out", help="exit head file (default: autojudge_harness/presets/exit-head-L{K}.safetensors)")
    p.add_argument("--fit-start", type=int, default=0, help="first GSM8K train line used for fitting")
    p.add_argument("--fit-questions", type=int, default=40, help="questions for the exit-head fit (default 40)")
    p.add_argument("--fit-max-new-tokens", type=int, default=128, help="target tokens per fit question (default 128)")
    p.add_argument("--eval-start", type=int, default=1000, help="first GSM8K train line used for evaluation")
    p.add_argument("--eval-questions", type=int, default=10, help="questions for the measurement (default 10)")
    p.add_argument("--max-new-tokens", type=int, default=160, help="target tokens per evaluation question")
    p.add_argument("--raw", dest="prenorm", action="store_false",
                   help="fit the exit head on the raw residual stream (default: RMS-normalised first)")
    p.add_argument("--ridge", type=float, default=0.0, help="ridge penalty for the exit-head fit")
    p.add_argument("--candidates", help="space-separated draft references (default: a fixed list; "
                                        "+int8lm = also int8 lm_head, measurement only)")
    p.add_argument("--shipped-heads", action="store_true", help="use the shipped exit heads instead of fitting")
    p.add_argument("--windows", type=int, nargs="+", default=[4, 8], help="draft windows W of the accepted-per-cycle columns (default 4 8)")
    p.add_argument("--timing-steps", type=int, default=30, help="timed decoding steps per model (default 30)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--gen-cache", help="JSON file caching the target's greedy continuations between runs")
    p.add_argument("--out-json", help="write the measurements here")


def main(args) -> int:
    import torch

    from .drafts import fit_only, markdown, measure

    torch.set_num_threads(args.threads)
    if args.fit_exit_head is not None:
        fit_only(args)
        return 0
    t0 = time.time()
    result = measure(args)
    result["seconds"] = time.time() - t0
    print(markdown(result, args.windows))
    if args.out_json:
        Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out_json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
