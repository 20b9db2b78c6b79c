"""Settings of the vLLM backend, built on the driver and checked again in every worker (pure
Python: imports no vllm).

The driver (``autojudge_vllm``, scripts) turns flat arguments into ``vllm.LLM`` keyword
arguments: ``speculative_config`` (separate draft model, W tokens), ``worker_cls`` (our worker),
``additional_config`` = ``{"autojudge": {"judge": ABS_PATH | None, "threshold": float | None,
"accept_top_k": int | None}}`` (shipped by vLLM to every worker and part of its config hash) and
``disable_log_stats=False`` (spec-decode metrics). Each worker reads the same dict back with
``from_additional_config`` and loads the judge itself. The settings object is the one of the HF
backend, ``autojudge_harness.settings.AcceptanceSettings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from ..judge import Judge, JudgeFileError, load_judge
from ..settings import AcceptanceSettings, SettingsError, check_window

VLLM_VERSION = "0.33.0"
WORKER_CLS = "autojudge_harness.vllm_ext.worker.AutoJudgeWorker"
CONFIG_KEY = "autojudge"
STATS_RPC = "autojudge_stats"
REFUSED_REJECTION_METHODS = ("fly", "synthetic")


class VLLMSettingsError(SettingsError):
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


def to_additional_config(settings: AcceptanceSettings) -> dict:
    """The ``additional_config`` entry that ships ``settings`` to every worker."""
    return {CONFIG_KEY: settings.to_dict()}


def from_additional_config(additional_config: Mapping | None) -> AcceptanceSettings:
    """Read back what ``to_additional_config`` wrote (inside a worker)."""
    entry = (additional_config or {}).get(CONFIG_KEY)
    if not isinstance(entry, Mapping):
        raise VLLMSettingsError(f"{WORKER_CLS} needs additional_config['{CONFIG_KEY}'] (judge, threshold, "
                                "accept_top_k); build the LLM arguments with "
                                "autojudge_harness.vllm_ext.settings.engine_kwargs")
    return AcceptanceSettings.from_dict(entry)


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


def engine_kwargs(draft: str, window: int, settings: AcceptanceSettings,
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
            "additional_config": to_additional_config(settings), "disable_log_stats": False}


def load_vllm_judge(settings: AcceptanceSettings, target_hidden_size: int, draft_hidden_size: int,
                    target_model: str | None = None, draft_model: str | None = None) -> Judge:
    """The settings' judge file, validated for this backend and the models in use.

    Only DT judges: a DD-DT feature needs the draft's hidden state of every window position, but
    vLLM's draft model keeps them only inside ``sample_draft``, and the last position's state
    would need one more draft forward that writes KV past the lookahead slots vLLM reserves."""
    judge = load_judge(settings.judge)
    if judge.feature_kind != "DT":
        raise JudgeFileError(f"judge file {settings.judge} has feature kind {judge.feature_kind}; the vLLM backend "
                             "supports DT judges (target hidden states) only: train one with "
                             "autojudge train ... --feature-kind DT")
    judge.check_models(target_hidden_size, draft_hidden_size, target_model, draft_model)
    return judge
