"""Judge files: the classifier that decides whether a mismatching draft token is unimportant.

Format (schema version 1): ONE ``.safetensors`` file. Tensors (float32):
    ``mean``, ``scale`` (F,)   StandardScaler statistics
    ``weight`` (F,), ``bias`` (1,)  LogisticRegression on standardized features
Header metadata key ``"autojudge"`` holds a JSON object:
    schema_version: 1
    feature_kind: "DT" (target hidden state) or "DD-DT" ([draft hidden ; target hidden])
    target_hidden_size, draft_hidden_size: int
    target_model, draft_model: str   (identities the judge was trained for)
    threshold: float                 (default decision threshold)
    threshold_table: [{"threshold", "recall", "accepted_fraction"}, ...]  (validation)
    training: {...}                  (free-form provenance: data, C, AUC, counts, task_family, provenance)
Optional keys (files without them stay valid):
    dtype: "float32" | "bfloat16" | "float16"   the dtype the training features were computed in
    target_model_id, draft_model_id: str        another name each model answers to (e.g. the hub id of
                                                the local copy the features were mined with)
A model in use fits a recorded name when the names are equal, or when one side is a local directory
that names the other: a hub-cache snapshot path (``.../models--ORG--NAME/snapshots/REV``) or a
``_name_or_path`` in its config.json (``model_names``).
A drafted token is *important* (label 1) with probability sigmoid(w'.x + b'); the scaler is
folded in at load: w' = w/scale, b' = b - sum(w*mean/scale). No pickle is read or written.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # annotations only: the module imports torch where it computes
    import torch

SCHEMA_VERSION = 1
FEATURE_KINDS = ("DT", "DD-DT")
METADATA_KEY = "autojudge"
REQUIRED_KEYS = ("schema_version", "feature_kind", "target_hidden_size", "draft_hidden_size",
                 "target_model", "draft_model", "threshold", "threshold_table", "training")
DTYPES = ("float32", "bfloat16", "float16")
OPTIONAL_NAME_KEYS = ("target_model_id", "draft_model_id")
HUB_SNAPSHOT = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/[^/]+$")
DERIVED_DRAFT = re.compile(r"^(.+)/(layers:[^/]+)$")


# substrings of a task name, mining prompt or data path that name a task family
TASK_FAMILIES = {"gsm8k": ("gsm8k",), "livecodebench": ("livecodebench", "lcb", "code_generation")}


def task_family(name: str | None) -> str | None:
    """The task family (a key of ``TASK_FAMILIES``) that ``name`` (a task name, mining prompt or data
    path) belongs to; None when it names none."""
    lowered = (name or "").lower()
    return next((family for family, marks in TASK_FAMILIES.items() if any(m in lowered for m in marks)), None)


class JudgeFileError(ValueError):
    """A judge file is missing, corrupt, or does not fit the models in use."""


def model_names(reference: str) -> set[str]:
    """The names a model reference answers to: itself and, for a local directory, the hub id that its
    hub-cache snapshot path or its config.json's ``_name_or_path`` names; for a derived draft
    ``REF/layers:K...``, those of REF with the same suffix."""
    derived = DERIVED_DRAFT.match(reference)
    if derived:
        return {reference} | {f"{name}/{derived.group(2)}" for name in model_names(derived.group(1))}
    names = {reference}
    if os.path.isdir(reference):
        path = os.path.normpath(os.path.abspath(reference))
        names.add(path)
        snapshot = HUB_SNAPSHOT.search(path)
        if snapshot:
            names.add(f"{snapshot.group(1)}/{snapshot.group(2)}")
        try:
            config = json.loads((Path(path) / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        if isinstance(config, dict) and isinstance(config.get("_name_or_path"), str) and config["_name_or_path"]:
            names.add(config["_name_or_path"])
    return names


def same_model(in_use: str, recorded: tuple[str, ...]) -> bool:
    """Whether the model reference ``in_use`` and one of a judge's ``recorded`` names are one model."""
    return any(model_names(in_use) & model_names(name) for name in recorded if name)


def dtype_name(dtype) -> str:
    """"bfloat16" for torch.bfloat16, "torch.bfloat16" or "bfloat16"."""
    return str(dtype).removeprefix("torch.")


def dtype_warning(judge_dtype: str | None, engine_dtype) -> str | None:
    """A warning when an engine computes hidden states in another dtype than the judge's training
    features were computed in (None when they agree or the judge records no dtype)."""
    if judge_dtype is None or dtype_name(engine_dtype) == judge_dtype:
        return None
    return (f"the judge was trained on {judge_dtype} features but the engine runs {dtype_name(engine_dtype)}: its "
            f"hidden states differ slightly from the training features, which shifts the judge's probabilities. "
            f"Run the engine with dtype={judge_dtype}, or train a judge on {dtype_name(engine_dtype)} features "
            f"(autojudge mine --dtype {dtype_name(engine_dtype)}, then autojudge train)")


@dataclass
class Judge:
    """A loaded judge with the scaler folded into ``weight``/``bias`` (float32)."""

    feature_kind: str
    target_hidden_size: int
    draft_hidden_size: int
    target_model: str
    draft_model: str
    threshold: float
    weight: torch.Tensor
    bias: torch.Tensor
    threshold_table: list = field(default_factory=list)
    training: dict = field(default_factory=dict)
    path: str = ""
    dtype: str | None = None
    target_model_id: str | None = None
    draft_model_id: str | None = None

    @property
    def task_family(self) -> str | None:
        """The task family the judge was trained on (``training["task_family"]``; for files written
        before that field, inferred from the training data's path; None when unknown)."""
        return self.training.get("task_family") or task_family(self.training.get("dataset"))

    def dtype_warning(self, engine_dtype) -> str | None:
        """``dtype_warning`` for this judge."""
        return dtype_warning(self.dtype, engine_dtype)

    def retrain_command(self, feature_kind: str) -> str:
        """The ``autojudge train`` command that retrains this judge on its features with ``feature_kind``."""
        features = self.training.get("features") or "FEATURES"
        out = Path(self.path or "judge.safetensors")
        return (f"autojudge train --features {features} --out {out.with_name(out.stem + '-' + feature_kind.lower())}"
                f"{out.suffix or '.safetensors'} --feature-kind {feature_kind}")

    def to(self, device) -> "Judge":
        """This judge with its weights on ``device`` (fp32 kept)."""
        return replace(self, weight=self.weight.to(device), bias=self.bias.to(device))

    @property
    def feature_size(self) -> int:
        return self.target_hidden_size + (self.draft_hidden_size if self.feature_kind == "DD-DT" else 0)

    def features(self, target_hidden: torch.Tensor, draft_hidden: torch.Tensor | None) -> torch.Tensor:
        """(T, F) float32 features from the rows' target (and, for DD-DT, draft) hidden states."""
        import torch  # here, not at the top: ``autojudge <job> --help`` imports this module without torch

        if self.feature_kind == "DT":
            return target_hidden.float()
        return torch.cat([draft_hidden.float(), target_hidden.float()], dim=-1)

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        """P(important) for each row of ``features`` (..., F)."""
        import torch

        return torch.sigmoid(features.float() @ self.weight.to(features.device) + self.bias.to(features.device))

    def check_models(self, target_hidden_size: int, draft_hidden_size: int,
                     target_model: str | None = None, draft_model: str | None = None) -> None:
        """Raise JudgeFileError if the judge was made for other hidden sizes or models."""
        problems = []
        if target_hidden_size != self.target_hidden_size:
            problems.append(f"target hidden size {target_hidden_size} != judge's {self.target_hidden_size}")
        if self.feature_kind == "DD-DT" and draft_hidden_size != self.draft_hidden_size:
            problems.append(f"draft hidden size {draft_hidden_size} != judge's {self.draft_hidden_size}")
        for role, in_use, recorded in (("target", target_model, (self.target_model, self.target_model_id)),
                                       ("draft", draft_model, (self.draft_model, self.draft_model_id))):
            if in_use is not None and not same_model(in_use, recorded):
                problems.append(_name_mismatch(role, in_use, recorded))
        if problems:
            raise JudgeFileError(f"judge file {self.path or '<memory>'} does not fit the models in use: "
                                 + "; ".join(problems))


def _name_mismatch(role: str, in_use: str, recorded: tuple) -> str:
    """Why the ``role`` model ``in_use`` is not one of the ``recorded`` names, and the override."""
    names = " or ".join(repr(n) for n in recorded if n)
    local = ""
    if os.path.isdir(in_use):
        others = sorted(model_names(in_use) - {in_use, os.path.normpath(os.path.abspath(in_use))})
        local = (f" (a local directory that names {', '.join(map(repr, others))})" if others else
                 " (a local directory that names no hub id: its path is not a hub-cache snapshot and its "
                 "config.json has no _name_or_path)")
    return (f"{role} model {in_use!r} != judge's {names}{local}; if it is a copy of that model, retrain the judge "
            f"recording the name in use: autojudge train ... --{role}-id {in_use}")


def save_judge(path: str | Path, *, feature_kind: str, target_hidden_size: int, draft_hidden_size: int,
               target_model: str, draft_model: str, mean, scale, weight, bias: float, threshold: float,
               threshold_table: list, training: dict, dtype: str | None = None, target_model_id: str | None = None,
               draft_model_id: str | None = None) -> Path:
    """Write a judge file (unfolded scaler + logistic regression) and return its path. The optional
    ``dtype``, ``target_model_id`` and ``draft_model_id`` are written only when given."""
    import torch
    from safetensors.torch import save_file

    meta = {"schema_version": SCHEMA_VERSION, "feature_kind": feature_kind,
            "target_hidden_size": int(target_hidden_size), "draft_hidden_size": int(draft_hidden_size),
            "target_model": target_model, "draft_model": draft_model, "threshold": float(threshold),
            "threshold_table": threshold_table, "training": training}
    optional = {"dtype": dtype, "target_model_id": target_model_id, "draft_model_id": draft_model_id}
    meta |= {key: value for key, value in optional.items() if value is not None}
    tensors = {name: torch.as_tensor(value, dtype=torch.float32).reshape(-1).contiguous()
               for name, value in (("mean", mean), ("scale", scale), ("weight", weight), ("bias", [bias]))}
    _validate(meta, tensors, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    return path


def load_judge(path: str | Path) -> Judge:
    """Read and validate a judge file; raise JudgeFileError naming the problem."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise JudgeFileError(f"judge file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise JudgeFileError(f"judge file {path} is not a readable safetensors file: {e}") from None
    if METADATA_KEY not in header:
        raise JudgeFileError(f"judge file {path} has no {METADATA_KEY!r} metadata (not an AutoJudge judge file)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise JudgeFileError(f"judge file {path}: metadata is not valid JSON: {e}") from None
    _validate(meta, tensors, str(path))
    weight = tensors["weight"] / tensors["scale"]
    bias = tensors["bias"][0] - (tensors["weight"] * tensors["mean"] / tensors["scale"]).sum()
    return Judge(meta["feature_kind"], meta["target_hidden_size"], meta["draft_hidden_size"],
                 meta["target_model"], meta["draft_model"], float(meta["threshold"]), weight, bias,
                 meta["threshold_table"], meta["training"], str(path), meta.get("dtype"),
                 meta.get("target_model_id"), meta.get("draft_model_id"))


def _validate(meta: dict, tensors: dict, where: str) -> None:
    import torch

    def fail(msg: str):
        raise JudgeFileError(f"judge file {where}: {msg}")

    if not isinstance(meta, dict):
        fail("metadata must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        fail(f"metadata lacks {', '.join(missing)}")
    if meta["schema_version"] != SCHEMA_VERSION:
        fail(f"schema_version {meta['schema_version']!r} is not supported (expected {SCHEMA_VERSION})")
    if meta["feature_kind"] not in FEATURE_KINDS:
        fail(f"feature_kind {meta['feature_kind']!r} is not one of {FEATURE_KINDS}")
    for key in ("target_hidden_size", "draft_hidden_size"):
        if not isinstance(meta[key], int) or meta[key] < 1:
            fail(f"{key} must be a positive integer, got {meta[key]!r}")
    if not isinstance(meta["threshold"], (int, float)) or not math.isfinite(meta["threshold"]):
        fail(f"threshold must be a finite number, got {meta['threshold']!r}")
    if not isinstance(meta["threshold_table"], list) or not isinstance(meta["training"], dict):
        fail("threshold_table must be a list and training an object")
    if "dtype" in meta and meta["dtype"] not in DTYPES:
        fail(f"dtype {meta['dtype']!r} is not one of {DTYPES}")
    for key in OPTIONAL_NAME_KEYS:
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            fail(f"{key} must be a non-empty string, got {meta[key]!r}")
    size = meta["target_hidden_size"] + (meta["draft_hidden_size"] if meta["feature_kind"] == "DD-DT" else 0)
    expected = {"mean": size, "scale": size, "weight": size, "bias": 1}
    for name, n in expected.items():
        t = tensors.get(name)
        if t is None:
            fail(f"tensor {name!r} is missing")
        if t.dim() != 1 or t.numel() != n:
            fail(f"tensor {name!r} has shape {tuple(t.shape)}, expected ({n},) for feature kind "
                 f"{meta['feature_kind']} with hidden sizes {meta['target_hidden_size']}/{meta['draft_hidden_size']}")
        if not torch.isfinite(t).all():
            fail(f"tensor {name!r} has non-finite values")
    if not (tensors["scale"] > 0).all():
        fail("tensor 'scale' must be positive")
