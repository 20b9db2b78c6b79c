"""lm-eval model ``autojudge_hf``: AutoJudge decoding on transformers models (CPU or GPU).

model_args (flat ``key=value``): pretrained (target), draft, judge (judge file), threshold,
accept_top_k (the top-K baseline instead of a judge), oracle (the perfect judge's file, ``autojudge
oracle``), end_guard (default true; false = the paper-exact rule), window, dtype, device, compile (static KV
cache + torch.compile, for GPUs), preset (named pair, e.g. ``smollm2-135m``), sample_stats_path (the
per-request statistics file; default in a CLI run with --output_path: ``autojudge_samples_<date>.jsonl``
beside lm-eval's ``results_<date>.json``, ``registration.place_stats_file``).
``generate_until`` runs AutoJudge decoding one request at a time (the paper's batch size 1; a batch_size
other than 1 is refused); loglikelihood requests go to the target through lm-eval's HFLM unchanged.
Everything checkable is checked before the models load: model_args, model paths, judge and oracle
files, writable output paths.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm

from ..decoding import SpeculativeDecoder
from ..judge import task_family
from ..jsonl import append_jsonl
from ..models import DTYPES, check_reference, load_pair, pair_config
from ..paths import check_writable
from ..rules import param_owner
from ..settings import AcceptanceSettings, SettingsError, boolean, check_window
from ..stats import DecodingStats
from .model_args import check_known, parameters
from .registration import (DropRecords, check_cli_output_path, pending_stats_path, quiet_lm_eval_logs,
                           sampling_source)

OWN_KEYS = ("pretrained", "draft", "rule", *param_owner(), "end_guard", "window", "dtype",
            "device", "compile", "preset", "sample_stats_path")


def _resolve_device(device: str | None) -> str:
    """The requested device; a CUDA request without a GPU falls back to CPU, as HFLM does, without a
    warning: the lm-eval CLI passes device=cuda:0 whenever the user names no device."""
    if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


# HFLM's warnings for a model object passed as ``pretrained``: this class always passes the loaded
# target on purpose, single process, without accelerate or parallelize (which HFLM then refuses itself)
LOADED_MODEL_WARNINGS = ("`pretrained` model kwarg is not of type `str`", "Passed an already-initialized model")


@contextmanager
def _without_loaded_model_warnings():
    """Drop ``LOADED_MODEL_WARNINGS`` from lm-eval's HFLM logger while the block runs."""
    logger = logging.getLogger("lm_eval.models.huggingface")
    log_filter = DropRecords(lambda message: message.startswith(LOADED_MODEL_WARNINGS))
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def check_batch_size(batch_size) -> None:
    """SettingsError unless ``batch_size`` is 1 (lm-eval's default): ``generate_until`` decodes one request at
    a time, so a larger batch would be silently ignored."""
    if batch_size is not None and str(batch_size) != "1":
        raise SettingsError(f"autojudge_hf decodes one request at a time (AutoJudge's batch size 1), so "
                            f"batch_size={batch_size} would be ignored: drop --batch_size (autojudge_vllm batches "
                            "requests in its engine)")


class AutoJudgeHFLM(HFLM):
    """HFLM whose generation is AutoJudge speculative decoding with a draft model and a judge."""

    def __init__(self, pretrained: str | None = None, draft: str | None = None, judge: str | None = None,
                 threshold: float | None = None, accept_top_k: int | None = None, oracle: str | None = None,
                 end_guard: bool | str = True, rule: str | None = None, window: int | None = None, dtype: str = "auto", device: str | None = None, compile: bool = False, preset: str | None = None,
                 sample_stats_path: str | None = None, batch_size: int | str | None = 1,
                 max_length: int | None = None, **kwargs):
        rule_params = {key: kwargs.pop(key) for key in list(kwargs) if key in param_owner()}
        check_known("autojudge_hf", kwargs, OWN_KEYS, parameters(HFLM.__init__), "lm-eval's HFLM")
        # cheap checks first: nothing is loaded before the arguments and output paths are known to be usable
        check_batch_size(batch_size)
        for key, ref in (("pretrained", pretrained), ("draft", draft)):
            if ref:
                check_reference(ref, key)
        config = pair_config(preset, pretrained, draft, judge, window)
        window = check_window(config.window)
        other_rule = rule not in (None, "", "judge") or accept_top_k is not None or oracle is not None or rule_params
        settings = AcceptanceSettings.from_args(  # another rule replaces a preset's judge
            judge=judge or (None if other_rule else config.judge), threshold=threshold, accept_top_k=accept_top_k,
            oracle=oracle, end_guard=end_guard, rule=rule, **rule_params)
        compile = boolean(compile, "compile")
        for key, ref in (("pretrained", config.target), ("draft", config.draft)):
            check_reference(ref, key)
        device = _resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
        if dtype not in DTYPES:
            raise SettingsError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {dtype!r}")
        check_cli_output_path()
        if sample_stats_path:
            check_writable(sample_stats_path, "sample_stats_path")
        self.pair = load_pair(config.target, config.draft, dtype=dtype, device=device)
        quiet_lm_eval_logs()
        with _without_loaded_model_warnings():
            super().__init__(pretrained=self.pair.target, tokenizer=self.pair.tokenizer,
                             batch_size=batch_size, max_length=max_length, **kwargs)
        self.run_args = {"target": self.pair.target_name, "draft": self.pair.draft_name, "window": window,
                         "dtype": dtype, "device": str(device), "compile": compile, "preset": preset}
        self.configure(settings, sample_stats_path)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> "AutoJudgeHFLM":
        """lm-eval's constructor from model_args (the CLI's path); also fills in ``pretrained`` with the
        resolved target in ``arg_dict``, which lm-eval then records in the results and names the run's
        output folder after (it takes the folder name from ``pretrained``; else a random name)."""
        lm = super().create_from_arg_obj(arg_dict, additional_config)
        arg_dict.setdefault("pretrained", lm.run_args["target"])
        return lm

    def configure(self, settings: AcceptanceSettings, sample_stats_path: str | Path | None = None) -> None:
        """Set the acceptance rule for the next evaluation, keeping the loaded models; statistics
        start from zero."""
        self.decoder = SpeculativeDecoder(self.pair, window=self.run_args["window"], settings=settings,
                                          compile=self.run_args["compile"])
        self.autojudge_args = {**self.run_args, "mode": settings.mode, "judge": settings.judge,
                               "threshold": self.decoder.threshold, "accept_top_k": settings.accept_top_k,
                               "oracle": settings.oracle, "end_guard": settings.end_guard,
                               "rule_params": rule_parameters(settings, self.decoder.threshold)}
        self.sample_stats: list[dict] = []
        self._family_checked: set[str] = set()
        self.total_stats = DecodingStats()
        self.sample_stats_path = Path(sample_stats_path) if sample_stats_path else pending_stats_path()

    def warm_up(self) -> None:
        """One short decode, so that one-off allocation costs do not land in a timed run."""
        self.decoder.generate(self.tok_encode("Warm-up: 1 + 1 ="), 8)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Decode each request greedily with AutoJudge; stop strings and max_gen_toks as lm-eval passes them."""
        self._check_task_families({request.task_name for request in requests})
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        results = []
        for request in tqdm(requests, disable=disable_tqdm or self.rank != 0, desc="AutoJudge generate_until"):
            context, gen_kwargs = request.args
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            if kwargs.get("do_sample") or kwargs.get("temperature", 0.0) > 0:
                raise SettingsError(f"autojudge_hf decodes greedily; {sampling_source(request.task_name)} asks for "
                                    f"sampling (do_sample={kwargs.get('do_sample')}, "
                                    f"temperature={kwargs.get('temperature')}): set do_sample=false, temperature=0")
            until = handle_stop_sequences(kwargs.get("until"), eos=eos)
            prompt = self.tok_encode(context)
            max_ctx = self.max_length - kwargs["max_gen_toks"]
            generation = self.decoder.generate(prompt[-max_ctx:], kwargs["max_gen_toks"], tuple(until))
            text = postprocess_generated_text(generation=generation.text, stop=until, think_end_token=None)
            results.append(text)
            self._record(request, generation)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return results

    def _check_task_families(self, task_names: set[str]) -> None:
        """Warn (once per task and configuration) when the judge was trained on another task family
        than a task it decodes: its threshold and recall were measured on that family only."""
        rule = self.decoder.rule
        judge = rule.model if rule is not None and rule.name == "judge" else None
        if judge is None or judge.task_family is None:
            return
        for name in sorted(task_names - self._family_checked):
            if task_family(name) != judge.task_family:
                warnings.warn(f"the judge {judge.path} was trained on {judge.task_family} mismatches but decodes "
                              f"task {name} ({task_family(name) or 'another task family'}); its threshold and "
                              "recall were measured on its training family only: train a judge on this task's "
                              "mismatches, or check the result against lossless (threshold=0)", stacklevel=2)
        self._family_checked |= task_names

    def _record(self, request, generation) -> None:
        self.total_stats += generation.stats
        row = {"task": request.task_name, "doc_id": request.doc_id, "finish_reason": generation.finish_reason,
               "first_lenient_token": generation.first_lenient_token, **generation.stats.summary()}
        self.sample_stats.append(row)
        if self.sample_stats_path is not None:
            append_jsonl(self.sample_stats_path, [row])

    def get_model_info(self) -> dict:
        """Run configuration and aggregated speed statistics (merged into the results JSON's config)."""
        return {"autojudge": {**self.autojudge_args, "stats": self.total_stats.summary(),
                              "sample_stats_file": str(self.sample_stats_path) if self.sample_stats_path else None}}


def rule_parameters(settings: AcceptanceSettings, threshold: float | None) -> dict:
    """The rule's parameters as results record them (a judge's threshold resolved from its file)."""
    params = dict(settings.params)
    if settings.rule == "judge":
        params["threshold"] = threshold
    return params
