"""Time decoding modes on N prompts of an lm-eval task, in one process with one loaded pair.

Modes: target-only greedy (transformers ``generate``), transformers assisted generation with the
same draft (lossless anchor), our lossless speculative decoding, the judge at threshold 0 (same
tokens as lossless: its extra time is the judge's overhead), AutoJudge with the judge's threshold
(judge rows skipped when there is no judge file), optionally the top-K baseline and the perfect
judge (``--oracle``, an ``autojudge oracle`` file for the same task). Each prompt runs every mode
in turn, so load changes on a shared machine hit all modes alike. The speed figures are what a
request costs, relative to our lossless decoding: target calls per request (hardware independent)
and wall time per request; accepted draft tokens per cycle is the paper's figure. Prints a
markdown table (with 95% paired bootstrap intervals over prompts, ``experiments.statistics``) and
writes OUT/bench_decoding.json.

    autojudge bench decoding --preset smollm2-135m --task autojudge_gsm8k_bundled -n 5
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from typing import TYPE_CHECKING

from tqdm import tqdm

from ..answers import answers_equal, extract_final_answer
from ..cli_args import add_pair_arguments
from ..prompts import TaskPrompts
from ..experiments.statistics import compare_with_lossless, mean_ci
from ..settings import DEFAULT_WINDOW, AcceptanceSettings

if TYPE_CHECKING:  # torch and the models are imported where they run (``autojudge bench decoding --help`` stays light)
    from ..decoding import SpeculativeDecoder

LOSSLESS_MODE = "ours, lossless"   # the reference of every relative figure


def hf_generate(pair, prompt: list[int], max_new_tokens: int, assistant=None, window: int = DEFAULT_WINDOW):
    """transformers greedy generate (optionally assisted); returns (new ids without EOS, seconds,
    target forward passes: one per generated token without an assistant, None with one)."""
    import torch

    kwargs = {}
    if assistant is not None:
        assistant.generation_config.num_assistant_tokens = window
        assistant.generation_config.num_assistant_tokens_schedule = "constant"
        assistant.generation_config.assistant_confidence_threshold = 0.0
        kwargs["assistant_model"] = assistant
    ids = torch.tensor([prompt], device=pair.device)
    start = time.perf_counter()
    out = pair.target.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                               do_sample=False, pad_token_id=pair.tokenizer.eos_token_id, **kwargs)
    seconds = time.perf_counter() - start
    new = out[0, len(prompt):].tolist()
    eos = pair.tokenizer.eos_token_id
    return (new[: new.index(eos)] if eos in new else new), seconds, (None if assistant else len(new))


def time_judge(decoder: SpeculativeDecoder) -> list[float]:
    """Accumulate the wall time of ``decoder``'s judge step (features, probabilities and, for a
    DD-DT judge, the extra draft forward for the last drafted token's feature) into the returned
    one-element list."""
    spent = [0.0]
    judge_step = decoder._rule_allows

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return judge_step(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    decoder._rule_allows = timed
    return spent


def run(args) -> dict:
    import torch

    from ..decoding import SpeculativeDecoder
    from ..models import load_pair, pair_config

    torch.set_num_threads(args.threads)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = pair_config(args.preset, args.target, args.draft, args.judge, args.window)
    args.window, args.judge = config.window, config.judge
    pair = load_pair(config.target, config.draft, dtype=args.dtype, device=args.device)
    task = TaskPrompts(args.task, args.include_path, chat=not args.no_chat)
    prompts = [task.token_ids(pair.tokenizer, doc) for doc in task.docs(args.n)]
    decode = pair.tokenizer.decode
    modes = {
        "target greedy (HF generate)": lambda p: hf_generate(pair, p, args.max_new_tokens),
        "HF assisted generation": lambda p: hf_generate(pair, p, args.max_new_tokens, pair.draft, args.window),
    }
    def ours(settings: AcceptanceSettings) -> SpeculativeDecoder:
        return SpeculativeDecoder(pair, window=args.window, settings=settings, compile=args.compile)

    modes[LOSSLESS_MODE] = ours(AcceptanceSettings())
    if args.judge:
        modes["ours, judge t=0 (judge overhead)"] = ours(AcceptanceSettings.from_args(args.judge, 0.0))
        judged = ours(AcceptanceSettings.from_args(args.judge, args.threshold))
        modes[f"ours, AutoJudge t={judged.threshold:g}"] = judged
    if args.top_k:
        modes[f"ours, top-{args.top_k}"] = ours(AcceptanceSettings(accept_top_k=args.top_k))
    if args.oracle:
        modes["ours, perfect judge (oracle)"] = ours(AcceptanceSettings.from_args(oracle=args.oracle))

    hf_generate(pair, prompts[0][:16], 4)   # warm-up: first calls pay one-off allocation (and compile) costs
    hf_generate(pair, prompts[0][:16], 4, pair.draft, args.window)
    for mode in modes.values():
        if isinstance(mode, SpeculativeDecoder):
            mode.generate(prompts[0][:16], 4)
    judge_seconds = {name: time_judge(mode) for name, mode in modes.items()
                     if isinstance(mode, SpeculativeDecoder) and mode.rule is not None and mode.rule.name == "judge"}
    outputs = {name: [] for name in modes}
    seconds = dict.fromkeys(modes, 0.0)
    calls = {name: [] for name in modes}      # per prompt; None where the mode does not report them
    capped = {name: [] for name in modes}     # per prompt: the output hit --max-new-tokens
    stats = dict.fromkeys(modes)
    for prompt in tqdm(prompts, desc="prompts (every mode in turn)"):   # interleaved: load drift hits all modes
        for name, mode in modes.items():
            if isinstance(mode, SpeculativeDecoder):
                generation = mode.generate(prompt, args.max_new_tokens)
                new, took, used = generation.token_ids, generation.stats.wall_time_s, generation.stats.target_calls
                stats[name] = generation.stats if stats[name] is None else stats[name] + generation.stats
                capped[name].append(generation.finish_reason == "length")
            else:
                new, took, used = mode(prompt)
                capped[name].append(len(new) >= args.max_new_tokens)
            outputs[name].append(new)
            seconds[name] += took
            calls[name].append(used)
    reference = outputs["target greedy (HF generate)"]
    ref_answers = [extract_final_answer(decode(o)) for o in reference]
    rows = []
    for name in modes:
        answers = [extract_final_answer(decode(o)) for o in outputs[name]]
        agree = [answers_equal(a, b) or (a is None and b is None) for a, b in zip(answers, ref_answers)]
        summary = stats[name].summary() if stats[name] else {}
        reported = None not in calls[name]
        rows.append({
            "mode": name, "requests": len(prompts),
            "target_calls_per_request": sum(calls[name]) / len(prompts) if reported else None,
            "wall_time_per_request_s": seconds[name] / len(prompts),
            "generated_tokens_per_request": sum(len(o) for o in outputs[name]) / len(prompts),
            "accepted_per_cycle": summary.get("accepted_per_cycle"),
            "draft_calls_per_request": summary.get("draft_calls_per_request"),
            "cycles": summary.get("cycles"),
            # draft forwards beyond one per drafted token and one prefill per request: the DD-DT judge's
            # feature for the last drafted token of a window
            "extra_draft_forwards": (summary["draft_calls"] - summary["drafted_tokens"] - summary["requests"]
                                     if summary else None),
            "judge_time_s": judge_seconds[name][0] if name in judge_seconds else None,
            "wall_time_s": seconds[name],
            "identical_to_target": outputs[name] == reference,
            "answer_agreement": sum(agree) / len(reference),
            "answer_agreement_ci": mean_ci(agree),
            "capped": sum(capped[name]),
            **({"paired": compare_with_lossless(calls[name], calls[LOSSLESS_MODE], capped[name],
                                                capped[LOSSLESS_MODE])} if reported else {}),
        })
    add_relative(rows, LOSSLESS_MODE)
    return {"task": args.task, "n": len(prompts), "max_new_tokens": args.max_new_tokens, "window": args.window,
            "target": pair.target_name, "draft": pair.draft_name, "judge": args.judge, "compile": args.compile,
            "threads": args.threads, "device": args.device, "dtype": args.dtype, "oracle": args.oracle, "rows": rows}


def add_relative(rows: list[dict], reference: str) -> None:
    """Add each row's target calls and wall time per request relative to the ``reference`` row's."""
    base = next(r for r in rows if r["mode"] == reference)
    for row in rows:
        calls = row["target_calls_per_request"]
        row["target_calls_vs_lossless"] = None if calls is None else calls / base["target_calls_per_request"]
        row["wall_time_vs_lossless"] = row["wall_time_per_request_s"] / base["wall_time_per_request_s"]


def _ci(interval) -> str:
    return "" if not interval else f" [{interval[0]:.2f}, {interval[1]:.2f}]"


def table_lines(result: dict) -> list[str]:
    """The Markdown table: per mode its cost relative to our lossless decoding (ratio of totals with
    its 95% paired bootstrap interval, median per-prompt ratio, the ratio without the prompts whose
    output hit the cap in either mode) and its answer agreement with target greedy (interval)."""
    lines = ["| mode | target calls/request | x [95% CI] | median per-prompt x | capped | x without capped (prompts) "
             "| wall s/request | x | accepted/cycle | output tokens/request | identical to target "
             "| answer agreement [95% CI] |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["rows"]:
        paired = r.get("paired")
        if paired is None:
            calls = "- | - | - | -"
        else:
            uncapped = ("-" if paired["target_calls_vs_lossless_uncapped"] is None else
                        f"{paired['target_calls_vs_lossless_uncapped']:.2f}x ({paired['uncapped_questions']})")
            median = "-" if paired["median_question_ratio"] is None else f"{paired['median_question_ratio']:.2f}x"
            calls = (f"{r['target_calls_per_request']:.1f} | {r['target_calls_vs_lossless']:.2f}x"
                     f"{_ci(paired['target_calls_vs_lossless_ci'])} | {median} | {uncapped}")
        apc = "-" if r["accepted_per_cycle"] is None else f"{r['accepted_per_cycle']:.2f}"
        head, tail = calls.rsplit(" | ", 1)
        lines.append(f"| {r['mode']} | {head} | {r['capped']} | {tail} | {r['wall_time_per_request_s']:.2f} | "
                     f"{r['wall_time_vs_lossless']:.2f}x | {apc} | {r['generated_tokens_per_request']:.1f} | "
                     f"{'yes' if r['identical_to_target'] else 'no'} | "
                     f"{r['answer_agreement']:.2f}{_ci(r['answer_agreement_ci'])} |")
    return lines


def print_table(result: dict) -> None:
    print(f"\n{result['task']}, n={result['n']}, max_new_tokens={result['max_new_tokens']}, W={result['window']}, "
          f"target={result['target']}, draft={result['draft']}, {result['device']}/{result['dtype']}, "
          f"{result['threads']} threads (x: relative to ours, lossless; lower is cheaper; [..]: 95% paired "
          "bootstrap intervals over prompts; capped: outputs that hit max_new_tokens)")
    print("\n".join(table_lines(result)))
    print("(target greedy: one target call per generated token; HF assisted generation does not report its calls)")
    for r in result["rows"]:
        if r.get("judge_time_s") is not None:
            print(f"{r['mode']}: the judge step took {r['judge_time_s']:.2f} s, {r['judge_time_s'] / r['wall_time_s']:.1%} "
                  f"of its decoding time ({r['extra_draft_forwards']} extra draft forwards, for the last drafted "
                  f"token's judge feature, in {r['cycles']} cycles)")


def configure_parser(p) -> None:
    p.description = __doc__.split("\n\n")[0]
    p.epilog = ("Reads: the model pair, the judge file (default: the preset's), the lm-eval task's prompts, "
                "--oracle's file. "
                "Writes: the table on stdout and OUT/bench_decoding.json (--out).")
    add_pair_arguments(p, judge_help="judge file for the AutoJudge row (default: the preset's, if any)", window=True)
    p.add_argument("--threshold", type=float, help="default: the judge file's threshold")
    p.add_argument("--task", default="autojudge_gsm8k_bundled",
                   help="lm-eval task whose prompts are decoded (default autojudge_gsm8k_bundled)")
    p.add_argument("--include-path", type=Path, help="lm-eval task folder (default: the installed tasks)")
    p.add_argument("-n", type=int, default=5, help="number of prompts")
    p.add_argument("--max-new-tokens", type=int, default=128, help="tokens per prompt (default 128)")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--dtype", default="float32", help="model dtype (default float32)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--top-k", type=int, help="add a row for the top-K baseline with this K")
    p.add_argument("--oracle", help="add a row for the perfect judge: an oracle file of the same task and pair "
                                    "(autojudge oracle)")
    p.add_argument("--compile", action="store_true", help="static KV cache + torch.compile for our modes (GPU)")
    p.add_argument("--out", type=Path, default=Path("out/bench_decoding"), help="folder for bench_decoding.json")


def main(args) -> int:
    result = run(args)
    print_table(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_decoding.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {path}")
    return 0
