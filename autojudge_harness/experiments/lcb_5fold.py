"""LiveCodeBench's out-of-fold protocol (AutoJudge paper): LiveCodeBench has no train split, so
its problems are split into K folds by question id; for each fold a judge is trained on the mined
mismatches of the OTHER folds' problems and that fold's problems are decoded (lm-eval,
``autojudge_hf``) with it; the metric is reported over all folds together.

Steps (``run``; ``autojudge lcb-5fold`` is the CLI), all under one run directory:
1. ``folds.json``: folds of the sorted LiveCodeBench question ids, shuffled with ``seed`` and dealt
   round-robin (deterministic; a rerun checks the existing file against the data and settings).
2. ``mined/``: Algorithm 1 on EVERY problem, once. A problem's mined records do not depend on the
   fold (mining uses only the models, the prompt and the problem's own tests), so each fold trains
   on the records of its K-1 training folds instead of mining them K-1 times. Resumable.
3. per fold k, ``fold-k/``: ``judge.safetensors`` (``autojudge_harness.training`` on the training folds'
   question ids), then lm-eval on fold k's problems (``samples=``) -> ``result.json``. A fold whose
   ``result.json`` matches the current settings is skipped on rerun. A fold whose training
   mismatches cannot give a judge (no mismatches, one class only, or a validation split with one
   class) is decoded LOSSLESSLY (no judge) and says so in its ``classifier`` entry
   (``status: "untrainable"`` + the reason) -- reported, never hidden.
4. optional ``lossless/``: the same problems decoded without a judge (the baseline).
5. ``lcb_5fold.json``: overall Pass@1 and speed statistics over all problems, per-fold breakdown,
   per-problem verdicts, the fold file (path + sha256), classifier ids (sha256 of each judge file);
   ``lcb_5fold.png``: per-fold Pass@1 and accepted tokens per cycle (judge vs lossless).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..mining.pipeline import file_sha256
from ..prompts import environment
from ..settings import DEFAULT_WINDOW
from .evaluation import read_jsonl, run_lm_eval
from .statistics import bootstrap_indices, compare_with_lossless, mean_ci

JSONL_ENV, TIMEOUT_ENV = "AUTOJUDGE_LCB_JSONL", "AUTOJUDGE_LCB_TIMEOUT"  # read by the LiveCodeBench tasks
FOLDS_FILE, RESULT_FILE, SUMMARY_FILE = "folds.json", "result.json", "lcb_5fold.json"


def make_folds(question_ids: Sequence[str], k: int = 5, seed: int = 0) -> list[list[str]]:
    """K folds of ``question_ids``: sorted, shuffled with ``seed``, dealt round-robin; each fold
    sorted. Independent of the input order. ValueError on duplicates or fewer ids than folds."""
    ids = sorted(question_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate question ids: folds need unique ids")
    if k < 2 or len(ids) < k:
        raise ValueError(f"need k >= 2 folds and at least k problems, got k={k} for {len(ids)} problems")
    random.Random(seed).shuffle(ids)
    return [sorted(ids[i::k]) for i in range(k)]


def folds_document(question_ids: Sequence[str], k: int, seed: int, dataset: dict) -> dict:
    return {"format": "autojudge-lcb-folds/1", "k": k, "seed": seed, "dataset": dataset,
            "folds": make_folds(question_ids, k, seed)}


def write_or_check_folds(path: Path, document: dict) -> dict:
    """Write the fold file, or check that an existing one is exactly ``document``."""
    if path.exists():
        found = json.loads(path.read_text())
        if found != document:
            raise ValueError(f"{path}: folds differ from this run's data/k/seed (another run directory, or "
                             "remove the file to start over)")
        return found
    path.write_text(json.dumps(document, indent=1) + "\n")
    return document


@dataclass
class LCBData:
    """The problems of one run: rows (hub columns), Problems, where they come from, and the lm-eval
    task (+ environment) whose docs are these rows in this order."""

    rows: list
    problems: list
    info: dict
    task: str
    task_env: dict


def load_data(data: str | None = None, release: str = "release_v5", limit: int | None = None) -> LCBData:
    """A local JSONL file (``data``) or the hub ``release`` (rows as the hub's text, whatever types
    ``datasets`` gave them); the first ``limit`` problems."""
    from ..livecodebench import load_hub_rows, problem_from_row, read_lcb_jsonl, text_columns
    from ..mining.lcb import problems_digest

    if data is not None:
        path = Path(data).resolve()
        rows = read_lcb_jsonl(path)
        info = {"dataset": str(path), "dataset_sha256": file_sha256(path), "split": "file"}
        task, env = local_task(path)
    else:
        hub = load_hub_rows(release)
        count = len(hub) if limit is None else min(limit, len(hub))
        rows = [text_columns(hub[i], f"problem {i}") for i in range(count)]
        info = {"dataset": f"livecodebench/code_generation_lite {release}", "split": "test"}
        task, env = f"autojudge_lcb_{release}", {JSONL_ENV: None}
    rows = rows[:limit] if limit is not None else rows
    problems = [problem_from_row(r, f"problem {i}") for i, r in enumerate(rows)]
    info.setdefault("dataset_sha256", problems_digest(problems))
    return LCBData(rows, problems, info, task, env)


def local_task(path: Path) -> tuple[str, dict]:
    """The lm-eval task (+ environment) whose docs are the rows of the local file ``path``: the
    bundled task for the bundled problems, else the LiveCodeBench task reading ``$AUTOJUDGE_LCB_JSONL``
    (taken whole; the release in its name is not used)."""
    from ..resources import bundled_problems

    if path == bundled_problems("livecodebench_bundled").resolve():
        return "autojudge_lcb_bundled", {JSONL_ENV: None}
    return "autojudge_lcb_release_v5", {JSONL_ENV: str(path)}


def evaluate(model_args: str, data: LCBData, doc_ids: Sequence[int], max_gen_toks: int | None, device: str,
             timeout: float) -> dict:
    """One lm-eval run of ``autojudge_hf`` on docs ``doc_ids`` of the data's task, its programs
    graded with ``timeout`` seconds per test; returns Pass@1, the per-problem verdicts and the speed
    statistics."""
    with environment(**data.task_env, **{TIMEOUT_ENV: f"{timeout:g}"}):
        results = run_lm_eval(model_args, data.task, samples={data.task: list(doc_ids)}, confirm_run_unsafe_code=True,
                              log_samples=True, gen_kwargs=f"max_gen_toks={max_gen_toks}" if max_gen_toks else None,
                              device=device)
    per_problem = []
    for sample in sorted(results["samples"][data.task], key=lambda s: s["doc_id"]):
        verdict = sample["filtered_resps"][0]
        per_problem.append({"doc_id": sample["doc_id"], "question_id": sample["doc"]["question_id"],
                            "passed": bool(verdict["passed"]), "status": verdict["status"]})
    return {"pass@1": results["results"][data.task]["pass@1,sandbox"], "per_problem": per_problem,
            "stats": results["config"]["autojudge"]["stats"]}


def merge_stats(stats: Sequence[dict]) -> dict:
    """Sum the counters of several runs' statistics and recompute the derived rates."""
    from ..stats import DecodingStats

    total = DecodingStats()
    for s in stats:
        total += DecodingStats(**{f.name: s[f.name] for f in fields(DecodingStats)})
    return total.summary()


def train_fold(features: Path, out: Path, train_ids: Sequence[int], feature_kind: str, recall: float,
               val_fraction: float, seed: int) -> dict:
    """Train one fold's judge; the classifier entry of the fold (trained, or untrainable + reason)."""
    from ..training import train
    try:
        report = train(features, out, feature_kind, recall, seed, question_ids=train_ids, val_fraction=val_fraction)
    except ValueError as err:
        return {"status": "untrainable", "reason": str(err), "decoded": "lossless (no judge)"}
    return {"status": "trained", "judge": str(out), "sha256": file_sha256(out), "threshold": report["threshold"],
            "feature_kind": feature_kind, "val_auc": report["kinds"][feature_kind]["val_auc"],
            "C": report["kinds"][feature_kind]["C"], "counts": report["counts"]}


def run(run_dir: Path, data: LCBData, target: str, draft: str, k: int = 5, seed: int = 0,
        max_new_tokens: int = 2048, window: int = DEFAULT_WINDOW, threshold: float | None = None, feature_kind: str = "DD-DT",
        recall: float = 0.9, val_fraction: float = 0.1, lookahead: int | None = None, lossless_baseline: bool = True,
        device: str = "cpu", grader=None, progress: bool = True) -> dict:
    """The whole protocol (module docstring); returns the merged result (also written to disk).
    ``grader`` (default ``Grader()``) grades mining and, through the task, evaluation."""
    from ..grading import Grader
    from ..mining.lcb import mine_lcb
    from ..mining.store import MERGED_FEATURES, merge
    from ..models import load_pair

    grader = grader or Grader()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ids = [p.question_id for p in data.problems]
    index = {qid: i for i, qid in enumerate(ids)}
    folds_path = run_dir / FOLDS_FILE
    folds = write_or_check_folds(folds_path, folds_document(ids, k, seed, data.info))["folds"]

    pair = load_pair(target, draft, device=device)
    mining = mine_lcb(pair, data.problems, data.rows, data.info, run_dir / "mined", list(range(len(ids))), grader,
                      max_new_tokens=max_new_tokens, lookahead=lookahead, progress=progress)
    del pair
    merge(run_dir / "mined")
    features = run_dir / "mined" / MERGED_FEATURES

    base_args = f"pretrained={target},draft={draft},window={window}"
    settings = {"target": target, "draft": draft, "window": window, "threshold": threshold,
                "max_gen_toks": max_new_tokens, "feature_kind": feature_kind, "recall": recall,
                "val_fraction": val_fraction, "seed": seed, "task": data.task, "timeout": grader.timeout}
    fold_results = []
    for fold, test_qids in enumerate(tqdm(folds, desc="folds", disable=not progress, dynamic_ncols=True)):
        fold_dir = run_dir / f"fold-{fold}"
        result_path = fold_dir / RESULT_FILE
        if result_path.exists():
            done = json.loads(result_path.read_text())
            if done["question_ids"] == test_qids and done["settings"] == settings:
                fold_results.append(done)
                continue
        fold_dir.mkdir(exist_ok=True)
        train_ids = [index[q] for f, qs in enumerate(folds) if f != fold for q in qs]
        classifier = train_fold(features, fold_dir / "judge.safetensors", train_ids, feature_kind, recall,
                                val_fraction, seed)
        model_args = base_args + f",sample_stats_path={fold_dir / 'samples.jsonl'}"
        if classifier["status"] == "trained":
            model_args += f",judge={classifier['judge']}" + (f",threshold={threshold}" if threshold is not None else "")
        evaluation = evaluate(model_args, data, [index[q] for q in test_qids], max_new_tokens, device, grader.timeout)
        result = {"fold": fold, "question_ids": test_qids, "train_questions": len(train_ids), "settings": settings,
                  "classifier": classifier, **evaluation}
        result_path.write_text(json.dumps(result, indent=1) + "\n")
        fold_results.append(result)

    lossless = None
    if lossless_baseline:
        path = run_dir / "lossless" / RESULT_FILE
        if path.exists() and json.loads(path.read_text())["settings"] == settings:
            lossless = json.loads(path.read_text())
        else:
            path.parent.mkdir(exist_ok=True)
            lossless = {"settings": settings, **evaluate(
                base_args + f",sample_stats_path={path.parent / 'samples.jsonl'}", data, list(range(len(ids))),
                max_new_tokens, device, grader.timeout)}
            path.write_text(json.dumps(lossless, indent=1) + "\n")

    summary = summarize(fold_results, lossless, folds_path, data, settings, mining, run_dir)
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, run_dir / "lcb_5fold.png")
    return summary


def summarize(fold_results: list[dict], lossless: dict | None, folds_path: Path, data: LCBData, settings: dict,
              mining: dict, run_dir: Path) -> dict:
    """The leaderboard-style merged result (see the module docstring)."""
    per_problem = sorted(({"fold": r["fold"], **p} for r in fold_results for p in r["per_problem"]),
                         key=lambda p: p["doc_id"])
    baseline = {p["question_id"]: p for p in lossless["per_problem"]} if lossless else {}
    for p in per_problem:
        if baseline:
            p["lossless_passed"] = baseline[p["question_id"]]["passed"]
    n = len(per_problem)
    overall = {"pass@1": sum(p["passed"] for p in per_problem) / n, "problems": n,
               "passed": sum(p["passed"] for p in per_problem), **merge_stats([r["stats"] for r in fold_results])}
    results = {"autojudge_out_of_fold": overall}
    if lossless:
        results["lossless"] = {"pass@1": lossless["pass@1"], "problems": len(lossless["per_problem"]),
                               "passed": sum(p["passed"] for p in lossless["per_problem"]), **lossless["stats"]}
        for key, base in (("target_calls_vs_lossless", "target_calls_per_request"),
                          ("wall_time_vs_lossless", "wall_time_per_request_s")):   # the cost of a request
            for name in results:
                results[name][key] = results[name][base] / results["lossless"][base] if results["lossless"][base] else None
    if lossless:
        results["autojudge_out_of_fold"]["paired"] = paired_with_lossless(per_problem, run_dir, len(fold_results))
    return {
        "protocol": f"LiveCodeBench {len(fold_results)}-fold out-of-fold (AutoJudge)",
        "task": data.task, "dataset": data.info, "settings": settings, "results": results,
        "folds_file": {"path": str(folds_path), "sha256": file_sha256(folds_path)},
        "classifiers": [{"fold": r["fold"], **r["classifier"]} for r in fold_results],
        "folds": [{"fold": r["fold"], "problems": len(r["question_ids"]), "pass@1": r["pass@1"],
                   "classifier_status": r["classifier"]["status"],
                   "judge_sha256": r["classifier"].get("sha256"), "stats": r["stats"]} for r in fold_results],
        "mining": {"run": str(run_dir / "mined"), **mining},
        "per_problem": per_problem,
    }


def request_stats(path: Path, doc_ids: Sequence[int]) -> dict[int, dict]:
    """The per-request statistics in ``path`` of a run on ``doc_ids``, by the task's doc id (a rerun
    appends: the last record wins). lm-eval numbers the requests of a ``samples=`` run 0..k-1 in
    dataset order, so record k belongs to the k-th smallest of ``doc_ids``."""
    order = sorted(doc_ids)
    return {order[row["doc_id"]]: row for row in read_jsonl(path) if row["doc_id"] < len(order)}


def paired_with_lossless(per_problem: list[dict], run_dir: Path, folds: int) -> dict:
    """The out-of-fold run against lossless, paired per problem (``statistics.compare_with_lossless``):
    Pass@1 and same verdict as lossless with 95% bootstrap intervals; target calls relative to
    lossless with its interval, the outputs that hit max_gen_toks and the ratio without them, from
    the per-request statistics (fold-K/samples.jsonl, lossless/samples.jsonl; without them, the
    verdicts only)."""
    judged = {}
    docs = [p["doc_id"] for p in per_problem]
    for fold in range(folds):
        judged |= request_stats(run_dir / f"fold-{fold}" / "samples.jsonl",
                                [p["doc_id"] for p in per_problem if p["fold"] == fold])
    base = request_stats(run_dir / "lossless" / "samples.jsonl", docs)
    same = [p["passed"] == p["lossless_passed"] for p in per_problem]
    passed = [float(p["passed"]) for p in per_problem]
    lossless_ci = mean_ci([float(p["lossless_passed"]) for p in per_problem])
    if not all(d in judged and d in base for d in docs):
        indices = bootstrap_indices(len(docs))
        return {"questions": len(docs), "agreement_with_lossless": sum(same) / len(docs),
                "agreement_ci": mean_ci(same, indices), "metric_mean": sum(passed) / len(docs),
                "metric_ci": mean_ci(passed, indices), "lossless_metric_ci": lossless_ci}
    return {**compare_with_lossless([judged[d]["target_calls"] for d in docs], [base[d]["target_calls"] for d in docs],
                                    [judged[d]["finish_reason"] == "length" for d in docs],
                                    [base[d]["finish_reason"] == "length" for d in docs], same, passed),
            "lossless_metric_ci": lossless_ci}


def plot(summary: dict, path: Path) -> None:
    """Per-fold Pass@1, target calls per request (the cost) and accepted tokens per cycle (the
    paper's figure): judge vs the lossless baseline, if run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = summary["folds"]
    x = list(range(len(folds)))
    lossless = summary["results"].get("lossless")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in zip(axes, ("pass@1", "target_calls_per_request", "accepted_per_cycle"),
                              ("Pass@1", "target calls / request", "accepted tokens / cycle")):
        values = [f[key] if key == "pass@1" else f["stats"][key] for f in folds]
        ax.bar(x, values, color=["C0" if f["classifier_status"] == "trained" else "C7" for f in folds],
               label="AutoJudge (grey: untrainable fold, lossless)")
        reference = lossless[key] if lossless else None
        if reference is not None:
            ax.axhline(reference, color="C3", ls="--", label=f"lossless, all problems ({reference:.3g})")
        overall = summary["results"]["autojudge_out_of_fold"][key]
        ax.axhline(overall, color="C0", ls=":", label=f"AutoJudge, all folds ({overall:.3g})")
        ax.set(xticks=x, xticklabels=[f"fold {f['fold']}" for f in folds], ylabel=label, title=label)
        ax.legend(fontsize=8)
    fig.suptitle(summary["protocol"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paired_line(paired: dict) -> str:
    """One line of the out-of-fold run against lossless, with the 95% paired bootstrap intervals."""
    def ci(interval):
        return f"[{interval[0]:.2f}, {interval[1]:.2f}]"

    line = (f"paired over {paired['questions']} problems (95% bootstrap intervals): pass@1 {paired['metric_mean']:.3f} "
            f"{ci(paired['metric_ci'])} vs lossless {ci(paired['lossless_metric_ci'])}; same verdict as lossless "
            f"{paired['agreement_with_lossless']:.2f} {ci(paired['agreement_ci'])}")
    if "target_calls_vs_lossless_ci" not in paired:
        return line + "; no per-request statistics for the target calls"
    uncapped = paired["target_calls_vs_lossless_uncapped"]
    median = paired["median_question_ratio"]
    return (line + f"; target calls {paired['target_calls_vs_lossless']:.2f}x lossless "
            f"{ci(paired['target_calls_vs_lossless_ci'])}, median per problem "
            f"{'-' if median is None else f'{median:.2f}x'}; outputs at max_gen_toks: {paired['capped']} "
            f"(lossless {paired['lossless_capped']}); without those problems "
            f"{'-' if uncapped is None else f'{uncapped:.2f}x'} ({paired['uncapped_questions']} problems)")


def configure_parser(parser) -> None:
    """``autojudge lcb-5fold``: the out-of-fold protocol from the command line."""
    parser.description = ("LiveCodeBench 5-fold out-of-fold protocol: mine every problem once (Algorithm 1, "
                          "sandboxed grading), train a judge per fold on the other folds, decode each fold "
                          "through lm-eval with its judge, and a lossless baseline.")
    parser.epilog = ("Reads: LiveCodeBench problems (the hub's livecodebench/code_generation_lite --release, or "
                     "--data JSONL with the hub's columns). Writes (under --run-dir): folds.json, mined/ (resumable), "
                     "fold-K/ (judge.safetensors, result.json, samples.jsonl), lossless/, lcb_5fold.json, "
                     "lcb_5fold.png. A rerun resumes.")
    parser.add_argument("--preset", help="model pair preset, e.g. smollm2-135m (its GSM8K judge is NOT used)")
    parser.add_argument("--target", help="target model reference (overrides the preset's)")
    parser.add_argument("--draft", help="draft model reference, e.g. layers:24 (overrides the preset's)")
    parser.add_argument("--data", help="local LiveCodeBench JSONL (hub columns) instead of the hub")
    parser.add_argument("--release", default="release_v5", help="hub release (default release_v5, the paper's 880)")
    parser.add_argument("--limit", type=int, help="use the first N problems only")
    parser.add_argument("--run-dir", type=Path, required=True, help="output folder (resumable)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="fold shuffle and classifier split seed")
    parser.add_argument("--max-new-tokens", type=int, default=2048, help="mining responses and evaluation max_gen_toks")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="draft tokens per cycle (W)")
    parser.add_argument("--threshold", type=float, help="override each fold judge's threshold")
    parser.add_argument("--feature-kind", default="DD-DT", choices=("DT", "DD-DT"),
                        help="judge features: DT or DD-DT (default)")
    parser.add_argument("--recall", type=float, default=0.9,
                        help="recall of the important class that sets each fold judge's threshold (default 0.9)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="questions held out to validate each fold's judge (default 0.1)")
    parser.add_argument("--lookahead", type=int, default=None,
                        help="mining look-ahead (default: 8 at batch size 1, 0 in a batch, as autojudge mine)")
    parser.add_argument("--no-lossless-baseline", action="store_true", help="skip the lossless run over all problems")
    parser.add_argument("--timeout", type=float, default=6.0, help="grader: seconds per test (mining and evaluation)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args) -> int:
    import torch

    from ..grading import Grader
    from ..models import pair_config

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = pair_config(args.preset, args.target, args.draft)
    except ValueError as err:
        raise SystemExit(f"give --preset or both --target and --draft ({err})") from None
    data = load_data(args.data, args.release, args.limit)
    summary = run(args.run_dir, data, config.target, config.draft, args.folds, args.seed, args.max_new_tokens,
                  args.window, args.threshold, args.feature_kind, args.recall, args.val_fraction, args.lookahead,
                  not args.no_lossless_baseline, args.device, Grader(timeout=args.timeout),
                  progress=not args.no_progress)
    for name, r in summary["results"].items():
        cost = (f" ({r['target_calls_vs_lossless']:.2f}x lossless)" if r.get("target_calls_vs_lossless") is not None
                else "")
        print(f"{name:22s} pass@1={r['pass@1']:.3f} ({r['passed']}/{r['problems']}) target calls/request="
              f"{r['target_calls_per_request']:.1f}{cost} wall s/request={r['wall_time_per_request_s']:.2f} "
              f"accepted/cycle={r['accepted_per_cycle']:.2f}")
    paired = summary["results"]["autojudge_out_of_fold"].get("paired")
    if paired:
        print(paired_line(paired))
    for f, classifier in zip(summary["folds"], summary["classifiers"]):
        why = f" ({classifier['reason']}; decoded {classifier['decoded']})" if f["classifier_status"] == "untrainable" else ""
        print(f"fold {f['fold']}: pass@1={f['pass@1']:.3f} classifier={f['classifier_status']}{why} "
              f"accepted/cycle={f['stats']['accepted_per_cycle']:.2f}")
    print(f"wrote {args.run_dir / SUMMARY_FILE} and lcb_5fold.png")
    print(json.dumps({"out": str(args.run_dir / SUMMARY_FILE)}))
    return 0
