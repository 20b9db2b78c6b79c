"""The perfect judge's producer: Algorithm 1 on an evaluation task's own prompts, written as an
oracle file (format and loader: ``autojudge_harness.oracle``). ``autojudge oracle``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..cli_args import add_pair_arguments
from ..oracle import FORMAT, ORACLE_FILE, load_oracle, prompt_key


def unimportant_entries(mismatches, end_guard: bool) -> list[list[int]]:
    """[position, draft token, target token] of the mismatches a perfect judge accepts (record dicts)."""
    return [[m["position"], m["draft_token"], m["target_token"]] for m in mismatches
            if not m["important"] and not (end_guard and m["target_end"])]


def build_oracle(run_dir: str | Path, task: str) -> dict:
    """The oracle document of a merged mining run (see the module docstring)."""
    from .store import MERGED_JSONL, read_manifest

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir / "manifest.json")
    guard = manifest["end_guard"]
    prompts = {}
    for line in (run_dir / MERGED_JSONL).read_text().splitlines():
        record = json.loads(line)
        prompts[prompt_key(record["prompt_ids"])] = unimportant_entries(record["mismatches"], guard)
    return {"format": FORMAT, "task": task, "target_model": manifest["target_model"],
            "draft_model": manifest["draft_model"], "equivalence": manifest["equivalence"], "end_guard": guard,
            "max_new_tokens": manifest["max_new_tokens"], "mined_run": str(run_dir.resolve()), "prompts": prompts}


def make_oracle(pair, task: str, out_dir: str | Path, limit: int | None = None, max_new_tokens: int | None = None,
                flexible: bool = False, progress: bool = True, data_env: dict | None = None,
                include_path: str | Path | None = None, chat: bool = True) -> Path:
    """Mine ``task``'s first ``limit`` evaluation docs (GSM8K-style tasks: question + answer; prompts
    as ``TaskPrompts(task, include_path, data_env, chat)`` builds them, i.e. as lm-eval sends them)
    into ``out_dir``/mined (resuming), then write ``out_dir``/oracle.json; returns its path."""
    from ..prompts import TaskPrompts
    from .pipeline import mine_gsm8k
    from .store import merge

    prompter = TaskPrompts(task, include_path, data_env=data_env, chat=chat)
    docs = prompter.docs(limit)
    if not docs or "question" not in docs[0]:
        raise ValueError(f"the oracle supports GSM8K-style tasks (docs with a question and an answer); {task} is not")
    max_new_tokens = max_new_tokens or int(prompter.task.config.generation_kwargs.get("max_gen_toks", 256))
    digest = hashlib.sha256("\n".join(d["question"] for d in docs).encode()).hexdigest()
    out_dir = Path(out_dir)
    mine_gsm8k(pair, docs, {"dataset": f"lm-eval task {task}", "dataset_sha256": digest, "split": "eval"},
               out_dir / "mined", list(range(len(docs))), max_new_tokens=max_new_tokens, progress=progress,
               flexible=flexible, prompter=prompter)
    merge(out_dir / "mined")
    path = out_dir / ORACLE_FILE
    path.write_text(json.dumps(build_oracle(out_dir / "mined", task)) + "\n")
    return path


def configure_parser(p) -> None:
    p.description = ("The perfect judge for an evaluation task: Algorithm 1 on the task's own prompts (task "
                     "equivalence, end guard), as an oracle file for decoding (oracle=FILE, the sweep's oracle point).")
    p.epilog = ("Reads: the model pair, the lm-eval task's docs. Writes (under --out): mined/ (the mining run; "
                "resumable, the cache a second run reuses), oracle.json (the unimportant mismatches per prompt).")
    add_pair_arguments(p)
    p.add_argument("--task", default="autojudge_gsm8k_bundled",
                   help="lm-eval task whose docs are mined (default autojudge_gsm8k_bundled)")
    p.add_argument("--limit", type=int, help="the first N docs (as lm_eval --limit N)")
    p.add_argument("--max-new-tokens", type=int, help="default: the task's max_gen_toks")
    p.add_argument("--answer", choices=("strict", "flexible"), default="strict",
                   help="GSM8K answer extraction of the equivalence (strict: 'The final answer is N')")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--out", type=Path, required=True, help="output folder (mined/, oracle.json)")


def main(args) -> int:
    from ..models import load_pair, pair_config

    config = pair_config(args.preset, args.target, args.draft)
    pair = load_pair(config.target, config.draft, device=args.device)
    path = make_oracle(pair, args.task, args.out, args.limit, args.max_new_tokens, args.answer == "flexible")
    oracle = load_oracle(path)
    print(f"wrote {path}: {len(oracle.table)} prompts, {sum(map(len, oracle.table.values()))} unimportant mismatches")
    return 0
