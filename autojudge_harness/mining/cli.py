"""``autojudge mine``: AutoJudge Algorithm 1 on GSM8K questions into a sharded run directory.

    # one process (resumable: rerun the same command after a kill)
    autojudge mine --preset smollm2-135m --data train.jsonl --limit 100 --out runs/gsm8k
    # two shards in parallel, then merge
    autojudge mine --preset smollm2-135m --data train.jsonl --out runs/gsm8k --shard 0/2 &
    autojudge mine --preset smollm2-135m --data train.jsonl --out runs/gsm8k --shard 1/2 &
    wait; autojudge mine --out runs/gsm8k --merge

Record format and guarantees: ``autojudge_harness.mining.store`` (and mining/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from .store import merge, parse_shard


def configure_parser(ap) -> None:
    ap.description = __doc__.split("\n\n")[0].split(": ", 1)[1]
    ap.epilog = ("Reads: a GSM8K-format JSONL (--data) or a hub dataset (--dataset); the model pair. Writes (under "
                 "--out): manifest.json, shard-III-of-NNN/ (records.jsonl + features.f32, append-only, resumable); with "
                 "--merge: merged.jsonl + features.safetensors (the input of 'autojudge train').")
    ap.add_argument("--preset", help="model pair preset, e.g. smollm2-135m")
    ap.add_argument("--target", help="target model reference (overrides the preset's)")
    ap.add_argument("--draft", help="draft model reference, e.g. layers:24 (overrides the preset's)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                    help="dtype both models run in; the features are computed in it, recorded in the manifest and "
                    "in judges trained on them (train in the dtype the decoding engine runs: vLLM's default for "
                    "bf16 checkpoints is bfloat16)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--data", help="GSM8K-format JSONL (question, answer '#### N')")
    ap.add_argument("--dataset", help="hub dataset id (config 'main'), e.g. openai/gsm8k")
    ap.add_argument("--split", default="train", help="hub split (default train)")
    ap.add_argument("--offset", type=int, default=0, help="first question id")
    ap.add_argument("--limit", type=int, default=None, help="number of question ids from --offset")
    ap.add_argument("--max-new-tokens", type=int, default=192, help="target response length cap (default 192)")
    ap.add_argument("--lookahead", type=int, default=None,
                    help="tokens of the old response proposed per target forward in continuations (0 = off; "
                    "default 8 for --batch-size 1, else 0: in a batch, proposed tokens pad every row)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="questions mined together (one forward per model for all of them; same labels as 1 = "
                    "the sequential miner); default: 8 on CPU, 32 on CUDA")
    ap.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                    help="where the target's greedy continuations run: hf (the batched miner) or vllm (one vLLM "
                    "engine: batched generations, prefix caching, --tensor-parallel-size; the draft and the feature "
                    "forward stay in HF; same labels; docs/mining.md)")
    ap.add_argument("--tensor-parallel-size", type=int, default=1, help="--engine vllm: the target's GPUs")
    ap.add_argument("--max-model-len", type=int, default=4096, help="--engine vllm: prompt + response tokens")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="--engine vllm")
    ap.add_argument("--answer", choices=("strict", "flexible"), default="strict",
                    help="GSM8K answer extraction for the equivalence check: strict = number after 'The final "
                    "answer is' (the paper's), flexible = last number (the task's second filter)")
    ap.add_argument("--no-end-guard", action="store_true",
                    help="the paper-exact Algorithm 1: also replace R where the target's token ends the response "
                    "(default: flag such mismatches and keep the target's end, as decoding's end guard does)")
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--shard", default="0/1", help="i/n: mine question ids with id %% n == i")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--merge", action="store_true", help="merge all shards of --out afterwards "
                    "(alone, without --data/--dataset: only merge)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_engine(args) -> None:
    """SystemExit naming the problem when --engine vllm cannot run: vLLM missing, --lookahead given."""
    if args.engine != "vllm":
        return
    if args.lookahead:
        raise SystemExit("--lookahead does not apply to --engine vllm (its continuations are whole generations)")
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"--engine vllm needs vLLM ({err}); docs/vllm.md installs it") from None


def vllm_target(args, target: str, pair):
    """The ``generate`` of a vLLM engine holding ``target`` (``mining.vllm_engine``), stopping at the pair's
    end tokens."""
    from ..endings import pair_end_ids
    from .vllm_engine import vllm_engine, vllm_generate

    llm = vllm_engine(target, args.max_model_len, args.dtype, args.tensor_parallel_size,
                      args.gpu_memory_utilization, enforce_eager=args.device == "cpu")
    return vllm_generate(llm, pair_end_ids(pair))


def main(args) -> int:
    if args.data or args.dataset:
        import torch

        from ..models import load_pair, pair_config
        from .pipeline import load_gsm8k, mine_gsm8k, select_ids

        if args.batch_size is not None and args.batch_size < 1:
            raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}")
        check_engine(args)

        try:
            config = pair_config(args.preset, args.target, args.draft)
        except ValueError as err:
            raise SystemExit(f"give --preset or both --target and --draft ({err})") from None
        target, draft = config.target, config.draft
        shard = parse_shard(args.shard)
        if args.threads:
            torch.set_num_threads(args.threads)
        rows, info = load_gsm8k(args.data, args.dataset, args.split)
        ids = select_ids(len(rows), args.offset, args.limit, shard)
        pair = load_pair(target, draft, dtype=args.dtype, device=args.device)
        generate = vllm_target(args, target, pair) if args.engine == "vllm" else None
        totals = mine_gsm8k(pair, rows, info, args.out, ids, shard, args.max_new_tokens, args.lookahead,
                            args.dtype, progress=not args.no_progress, flexible=args.answer == "flexible",
                            end_guard=not args.no_end_guard, batch_size=args.batch_size, generate=generate)
        print(json.dumps({"out": args.out, "shard": args.shard, **totals}), flush=True)
    elif not args.merge:
        raise SystemExit("nothing to do: give --data/--dataset to mine and/or --merge")
    if args.merge:
        jsonl, st = merge(Path(args.out))
        print(f"merged -> {jsonl} + {st}", flush=True)
    return 0
