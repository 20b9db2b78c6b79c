"""Threshold sweeps: one loaded pair, several acceptance rules, one lm-eval run per point.

Points: lossless (no judge), the judge at several thresholds (optionally also without the end
guard, the paper-exact rule), the top-K baseline at several K, and the perfect judge ("oracle":
Algorithm 1's labels on the evaluated prompts, ``autojudge_harness.oracle``). Each point is a full
``lm_eval.simple_evaluate`` run on the same ``AutoJudgeHFLM`` (the models are loaded once;
``AutoJudgeHFLM.configure`` switches the rule). The speed axis is what a request costs relative to
lossless: target calls per request (hardware independent) and wall time per request; accepted
draft tokens per cycle is the paper's figure. Output in ``out_dir``:

    points/<slug>.json          lm-eval's result JSON for that point (config.autojudge has the stats)
    points/<slug>.answers.json  the filtered answer per document (for agreement with lossless)
    sweep.json                  the combined leaderboard (``combine``), sweep.png the Pareto plot

A point whose two files exist is not re-run (a killed sweep resumes). ``agreement_with_lossless``
is the fraction of documents whose extracted answer equals the lossless run's: it shows what the
lossy rule changes even where the task metric cannot (a small model that solves nothing).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from ..cli_args import add_pair_arguments
from ..judge import Judge, load_judge
from ..settings import AcceptanceSettings


@dataclass(frozen=True)
class SweepPoint:
    """One acceptance rule: mode "lossless", "judge" (with ``threshold``), "top-k" (with ``k``) or
    "oracle" (the perfect judge); ``end_guard`` False is the paper-exact rule (no end guard)."""

    mode: str
    threshold: float | None = None
    k: int | None = None
    end_guard: bool = True

    @property
    def label(self) -> str:
        name = (f"judge t={self.threshold:g}" if self.mode == "judge" else
                f"top-{self.k}" if self.mode == "top-k" else self.mode)
        return name if self.end_guard or self.mode == "lossless" else f"{name} no guard"

    def settings(self, judge: str | None, oracle: str | None = None) -> AcceptanceSettings:
        """This point's acceptance settings (``judge``, ``oracle``: the sweep's judge and oracle files)."""
        if self.mode == "judge":
            return AcceptanceSettings.from_args(judge=judge, threshold=self.threshold, end_guard=self.end_guard)
        if self.mode == "oracle":
            return AcceptanceSettings.from_args(oracle=oracle, end_guard=self.end_guard)
        if self.mode == "top-k":
            return AcceptanceSettings(accept_top_k=self.k, end_guard=self.end_guard)
        return AcceptanceSettings()

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "_", self.label).strip("_")


def sweep_points(thresholds: list[float], top_ks: list[int], oracle: bool = False,
                 unguarded: list[float] = ()) -> list[SweepPoint]:
    """Lossless first, then judge thresholds, the ``unguarded`` thresholds without the end guard
    and top-K values (each ascending, de-duplicated), then the oracle point if asked for."""
    if any(t < 0 for t in [*thresholds, *unguarded]) or any(k < 1 for k in top_ks):
        raise ValueError(f"thresholds must be >= 0 and K >= 1; got {thresholds}, {list(unguarded)} and {top_ks}")
    return ([SweepPoint("lossless")] + [SweepPoint("judge", threshold=t) for t in sorted(set(thresholds))]
            + [SweepPoint("judge", threshold=t, end_guard=False) for t in sorted(set(unguarded))]
            + [SweepPoint("top-k", k=k) for k in sorted(set(top_ks))] + ([SweepPoint("oracle")] if oracle else []))


def default_thresholds(judge: Judge, count: int = 6) -> list[float]:
    """The judge file's own threshold plus ``count`` - 1 more spread evenly over its validation
    threshold table (the paper's Pareto grid); ``count`` 1: the judge's own threshold only."""
    if count < 1:
        raise ValueError(f"the number of thresholds must be >= 1, got {count}")
    table = [row["threshold"] for row in judge.threshold_table]
    picks = [table[round(i * (len(table) - 1) / (count - 2))] for i in range(count - 1)] if table and count > 2 else \
        table[len(table) // 2: len(table) // 2 + 1] if table and count == 2 else []
    return sorted({round(t, 4) for t in picks} | {round(judge.threshold, 4)})


def run_sweep(lm, points: list[SweepPoint], task: str, out_dir: Path, judge: str | None, *,
              task_manager=None, limit: int | float | None = None, gen_kwargs: str | None = None,
              apply_chat_template: bool = False, metric: str | None = None,
              confirm_run_unsafe_code: bool = False, oracle: str | None = None) -> dict:
    """Evaluate every point with ``lm`` (an ``AutoJudgeHFLM``); write the files above; return the
    combined leaderboard. ``oracle``: the oracle file of the oracle point (``sweep_oracle``). Tasks
    that execute model-written code (``unsafe_code``, e.g. LiveCodeBench) need
    ``confirm_run_unsafe_code``, as with lm-eval's CLI."""
    import lm_eval
    from lm_eval.utils import handle_non_serializable

    if any(p.mode == "judge" for p in points) and not judge:
        raise ValueError("judge thresholds need a judge file")
    if any(p.mode == "oracle" for p in points) and not oracle:
        raise ValueError("the oracle point needs an oracle file (sweep_oracle or autojudge oracle)")
    out_dir = Path(out_dir)
    (out_dir / "points").mkdir(parents=True, exist_ok=True)
    runs, warmed_up = [], False
    for point in tqdm(points, desc="sweep points"):
        result_file = out_dir / "points" / f"{point.slug}.json"
        answers_file = out_dir / "points" / f"{point.slug}.answers.json"
        if not (result_file.exists() and answers_file.exists()):
            lm.configure(point.settings(judge, oracle), sample_stats_path=out_dir / "points" / f"{point.slug}.samples.jsonl")
            if not warmed_up:   # one-off allocation costs must not land in the first point's timing
                lm.warm_up()
                warmed_up = True
            results = lm_eval.simple_evaluate(
                model=lm, tasks=[task], task_manager=task_manager, limit=limit, gen_kwargs=gen_kwargs,
                apply_chat_template=apply_chat_template, fewshot_as_multiturn=apply_chat_template,
                log_samples=True, confirm_run_unsafe_code=confirm_run_unsafe_code)
            answers = answers_by_doc(results.pop("samples").get(task, []))
            result_file.write_text(json.dumps(results, indent=2, default=handle_non_serializable))
            answers_file.write_text(json.dumps(answers, default=handle_non_serializable))
        runs.append((point, json.loads(result_file.read_text()), json.loads(answers_file.read_text()), result_file))
    combined = combine(runs, task, metric, load_judge(judge).threshold if judge else None)
    (out_dir / "sweep.json").write_text(json.dumps(combined, indent=2))
    plot_sweep(combined, out_dir / "sweep.png")
    return combined


def answers_by_doc(samples: list[dict]) -> dict:
    """``{doc_id: {filter: filtered_resps}}`` of one task's logged lm-eval samples (for agreement)."""
    answers: dict = {}
    for sample in samples:
        answers.setdefault(str(sample["doc_id"]), {})[sample["filter"]] = sample["filtered_resps"]
    return answers


def primary_metric(task_results: dict) -> str:
    """The first reported metric of a task's results ("name,filter"), skipping stderr entries."""
    for key in task_results:
        if "," in key and "_stderr," not in key:
            return key
    raise ValueError(f"no metric in {sorted(task_results)}")


COST_KEYS = ("target_calls_per_request", "draft_calls_per_request", "generated_tokens_per_request",
             "wall_time_per_request_s")


def combine(runs: list[tuple[SweepPoint, dict, dict, Path]], task: str, metric: str | None = None,
            judge_threshold: float | None = None) -> dict:
    """Leaderboard over ``runs`` (point, lm-eval results, answers per doc, result file); the first
    run must be lossless (the reference for relative cost, acceptance and agreement). With an oracle
    run, each row's ``share_of_oracle_saving`` is its saving in target calls over the oracle's.
    ``judge_threshold``: the judge file's own threshold (the point the goals are checked at)."""
    if not runs or runs[0][0].mode != "lossless":
        raise ValueError("the first sweep point must be lossless")
    metric = metric or primary_metric(runs[0][1]["results"][task])
    filter_name = metric.split(",", 1)[1] if "," in metric else None
    reference_answers = runs[0][2]
    rows = []
    for point, results, answers, result_file in runs:
        task_results = results["results"][task]
        if metric not in task_results:
            raise ValueError(f"metric {metric!r} not in {task}'s results: {sorted(task_results)}")
        stats = results["config"]["autojudge"]["stats"]
        rows.append({
            "label": point.label, **asdict(point), "metric": task_results[metric],
            "metric_stderr": task_results.get(metric.replace(",", "_stderr,", 1)),
            "agreement_with_lossless": _agreement(answers, reference_answers, filter_name),
            **{key: stats[key] for key in (*COST_KEYS, "accepted_per_cycle", "tokens_per_cycle",
                                           "lenient_accepted_fraction", "tokens_per_second", "generated_tokens",
                                           "wall_time_s", "target_calls", "draft_calls", "cycles", "requests")},
            "results_file": str(result_file),
        })
    base = rows[0]
    for row in rows:
        row["target_calls_vs_lossless"] = _ratio(row["target_calls_per_request"], base["target_calls_per_request"])
        row["wall_time_vs_lossless"] = _ratio(row["wall_time_per_request_s"], base["wall_time_per_request_s"])
        row["accepted_per_cycle_vs_lossless"] = _ratio(row["accepted_per_cycle"], base["accepted_per_cycle"])
    oracle = next((r for r in rows if r["mode"] == "oracle"), None)
    for row in rows:
        row["share_of_oracle_saving"] = (None if oracle is None or oracle["target_calls_vs_lossless"] >= 1
                                         else (1 - row["target_calls_vs_lossless"]) / (1 - oracle["target_calls_vs_lossless"]))
    config = runs[0][1]["config"]["autojudge"]
    return {
        "task": task, "metric": metric,
        "pair": {k: config.get(k) for k in ("target", "draft", "window", "dtype", "device", "preset")},
        "judge": next((r[1]["config"]["autojudge"]["judge"] for r in runs if r[0].mode == "judge"), None),
        "judge_threshold": judge_threshold,
        "limit": runs[0][1]["config"].get("limit"),
        "points": rows,
        "pareto": {y: {x: pareto_front(rows, x, y) for x in PARETO_X} for y in ("metric", "agreement_with_lossless")},
    }


# Pareto x axes: (key, True where lower is better)
PARETO_X = {"target_calls_vs_lossless": True, "accepted_per_cycle": False}


def _ratio(value, base):
    return value / base if value is not None and base else None


def _agreement(answers: dict, reference: dict, filter_name: str | None) -> float | None:
    """Fraction of the reference's documents whose filtered answer is the same here."""
    if not reference:
        return None
    same = 0
    for doc, by_filter in reference.items():
        name = filter_name if filter_name in by_filter else next(iter(by_filter))
        same += answers.get(doc, {}).get(name) == by_filter[name]
    return same / len(reference)


def pareto_front(rows: list[dict], x: str, y: str) -> list[str]:
    """Labels of the rows no other row beats on both ``x`` and ``y`` (higher ``y`` is better; lower
    ``x`` where ``PARETO_X`` says so, else higher), by ``x``."""
    sign = -1 if PARETO_X.get(x) else 1
    rows = [r for r in rows if r[x] is not None and r[y] is not None]
    front = [r for r in rows if not any(
        sign * o[x] >= sign * r[x] and o[y] >= r[y] and (sign * o[x] > sign * r[x] or o[y] > r[y]) for o in rows)]
    return [r["label"] for r in sorted(front, key=lambda r: r[x])]


def plot_sweep(combined: dict, path: Path) -> None:
    """Metric and agreement with lossless vs target calls per request relative to lossless (the
    cost) and vs accepted draft tokens per cycle (the paper's figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = combined["points"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), squeeze=False)
    styles = {("lossless", True): ("k", "s", "lossless"), ("judge", True): ("tab:blue", "o", "judge"),
              ("judge", False): ("tab:purple", "x", "judge, no end guard"),
              ("top-k", True): ("tab:orange", "^", "top-K"), ("oracle", True): ("tab:green", "*", "perfect judge")}
    for col, x in enumerate(PARETO_X):
        for row_i, y in enumerate(("metric", "agreement_with_lossless")):
            ax = axes[row_i][col]
            for (mode, guard), (color, marker, name) in styles.items():
                pts = sorted((r[x], r[y]) for r in rows if r["mode"] == mode and (r["end_guard"] or mode == "lossless")
                             == guard and r[x] is not None and r[y] is not None)
                if pts:
                    ax.plot(*zip(*pts), marker=marker, color=color, label=name,
                            linestyle="-" if mode in ("judge", "top-k") else "none")
            for r in rows:
                if r[x] is not None and r[y] is not None:
                    ax.annotate(r["label"].replace("judge ", ""), (r[x], r[y]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            ax.set_xlabel({"accepted_per_cycle": "accepted draft tokens per cycle (paper's figure)",
                           "target_calls_vs_lossless": "target calls per request vs lossless (x, lower is cheaper)"}[x])
            ax.set_ylabel(combined["metric"] if y == "metric" else "answer agreement with lossless")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    pair = combined["pair"]
    fig.suptitle(f"{combined['task']}: {pair['target']} / {pair['draft']}, W={pair['window']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_oracle(pair, task: str, include_path, limit: int | None, gen_kwargs: str | None, chat: bool,
                 cache: Path | None = None) -> Path:
    """The oracle file for the sweep's evaluated docs (``mining.oracle.make_oracle``: Algorithm 1 on them,
    with the sweep's max_gen_toks and prompt format), mined once into ``cache`` (default: a folder
    of ``$AUTOJUDGE_CACHE/oracles`` named after everything the labels depend on) and reused."""
    import hashlib
    import os

    from lm_eval.utils import simple_parse_args_string

    from ..models import cache_dir
    from ..mining.oracle import make_oracle

    max_new_tokens = simple_parse_args_string(gen_kwargs or "").get("max_gen_toks")
    if cache is None:
        data = os.environ.get("AUTOJUDGE_GSM8K_JSONL")
        key = json.dumps([task, pair.target_name, pair.draft_name, limit, max_new_tokens, chat,
                          str(include_path), data and str(Path(data).resolve())])
        cache = cache_dir() / "oracles" / f"{re.sub('[^A-Za-z0-9]+', '_', task)}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    return make_oracle(pair, task, cache, limit, int(max_new_tokens) if max_new_tokens else None,
                       include_path=include_path, chat=chat)


def number_list(kind):
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


def print_table(combined: dict) -> None:
    print(f"\n{combined['task']} ({combined['metric']}), {combined['pair']['target']} / {combined['pair']['draft']}, "
          f"W={combined['pair']['window']}, judge={combined['judge']} (x: relative to lossless; lower is cheaper)")
    print("| point | metric | agreement w/ lossless | target calls/request | x | wall s/request | x "
          "| accepted/cycle | output tokens/request | lenient share | share of perfect judge's saving |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in combined["points"]:
        share = "-" if r["share_of_oracle_saving"] is None else f"{r['share_of_oracle_saving']:.2f}"
        print(f"| {r['label']} | {r['metric']:.3f} | {r['agreement_with_lossless']:.2f} | "
              f"{r['target_calls_per_request']:.1f} | {r['target_calls_vs_lossless']:.2f}x | "
              f"{r['wall_time_per_request_s']:.2f} | {r['wall_time_vs_lossless']:.2f}x | {r['accepted_per_cycle']:.2f} | "
              f"{r['generated_tokens_per_request']:.1f} | {r['lenient_accepted_fraction']:.2f} | {share} |")
    for y, fronts in combined["pareto"].items():
        print(f"Pareto front, {y} vs target calls: {', '.join(fronts['target_calls_vs_lossless'])}")
    for line in goal_lines(combined):
        print(line)


def goal_lines(combined: dict, max_calls: float = 0.85, min_agreement: float = 0.90,
               min_share: float = 0.80) -> list[str]:
    """The cost goals at the judge's own threshold (its file's): target calls <= ``max_calls`` x
    lossless at answer agreement >= ``min_agreement``, and >= ``min_share`` of the perfect judge's
    saving (with an oracle point)."""
    own = combined.get("judge_threshold")
    row = next((r for r in combined["points"] if r["mode"] == "judge" and r["end_guard"] and own is not None
                and abs(r["threshold"] - own) < 1e-4), None)
    if row is None:
        return []
    calls, agreement, share = row["target_calls_vs_lossless"], row["agreement_with_lossless"], row["share_of_oracle_saving"]
    slack = 1e-9   # ratios of counts: 0.8 may come out as 0.7999999
    lines = [f"goal, {row['label']} (the judge's own threshold): target calls {calls:.2f}x lossless (goal <= "
             f"{max_calls}x) at answer agreement {agreement:.2f} (goal >= {min_agreement}): "
             f"{'met' if calls <= max_calls + slack and agreement >= min_agreement - slack else 'not met'}"]
    oracle = next((r for r in combined["points"] if r["mode"] == "oracle"), None)
    if share is not None:
        lines.append(f"goal, share of the perfect judge's saving in target calls: {share:.2f} (goal >= {min_share}): "
                     f"{'met' if share >= min_share - slack else 'not met'}")
    elif oracle is not None:
        lossless = next(r for r in combined["points"] if r["mode"] == "lossless")
        lines.append(f"goal, share of the perfect judge's saving in target calls: undefined, the perfect judge saves "
                     f"none here ({oracle['target_calls_vs_lossless']:.2f}x lossless, "
                     f"{oracle['generated_tokens_per_request']:.1f} output tokens per request against lossless's "
                     f"{lossless['generated_tokens_per_request']:.1f}); the judge: {calls:.2f}x")
    return lines


def configure_parser(p) -> None:
    p.description = ("Sweep acceptance rules for one pair, task and judge (lossless, judge thresholds, top-K): "
                     "one process, the models loaded once, one lm-eval run per point.")
    p.epilog = ("Reads: the model pair, the judge file (default: the preset's), the lm-eval task. Writes (under "
                "--out): points/<point>.json (lm-eval's result JSON with the speed statistics), "
                "points/<point>.answers.json, points/<point>.samples.jsonl, sweep.json (the leaderboard), "
                "sweep.png (Pareto plots: metric and answer agreement vs target calls per request relative to "
                "lossless and vs accepted tokens per cycle); with --oracle also the oracle's mining run and file "
                "under --oracle-cache. A rerun skips finished points. Thresholds default to the judge's own plus "
                "--table-points - 1 more spread over its validation threshold table. The table ends with the cost "
                "goals checked at the judge's own threshold.")
    add_pair_arguments(p, judge_help="judge file (default: the preset's)", window=True)
    p.add_argument("--thresholds", type=number_list(float), help="comma-separated judge thresholds")
    p.add_argument("--table-points", type=int, default=6,
                   help="without --thresholds: this many thresholds, the judge's own and the rest spread over its "
                        "threshold table (1: the judge's own only)")
    p.add_argument("--top-k", type=number_list(int), default=[], help="comma-separated K for the top-K baseline")
    p.add_argument("--no-guard-thresholds", type=number_list(float), default=[],
                   help="comma-separated judge thresholds to run also without the end guard (the paper-exact rule)")
    p.add_argument("--oracle", action="store_true",
                   help="add the perfect judge's point: Algorithm 1 on the evaluated docs (GSM8K-style tasks), "
                        "mined once into --oracle-cache and reused by later sweeps")
    p.add_argument("--oracle-cache", type=Path,
                   help="the oracle's mining run and file (default: $AUTOJUDGE_CACHE/oracles/<task, pair, limit, "
                        "max tokens, data>)")
    p.add_argument("--task", default="autojudge_gsm8k_bundled", help="lm-eval task (default autojudge_gsm8k_bundled)")
    p.add_argument("--include-path", type=Path, help="lm-eval task folder (default: the installed tasks)")
    p.add_argument("--metric", help="'name,filter' (default: the task's first metric)")
    p.add_argument("--limit", type=float,
                   help="documents per point, as lm_eval --limit (a count, or a fraction below 1)")
    p.add_argument("--gen-kwargs", help="lm-eval gen_kwargs override, e.g. max_gen_toks=128")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--confirm_run_unsafe_code", action="store_true",
                   help="allow tasks that execute model-written code (LiveCodeBench), as lm_eval's flag")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf",
                   help="autojudge_hf (default), or autojudge_vllm: one engine for the judge, its threshold changed "
                   "between points by an RPC; lossless = threshold 0; no top-K points (docs/vllm.md)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default="auto", help="model dtype (default auto: bfloat16 on GPU, float32 on CPU)")
    p.add_argument("--compile", action="store_true", help="static KV cache + torch.compile (GPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="output folder (points/, sweep.json, sweep.png)")


def main(args) -> int:
    import torch
    from lm_eval.tasks import TaskManager

    from ..judge import load_judge
    from ..lm_eval_models.hf import AutoJudgeHFLM
    from ..models import pair_config
    from ..resources import tasks_path

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.backend == "vllm":   # the vLLM backend's hook (autojudge_harness/lm_eval_models/vllm.py)
        from ..lm_eval_models.vllm import sweep_model

        lm, judge = sweep_model(args)
    else:
        judge = pair_config(args.preset, args.target, args.draft, args.judge, args.window).judge
    thresholds = args.thresholds
    if thresholds is None:
        thresholds = default_thresholds(load_judge(judge), args.table_points) if judge else []
    points = sweep_points(thresholds, args.top_k, args.oracle, args.no_guard_thresholds)
    if args.backend == "hf":
        lm = AutoJudgeHFLM(pretrained=args.target, draft=args.draft, window=args.window, preset=args.preset,
                           device=args.device, dtype=args.dtype, compile=args.compile)
    elif args.oracle:
        raise SystemExit("--oracle runs with --backend hf (the perfect judge replays Algorithm 1 in autojudge_hf)")
    limit = int(args.limit) if args.limit and args.limit >= 1 else args.limit
    include_path = args.include_path or tasks_path()
    oracle = None
    if args.oracle:
        if limit is not None and not isinstance(limit, int):
            raise SystemExit("--oracle needs --limit as a number of docs (or none)")
        oracle = sweep_oracle(lm.pair, args.task, include_path, limit, args.gen_kwargs, not args.no_chat,
                              args.oracle_cache)
    combined = run_sweep(lm, points, args.task, args.out, judge,
                         task_manager=TaskManager(include_path=str(include_path)),
                         limit=limit, gen_kwargs=args.gen_kwargs, apply_chat_template=not args.no_chat,
                         metric=args.metric, confirm_run_unsafe_code=args.confirm_run_unsafe_code,
                         oracle=str(oracle) if oracle else None)
    print_table(combined)
    print(f"\nwrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")
    return 0
