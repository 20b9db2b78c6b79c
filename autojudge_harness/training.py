"""Train the judge on mined mismatches: StandardScaler + LogisticRegression, C by validation ROC-AUC.

Input: a mined features file (``features.safetensors`` written by ``autojudge mine --merge``; arrays
features_target, features_draft, labels, question_ids, ... and the run manifest in its metadata).
Split by QUESTION 90/10 (seeded), never by token. Both feature sets (DT, DD-DT) are fitted over
the C grid; the chosen kind's judge file is written with the threshold that keeps ``recall`` of
the important class on validation, plus the validation threshold table. Also writes a JSON
report and a PNG (ROC curves; recall and accepted fraction vs threshold).

The judge file records the features' dtype (the manifest's) and their provenance (a mining run or
the official release, ``autojudge import``); ``--target-id``/``--draft-id`` record another name each
model answers to. The feature kind defaults to what the named backend loads: DD-DT for ``hf``, DT for
``vllm`` (which refuses DD-DT judges).

    autojudge train --features MINED/features.safetensors --out NAME.safetensors [--backend vllm]
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from .judge import DTYPES, save_judge, task_family
from .mining.store import read_features, read_provenance
from .plots import plot_report

class TrainingDataError(ValueError):
    """Mined data a judge cannot be trained on (missing, malformed, too few questions or classes)."""


C_GRID = [10 ** (-k / 2) for k in range(1, 15)] + [1.0, 3.0, 10.0, 50.0, 100.0]
FEATURE_KINDS = ("DT", "DD-DT")
BACKEND_KINDS = {"hf": ("DD-DT", "DT"), "vllm": ("DT",)}   # the kinds each backend loads, its default first
ARRAYS = ("features_target", "features_draft", "labels", "target_end", "question_ids", "positions")
SMALL_VALIDATION = (10, 50)   # fewer validation questions / mismatches than this: the AUC and threshold are noisy


def small_validation(questions: int, mismatches: int) -> bool:
    """Whether a validation split is too small for its AUC and threshold to be reliable."""
    return questions < SMALL_VALIDATION[0] or mismatches < SMALL_VALIDATION[1]
TABLE_QUANTILES = np.linspace(0.0, 1.0, 26)


def load_features(path: str | Path) -> tuple[dict, dict]:
    """(arrays, manifest) of a mined features file; ValueError naming any problem."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"mined features file not found: {path} (run autojudge mine --out RUN --merge first)")
    arrays, manifest = read_features(path)
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise TrainingDataError(f"{path}: arrays missing: {', '.join(missing)}")
    n = len(arrays["labels"])
    if n == 0:
        raise TrainingDataError(f"{path}: holds no mined mismatches")
    shapes = {"features_target": (n, manifest["target_hidden_size"]),
              "features_draft": (n, manifest["draft_hidden_size"]), "question_ids": (n,)}
    for key, shape in shapes.items():
        if arrays[key].shape != shape:
            raise TrainingDataError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape}")
    return arrays, manifest


def check_pair(manifest: dict, target_model: str | None, draft_model: str | None, where) -> None:
    """ValueError if the records were mined with another model pair than the one asked for."""
    for role, wanted in (("target", target_model), ("draft", draft_model)):
        if wanted is not None and manifest[f"{role}_model"] != wanted:
            raise TrainingDataError(f"{where}: records were mined with {role} {manifest[f'{role}_model']!r}, "
                             f"not {wanted!r}")


def questions_needed(question_ids: np.ndarray, labels: np.ndarray, val_fraction: float, miss: float = 0.1) -> int:
    """Questions with mismatches that make a split by question likely (all but ``miss``) to hold both
    classes on each side, judged by the share of questions that hold the rarer class so far."""
    questions = np.unique(question_ids)
    share = min(len(np.unique(question_ids[labels == c])) for c in (0, 1)) / len(questions)
    if share >= 1:
        return len(questions)
    per_side = math.ceil(math.log(miss) / math.log(1 - share))   # (1 - share) ** n <= miss
    return math.ceil(per_side / min(val_fraction, 1 - val_fraction))


def feature_kind_for(backend: str, feature_kind: str | None) -> str:
    """``feature_kind``, or the default of ``backend`` (``BACKEND_KINDS``); TrainingDataError when that
    backend cannot load the kind asked for."""
    if backend not in BACKEND_KINDS:
        raise TrainingDataError(f"backend {backend!r} is not one of {', '.join(BACKEND_KINDS)}")
    kinds = BACKEND_KINDS[backend]
    if feature_kind is None:
        return kinds[0]
    if feature_kind not in kinds:
        raise TrainingDataError(f"the {backend} backend loads {' or '.join(kinds)} judges only, not {feature_kind} "
                                f"(give --feature-kind {kinds[0]}, or --backend hf for a {feature_kind} judge)")
    return feature_kind


def check_dtype(manifest: dict, dtype: str | None, where) -> None:
    """TrainingDataError if the features were computed in another dtype than ``dtype`` (when given)."""
    if dtype is None:
        return
    if dtype not in DTYPES:
        raise TrainingDataError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    found = manifest.get("dtype")
    if found != dtype:
        raise TrainingDataError(f"{where}: features were computed in {found or 'an unrecorded dtype'}, not {dtype}; "
                                f"mine them again with autojudge mine --dtype {dtype}, or drop --dtype")


def split_by_question(question_ids: np.ndarray, val_fraction: float = 0.1, seed: int = 0):
    """Boolean masks (train, val) over rows; whole questions go to one side."""
    unique = np.unique(question_ids)
    if len(unique) < 2:
        raise TrainingDataError(f"need mismatches from at least 2 questions to split by question, got {len(unique)}")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(unique)
    n_val = max(1, int(round(val_fraction * len(unique))))
    val = np.isin(question_ids, shuffled[:n_val])
    return ~val, val


def fit_grid(x_train, y_train, x_val, y_val, grid=C_GRID, seed: int = 0) -> dict:
    """Scaler + LR for each C; the best by validation ROC-AUC, with every C's AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    xt, xv = scaler.transform(x_train), scaler.transform(x_val)
    best, aucs = None, {}
    for c in grid:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xt, y_train)
        auc = float(roc_auc_score(y_val, model.predict_proba(xv)[:, 1]))
        aucs[f"{c:.6g}"] = auc
        if best is None or auc > best["val_auc"]:
            best = {"C": c, "val_auc": auc, "model": model}
    best.update(scaler=scaler, aucs=aucs, val_probs=best["model"].predict_proba(xv)[:, 1],
                train_auc=float(roc_auc_score(y_train, best["model"].predict_proba(xt)[:, 1])))
    return best


def threshold_row(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Validation recall of the important class (p >= t) and fraction of mismatches accepted (p < t)."""
    important = labels == 1
    return {"threshold": float(threshold), "recall": float((probs[important] >= threshold).mean()),
            "accepted_fraction": float((probs < threshold).mean())}


def threshold_for_recall(probs: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The largest threshold whose validation recall of the important class is >= ``recall``."""
    candidates = np.unique(np.concatenate([[0.0], probs]))
    ok = [t for t in candidates if threshold_row(probs, labels, t)["recall"] >= recall]
    return float(max(ok))


def select_questions(arrays: dict, question_ids, where) -> dict:
    """The rows of ``arrays`` whose question id is in ``question_ids``; ValueError if none."""
    wanted = np.asarray(sorted(set(int(q) for q in question_ids)), dtype=np.int64)
    mask = np.isin(arrays["question_ids"], wanted)
    if not mask.any():
        raise TrainingDataError(f"{where}: no mined mismatches among the {len(wanted)} selected questions")
    return _subset(arrays, mask)


def guarded_rows(arrays: dict) -> np.ndarray:
    """Rows the judge decides at decode time with the end guard on: not an end mismatch (the target's
    token ends the response), and not mined past an end that Algorithm 1 without the guard replaced
    (an unimportant end mismatch: later mismatches of that question lie in text the guard never
    decodes). Data mined with the guard has no rows of the second kind."""
    keep = arrays["target_end"] == 0
    for i in np.flatnonzero((arrays["target_end"] == 1) & (arrays["labels"] == 0)):
        keep &= ~((arrays["question_ids"] == arrays["question_ids"][i]) & (arrays["positions"] > arrays["positions"][i]))
    return keep


def _subset(arrays: dict, mask: np.ndarray) -> dict:
    n = len(mask)
    return {k: (v[mask] if getattr(v, "shape", ())[:1] == (n,) else v) for k, v in arrays.items()}


def train(features: str | Path, out: str | Path, feature_kind: str = "DD-DT", recall: float = 0.9,
          seed: int = 0, target_model: str | None = None, draft_model: str | None = None,
          grid=C_GRID, question_ids=None, val_fraction: float = 0.1, keep_end_mismatches: bool = False,
          dtype: str | None = None, target_model_id: str | None = None, draft_model_id: str | None = None) -> dict:
    """Fit both feature kinds, write ``out`` (judge), ``out``.report.json and ``out``.report.png.
    ``question_ids``: train on the mismatches of these questions only (e.g. LiveCodeBench's
    out-of-fold protocol); ``val_fraction``: share of those questions held out for validation;
    ``keep_end_mismatches``: also train on the mismatches the end guard decides (``guarded_rows``),
    for the paper-exact protocol (decoding with end_guard=false); ``dtype``: refuse features computed
    in another dtype; ``target_model_id``/``draft_model_id``: another name the judge records for each model."""
    if feature_kind not in FEATURE_KINDS:
        raise TrainingDataError(f"feature kind {feature_kind!r} is not one of {FEATURE_KINDS}")
    arrays, manifest = load_features(features)
    check_pair(manifest, target_model, draft_model, features)
    check_dtype(manifest, dtype, features)
    provenance = read_provenance(features)
    if question_ids is not None:
        arrays = select_questions(arrays, question_ids, features)
    end_counts = {"end_mismatches": int(arrays["target_end"].sum()), "end_guard_excluded": 0}
    if not keep_end_mismatches:
        keep = guarded_rows(arrays)
        end_counts["end_guard_excluded"] = int((~keep).sum())
        if not keep.any():
            raise TrainingDataError(f"{features}: no mismatches left once the end guard's are excluded")
        arrays = _subset(arrays, keep)
    labels = arrays["labels"].astype(int)
    counts = {"mismatches": int(len(labels)), "important": int(labels.sum()),
              "questions": int(len(np.unique(arrays["question_ids"]))), **end_counts}
    if counts["important"] in (0, counts["mismatches"]):
        raise TrainingDataError(f"{features}: labels are all {'un' if counts['important'] == 0 else ''}important "
                         f"({counts['mismatches']} mismatches); training needs both classes")
    train_mask, val_mask = split_by_question(arrays["question_ids"], val_fraction, seed)
    for name, mask in (("train", train_mask), ("validation", val_mask)):
        if len(set(labels[mask])) < 2:
            more = questions_needed(arrays["question_ids"], labels, val_fraction) - counts["questions"]
            raise TrainingDataError(f"{features}: the {name} split has only one class ({counts['questions']} "
                                    f"questions, {counts['important']} of {counts['mismatches']} mismatches "
                                    f"important); mine about {max(more, 1)} more questions (docs/mining.md)")
    results = {}
    for kind in FEATURE_KINDS:
        x = arrays["features_target"] if kind == "DT" else np.concatenate(
            [arrays["features_draft"], arrays["features_target"]], axis=1)
        results[kind] = fit_grid(x[train_mask], labels[train_mask], x[val_mask], labels[val_mask], grid, seed)
    chosen = results[feature_kind]
    val_labels = labels[val_mask]
    threshold = threshold_for_recall(chosen["val_probs"], val_labels, recall)
    quantiles = np.quantile(chosen["val_probs"], TABLE_QUANTILES)
    table = [threshold_row(chosen["val_probs"], val_labels, t) for t in quantiles]
    val_questions = sorted(int(q) for q in np.unique(arrays["question_ids"][val_mask]))
    notes = []
    if small_validation(len(val_questions), int(val_mask.sum())):
        notes.append(f"small validation set: {int(val_mask.sum())} mismatches from {len(val_questions)} questions "
                     f"(reliable figures need >= {SMALL_VALIDATION[0]} questions and >= {SMALL_VALIDATION[1]} "
                     "mismatches); the validation ROC-AUC and the chosen threshold are unreliable (mine more questions)")
        warnings.warn(notes[-1], stacklevel=2)
    report = {
        "features": str(features), "feature_kind": feature_kind, "target_recall": recall, "seed": seed,
        "val_fraction": val_fraction, "question_subset": None if question_ids is None else len(set(question_ids)),
        "keep_end_mismatches": keep_end_mismatches, "warnings": notes, "val_question_ids": val_questions,
        "counts": {**counts, "train_mismatches": int(train_mask.sum()), "val_mismatches": int(val_mask.sum()),
                   "val_questions": len(val_questions)},
        "threshold": threshold, "at_threshold": threshold_row(chosen["val_probs"], val_labels, threshold),
        "kinds": {k: {"C": r["C"], "val_auc": r["val_auc"], "train_auc": r["train_auc"], "auc_by_C": r["aucs"]}
                  for k, r in results.items()},
        "threshold_table": table,
        "pair": {k: manifest[k] for k in ("target_model", "draft_model", "dataset", "max_new_tokens")},
        "dtype": manifest.get("dtype"), "provenance": _provenance_summary(provenance),
    }
    scaler, model = chosen["scaler"], chosen["model"]
    save_judge(out, feature_kind=feature_kind, target_hidden_size=manifest["target_hidden_size"],
               draft_hidden_size=manifest["draft_hidden_size"], target_model=manifest["target_model"],
               draft_model=manifest["draft_model"], mean=scaler.mean_, scale=scaler.scale_,
               weight=model.coef_[0], bias=float(model.intercept_[0]), threshold=threshold,
               threshold_table=table,
               training={k: report[k] for k in ("features", "target_recall", "seed", "counts", "keep_end_mismatches",
                                                "val_question_ids", "provenance")}
               | {"C": chosen["C"], "val_auc": chosen["val_auc"], "dataset": manifest["dataset"],
                  "task_family": task_family(manifest.get("prompt")) or task_family(manifest["dataset"])},
               dtype=manifest.get("dtype"), target_model_id=target_model_id, draft_model_id=draft_model_id)
    out = Path(out)
    out.with_suffix(".report.json").write_text(json.dumps(report, indent=2))
    plot_report(results, labels[val_mask], table, report["at_threshold"], out.with_suffix(".report.png"), len(val_questions),
                small=small_validation(len(val_questions), int(val_mask.sum())))
    return report


def _provenance_summary(provenance: dict) -> dict:
    """Where the features came from, without the official import's per-question name map."""
    return {k: v for k, v in provenance.items() if k != "question_names"}


def configure_parser(p) -> None:
    p.description = ("Train a judge (StandardScaler + logistic regression, C by validation ROC-AUC, split by question) "
                     "on mined mismatches.")
    p.epilog = ("Reads: --features, the features.safetensors of a merged mining run (autojudge mine --merge). "
                "Writes: --out (the judge file, safetensors + JSON header), OUT.report.json (AUC per C and kind, "
                "counts, threshold table) and OUT.report.png (ROC curves; recall and accepted share vs threshold).")
    p.add_argument("--features", required=True, help="mined features.safetensors (autojudge mine --merge)")
    p.add_argument("--out", required=True, help="judge file to write (.safetensors)")
    p.add_argument("--backend", default="hf", choices=tuple(BACKEND_KINDS),
                   help="the backend the judge is for; the feature kind defaults to what it loads (hf: DD-DT, vllm: DT)")
    p.add_argument("--feature-kind", choices=FEATURE_KINDS, help="DT (target hidden state) or DD-DT ([draft ; target]); "
                   "default: the backend's")
    p.add_argument("--dtype", choices=DTYPES, help="refuse features computed in another dtype (the judge records "
                   "the features' dtype either way; autojudge_vllm warns when its engine runs another)")
    p.add_argument("--target-id", help="another name the judge records for the target (e.g. the hub id of the local "
                   "copy the features were mined with); autojudge_hf / autojudge_vllm accept either")
    p.add_argument("--draft-id", help="another name the judge records for the draft")
    p.add_argument("--recall", type=float, default=0.9, help="validation recall of important mismatches to keep")
    p.add_argument("--seed", type=int, default=0, help="seed of the split by question (default 0)")
    p.add_argument("--target-model", help="refuse records mined with another target")
    p.add_argument("--draft-model", help="refuse records mined with another draft")
    p.add_argument("--question-ids", type=Path, help="JSON list of question ids: train on their mismatches only")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of questions held out for validation")
    p.add_argument("--keep-end-mismatches", action="store_true",
                   help="also train on mismatches where the target's token ends the response (the end guard's; "
                   "for decoding with end_guard=false, the paper-exact protocol)")


def main(args) -> int:
    question_ids = json.loads(args.question_ids.read_text()) if args.question_ids else None
    feature_kind = feature_kind_for(args.backend, args.feature_kind)
    with warnings.catch_warnings():   # the report's warnings are printed below, once
        warnings.filterwarnings("ignore", message="small validation set")
        report = train(args.features, args.out, feature_kind, args.recall, args.seed, args.target_model,
                       args.draft_model, question_ids=question_ids, val_fraction=args.val_fraction,
                       keep_end_mismatches=args.keep_end_mismatches, dtype=args.dtype, target_model_id=args.target_id,
                       draft_model_id=args.draft_id)
    for note in report["warnings"]:
        print(f"warning: {note}")
    for kind, r in report["kinds"].items():
        print(f"{kind}: best C={r['C']:.3g} val ROC-AUC={r['val_auc']:.4f} (train {r['train_auc']:.4f})")
    print(f"counts: {report['counts']}")
    print(f"threshold {report['threshold']:.4f}: {report['at_threshold']}")
    print(f"wrote {args.out} ({feature_kind}, {report['dtype'] or 'unrecorded'} features, data from "
          f"{report['provenance'].get('source', 'an unrecorded source')}) and its .report.json / .report.png")
    return 0
