#!/usr/bin/env python
"""Measure derived drafts for the embedded preset (agreement, acceptance, step costs), or fit an exit head.

Agreement: the target greedily continues held-out GSM8K train questions (plain
``target.generate(do_sample=False)``); each draft is teacher-forced over prompt + continuation and
its argmax is compared with the target's token at every continuation position. Replaying that
match pattern gives the lossless loop's accepted draft tokens per cycle exactly (greedy): each
cycle accepts the run of matches (at most W), then emits one target token.

Cost model per cycle: W one-token draft steps + one (W+1)-token target verify; target-only greedy
pays one one-token target step per token. Steps are timed with a KV cache under
``torch.inference_mode`` (``--timing-steps`` steps in 3 blocks; lowest block median), including the lm_head argmax as the
decoding loop computes it (``W @ h.T``).

Examples::

    autojudge bench drafts --data train.jsonl --out-json out/drafts.json
    autojudge bench drafts --data train.jsonl --fit-exit-head 20 --out autojudge_harness/presets/exit-head-L20.safetensors
"""

from __future__ import annotations

import datetime
import functools
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from .. import drafts
from ..cached_model import cache_argument
from ..mining.pipeline import GSM8K_TASK, gsm8k_prompts
from ..models import EMBEDDED_TARGET, load_causal_lm, load_tokenizer
DEFAULT_CANDIDATES = [
    "layers:16", "layers:20", "layers:24", "layers:26", "layers:28", "layers:30",
    "layers:24+int8", "layers:30+int8", "layers:30+int8+int8lm", "layers:24+bf16", "layers:30+bf16",
    "layers:16+exit", "layers:20+exit", "layers:24+exit", "layers:26+exit", "layers:28+exit",
    "layers:24+exit+int8", "layers:24+exit+bf16", "layers:26+exit+bf16", "layers:28+exit+bf16",
]


# ----------------------------------------------------------------------------- data

def load_questions(path: Path, start: int, count: int) -> list[tuple[int, str]]:
    out = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i >= start + count:
                break
            if i >= start:
                out.append((i, json.loads(line)["question"]))
    return out


@functools.cache
def _prompts():
    return gsm8k_prompts()


def prompt_ids(tokenizer, question: str) -> list[int]:
    """The zero-shot GSM8K task's prompt for ``question`` (mining's prompts, built once)."""
    return _prompts().token_ids(tokenizer, {"question": question, "answer": ""})


@torch.inference_mode()
def greedy_continuations(target, tokenizer, questions, max_new_tokens: int, desc: str,
                         cache_path: Path | None = None) -> list[dict]:
    """[{line, prompt, continuation}] via ``target.generate(do_sample=False)``; optional JSON cache."""
    cached = {}
    if cache_path and cache_path.is_file():
        cached = {(r["line"], r["max_new_tokens"]): r for r in json.loads(cache_path.read_text())}
    out = []
    for line, question in tqdm(questions, desc=desc, unit="q"):
        key = (line, max_new_tokens)
        if key not in cached:
            ids = prompt_ids(tokenizer, question)
            gen = target.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                  max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=tokenizer.eos_token_id)
            cont = gen[0, len(ids):].tolist()
            if tokenizer.eos_token_id in cont:  # keep the EOS, drop anything after it
                cont = cont[:cont.index(tokenizer.eos_token_id) + 1]
            cached[key] = {"line": line, "max_new_tokens": max_new_tokens, "prompt": ids, "continuation": cont}
        out.append(cached[key])
    if cache_path:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(list(cached.values())))
    return out


# ----------------------------------------------------------------------------- exit heads

@torch.inference_mode()
def collect_states(target, records, layers: list[int]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Layer-K residual streams (pre-norm) and final-norm hidden states at every position."""
    res = {k: [] for k in layers}
    finals = []
    for r in tqdm(records, desc="target hidden states", unit="q"):
        ids = torch.tensor([r["prompt"] + r["continuation"]])
        hs = target.model(input_ids=ids, output_hidden_states=True).hidden_states
        for k in layers:
            res[k].append(hs[k][0].float())
        finals.append(hs[-1][0].float())
    return {k: torch.cat(v) for k, v in res.items()}, torch.cat(finals)


def fit_heads(target, records, layers: list[int], prenorm: bool, ridge: float) -> dict[int, tuple]:
    states, finals = collect_states(target, records, layers)
    out = {}
    for k in layers:
        head, stats = drafts.fit_exit_head(states[k], finals, prenorm=prenorm, ridge=ridge)
        out[k] = (head, stats)
    return out


def head_metadata(target, k: int, stats: dict, records, args) -> dict:
    import transformers

    return {
        "target": EMBEDDED_TARGET, "target_fingerprint": drafts.target_fingerprint(target), "layers": k,
        "maps": f"layer-{k} residual stream ({'RMS-normalised, ' if args.prenorm else ''}pre final norm) "
                "-> target final-norm hidden state (last_hidden_state)",
        "fit": "torch.linalg.lstsq (gelsd, float64), closed form, all positions of prompt + target greedy continuation",
        "data": str(args.data), "lines": [r["line"] for r in records],
        "prompt": f"{GSM8K_TASK} (chat)", "max_new_tokens": args.fit_max_new_tokens,
        "continuation_tokens": sum(len(r["continuation"]) for r in records), **stats,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "created": datetime.date.today().isoformat(),
        "command": "autojudge bench drafts " + " ".join(sys.argv[3:]),
    }


# ----------------------------------------------------------------------------- measuring

def build_candidate(target, name: str, head_files: dict[int, Path]):
    """Build a candidate; ``+int8lm`` (measurement only) also quantizes the lm_head."""
    int8lm = name.endswith("+int8lm")
    ref = name[: -len("+int8lm")] if int8lm else name
    spec = drafts.parse_draft_reference(ref)
    if spec.exit_head == "" and spec.layers in head_files:
        spec = drafts.DraftSpec(spec.layers, str(head_files[spec.layers]), spec.int8, spec.bf16, spec.modifiers)
    draft = drafts.build_draft(target, spec)
    if int8lm:
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            draft.lm_head = quantize_dynamic(torch.nn.Sequential(draft.lm_head), {torch.nn.Linear},
                                             dtype=torch.qint8)[0]
    return draft


def head_fn(model):
    """Greedy tokens from hidden states as the decoding loop computes them (``W @ h.T``)."""
    lm = model.get_output_embeddings()
    if isinstance(lm, torch.nn.Linear) and isinstance(getattr(lm, "weight", None), torch.Tensor):
        w = lm.weight
        return lambda h: (w @ h.T).argmax(0)
    return lambda h: lm(h).argmax(-1)


@torch.inference_mode()
def match_patterns(model, records) -> list[list[bool]]:
    out = []
    for r in records:
        ids = r["prompt"] + r["continuation"]
        logits = model(input_ids=torch.tensor([ids[:-1]])).logits[0]
        pred = logits[len(r["prompt"]) - 1:].argmax(-1).tolist()
        out.append([p == t for p, t in zip(pred, r["continuation"])])
    return out


def replay(pattern: list[bool], window: int) -> tuple[int, int]:
    """(cycles, accepted draft tokens) of lossless greedy speculative decoding."""
    i, cycles, accepted = 0, 0, 0
    while i < len(pattern):
        a = 0
        while a < window and i + a < len(pattern) and pattern[i + a]:
            a += 1
        accepted += a
        cycles += 1
        i += a + 1
    return cycles, accepted


@torch.inference_mode()
def step_ms(model, prefix: list[int], rows: int, steps: int, warmup: int = 5, blocks: int = 3) -> float:
    """ms of a ``rows``-token KV-cached forward + argmax after ``prefix``: the lowest of ``blocks``
    block medians (robust to other processes on the 2 cores)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model.model(input_ids=torch.tensor([prefix]), use_cache=True, **{cache_argument(model.model): cache})
    head = head_fn(model)
    ids = torch.tensor([prefix[-rows:]])
    times = []
    per_block = max(1, steps // blocks)
    for i in range(warmup + per_block * blocks):
        t0 = time.perf_counter()
        h = model.model(input_ids=ids, use_cache=True, **{cache_argument(model.model): cache}).last_hidden_state[0]
        head(h).tolist()
        dt = time.perf_counter() - t0
        cache.crop(-rows)
        if i >= warmup:
            times.append(dt * 1e3)
    return min(statistics.median(times[b * per_block:(b + 1) * per_block]) for b in range(blocks))


def measure(args) -> dict:
    torch.manual_seed(0)
    target = load_causal_lm(EMBEDDED_TARGET)
    tokenizer = load_tokenizer(EMBEDDED_TARGET)
    gen_cache = Path(args.gen_cache) if args.gen_cache else None
    eval_q = load_questions(Path(args.data), args.eval_start, args.eval_questions)
    evals = greedy_continuations(target, tokenizer, eval_q, args.max_new_tokens, "target greedy (eval)", gen_cache)
    candidates = args.candidates.split() if args.candidates else DEFAULT_CANDIDATES

    head_files: dict[int, Path] = {}
    fit_info = {}
    exit_layers = sorted({drafts.parse_draft_reference(c.replace("+int8lm", "")).layers
                          for c in candidates if "+exit" in c and ":" not in c.split("+exit", 1)[1][:1]})
    tmp = Path(tempfile.mkdtemp(prefix="exit-heads-"))
    if exit_layers and not args.shipped_heads:
        fit_q = load_questions(Path(args.data), args.fit_start, args.fit_questions)
        overlap = {l for l, _ in fit_q} & {l for l, _ in eval_q}
        if overlap:
            raise SystemExit(f"fit and eval questions overlap: lines {sorted(overlap)}")
        fits = greedy_continuations(target, tokenizer, fit_q, args.fit_max_new_tokens, "target greedy (fit)", gen_cache)
        for k, (head, stats) in fit_heads(target, fits, exit_layers, args.prenorm, args.ridge).items():
            head_files[k] = tmp / f"exit-head-L{k}.safetensors"
            drafts.save_exit_head(head, head_files[k], head_metadata(target, k, stats, fits, args))
            fit_info[k] = stats

    prefix = evals[0]["prompt"] + evals[0]["continuation"][:32]
    t_step = step_ms(target, prefix, 1, args.timing_steps)
    t_verify = {w: step_ms(target, prefix, w + 1, args.timing_steps) for w in args.windows}
    n_tokens = sum(len(r["continuation"]) for r in evals)
    rows = []
    for name in tqdm(candidates, desc="drafts", unit="draft"):
        draft = build_candidate(target, name, head_files)
        patterns = match_patterns(draft, evals)
        d_ms = step_ms(draft, prefix, 1, args.timing_steps)
        matches = sum(sum(p) for p in patterns)
        row = {"draft": name, "agreement": matches / n_tokens, "draft_step_ms": d_ms, "windows": {}}
        for w in args.windows:
            cycles = accepted = 0
            for p in patterns:
                c, a = replay(p, w)
                cycles, accepted = cycles + c, accepted + a
            cost = cycles * (w * d_ms + t_verify[w])
            row["windows"][w] = {"accepted_per_cycle": accepted / cycles, "tokens_per_cycle": n_tokens / cycles,
                                 "predicted_time_ratio": cost / (n_tokens * t_step)}
        rows.append(row)
        del draft
    return {"target_step_ms": t_step, "target_verify_ms": t_verify, "eval_lines": [r["line"] for r in evals],
            "eval_tokens": n_tokens, "max_new_tokens": args.max_new_tokens, "exit_head_fits": fit_info,
            "fit_lines": list(range(args.fit_start, args.fit_start + args.fit_questions)) if head_files else [],
            "threads": torch.get_num_threads(), "rows": rows,
            "command": "autojudge bench drafts " + " ".join(sys.argv[3:])}


def markdown(result: dict, windows: list[int]) -> str:
    cols = ["draft", "agreement", "draft step ms"]
    for w in windows:
        cols += [f"acc/cycle W={w}", f"time ratio W={w}"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in result["rows"]:
        cells = [f"`{r['draft']}`", f"{r['agreement']:.3f}", f"{r['draft_step_ms']:.1f}"]
        for w in windows:
            x = r["windows"][w]
            cells += [f"{x['accepted_per_cycle']:.2f}", f"{x['predicted_time_ratio']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    verify = ", ".join(f"{w + 1} tokens {ms:.1f} ms" for w, ms in result["target_verify_ms"].items())
    lines.append("")
    lines.append(f"Target: one-token step {result['target_step_ms']:.1f} ms; verify {verify}. "
                 f"Eval: {len(result['eval_lines'])} questions (train lines {result['eval_lines'][0]}-"
                 f"{result['eval_lines'][-1]}), {result['eval_tokens']} target tokens.")
    for k, s in result["exit_head_fits"].items():
        lines.append(f"Exit head L{k}: fit on {s['rows']} positions, relative residual {s['relative_residual']:.3f}.")
    return "\n".join(lines)


def fit_only(args) -> None:
    k = args.fit_exit_head
    target = load_causal_lm(EMBEDDED_TARGET)
    tokenizer = load_tokenizer(EMBEDDED_TARGET)
    if not 1 <= k < target.config.num_hidden_layers:
        raise SystemExit(f"--fit-exit-head needs 1 <= K < {target.config.num_hidden_layers}")
    fit_q = load_questions(Path(args.data), args.fit_start, args.fit_questions)
    fits = greedy_continuations(target, tokenizer, fit_q, args.fit_max_new_tokens, "target greedy (fit)",
                                Path(args.gen_cache) if args.gen_cache else None)
    head, stats = fit_heads(target, fits, [k], args.prenorm, args.ridge)[k]
    out = Path(args.out or drafts.exit_head_path(k))
    drafts.save_exit_head(head, out, head_metadata(target, k, stats, fits, args))
    print(f"wrote {out} (+ {out.with_suffix('.json').name}): {stats}")
