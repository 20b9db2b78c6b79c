"""GPU check of the vLLM backend (vllm==0.33.0) on a real model pair, in one run.

Checks (exit status 1 when one fails):
  1. our judge at threshold 0 emits exactly the token ids of vLLM's stock speculative decoding;
  2. our judge at threshold 2 (> 1) accepts every drafted token (vLLM's accepted == drafted);
then prints a timing table: target only, stock speculative decoding, ours at threshold 0 / the
judge's threshold / 2 (and top-K with --accept-top-k). Prompts: the bundled GSM8K problems through
the target's chat template, greedy. Each configuration runs in a fresh subprocess (its own engine).

    python scripts/gpu_check_vllm.py [--target meta-llama/Llama-3.1-8B-Instruct]
        [--draft meta-llama/Llama-3.2-1B-Instruct] [--judge FILE.safetensors] [--window 8]

Without --judge a random DT judge of the pair's hidden size is written: enough for checks 1-2
(they hold for any judge), while the "judge threshold" row then says nothing about quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext import metrics
from autojudge_harness.vllm_ext.settings import STATS_RPC, check_vllm_version, engine_kwargs

OVER_ONE = 2.0
TARGET, STOCK, ZERO, OVER = ("target only", "stock speculative decoding", "ours, threshold 0",
                             f"ours, threshold {OVER_ONE}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="meta-llama/Llama-3.1-8B-Instruct")
    p.add_argument("--draft", default="meta-llama/Llama-3.2-1B-Instruct")
    p.add_argument("--judge", help="DT judge file for the pair (default: a random one, see above)")
    p.add_argument("--threshold", type=float, help="threshold of the judge row (default: the judge file's)")
    p.add_argument("--accept-top-k", type=int, help="also time the top-K baseline with this K")
    p.add_argument("--window", type=int, default=8, help="draft tokens per cycle (W)")
    p.add_argument("--num-prompts", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=1, help="prompts per llm.generate call (paper: 1)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--enforce-eager", action="store_true", help="skip CUDA graph capture (faster start-up)")
    p.add_argument("--out", default="gpu_check_vllm.json", help="all numbers as JSON")
    p.add_argument("--run", help=argparse.SUPPRESS)      # internal: one configuration (JSON) ...
    p.add_argument("--result", help=argparse.SUPPRESS)   # ... writing its result here
    return p.parse_args(argv)


def prompts(target: str, n: int) -> list[list[int]]:
    """Token ids of the first ``n`` bundled GSM8K prompts (repeated if needed), chat template."""
    from transformers import AutoTokenizer

    from autojudge_harness.prompts import TaskPrompts

    task = TaskPrompts("autojudge_gsm8k_bundled")
    docs = task.docs()
    tokenizer = AutoTokenizer.from_pretrained(target)
    return [task.token_ids(tokenizer, docs[i % len(docs)]) for i in range(n)]


def run_one(config: dict, result_path: str) -> None:
    """Subprocess: build one engine, decode the prompts greedily, write token ids and statistics."""
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=config["target"], tensor_parallel_size=config["tensor_parallel_size"],
              gpu_memory_utilization=config["gpu_memory_utilization"], max_model_len=config["max_model_len"],
              enforce_eager=config["enforce_eager"], seed=0, **{"disable_log_stats": False, **config["engine"]})
    uses_worker = "worker_cls" in config["engine"]
    params = SamplingParams(temperature=0.0, max_tokens=config["max_tokens"])
    batches = [config["prompts"][i:i + config["batch_size"]]
               for i in range(0, len(config["prompts"]), config["batch_size"])]
    llm.generate([TokensPrompt(prompt_token_ids=p) for p in batches[0]], SamplingParams(temperature=0.0, max_tokens=16),
                 use_tqdm=False)   # warm-up

    def snapshot():
        return metrics.snapshot(llm.get_metrics(), llm.collective_rpc(STATS_RPC) if uses_worker else ())

    before = snapshot()
    start = time.perf_counter()
    token_ids = []
    for batch in batches:
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in batch], params, use_tqdm=False)
        token_ids += [list(o.outputs[0].token_ids) for o in outputs]
    wall = time.perf_counter() - start
    counts = metrics.subtract(snapshot(), before)
    Path(result_path).write_text(json.dumps({"token_ids": token_ids, "counts": counts,
                                             "stats": metrics.summarize(counts, wall, len(token_ids))}))


def random_judge(args, directory: Path) -> str:
    """A DT judge with random weights for the pair (hidden sizes from the models' configs)."""
    import torch
    from transformers import AutoConfig

    from autojudge_harness.judge import save_judge

    hidden = AutoConfig.from_pretrained(args.target).get_text_config().hidden_size
    draft_hidden = AutoConfig.from_pretrained(args.draft).get_text_config().hidden_size
    weight = torch.randn(hidden, generator=torch.Generator().manual_seed(0)) / hidden ** 0.5
    path = save_judge(directory / "random-dt-judge.safetensors", feature_kind="DT", target_hidden_size=hidden,
                      draft_hidden_size=draft_hidden, target_model=args.target, draft_model=args.draft,
                      mean=torch.zeros(hidden), scale=torch.ones(hidden), weight=weight, bias=0.0, threshold=0.5,
                      threshold_table=[], training={"note": "random weights, gpu_check_vllm.py"})
    return str(path)


def configurations(args, judge: str) -> dict[str, dict]:
    spec = {"model": args.draft, "method": "draft_model", "num_speculative_tokens": args.window}
    judged = lambda threshold: engine_kwargs(  # noqa: E731
        args.draft, args.window, AcceptanceSettings.from_args(judge, threshold))
    modes = {TARGET: {}, STOCK: {"speculative_config": spec}, ZERO: judged(0.0)}
    label = f"ours, threshold {args.threshold}" if args.threshold is not None else "ours, judge file's threshold"
    modes[label + ("" if args.judge else " (random judge)")] = judged(args.threshold)
    modes[OVER] = judged(OVER_ONE)
    if args.accept_top_k:
        modes[f"ours, top-{args.accept_top_k}"] = engine_kwargs(
            args.draft, args.window, AcceptanceSettings.from_args(accept_top_k=args.accept_top_k))
    return modes


def check_results(results: dict) -> list[str]:
    """The failed checks (empty: all passed). ``results``: mode name -> run_one's output."""
    failures = []
    stock, zero = results[STOCK], results[ZERO]
    if zero["token_ids"] != stock["token_ids"]:
        first = next((i for i, (a, b) in enumerate(zip(zero["token_ids"], stock["token_ids"])) if a != b), None)
        failures.append(f"threshold 0 differs from stock speculative decoding (first at prompt {first})")
    if zero["counts"]["accepted_lenient"] != 0:
        failures.append(f"threshold 0 judge-accepted {zero['counts']['accepted_lenient']} tokens")
    over = results[OVER]["counts"]
    if over["drafted_tokens"] == 0 or over["accepted_tokens"] != over["drafted_tokens"]:
        failures.append(f"threshold {OVER_ONE}: accepted {over['accepted_tokens']} of {over['drafted_tokens']} "
                        "drafted tokens (expected all)")
    return failures


def table(results: dict) -> str:
    """Markdown timing table, speeds relative to the target alone."""
    base = results[TARGET]["stats"]["tokens_per_second"]
    lines = ["| mode | wall s | tokens | tok/s | speed vs target | mean acceptance length | accepted/cycle "
             "| judge-accepted fraction | identical to stock SD |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, result in results.items():
        s = result["stats"]
        spec = (f"{s['mean_acceptance_length']:.2f} | {s['accepted_per_cycle']:.2f} | {s['lenient_accepted_fraction']:.3f}"
                if name != TARGET else "- | - | -")
        same = "yes" if result["token_ids"] == results[STOCK]["token_ids"] else "no"
        lines.append(f"| {name} | {s['wall_time_s']:.1f} | {s['generated_tokens']} | {s['tokens_per_second']:.1f} | "
                     f"{s['tokens_per_second'] / base if base else 0.0:.2f}x | {spec} | {same} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run:
        run_one(json.loads(Path(args.run).read_text()), args.result)
        return 0
    check_vllm_version()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_vllm_"))
    judge = args.judge or random_judge(args, work)
    common = {"target": args.target, "prompts": prompts(args.target, args.num_prompts),
              "tensor_parallel_size": args.tensor_parallel_size, "max_tokens": args.max_tokens,
              "gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": args.max_model_len,
              "enforce_eager": args.enforce_eager, "batch_size": args.batch_size}
    results = {}
    for i, (name, engine) in enumerate(configurations(args, judge).items()):
        config_path, result_path = work / f"config{i}.json", work / f"result{i}.json"
        config_path.write_text(json.dumps({**common, "engine": engine}))
        print(f"== {name}", flush=True)
        run = subprocess.run([sys.executable, __file__, "--run", str(config_path), "--result", str(result_path)])
        if run.returncode != 0:
            print(f"FAILED: configuration {name!r} exited with {run.returncode}")
            return 1
        results[name] = json.loads(result_path.read_text())

    failures = check_results(results)
    print(f"\n{args.target} <- {args.draft}, W={args.window}, {args.num_prompts} prompts, batch {args.batch_size}, "
          f"max_tokens {args.max_tokens}, judge {judge}")
    print(table(results))
    Path(args.out).write_text(json.dumps({"args": vars(args), "judge": judge, "failures": failures, "results": {
        name: {"stats": r["stats"], "identical_to_stock_sd": r["token_ids"] == results[STOCK]["token_ids"]}
        for name, r in results.items()}}, indent=2))
    for failure in failures:
        print("CHECK FAILED:", failure)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed", f"(numbers in {args.out})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
