"""Rule sweeps: one loaded pair, several acceptance rules, one lm-eval run per point.

A point is a label, a rule name and that rule's model_args (``SweepPoint``); ``rule_points`` turns
a rule name into its points over the rule's grid (judge thresholds, top-K's K, the perfect judge
"oracle": Algorithm 1's labels on the evaluated prompts, ``autojudge_harness.oracle``); lossless is
the baseline point, first. Each point is a full ``lm_eval.simple_evaluate`` run on the same model
(loaded once; ``configure`` switches the rule). The speed axis is what a request costs relative to
lossless: target calls (hardware independent) and wall time; accepted draft tokens per cycle is
the paper's figure. Every comparison with lossless is paired per document, with 95% bootstrap
intervals (``statistics``). Output in ``out_dir``:

    points/<slug>/    lm-eval's results_<time>.json and samples_<task>_<time>.jsonl (the generated
                      texts), autojudge_samples.jsonl (per-request statistics): ``evaluation``
    sweep.json        the combined leaderboard (``combine``) with the matched-agreement table
    sweep.png         agreement and accuracy vs target calls relative to lossless (``plots``)

A point whose folder holds a complete run is not re-run (a killed sweep resumes).
``agreement_with_lossless`` is the fraction of documents whose extracted answer equals the lossless
run's: it shows what the lossy rule changes even where the task metric cannot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from ..cli_args import add_pair_arguments
from ..judge import Judge, load_judge, task_family
from ..settings import AcceptanceSettings
from .evaluation import STATS_FILE, evaluate_into, saved_run
from .statistics import (LEVEL, RESAMPLES, SEED, bootstrap_indices, compare_with_lossless, matched_agreement,
                         mean_ci, winner_line)


@dataclass(frozen=True)
class SweepPoint:
    """One acceptance rule's setting: ``label`` (unique in a sweep), ``rule`` (the rule's name, as
    ``AcceptanceSettings.mode`` spells it; "lossless" is the baseline) and ``model_args`` (the
    rule's own model_args for ``autojudge_hf``, e.g. ``{"judge": PATH, "threshold": 0.3}``)."""

    label: str
    rule: str
    model_args: dict = field(default_factory=dict)

    def settings(self) -> AcceptanceSettings:
        """This point's acceptance settings (validated: a missing judge or oracle file is an error)."""
        return AcceptanceSettings.from_args(**self.model_args)

    @property
    def end_guard(self) -> bool:
        return bool(self.model_args.get("end_guard", True))

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "_", self.label).strip("_")


LOSSLESS = SweepPoint("lossless", "lossless")


def point_label(rule: str, values: dict) -> str:
    """``rule`` and its parameter values, short: "judi tau=0.3", "top_k K=2", "trt top_k=10,delta=0.2"."""
    short = {"accept_top_k": "K", "threshold": "t"}
    text = ",".join(f"{short.get(key, key.removeprefix(rule + '_'))}={value:g}" if isinstance(value, float)
                    else f"{short.get(key, key.removeprefix(rule + '_'))}={value}" for key, value in values.items())
    return f"{rule} {text}" if text else rule


def rule_points(rule: str, grid: Sequence | None = None, judge: str | None = None,
                oracle: str | None = None) -> list[SweepPoint]:
    """The points of lenient ``rule`` (a name in ``rules.RULES``) over ``grid`` (None: the rule's own
    ``grid``; the judge's thresholds come from its file, ``default_thresholds``). ``grid``: parameter
    dicts, or for judge and top_k plain thresholds and K values; ``judge``, ``oracle``: the files
    those rules need. Each point's settings are checked here (RuleError naming the value)."""
    from ..rules import rule_class

    if rule == "judge":
        if not judge:
            raise ValueError("the judge rule needs a judge file (--judge, or a preset that ships one)")
        grid = default_thresholds(load_judge(judge)) if grid is None else grid
        if any(t < 0 for t in grid):
            raise ValueError(f"judge thresholds must be >= 0, got {list(grid)}")
        return [SweepPoint(point_label("judge", {"threshold": t}), "judge", {"judge": judge, "threshold": t})
                for t in sorted(set(grid))]
    if rule == "oracle":
        if not oracle:
            raise ValueError("the oracle rule needs an oracle file (sweep_oracle or autojudge oracle)")
        return [SweepPoint("oracle", "oracle", {"oracle": oracle})]
    cls = rule_class(rule)
    if grid is None:
        grid = cls.grid
    elif rule == "top_k":
        if any(not isinstance(k, dict) and k < 1 for k in grid):
            raise ValueError(f"top_k needs K >= 1, got {list(grid)}")
        grid = [k if isinstance(k, dict) else {"accept_top_k": k} for k in sorted(set(grid))]
    points = [SweepPoint(point_label(rule, dict(values)), rule, {"rule": rule, **values}) for values in grid]
    for point in points:
        point.settings()
    return points


def without_end_guard(points: list[SweepPoint]) -> list[SweepPoint]:
    """``points`` with the end guard off (the paper-exact rule), labelled "... no guard"."""
    return [SweepPoint(f"{p.label} no guard", p.rule, {**p.model_args, "end_guard": False}) for p in points]


def sweep_points(rules: Sequence[str], grids: dict | None = None, judge: str | None = None,
                 oracle: str | None = None, unguarded: Sequence[float] = ()) -> list[SweepPoint]:
    """Lossless first, then each rule's points in the order of ``rules`` (``grids``: rule -> grid,
    missing: the rule's default), with the judge's ``unguarded`` thresholds also without the end
    guard right after the judge's points."""
    points = [LOSSLESS]
    for rule in dict.fromkeys(rules):
        points += rule_points(rule, (grids or {}).get(rule), judge, oracle)
        if rule == "judge" and unguarded:
            points += without_end_guard(rule_points("judge", unguarded, judge))
    return points


def default_thresholds(judge: Judge, count: int = 6) -> list[float]:
    """The judge file's own threshold plus ``count`` - 1 more spread evenly over its validation
    threshold table (the paper's Pareto grid); ``count`` 1: the judge's own threshold only."""
    if count < 1:
        raise ValueError(f"the number of thresholds must be >= 1, got {count}")
    table = [row["threshold"] for row in judge.threshold_table]
    picks = [table[round(i * (len(table) - 1) / (count - 2))] for i in range(count - 1)] if table and count > 2 else \
        table[len(table) // 2: len(table) // 2 + 1] if table and count == 2 else []
    return sorted({round(t, 4) for t in picks} | {round(judge.threshold, 4)})


class PointRun(NamedTuple):
    """One evaluated point: lm-eval's results, its logged samples of the task, the per-request
    decoding statistics ([] where the backend writes none) and the results file."""

    point: SweepPoint
    results: dict
    samples: list[dict]
    stats: list[dict]
    results_file: Path


def run_sweep(lm, points: list[SweepPoint], task: str, out_dir: Path, *,
              task_manager=None, limit: int | float | None = None, gen_kwargs: str | None = None,
              apply_chat_template: bool = False, metric: str | None = None,
              confirm_run_unsafe_code: bool = False, judge_threshold: float | None = None,
              judge_family: str | None = None) -> dict:
    """Evaluate every point with ``lm`` (an ``AutoJudgeHFLM``, or the vLLM backend's model) into
    ``out_dir``/points/<slug>/ (``evaluation.evaluate_into``'s files); write sweep.json and
    sweep.png; return the combined leaderboard. ``judge_threshold``: the judge file's own (the goal
    line's point); ``judge_family``: the task family it was trained on (``combine``). Tasks that
    execute model-written code (``unsafe_code``, e.g. LiveCodeBench) need ``confirm_run_unsafe_code``,
    as with lm-eval's CLI."""
    import lm_eval

    from ..plots import plot_sweep

    out_dir = Path(out_dir)
    runs, warmed_up = [], False
    for point in tqdm(points, desc="sweep points"):
        point_dir = out_dir / "points" / point.slug
        saved = saved_run(point_dir, task)
        if saved is None:
            (point_dir / STATS_FILE).unlink(missing_ok=True)   # the model appends to it
            lm.configure(point.settings(), sample_stats_path=point_dir / STATS_FILE)
            if not warmed_up:   # one-off allocation costs must not land in the first point's timing
                lm.warm_up()
                warmed_up = True
            evaluate_into(point_dir, lambda **tracker: lm_eval.simple_evaluate(
                model=lm, tasks=[task], task_manager=task_manager, limit=limit, gen_kwargs=gen_kwargs,
                apply_chat_template=apply_chat_template, fewshot_as_multiturn=apply_chat_template,
                log_samples=True, confirm_run_unsafe_code=confirm_run_unsafe_code, **tracker),
                model_name=lm.get_model_info()["autojudge"]["target"])
            saved = saved_run(point_dir, task)
        results_file, results, samples, stats = saved
        runs.append(PointRun(point, results, samples, stats, results_file))
    combined = combine(runs, task, metric, judge_threshold, judge_family)
    (out_dir / "sweep.json").write_text(json.dumps(combined, indent=2))
    plot_sweep(combined, out_dir / "sweep.png")
    return combined


def primary_metric(task_results: dict) -> str:
    """The first reported metric of a task's results ("name,filter"), skipping stderr entries."""
    for key in task_results:
        if "," in key and "_stderr," not in key:
            return key
    raise ValueError(f"no metric in {sorted(task_results)}")


def question_records(samples: list[dict], stats: list[dict], metric: str) -> dict[str, dict]:
    """Per document (by lm-eval doc_id, as a string): ``answer`` (what agreement with lossless
    compares: the filtered answer under ``metric``'s filter, else the first filter's; for a pass@k
    metric, code execution, the verdict, as lcb-5fold compares it: two programs that differ in any
    token are different answers, yet the same verdict is the same result), ``text`` (the generated
    text), ``correct`` (the metric's value), and from the per-request ``stats`` (None without them):
    ``target_calls``, ``capped`` (the output hit max_gen_toks), ``first_lenient_token`` (output index of the first
    lenient acceptance, None: none or not recorded)."""
    name, _, filter_name = metric.partition(",")
    records: dict[str, dict] = {}
    for sample in samples:
        doc = records.setdefault(str(sample["doc_id"]), {"target_calls": None, "capped": None,
                                                          "first_lenient_token": None})
        if "answer" not in doc or sample["filter"] == filter_name:
            resps = sample.get("resps") or [[None]]
            doc |= {"answer": sample.get(name) if name.startswith("pass@") else sample["filtered_resps"],
                    "text": resps[0][0] if isinstance(resps[0], list) else resps[0], "correct": sample.get(name)}
    for row in stats:
        doc = records.get(str(row["doc_id"]))
        if doc is not None:
            doc["target_calls"] = (doc["target_calls"] or 0) + row["target_calls"]
            doc["capped"] = bool(doc["capped"]) or row.get("finish_reason") == "length"
            if doc["first_lenient_token"] is None:
                doc["first_lenient_token"] = row.get("first_lenient_token")
    return records


COST_KEYS = ("target_calls_per_request", "draft_calls_per_request", "generated_tokens_per_request",
             "wall_time_per_request_s")


def paired_figures(records: dict[str, dict], lossless: dict[str, dict]) -> dict:
    """``statistics.compare_with_lossless`` over lossless's documents; without per-question target
    calls (a backend that writes no per-request statistics) only agreement and accuracy."""
    docs = list(lossless)
    empty = {"target_calls": None, "capped": None, "answer": None, "correct": None}
    mine = [records.get(d, empty) for d in docs]
    agree = [m.get("answer") == lossless[d]["answer"] for m, d in zip(mine, docs)]
    correct = [m.get("correct") for m in mine]
    correct = correct if all(isinstance(c, (int, float)) for c in correct) else None
    if any(m["target_calls"] is None for m in mine) or any(lossless[d]["target_calls"] is None for d in docs):
        indices = bootstrap_indices(len(docs))
        return {"questions": len(docs), "agreement_with_lossless": sum(agree) / len(docs),
                "agreement_ci": mean_ci(agree, indices),
                **({"metric_mean": sum(correct) / len(docs), "metric_ci": mean_ci(correct, indices)} if correct else {})}
    return compare_with_lossless([m["target_calls"] for m in mine], [lossless[d]["target_calls"] for d in docs],
                                 [m["capped"] for m in mine], [lossless[d]["capped"] for d in docs], agree, correct)


def combine(runs: list[PointRun], task: str, metric: str | None = None, judge_threshold: float | None = None,
            judge_family: str | None = None) -> dict:
    """Leaderboard over ``runs``; the first must be lossless (the reference for relative cost and
    agreement, paired per question: ``paired_figures``). With an oracle run, each row's
    ``share_of_oracle_saving`` is its saving in target calls over the oracle's. Ends with the
    matched-agreement table (``statistics.matched_agreement``). A judge trained on another task
    family than ``task``'s (``judge_family``, e.g. a GSM8K judge on LiveCodeBench) is marked
    cross-task: ``judge_cross_task`` and " (cross-task)" in its points' labels."""
    if not runs or runs[0].point.rule != "lossless":
        raise ValueError("the first sweep point must be lossless")
    metric = metric or primary_metric(runs[0].results["results"][task])
    reference = question_records(runs[0].samples, runs[0].stats, metric)
    cross_task = judge_family is not None and task_family(task) != judge_family
    if not reference:
        raise ValueError(f"the lossless run logged no samples of {task}")
    rows = []
    for run in runs:
        task_results = run.results["results"][task]
        if metric not in task_results:
            raise ValueError(f"metric {metric!r} not in {task}'s results: {sorted(task_results)}")
        stats = run.results["config"]["autojudge"]["stats"]
        paired = paired_figures(question_records(run.samples, run.stats, metric), reference)
        rows.append({
            "label": run.point.label + (" (cross-task)" if cross_task and run.point.rule == "judge" else ""),
            "rule": run.point.rule, "model_args": run.point.model_args,
            "end_guard": run.point.end_guard, "metric": task_results[metric],
            "metric_stderr": task_results.get(metric.replace(",", "_stderr,", 1)),
            **{key: stats[key] for key in (*COST_KEYS, "accepted_per_cycle", "tokens_per_cycle",
                                           "lenient_accepted_fraction", "tokens_per_second", "generated_tokens",
                                           "wall_time_s", "target_calls", "draft_calls", "cycles", "requests")},
            **paired, "results_file": str(run.results_file),
        })
    base = rows[0]
    for row in rows:
        row["target_calls_vs_lossless"] = _ratio(row["target_calls_per_request"], base["target_calls_per_request"])
        row["wall_time_vs_lossless"] = _ratio(row["wall_time_per_request_s"], base["wall_time_per_request_s"])
        row["accepted_per_cycle_vs_lossless"] = _ratio(row["accepted_per_cycle"], base["accepted_per_cycle"])
    oracle = next((r for r in rows if r["rule"] == "oracle"), None)
    for row in rows:
        row["share_of_oracle_saving"] = (None if oracle is None or oracle["target_calls_vs_lossless"] >= 1
                                         else (1 - row["target_calls_vs_lossless"]) / (1 - oracle["target_calls_vs_lossless"]))
    config = runs[0].results["config"]["autojudge"]
    return {
        "task": task, "metric": metric, "documents": len(reference),
        "pair": {k: config.get(k) for k in ("target", "draft", "window", "dtype", "device", "preset")},
        "judge": next((r.results["config"]["autojudge"]["judge"] for r in runs if r.point.rule == "judge"), None),
        "judge_threshold": judge_threshold, "judge_task_family": judge_family, "judge_cross_task": cross_task,
        "limit": runs[0].results["config"].get("limit"),
        "bootstrap": {"resamples": RESAMPLES, "seed": SEED, "level": LEVEL},
        "points": rows,
        "pareto": {y: {x: pareto_front(rows, x, y) for x in PARETO_X} for y in ("metric", "agreement_with_lossless")},
        "matched_agreement": matched_agreement(rows),
    }


# Pareto x axes: (key, True where lower is better)
PARETO_X = {"target_calls_vs_lossless": True, "accepted_per_cycle": False}


def _ratio(value, base):
    return value / base if value is not None and base else None


def pareto_front(rows: list[dict], x: str, y: str) -> list[str]:
    """Labels of the rows no other row beats on both ``x`` and ``y`` (higher ``y`` is better; lower
    ``x`` where ``PARETO_X`` says so, else higher), by ``x``."""
    sign = -1 if PARETO_X.get(x) else 1
    rows = [r for r in rows if r[x] is not None and r[y] is not None]
    front = [r for r in rows if not any(
        sign * o[x] >= sign * r[x] and o[y] >= r[y] and (sign * o[x] > sign * r[x] or o[y] > r[y]) for o in rows)]
    return [r["label"] for r in sorted(front, key=lambda r: r[x])]


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


def rule_point(text: str) -> tuple[str, dict]:
    """``--point RULE:KEY=V,KEY=V``: (rule, its parameter values as strings; checked by the settings)."""
    from ..rules import RULES

    rule, _, spec = text.partition(":")
    if rule not in RULES or rule in ("judge", "oracle"):
        raise ValueError(f"--point {text!r}: give RULE:KEY=V[,KEY=V] for one of "
                         f"{', '.join(r for r in RULES if r not in ('judge', 'oracle'))} (judge: --thresholds)")
    values = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    if not values or len(values) != len([i for i in spec.split(",") if i.strip()]):
        raise ValueError(f"--point {text!r}: parameters must be KEY=V, comma-separated")
    return rule, values


def rule_list(text: str) -> list[str]:
    """``--rules`` (comma-separated rule names; lossless is always the first point)."""
    from ..rules import RULES

    rules = [r.strip() for r in text.split(",") if r.strip() and r.strip() != "lossless"]
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    return rules


def _interval(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _maybe(value, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def table_lines(combined: dict) -> list[str]:
    """The leaderboard (Markdown): per point its metric and agreement with 95% paired bootstrap
    intervals, target calls relative to lossless (ratio of totals, interval, median per-question
    ratio), capped outputs (here / lossless) and the ratio without those questions."""
    lines = ["| point | metric [95% CI] | agreement w/ lossless [95% CI] | target calls/request | x lossless "
             "[95% CI] | median per-question x | capped (here/lossless) | x without capped (questions) "
             "| wall x | accepted/cycle | output tokens/request | lenient share | share of perfect judge's saving |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in combined["points"]:
        capped = "-" if r.get("capped") is None else f"{r['capped']}/{r['lossless_capped']}"
        uncapped = ("-" if r.get("target_calls_vs_lossless_uncapped") is None else
                    f"{r['target_calls_vs_lossless_uncapped']:.2f}x{_interval(r['target_calls_vs_lossless_uncapped_ci'])} "
                    f"({r['uncapped_questions']})")
        lines.append(
            f"| {r['label']} | {r['metric']:.3f}{_interval(r.get('metric_ci'))} | "
            f"{r['agreement_with_lossless']:.2f}{_interval(r['agreement_ci'])} | {r['target_calls_per_request']:.1f} | "
            f"{r['target_calls_vs_lossless']:.2f}x{_interval(r.get('target_calls_vs_lossless_ci'))} | "
            f"{_maybe(r.get('median_question_ratio'), '.2f', 'x')} | {capped} | {uncapped} | "
            f"{_maybe(r['wall_time_vs_lossless'], '.2f', 'x')} | {r['accepted_per_cycle']:.2f} | "
            f"{r['generated_tokens_per_request']:.1f} | {r['lenient_accepted_fraction']:.2f} | "
            f"{_maybe(r['share_of_oracle_saving'])} |")
    return lines


def matched_lines(combined: dict) -> list[str]:
    """The matched-agreement table (each rule's cheapest point at agreement >= 0.95 and >= 0.90) and,
    per level, which rule wins."""
    entries = combined["matched_agreement"]
    lines = ["| agreement >= | rule | cheapest point | target calls x lossless [95% CI] | metric | agreement "
             "| capped (here/lossless) | x without capped [95% CI] |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for e in entries:
        if e["calls"] is None:
            lines.append(f"| {e['level']:.2f} | {e['rule']} | none reaches it | - | - | - | - | - |")
        else:
            uncapped = "-" if e.get("uncapped_calls") is None else f"{e['uncapped_calls']:.2f}x{_interval(e.get('uncapped_ci'))}"
            lines.append(f"| {e['level']:.2f} | {e['rule']} | {e['label']} | {e['calls']:.2f}x{_interval(e['ci'])} | "
                         f"{e['metric']:.3f} | {e['agreement']:.2f} | {e.get('capped') or '-'} | {uncapped} |")
    for level in dict.fromkeys(e["level"] for e in entries):
        lines.append(winner_line([e for e in entries if e["level"] == level]))
    return lines


def print_table(combined: dict) -> None:
    pair = combined["pair"]
    print(f"\n{combined['task']} ({combined['metric']}), {combined['documents']} documents, {pair['target']} / "
          f"{pair['draft']}, W={pair['window']}, judge={combined['judge']} (x: relative to lossless, lower is "
          f"cheaper; [..]: 95% paired bootstrap intervals over documents, {combined['bootstrap']['resamples']} "
          "resamples)")
    if combined.get("judge_cross_task"):
        print(f"cross-task: the judge was trained on {combined['judge_task_family']} mismatches, not this task's")
    print("\n".join(table_lines(combined)))
    for y, fronts in combined["pareto"].items():
        print(f"Pareto front, {y} vs target calls: {', '.join(fronts['target_calls_vs_lossless'])}")
    print("\nMatched agreement: each rule's cheapest point\n" + "\n".join(matched_lines(combined)))
    for line in goal_lines(combined):
        print(line)


def goal_lines(combined: dict, max_calls: float = 0.85, min_agreement: float = 0.95,
               min_share: float = 0.80) -> list[str]:
    """The goals at the judge's own threshold (its file's): target calls <= ``max_calls`` x lossless
    at answer agreement >= ``min_agreement``, with the calls interval's upper bound below 1.0; and
    >= ``min_share`` of the perfect judge's saving (with an oracle point)."""
    own = combined.get("judge_threshold")
    row = next((r for r in combined["points"] if r["rule"] == "judge" and r["end_guard"] and own is not None
                and abs(r["model_args"]["threshold"] - own) < 1e-4), None)
    if row is None:
        return []
    calls, agreement, share = row["target_calls_vs_lossless"], row["agreement_with_lossless"], row["share_of_oracle_saving"]
    ci = row.get("target_calls_vs_lossless_ci")
    slack = 1e-9   # ratios of counts: 0.8 may come out as 0.7999999
    met = calls <= max_calls + slack and agreement >= min_agreement - slack and ci is not None and ci[1] < 1.0
    upper = "no interval (no per-question statistics)" if ci is None else f"upper bound {ci[1]:.2f}"
    lines = [f"goal at the judge's own threshold ({row['label']}): <= {max_calls}x lossless target calls at >= "
             f"{min_agreement} agreement, the interval's upper bound below 1.0: {calls:.2f}x [{upper}] at agreement "
             f"{agreement:.2f}: {'met' if met else 'not met'}"]
    oracle = next((r for r in combined["points"] if r["rule"] == "oracle"), None)
    if share is not None:
        lines.append(f"goal, share of the perfect judge's saving in target calls: {share:.2f} (goal >= {min_share}): "
                     f"{'met' if share >= min_share - slack else 'not met'}")
    elif oracle is not None:
        lossless = combined["points"][0]
        lines.append(f"goal, share of the perfect judge's saving in target calls: undefined, the perfect judge saves "
                     f"none here ({oracle['target_calls_vs_lossless']:.2f}x lossless, "
                     f"{oracle['generated_tokens_per_request']:.1f} output tokens per request against lossless's "
                     f"{lossless['generated_tokens_per_request']:.1f}); the judge: {calls:.2f}x")
    return lines


def configure_parser(p) -> None:
    p.description = ("Sweep acceptance rules for one pair and task (lossless, then each rule over its grid): "
                     "one process, the models loaded once, one lm-eval run per point.")
    p.epilog = ("Reads: the model pair, the judge file (default: the preset's), the lm-eval task. Writes (under "
                "--out): points/<point>/ (lm-eval's results_<time>.json with the speed statistics under "
                "config.autojudge, samples_<task>_<time>.jsonl with the generated texts, autojudge_samples.jsonl "
                "with the per-request statistics), sweep.json (the leaderboard with 95%% paired bootstrap "
                "intervals and the matched-agreement table), sweep.png (agreement and accuracy vs target calls "
                "relative to lossless, one curve per rule, with the intervals); with the oracle rule also the "
                "oracle's mining run and file under --oracle-cache. A rerun skips finished points. The judge's "
                "thresholds default to its own plus --table-points - 1 more spread over its validation threshold "
                "table. The output ends with the matched-agreement table and the goal line at the judge's own "
                "threshold. Compare two points' outputs: autojudge compare DIR_A DIR_B.")
    add_pair_arguments(p, judge_help="judge file (default: the preset's)", window=True)
    p.add_argument("--rules", type=rule_list, default=None,
                   help="comma-separated lenient rules (autojudge_harness/rules: judge, top_k, oracle, judi, fly, trt, "
                        "ensemble, typical), each over its own grid; default: judge, plus top_k with --top-k and "
                        "oracle with --oracle")
    p.add_argument("--thresholds", type=number_list(float), help="the judge rule's grid: comma-separated thresholds")
    p.add_argument("--table-points", type=int, default=6,
                   help="without --thresholds: this many thresholds, the judge's own and the rest spread over its "
                        "threshold table (1: the judge's own only)")
    p.add_argument("--point", type=rule_point, action="append", default=[], metavar="RULE:KEY=V[,KEY=V]",
                   help="one point of a rule, e.g. judi:judi_tau=0.3 or trt:trt_top_k=10,trt_delta=0.6 (repeatable); "
                        "a rule given --point runs these points instead of its own grid")
    p.add_argument("--top-k", type=number_list(int),
                   help="the top_k rule's grid: comma-separated K (default: the rule's own grid)")
    p.add_argument("--no-guard-thresholds", type=number_list(float), default=[],
                   help="comma-separated judge thresholds to run also without the end guard (the paper-exact rule)")
    p.add_argument("--oracle", action="store_true",
                   help="add the oracle rule (the perfect judge): Algorithm 1 on the evaluated docs (GSM8K-style "
                        "tasks), mined once into --oracle-cache and reused by later sweeps")
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
                   "between points by an RPC; lossless = threshold 0; judge points only (docs/vllm.md)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default="auto", help="model dtype (default auto: bfloat16 on GPU, float32 on CPU; "
                   "--backend vllm: the engine's, auto = vLLM's choice from the checkpoint)")
    p.add_argument("--compile", action="store_true", help="static KV cache + torch.compile (GPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="output folder (points/, sweep.json, sweep.png)")


def requested_rules(args) -> list[str]:
    """--rules, else judge plus top_k (with --top-k) and oracle (with --oracle)."""
    if args.rules is not None:
        return args.rules + (["oracle"] if args.oracle and "oracle" not in args.rules else [])
    return ["judge"] + (["top_k"] if args.top_k else []) + (["oracle"] if args.oracle else [])


def main(args) -> int:
    import torch
    from lm_eval.tasks import TaskManager

    from ..lm_eval_models.hf import AutoJudgeHFLM
    from ..models import pair_config
    from ..resources import tasks_path

    if args.threads:
        torch.set_num_threads(args.threads)
    rules = requested_rules(args)
    if args.backend == "vllm":   # the vLLM backend's hook (autojudge_harness/lm_eval_models/vllm.py)
        from ..lm_eval_models.vllm import sweep_model

        if set(rules) - {"judge"}:
            raise SystemExit(f"--backend vllm sweeps the judge rule only, not {', '.join(set(rules) - {'judge'})}")
        lm, judge = sweep_model(args)
    else:
        judge = pair_config(args.preset, args.target, args.draft, args.judge, args.window).judge
        lm = AutoJudgeHFLM(pretrained=args.target, draft=args.draft, window=args.window, preset=args.preset,
                           device=args.device, dtype=args.dtype, compile=args.compile)
    judge_file = load_judge(judge) if judge else None
    if "judge" in rules and judge_file and args.thresholds is None:
        args.thresholds = default_thresholds(judge_file, args.table_points)
    limit = int(args.limit) if args.limit and args.limit >= 1 else args.limit
    include_path = args.include_path or tasks_path()
    oracle = None
    if "oracle" in rules:
        if limit is not None and not isinstance(limit, int):
            raise SystemExit("the oracle rule needs --limit as a number of docs (or none)")
        oracle = str(sweep_oracle(lm.pair, args.task, include_path, limit, args.gen_kwargs, not args.no_chat,
                                  args.oracle_cache))
    grids = {"judge": args.thresholds, "top_k": args.top_k}
    for rule, values in args.point:
        grids[rule] = (grids[rule] if isinstance(grids.get(rule), list) and grids[rule] and
                       isinstance(grids[rule][0], dict) else []) + [values]
    points = sweep_points(rules, grids, judge, oracle,
                          args.no_guard_thresholds)
    combined = run_sweep(lm, points, args.task, args.out, task_manager=TaskManager(include_path=str(include_path)),
                         limit=limit, gen_kwargs=args.gen_kwargs, apply_chat_template=not args.no_chat,
                         metric=args.metric, confirm_run_unsafe_code=args.confirm_run_unsafe_code,
                         judge_threshold=judge_file.threshold if judge_file else None,
                         judge_family=judge_file.task_family if judge_file else None)
    print_table(combined)
    print(f"\nwrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")
    return 0
