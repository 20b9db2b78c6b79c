"""Threshold sweeps: one loaded pair, several acceptance rules, one lm-eval run per point.

Points: lossless (no judge), the judge at several thresholds, and the top-K baseline at several
K. Each point is a full ``lm_eval.simple_evaluate`` run on the same ``AutoJudgeHFLM`` (the
models are loaded once; ``AutoJudgeHFLM.configure`` switches the rule). Output in ``out_dir``:

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

from ..judge import Judge
from ..settings import AcceptanceSettings


@dataclass(frozen=True)
class SweepPoint:
    """One acceptance rule: mode "lossless", "judge" (with ``threshold``) or "top-k" (with ``k``)."""

    mode: str
    threshold: float | None = None
    k: int | None = None

    @property
    def label(self) -> str:
        if self.mode == "judge":
            return f"judge t={self.threshold:g}"
        return f"top-{self.k}" if self.mode == "top-k" else "lossless"

    def settings(self, judge: str | None) -> AcceptanceSettings:
        """This point's acceptance settings (``judge``: the judge file of the sweep)."""
        if self.mode == "judge":
            return AcceptanceSettings.from_args(judge=judge, threshold=self.threshold)
        return AcceptanceSettings(accept_top_k=self.k) if self.mode == "top-k" else AcceptanceSettings()

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "_", self.label).strip("_")


def sweep_points(thresholds: list[float], top_ks: list[int]) -> list[SweepPoint]:
    """Lossless first, then judge thresholds and top-K values, each ascending and de-duplicated."""
    if any(t < 0 for t in thresholds) or any(k < 1 for k in top_ks):
        raise ValueError(f"thresholds must be >= 0 and K >= 1; got {thresholds} and {top_ks}")
    return ([SweepPoint("lossless")] + [SweepPoint("judge", threshold=t) for t in sorted(set(thresholds))]
            + [SweepPoint("top-k", k=k) for k in sorted(set(top_ks))])


def default_thresholds(judge: Judge, count: int = 6) -> list[float]:
    """The judge file's own threshold plus ``count`` thresholds spread evenly over its validation
    threshold table (the paper's Pareto grid)."""
    table = [row["threshold"] for row in judge.threshold_table]
    picks = [table[round(i * (len(table) - 1) / (count - 1))] for i in range(count)] if table and count > 1 else table
    return sorted({round(t, 4) for t in picks} | {round(judge.threshold, 4)})


def run_sweep(lm, points: list[SweepPoint], task: str, out_dir: Path, judge: str | None, *,
              task_manager=None, limit: int | float | None = None, gen_kwargs: str | None = None,
              apply_chat_template: bool = False, metric: str | None = None,
              confirm_run_unsafe_code: bool = False) -> dict:
    """Evaluate every point with ``lm`` (an ``AutoJudgeHFLM``); write the files above; return the
    combined leaderboard. Tasks that execute model-written code (``unsafe_code``, e.g. LiveCodeBench)
    need ``confirm_run_unsafe_code``, as with lm-eval's CLI."""
    import lm_eval
    from lm_eval.utils import handle_non_serializable

    if any(p.mode == "judge" for p in points) and not judge:
        raise ValueError("judge thresholds need a judge file")
    out_dir = Path(out_dir)
    (out_dir / "points").mkdir(parents=True, exist_ok=True)
    runs, warmed_up = [], False
    for point in tqdm(points, desc="sweep points"):
        result_file = out_dir / "points" / f"{point.slug}.json"
        answers_file = out_dir / "points" / f"{point.slug}.answers.json"
        if not (result_file.exists() and answers_file.exists()):
            lm.configure(point.settings(judge), sample_stats_path=out_dir / "points" / f"{point.slug}.samples.jsonl")
            if not warmed_up:   # one-off allocation costs must not land in the first point's timing
                lm.warm_up()
                warmed_up = True
            results = lm_eval.simple_evaluate(
                model=lm, tasks=[task], task_manager=task_manager, limit=limit, gen_kwargs=gen_kwargs,
                apply_chat_template=apply_chat_template, fewshot_as_multiturn=apply_chat_template,
                log_samples=True, confirm_run_unsafe_code=confirm_run_unsafe_code)
            answers: dict = {}
            for sample in results["samples"].get(task, []):
                answers.setdefault(str(sample["doc_id"]), {})[sample["filter"]] = sample["filtered_resps"]
            results.pop("samples")
            result_file.write_text(json.dumps(results, indent=2, default=handle_non_serializable))
            answers_file.write_text(json.dumps(answers, default=handle_non_serializable))
        runs.append((point, json.loads(result_file.read_text()), json.loads(answers_file.read_text()), result_file))
    combined = combine(runs, task, metric)
    (out_dir / "sweep.json").write_text(json.dumps(combined, indent=2))
    plot_sweep(combined, out_dir / "sweep.png")
    return combined


def primary_metric(task_results: dict) -> str:
    """The first reported metric of a task's results ("name,filter"), skipping stderr entries."""
    for key in task_results:
        if "," in key and "_stderr," not in key:
            return key
    raise ValueError(f"no metric in {sorted(task_results)}")


def combine(runs: list[tuple[SweepPoint, dict, dict, Path]], task: str, metric: str | None = None) -> dict:
    """Leaderboard over ``runs`` (point, lm-eval results, answers per doc, result file); the first
    run must be lossless (the reference for relative speed, acceptance and agreement)."""
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
            **{key: stats[key] for key in ("accepted_per_cycle", "tokens_per_cycle", "lenient_accepted_fraction",
                                           "tokens_per_second", "generated_tokens", "wall_time_s",
                                           "target_calls", "draft_calls", "cycles", "requests")},
            "results_file": str(result_file),
        })
    base = rows[0]
    for row in rows:
        row["speed_vs_lossless"] = row["tokens_per_second"] / base["tokens_per_second"] if base["tokens_per_second"] else None
        row["accepted_per_cycle_vs_lossless"] = (row["accepted_per_cycle"] / base["accepted_per_cycle"]
                                                 if base["accepted_per_cycle"] else None)
    config = runs[0][1]["config"]["autojudge"]
    return {
        "task": task, "metric": metric,
        "pair": {k: config.get(k) for k in ("target", "draft", "window", "dtype", "device", "preset")},
        "judge": next((r[1]["config"]["autojudge"]["judge"] for r in runs if r[0].mode == "judge"), None),
        "limit": runs[0][1]["config"].get("limit"),
        "points": rows,
        "pareto": {y: {x: pareto_front(rows, x, y) for x in ("accepted_per_cycle", "speed_vs_lossless")}
                   for y in ("metric", "agreement_with_lossless")},
    }


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
    """Labels of the rows no other row beats on both ``x`` and ``y`` (higher is better), by ``x``."""
    rows = [r for r in rows if r[x] is not None and r[y] is not None]
    front = [r for r in rows if not any(
        o[x] >= r[x] and o[y] >= r[y] and (o[x] > r[x] or o[y] > r[y]) for o in rows)]
    return [r["label"] for r in sorted(front, key=lambda r: r[x])]


def plot_sweep(combined: dict, path: Path) -> None:
    """Metric and agreement with lossless vs accepted tokens per cycle and vs wall-clock speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = combined["points"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), squeeze=False)
    styles = {"lossless": ("k", "s"), "judge": ("tab:blue", "o"), "top-k": ("tab:orange", "^")}
    for col, x in enumerate(("accepted_per_cycle", "speed_vs_lossless")):
        for row_i, y in enumerate(("metric", "agreement_with_lossless")):
            ax = axes[row_i][col]
            for mode, (color, marker) in styles.items():
                pts = sorted((r[x], r[y]) for r in rows if r["mode"] == mode and r[x] is not None and r[y] is not None)
                if pts:
                    ax.plot(*zip(*pts), marker=marker, color=color, label=mode,
                            linestyle="-" if mode != "lossless" else "none")
            for r in rows:
                if r[x] is not None and r[y] is not None:
                    ax.annotate(r["label"].replace("judge ", ""), (r[x], r[y]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            ax.set_xlabel({"accepted_per_cycle": "accepted draft tokens per cycle",
                           "speed_vs_lossless": "wall-clock speed vs lossless (x)"}[x])
            ax.set_ylabel(combined["metric"] if y == "metric" else "answer agreement with lossless")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    pair = combined["pair"]
    fig.suptitle(f"{combined['task']}: {pair['target']} / {pair['draft']}, W={pair['window']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def number_list(kind):
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


def print_table(combined: dict) -> None:
    print(f"\n{combined['task']} ({combined['metric']}), {combined['pair']['target']} / {combined['pair']['draft']}, "
          f"W={combined['pair']['window']}, judge={combined['judge']}")
    print("| point | metric | agreement w/ lossless | accepted/cycle | vs lossless | tok/s | speed vs lossless | judge-accepted share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in combined["points"]:
        print(f"| {r['label']} | {r['metric']:.3f} | {r['agreement_with_lossless']:.2f} | {r['accepted_per_cycle']:.2f} | "
              f"{r['accepted_per_cycle_vs_lossless']:.2f}x | {r['tokens_per_second']:.1f} | {r['speed_vs_lossless']:.2f}x | "
              f"{r['lenient_accepted_fraction']:.2f} |")
    for y, fronts in combined["pareto"].items():
        print(f"Pareto front, {y} vs accepted/cycle: {', '.join(fronts['accepted_per_cycle'])}")


def configure_parser(p) -> None:
    p.description = ("Sweep acceptance rules for one pair, task and judge (lossless, judge thresholds, top-K): "
                     "one process, the models loaded once, one lm-eval run per point.")
    p.epilog = ("Reads: the model pair, the judge file (default: the preset's), the lm-eval task. Writes (under "
                "--out): points/<point>.json (lm-eval's result JSON with the speed statistics), "
                "points/<point>.answers.json, points/<point>.samples.jsonl, sweep.json (the leaderboard), "
                "sweep.png (Pareto plots). A rerun skips finished points. Thresholds default to the judge's own "
                "plus --table-points spread over its validation threshold table.")
    p.add_argument("--preset", default="smollm2-135m", help="named pair; '' to use --target/--draft only")
    p.add_argument("--target")
    p.add_argument("--draft")
    p.add_argument("--judge", help="judge file (default: the preset's)")
    p.add_argument("--window", type=int)
    p.add_argument("--thresholds", type=number_list(float), help="comma-separated judge thresholds")
    p.add_argument("--table-points", type=int, default=6,
                   help="without --thresholds: this many thresholds from the judge's threshold table")
    p.add_argument("--top-k", type=number_list(int), default=[], help="comma-separated K for the top-K baseline")
    p.add_argument("--task", default="autojudge_gsm8k_bundled")
    p.add_argument("--include-path", type=Path, help="lm-eval task folder (default: the installed tasks)")
    p.add_argument("--metric", help="'name,filter' (default: the task's first metric)")
    p.add_argument("--limit", type=float)
    p.add_argument("--gen-kwargs", help="lm-eval gen_kwargs override, e.g. max_gen_toks=128")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--confirm_run_unsafe_code", action="store_true",
                   help="allow tasks that execute model-written code (LiveCodeBench), as lm_eval's flag")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf",
                   help="autojudge_hf (default), or autojudge_vllm: one engine for the judge, its threshold changed "
                   "between points by an RPC; lossless = threshold 0; no top-K points (docs/vllm.md)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--compile", action="store_true", help="static KV cache + torch.compile (GPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True)


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
    points = sweep_points(thresholds, args.top_k)
    if args.backend == "hf":
        lm = AutoJudgeHFLM(pretrained=args.target, draft=args.draft, window=args.window, preset=args.preset,
                           device=args.device, dtype=args.dtype, compile=args.compile)
    limit = int(args.limit) if args.limit and args.limit >= 1 else args.limit
    combined = run_sweep(lm, points, args.task, args.out, judge,
                         task_manager=TaskManager(include_path=str(args.include_path or tasks_path())),
                         limit=limit, gen_kwargs=args.gen_kwargs, apply_chat_template=not args.no_chat,
                         metric=args.metric, confirm_run_unsafe_code=args.confirm_run_unsafe_code)
    print_table(combined)
    print(f"\nwrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")
    return 0
