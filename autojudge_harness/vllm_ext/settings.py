"""Settings of the vLLM backend, built on the driver and checked again in every worker (pure
Python: imports no vllm).

The driver (``autojudge_vllm``, scripts) turns flat arguments into ``vllm.LLM`` keyword
arguments: ``speculative_config`` (separate draft model, W tokens), ``worker_cls`` (our worker),
``additional_config`` = ``{"autojudge": {"judge": ABS_PATH | None, "threshold": float | None,
"accept_top_k": int | None}}`` (shipped by vLLM to every worker and part of its config hash) and
``disable_log_stats=False`` (spec-decode metrics). Each worker reads the same dict back with
``AutoJudgeSettings.from_additional_config`` and loads the judge itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..judge import Judge, JudgeFileError, load_judge

VLLM_VERSION = "0.33.0"
WORKER_CLS = "autojudge_harness.vllm_ext.worker.AutoJudgeWorker"
CONFIG_KEY = "autojudge"
STATS_RPC = "autojudge_stats"
REFUSED_REJECTION_METHODS = ("fly", "synthetic")


class VLLMSettingsError(ValueError):
    """Settings the vLLM backend cannot run with."""


def check_vllm_version(installed: str | None = None) -> str:
    """Return the installed vLLM version; raise unless it is exactly VLLM_VERSION (the
    integration subclasses internal classes of that release)."""
    if installed is None:
        try:
            installed = version("vllm")
        except PackageNotFoundError:
            raise VLLMSettingsError(f"vLLM is not installed; the vLLM backend needs vllm=={VLLM_VERSION}: "
                                    "pip install 'autojudge-harness[vllm]'") from None
    if installed != VLLM_VERSION:
        raise VLLMSettingsError(f"the vLLM backend needs vllm=={VLLM_VERSION} (it subclasses that release's "
                                f"internal model runner and rejection sampler); found vllm {installed}")
    return installed


@dataclass(frozen=True)
class AutoJudgeSettings:
    """What the workers' rejection sampler does with greedy requests.

    judge: absolute path of a DT judge file; threshold: accept a mismatch when P(important) <
    threshold (None: the judge file's); accept_top_k: the top-K baseline instead of a judge.
    Neither judge nor top-K: lossless (vLLM's own verification; the worker only counts calls)."""

    judge: str | None = None
    threshold: float | None = None
    accept_top_k: int | None = None

    def __post_init__(self):
        if self.judge is not None and (not isinstance(self.judge, str) or not Path(self.judge).is_absolute()):
            raise VLLMSettingsError(f"judge must be an absolute path (workers may run elsewhere), got {self.judge!r}")
        if self.threshold is not None:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                    or not math.isfinite(self.threshold):
                raise VLLMSettingsError(f"threshold must be a finite number, got {self.threshold!r}")
            if self.judge is None:
                raise VLLMSettingsError("threshold needs a judge file (judge=...)")
        if self.accept_top_k is not None:
            if isinstance(self.accept_top_k, bool) or not isinstance(self.accept_top_k, int) or self.accept_top_k < 1:
                raise VLLMSettingsError(f"accept_top_k must be an integer >= 1, got {self.accept_top_k!r}")
            if self.judge is not None:
                raise VLLMSettingsError("accept_top_k is an alternative to the judge: give one or the other")

    @classmethod
    def create(cls, judge=None, threshold=None, accept_top_k=None) -> "AutoJudgeSettings":
        """From user input (lm-eval model_args, CLI strings): resolves the judge path and converts
        numeric strings; a judge file that does not exist is refused here."""
        if judge is not None:
            path = Path(str(judge)).expanduser().resolve()
            if not path.is_file():
                raise JudgeFileError(f"judge file not found: {judge}")
            judge = str(path)
        if isinstance(threshold, str):
            threshold = _number(threshold, float, "threshold")
        elif isinstance(threshold, int) and not isinstance(threshold, bool):
            threshold = float(threshold)
        if isinstance(accept_top_k, str):
            accept_top_k = _number(accept_top_k, int, "accept_top_k")
        return cls(judge, threshold, accept_top_k)

    @property
    def mode(self) -> str:
        return "judge" if self.judge else "top_k" if self.accept_top_k else "lossless"

    def to_additional_config(self) -> dict:
        return {CONFIG_KEY: asdict(self)}

    @classmethod
    def from_additional_config(cls, additional_config: Mapping | None) -> "AutoJudgeSettings":
        """Read back what ``to_additional_config`` wrote (inside a worker)."""
        entry = (additional_config or {}).get(CONFIG_KEY)
        if not isinstance(entry, Mapping):
            raise VLLMSettingsError(f"{WORKER_CLS} needs additional_config['{CONFIG_KEY}'] (judge, threshold, "
                                    "accept_top_k); build the LLM arguments with "
                                    "autojudge_harness.vllm_ext.settings.engine_kwargs")
        unknown = set(entry) - {"judge", "threshold", "accept_top_k"}
        if unknown:
            raise VLLMSettingsError(f"additional_config['{CONFIG_KEY}'] has unknown keys {sorted(unknown)}")
        return cls(**entry)


def _number(text: str, kind, name: str):
    try:
        return kind(text)
    except ValueError:
        raise VLLMSettingsError(f"{name} must be a number, got {text!r}") from None


def check_window(window) -> int:
    """W as an int >= 1."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise VLLMSettingsError(f"window must be an integer >= 1, got {window!r}")
    return window


def check_speculative_config(spec) -> None:
    """Refuse speculative settings the judge rule cannot run with. ``spec``: the dict given to
    ``vllm.LLM`` (driver) or vLLM's ``SpeculativeConfig`` (worker)."""
    if spec is None:
        raise VLLMSettingsError("AutoJudge needs speculative decoding with a separate draft model "
                                "(speculative_config with method='draft_model')")
    get = spec.get if isinstance(spec, Mapping) else (lambda key, default=None: getattr(spec, key, default))
    method = get("method")
    if method != "draft_model":
        raise VLLMSettingsError(f"AutoJudge works with a separate draft model (method='draft_model'), "
                                f"not speculative method {method!r}")
    rejection = get("rejection_sample_method", "standard")
    if rejection in REFUSED_REJECTION_METHODS:
        raise VLLMSettingsError(f"rejection_sample_method={rejection!r} is vLLM's own lossy acceptance; it cannot be "
                                "combined with AutoJudge (use 'standard')")
    if get("enable_adaptive_verification", False):
        raise VLLMSettingsError("enable_adaptive_verification compacts the verification rows; "
                                "it cannot be combined with AutoJudge")


def engine_kwargs(draft: str, window: int, settings: AutoJudgeSettings,
                  speculative_config: Mapping | None = None) -> dict:
    """``vllm.LLM`` keyword arguments for AutoJudge with ``draft`` proposing ``window`` tokens.
    ``speculative_config``: further SpeculativeConfig fields (e.g. draft_tensor_parallel_size);
    it must not contradict draft/window, nor ask for another method."""
    if not draft:
        raise VLLMSettingsError("AutoJudge needs a draft model (draft=...)")
    spec = {"method": "draft_model", **(speculative_config or {})}
    check_speculative_config(spec)
    for key, value in (("model", draft), ("num_speculative_tokens", check_window(window))):
        if key in spec and spec[key] != value:
            raise VLLMSettingsError(f"speculative_config[{key!r}]={spec[key]!r} contradicts {value!r} "
                                    "(give draft= and window=)")
        spec[key] = value
    return {"speculative_config": spec, "worker_cls": WORKER_CLS,
            "additional_config": settings.to_additional_config(), "disable_log_stats": False}


def load_vllm_judge(settings: AutoJudgeSettings, target_hidden_size: int, draft_hidden_size: int,
                    target_model: str | None = None, draft_model: str | None = None) -> Judge:
    """The settings' judge file, validated for this backend and the models in use.

    Only DT judges: a DD-DT feature needs the draft's hidden state of every window position, but
    vLLM's draft model keeps them only inside ``sample_draft``, and the last position's state
    would need one more draft forward that writes KV past the lookahead slots vLLM reserves."""
    judge = load_judge(settings.judge)
    if judge.feature_kind != "DT":
        raise JudgeFileError(f"judge file {settings.judge} has feature kind {judge.feature_kind}; the vLLM backend "
                             "supports DT judges (target hidden states) only: train one with "
                             "python -m classifiers.train ... --feature-kind DT")
    judge.check_models(target_hidden_size, draft_hidden_size, target_model, draft_model)
    return judge


def resolve_threshold(settings: AutoJudgeSettings, judge: Judge) -> float:
    """The threshold in force: the settings', else the judge file's."""
    return float(judge.threshold if settings.threshold is None else settings.threshold)
