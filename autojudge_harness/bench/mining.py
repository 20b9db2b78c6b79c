"""Throughput of Algorithm 1: the reference-style miner (no KV-cache reuse: a fresh target cache per
mismatch, the draft re-encoding prompt + R at every step) vs the optimized one (both caches reused,
features captured in the same forwards), optionally with look-ahead continuations. Asserts
identical labels and responses, prints labelled mismatches per minute and the speed-up.

    autojudge bench mining --preset smollm2-135m --data train.jsonl -n 3 --max-new-tokens 128

Modes run interleaved per question (so that load from other processes hits them alike).
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def configure_parser(ap) -> None:
    ap.description = __doc__.split("\n\n")[0]
    ap.epilog = "Reads: --data (GSM8K-format JSONL), the model pair. Writes: the table on stdout; --json."
    ap.add_argument("--preset", default="smollm2-135m")
    ap.add_argument("--target")
    ap.add_argument("--draft")
    ap.add_argument("--data", required=True, help="GSM8K-format JSONL, e.g. GSM8K train")
    ap.add_argument("-n", type=int, default=3, help="questions (the first n of --data)")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--lookahead", type=int, nargs="*", default=[0, 8],
                    help="look-ahead settings of the optimized miner to time (0 = plain cached greedy)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--answer", choices=("strict", "flexible"), default="strict")
    ap.add_argument("--json", help="also write the results here")


def main(args) -> int:

    import torch

    from ..answers import read_gsm8k_jsonl
    from ..mining.algorithm import GSM8KEquivalence, Miner
    from ..mining.pipeline import gsm8k_prompts
    from ..models import load_pair, resolve_preset

    torch.set_num_threads(args.threads)
    preset = resolve_preset(args.preset)
    pair = load_pair(args.target or preset.target, args.draft or preset.draft)
    prompter = gsm8k_prompts()
    eq = GSM8KEquivalence(prompter.stop, flexible=args.answer == "flexible")
    rows = read_gsm8k_jsonl(args.data)[args.offset:args.offset + args.n]
    modes = {"reference (no cache reuse)": dict(reuse_cache=False)}
    for k in args.lookahead:
        modes[f"optimized, lookahead {k}" if k else "optimized (cache reuse)"] = dict(reuse_cache=True, lookahead=k)
    miners = {name: Miner.for_pair(pair, eq, args.max_new_tokens, prompter.stop, **kw) for name, kw in modes.items()}
    totals = {name: {"seconds": 0.0, "mismatches": 0, "important": 0, "target_tokens_fed": 0, "draft_tokens_fed": 0,
                     "target_forwards": 0, "draft_forwards": 0, "skipped": 0} for name in modes}
    print(f"{pair.target_name} / {pair.draft_name}, {len(rows)} questions, max_new_tokens {args.max_new_tokens}, "
          f"{args.threads} thread(s)", flush=True)
    for i, row in enumerate(rows):
        prompt = prompter.token_ids(pair.tokenizer, row)
        reference = None
        for name, miner in miners.items():
            start = time.perf_counter()
            q = miner.mine(prompt)
            seconds = time.perf_counter() - start
            labels = ([(m.position, m.important, m.target_token, m.draft_token) for m in q.mismatches],
                      q.response_ids, q.skipped)
            if reference is None:
                reference = labels
            elif labels != reference:
                raise AssertionError(f"question {args.offset + i}: {name} labels differ from the reference mode")
            t = totals[name]
            t["seconds"] += seconds
            t["skipped"] += q.skipped is not None
            for k in ("mismatches", "important", "target_tokens_fed", "draft_tokens_fed", "target_forwards",
                      "draft_forwards"):
                t[k] += q.stats[k]
            print(f"  q{args.offset + i} {name:28s} {seconds:7.1f} s  {q.stats['mismatches']:3d} mismatches "
                  f"({q.stats['important']} important){'  SKIPPED: ' + q.skipped if q.skipped else ''}", flush=True)
    base = totals["reference (no cache reuse)"]
    print("\n| mode | labelled mismatches | important | wall s | mismatches/min | speed-up | target tokens fed "
          "| target forwards | draft tokens fed |\n|---|---|---|---|---|---|---|---|---|")
    for name, t in totals.items():
        t["per_minute"] = 60 * t["mismatches"] / max(t["seconds"], 1e-9)
        t["speedup"] = base["seconds"] / max(t["seconds"], 1e-9)
        print(f"| {name} | {t['mismatches']} | {t['important']} | {t['seconds']:.1f} | {t['per_minute']:.1f} | "
              f"{t['speedup']:.2f}x | {t['target_tokens_fed']} | {t['target_forwards']} | {t['draft_tokens_fed']} |")
    print("labels and final responses identical in all modes: yes")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "totals": totals}, indent=1))
    return 0
