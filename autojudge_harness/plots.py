"""The project's figures: the sweep's Pareto plot and a judge's training report.

Both are read at a glance: titles name the task (or data), the document (or validation) counts,
W and the pair; a metric that is zero everywhere gets a "not informative" note instead of an axis;
point labels are placed so that they do not overlap (``place_labels``). Redrawing a judge's report
without retraining: ``autojudge_harness.replot``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RULE_COLORS = {"lossless": "black", "judge": "tab:blue", "top_k": "tab:orange", "oracle": "tab:green",
               "judi": "tab:red", "fly": "tab:purple", "trt": "tab:brown", "ensemble": "tab:pink"}
MARKERS = "osD^v<>PX*"
# label positions tried in turn (points offset from the data point, horizontal alignment)
LABEL_OFFSETS = [(5, 4), (5, -11), (-5, 4), (-5, -11), (5, 14), (-5, 14), (5, -21), (-5, -21), (12, 24), (-12, -31)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def place_labels(ax, items: list[tuple[float, float, str]], fontsize: int = 7) -> list:
    """Annotate (x, y, text) ``items`` on ``ax``, each at the first of ``LABEL_OFFSETS`` where its text
    overlaps no label placed before and stays inside the axes (the last offset, with a leader line,
    when none is free); returns the annotations."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed, annotations = [], []
    for x, y, text in items:
        for i, (dx, dy) in enumerate(LABEL_OFFSETS):
            last = i == len(LABEL_OFFSETS) - 1
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                               ha="left" if dx > 0 else "right",
                               arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if abs(dy) > 14 else None)
            box = note.get_window_extent(renderer).expanded(1.04, 1.1)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if last or (inside and not any(box.overlaps(other) for other in placed)):
                placed.append(box)
                annotations.append(note)
                break
            note.remove()
    return annotations


def _short_label(row: dict) -> str:
    """The point's label without its rule's name ("judge t=0.3" -> "t=0.3")."""
    label = row["label"]
    return label[len(row["rule"]):].strip() or label if label.startswith(row["rule"]) else label


def point_labels(rows: list[dict], key: str) -> list[tuple[float, float, str]]:
    """One label per distinct (target calls, ``key``) position of the lenient rows: points that
    coincide share it ("t=0.1, t=0.2"; several rules: "fly x5; ensemble w=0.5")."""
    groups: dict = {}
    for row in rows:
        if row[key] is not None and row["rule"] != "lossless":
            position = (round(row["target_calls_vs_lossless"], 9), round(row[key], 9))
            groups.setdefault(position, {}).setdefault(row["rule"], []).append(_short_label(row))
    labels = []
    for (x, y), by_rule in groups.items():
        if len(by_rule) == 1:
            (texts,) = by_rule.values()
            text = ", ".join(texts) if len(texts) <= 3 else f"{texts[0]} .. {texts[-1]} ({len(texts)} points)"
        else:
            text = "; ".join(f"{rule} {texts[0]}" if len(texts) == 1 else f"{rule} x{len(texts)}"
                             for rule, texts in by_rule.items())
        labels.append((x, y, text))
    return labels


def _errors(rows: list[dict], key: str, ci_key: str):
    """Error bar lengths (2 x n) of ``key`` from its interval ``ci_key``; None when a row has none."""
    if any(not r.get(ci_key) for r in rows):
        return None
    return np.array([[r[key] - r[ci_key][0] for r in rows], [r[ci_key][1] - r[key] for r in rows]]).clip(min=0)


def curves(rows: list[dict]) -> dict[tuple[str, bool], list[dict]]:
    """The sweep's rows grouped into one curve per (rule, end guard), each by increasing cost."""
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["rule"], row["end_guard"] or row["rule"] == "lossless"), []).append(row)
    return {key: sorted(group, key=lambda r: r["target_calls_vs_lossless"]) for key, group in groups.items()}


def plot_sweep(combined: dict, path: Path) -> None:
    """Answer agreement with lossless, and the task metric, against target calls relative to lossless:
    one curve per rule (dashed, hollow: without the end guard), 95% intervals as error bars on both
    axes, each point labelled with its parameters (coinciding points share one label)."""
    plt = _pyplot()
    rows = [r for r in combined["points"] if r["target_calls_vs_lossless"] is not None]
    panels = [("agreement_with_lossless", "agreement_ci", "answer agreement with lossless"),
              ("metric", "metric_ci", f"accuracy ({combined['metric']})")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    for ax, (key, ci_key, name) in zip(axes, panels):
        values = [r[key] for r in rows if r[key] is not None]
        if not values or not any(values):
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{name}:\n0 at every point: not informative", ha="center", va="center",
                    transform=ax.transAxes, fontsize=11)
            continue
        for i, ((rule, guard), group) in enumerate(curves(rows).items()):
            color = RULE_COLORS.get(rule, f"C{i % 10}")
            group = [r for r in group if r[key] is not None]
            ring = rule == "lossless" or not guard   # hollow and larger: a point it coincides with stays visible
            ax.errorbar([r["target_calls_vs_lossless"] for r in group], [r[key] for r in group],
                        xerr=_errors(group, "target_calls_vs_lossless", "target_calls_vs_lossless_ci"),
                        yerr=_errors(group, key, ci_key), color=color, marker=MARKERS[i % len(MARKERS)],
                        markersize=13 if ring else 8, mfc="none" if ring else color, mew=1.5 if ring else 1,
                        linestyle="--" if not guard else "-", lw=1.2, elinewidth=0.7, capsize=2, alpha=0.9,
                        zorder=4 if ring else 3, label=rule + ("" if guard else ", no end guard"))
        ax.set_xlabel("target calls relative to lossless (lower is cheaper)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.canvas.draw()
        place_labels(ax, point_labels(rows, key))
    pair = combined["pair"]
    fig.suptitle(f"{combined['task']}: {combined['documents']} documents, W={pair['window']}, "
                 f"{pair['target']} / {pair['draft']}\nerror bars: 95% paired bootstrap intervals over documents",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def threshold_format(thresholds: list[float]) -> str:
    """A format with enough significant digits to tell the ``thresholds`` apart (at least 3)."""
    span = max(thresholds) - min(thresholds) if thresholds else 0
    scale = max(abs(t) for t in thresholds) if thresholds else 1
    digits = 3 if span <= 0 or scale <= 0 else max(3, int(np.ceil(np.log10(scale / span))) + 2)
    return f".{digits}g"


def plot_report(results: dict, val_labels: np.ndarray, table: list, chosen: dict, path: Path,
                val_questions: int | None = None, title: str | None = None, small: bool = False) -> None:
    """A judge's training report: validation ROC per feature kind (its AUC beside the validation
    counts) and the threshold table as recall of important mismatches against the share of
    mismatches accepted, with ``chosen`` (the judge's threshold row: threshold, recall,
    accepted_fraction) marked; ``title``: the pair or data, above both; ``small``: warn that the
    validation set is too small for a reliable AUC."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    val_labels = np.asarray(val_labels)
    important, total = int(val_labels.sum()), len(val_labels)
    counts = f"{total} mismatches ({important} important)" + (f" from {val_questions} questions"
                                                                if val_questions is not None else "")
    fig, (roc, trade) = plt.subplots(1, 2, figsize=(12, 4.8))
    for kind, r in results.items():
        fpr, tpr, _ = roc_curve(val_labels, r["val_probs"])
        roc.plot(fpr, tpr, label=f"{kind}: AUC {r['val_auc']:.3f} (C={r['C']:.3g})")
    roc.plot([0, 1], [0, 1], "k:", lw=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate (important)",
            title=f"Validation ROC on {counts}" + ("\nsmall validation set: the AUC is unreliable" if small else ""))
    roc.legend(fontsize=8)
    accepted = [row["accepted_fraction"] for row in table]
    trade.plot(accepted, [row["recall"] for row in table], "o-", ms=4, label="threshold table (26 quantiles)")
    ts = [row["threshold"] for row in table] + [chosen["threshold"]]
    fmt = threshold_format(ts)
    trade.plot([chosen["accepted_fraction"]], [chosen["recall"]], "k*", ms=12,
               label=f"the judge's t={chosen['threshold']:{fmt}}: recall {chosen['recall']:.2f}, "
                     f"accepts {chosen['accepted_fraction']:.2f}")
    fig.canvas.draw()
    picks = table[:: max(1, len(table) // 6)]
    place_labels(trade, [(row["accepted_fraction"], row["recall"], f"t={row['threshold']:{fmt}}") for row in picks])
    trade.set(xlabel="share of validation mismatches accepted (p < t)", ylabel="recall of important (p >= t)",
              title=f"Threshold table: t from {min(ts):{fmt}} to {max(ts):{fmt}}")
    trade.set_xlim(-0.03, 1.03)
    trade.set_ylim(-0.03, 1.05)
    trade.grid(alpha=0.3)
    trade.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
