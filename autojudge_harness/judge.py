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
    training: {...}                  (free-form provenance: data, C, AUC, counts, task_family)
A drafted token is *important* (label 1) with probability sigmoid(w'.x + b'); the scaler is
folded in at load: w' = w/scale, b' = b - sum(w*mean/scale). No pickle is read or written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

SCHEMA_VERSION = 1
FEATURE_KINDS = ("DT", "DD-DT")
METADATA_KEY = "autojudge"
REQUIRED_KEYS = ("schema_version", "feature_kind", "target_hidden_size", "draft_hidden_size",
                 "target_model", "draft_model", "threshold", "threshold_table", "training")


# substrings of a task name, mining prompt or data path that name a task family
TASK_FAMILIES = {"gsm8k": ("gsm8k",), "livecodebench": ("livecodebench", "lcb", "code_generation")}


def task_family(name: str | None) -> str | None:
    """The task family (a key of ``TASK_FAMILIES``) that ``name`` (a task name, mining prompt or data
    path) belongs to; None when it names none."""
    lowered = (name or "").lower()
    return next((family for family, marks in TASK_FAMILIES.items() if any(m in lowered for m in marks)), None)


class JudgeFileError(ValueError):
    """A judge file is missing, corrupt, or does not fit the models in use."""


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

    @property
    def task_family(self) -> str | None:
        """The task family the judge was trained on (``training["task_family"]``; for files written
        before that field, inferred from the training data's path; None when unknown)."""
        return self.training.get("task_family") or task_family(self.training.get("dataset"))

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
        if target_model is not None and target_model != self.target_model:
            problems.append(f"target model {target_model!r} != judge's {self.target_model!r}")
        if draft_model is not None and draft_model != self.draft_model:
            problems.append(f"draft model {draft_model!r} != judge's {self.draft_model!r}")
        if problems:
            raise JudgeFileError(f"judge file {self.path or '<memory>'} does not fit the models in use: "
                                 + "; ".join(problems))


def save_judge(path: str | Path, *, feature_kind: str, target_hidden_size: int, draft_hidden_size: int,
               target_model: str, draft_model: str, mean, scale, weight, bias: float, threshold: float,
               threshold_table: list, training: dict) -> Path:
    """Write a judge file (unfolded scaler + logistic regression) and return its path."""
    import torch
    from safetensors.torch import save_file

    meta = {"schema_version": SCHEMA_VERSION, "feature_kind": feature_kind,
            "target_hidden_size": int(target_hidden_size), "draft_hidden_size": int(draft_hidden_size),
            "target_model": target_model, "draft_model": draft_model, "threshold": float(threshold),
            "threshold_table": threshold_table, "training": training}
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
                 meta["threshold_table"], meta["training"], str(path))


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
