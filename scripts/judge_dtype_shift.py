"""How much a float32-trained DT judge's probabilities move when the target computes its hidden states
in bfloat16 (vLLM's default for bf16 checkpoints) instead of float32 (docs/judges.md, "dtype").

For GSM8K train questions from --offset: the target's greedy response (float32), then its last hidden
states over prompt + response in float32 and in bfloat16, and the judge's logit and P(important) on
each response position. Prints the logit shift against the logits' spread over positions (a judge
with strong regularisation has tiny logits, so |dP| alone says little), the mean / max |dP| and the
share of positions whose decision at the judge's threshold (accept when P < t) flips. A proxy: decoding judges the positions where the draft's token is
fed; here the target's own tokens are.

    python scripts/judge_dtype_shift.py --questions 8 --threads 1
"""

from __future__ import annotations

import argparse
import json

import torch
from tqdm.auto import tqdm

from autojudge_harness.judge import load_judge
from autojudge_harness.models import PRESETS, load_causal_lm, load_tokenizer
from autojudge_harness.resources import shipped_classifier

PROMPT = ("Given the following problem, reason and give a final answer to the problem.\nProblem: {question}\n"
          'Your response should end with "The final answer is [answer]" where [answer] is the response to the problem.')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judge", default=str(shipped_classifier("smollm2-135m-vllm-draft-dt.safetensors")))
    ap.add_argument("--data", default="/work/shared/data/gsm8k/train.jsonl")
    ap.add_argument("--offset", type=int, default=1000)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    judge = load_judge(args.judge)
    target = PRESETS["smollm2-135m"].target
    tokenizer = load_tokenizer(target)
    models = {dtype: load_causal_lm(target, dtype) for dtype in ("float32", "bfloat16")}
    with open(args.data) as f:
        questions = [json.loads(line)["question"] for line in f][args.offset:args.offset + args.questions]
    logits = {"float32": [], "bfloat16": []}
    with torch.inference_mode():
        for question in tqdm(questions, desc="questions"):
            prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT.format(question=question)}],
                                                   add_generation_prompt=True, tokenize=True, return_dict=False)
            ids = torch.tensor([prompt])
            full = models["float32"].generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False)
            for dtype, model in models.items():
                hidden = model.model(full).last_hidden_state[0, len(prompt):]
                logits[dtype].append(hidden.float() @ judge.weight + judge.bias)
    z32, z16 = torch.cat(logits["float32"]), torch.cat(logits["bfloat16"])
    p32, p16 = torch.sigmoid(z32), torch.sigmoid(z16)
    delta = (p16 - p32).abs()
    flips = ((p32 < judge.threshold) != (p16 < judge.threshold)).float().mean()
    print(f"judge {args.judge} (threshold {judge.threshold:.4f}), {len(questions)} questions, {len(p32)} positions")
    print(f"logit: std over positions (fp32) {z32.std():.4g}; |z_bf16 - z_fp32| mean {(z16 - z32).abs().mean():.4g} "
          f"({(z16 - z32).abs().mean() / z32.std():.1%} of that std), max {(z16 - z32).abs().max():.4g}")
    print(f"|P_bf16 - P_fp32|: mean {delta.mean():.2e}, median {delta.median():.2e}, max {delta.max():.2e}")
    print(f"accept decisions that flip: {flips:.2%}; accepted share fp32 {(p32 < judge.threshold).float().mean():.2%}, "
          f"bf16 {(p16 < judge.threshold).float().mean():.2%}")


if __name__ == "__main__":
    main()
