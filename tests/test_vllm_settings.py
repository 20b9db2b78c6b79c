"""The vLLM backend without vLLM: settings and engine kwargs, judge checks, statistics, lazy
registration (vllm is never imported by the package or autojudge_hf)."""

import ast
import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from autojudge_harness.judge import JudgeFileError, save_judge
from autojudge_harness.stats import DecodingStats
from autojudge_harness.vllm_ext import metrics, settings
from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext.settings import (VLLMSettingsError, check_speculative_config, check_vllm_version,
                                                 engine_kwargs, from_additional_config, load_vllm_judge,
                                                 to_additional_config)

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_judge(path, kind="DT", target_hidden=8, draft_hidden=6, target_model="t", draft_model="d", threshold=0.3):
    size = target_hidden + (draft_hidden if kind == "DD-DT" else 0)
    return save_judge(path, feature_kind=kind, target_hidden_size=target_hidden, draft_hidden_size=draft_hidden,
                      target_model=target_model, draft_model=draft_model, mean=torch.zeros(size),
                      scale=torch.ones(size), weight=torch.ones(size), bias=0.0, threshold=threshold,
                      threshold_table=[], training={})


def test_vllm_version_must_be_0_33_0(monkeypatch):
    assert check_vllm_version("0.33.0") == "0.33.0"
    with pytest.raises(VLLMSettingsError, match=r"needs vllm==0\.33\.0 .*found vllm 0\.34\.1"):
        check_vllm_version("0.34.1")

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(settings, "version", missing)
    with pytest.raises(VLLMSettingsError, match=r"vLLM is not installed.*autojudge-harness\[vllm\]"):
        check_vllm_version()


def test_additional_config_round_trip_and_errors(tmp_path):
    s = AcceptanceSettings.from_args(str(write_judge(tmp_path / "j.safetensors")), 0.4)
    config = json.loads(json.dumps(to_additional_config(s)))   # JSON-serialisable, as vLLM ships it
    assert from_additional_config({**config, "other": 1}) == s
    with pytest.raises(VLLMSettingsError, match=r"needs additional_config\['autojudge'\] \(judge, threshold"):
        from_additional_config({})
    with pytest.raises(ValueError, match=r"unknown keys \['window'\]"):
        from_additional_config({"autojudge": {"judge": None, "window": 3}})


def test_engine_kwargs(tmp_path):
    s = AcceptanceSettings.from_args(str(write_judge(tmp_path / "j.safetensors")), 0.4)
    kwargs = engine_kwargs("meta-llama/Llama-3.2-1B-Instruct", 32, s, {"draft_tensor_parallel_size": 1})
    assert kwargs == {
        "speculative_config": {"model": "meta-llama/Llama-3.2-1B-Instruct", "method": "draft_model",
                               "num_speculative_tokens": 32, "draft_tensor_parallel_size": 1},
        "worker_cls": "autojudge_harness.vllm_ext.worker.AutoJudgeWorker",
        "additional_config": {"autojudge": {"judge": s.judge, "threshold": 0.4, "accept_top_k": None, "oracle": None,
                                            "end_guard": True}},
        "disable_log_stats": False,
    }
    json.dumps(kwargs)
    module, cls = kwargs["worker_cls"].rsplit(".", 1)   # the class vLLM will import in each worker
    tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
    assert cls in [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    with pytest.raises(VLLMSettingsError, match="needs a draft model"):
        engine_kwargs(None, 8, s)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        engine_kwargs("d", 0, s)
    with pytest.raises(VLLMSettingsError, match=r"speculative_config\['num_speculative_tokens'\]=4 contradicts 8"):
        engine_kwargs("d", 8, s, {"num_speculative_tokens": 4})
    with pytest.raises(VLLMSettingsError, match="not speculative method 'eagle3'"):
        engine_kwargs("d", 8, s, {"method": "eagle3"})
    for method in ("fly", "synthetic"):
        with pytest.raises(VLLMSettingsError, match=f"rejection_sample_method='{method}'.*cannot be combined"):
            engine_kwargs("d", 8, s, {"rejection_sample_method": method})
    with pytest.raises(VLLMSettingsError, match="enable_adaptive_verification"):
        engine_kwargs("d", 8, s, {"enable_adaptive_verification": True})
    assert engine_kwargs("d", 8, s, {"rejection_sample_method": "block"})["speculative_config"]["method"] == "draft_model"


def test_speculative_config_objects_are_checked_as_in_the_worker():
    check_speculative_config(SimpleNamespace(method="draft_model", rejection_sample_method="standard",
                                             enable_adaptive_verification=False))
    with pytest.raises(VLLMSettingsError, match="not speculative method 'ngram'"):
        check_speculative_config(SimpleNamespace(method="ngram"))
    with pytest.raises(VLLMSettingsError, match="rejection_sample_method='fly'"):
        check_speculative_config(SimpleNamespace(method="draft_model", rejection_sample_method="fly"))
    with pytest.raises(VLLMSettingsError, match="needs speculative decoding with a separate draft model"):
        check_speculative_config(None)


def test_judge_checks_for_the_vllm_backend(tmp_path):
    dt = AcceptanceSettings.from_args(str(write_judge(tmp_path / "dt.safetensors")))
    judge = load_vllm_judge(dt, 8, 99, "t", "d")   # DT: the draft's hidden size does not matter
    assert dt.resolved_threshold(judge) == 0.3
    assert AcceptanceSettings.from_args(dt.judge, 1.5).resolved_threshold(judge) == 1.5
    with pytest.raises(JudgeFileError, match="target hidden size 4096 != judge's 8"):
        load_vllm_judge(dt, 4096, 6)
    with pytest.raises(JudgeFileError, match="target model 'other' != judge's 't'"):
        load_vllm_judge(dt, 8, 6, "other", "d")
    dd = AcceptanceSettings.from_args(str(write_judge(tmp_path / "dd.safetensors", kind="DD-DT")))
    with pytest.raises(JudgeFileError, match="feature kind DD-DT; the vLLM backend supports DT judges"):
        load_vllm_judge(dd, 8, 6, "t", "d")


def fake_metrics(drafts, draft_tokens, accepted, generated, per_pos):
    """vLLM Metric-like objects; counters appear once per label set (here two engines)."""
    half = lambda v: [v // 2, v - v // 2]  # noqa: E731
    out = []
    for name, value in (("vllm:spec_decode_num_drafts", drafts), ("vllm:spec_decode_num_draft_tokens", draft_tokens),
                        ("vllm:spec_decode_num_accepted_tokens", accepted), ("vllm:generation_tokens", generated)):
        out += [SimpleNamespace(name=name, labels={"engine": str(i)}, value=v) for i, v in enumerate(half(value))]
    out.append(SimpleNamespace(name="vllm:spec_decode_num_accepted_tokens_per_pos", labels={}, values=per_pos))
    out.append(SimpleNamespace(name="vllm:num_requests_running", labels={}, value=3.0))
    return out


def test_statistics_from_metric_deltas_and_worker_reports():
    report0 = {"mode": "judge", "target_calls": 10, "draft_calls": 40, "accepted_exact": 5, "accepted_lenient": 2,
               "stock_cycles": 0, "judge_accepted_per_position": [1, 1, 0, 0]}
    report1 = {**report0, "target_calls": 30, "draft_calls": 120, "accepted_exact": 20, "accepted_lenient": 12,
               "judge_accepted_per_position": [5, 4, 2, 1]}
    before = metrics.snapshot(fake_metrics(3, 12, 7, 20, [3, 2, 1, 1]), [None, report0])
    after = metrics.snapshot(fake_metrics(13, 52, 39, 80, [11, 10, 9, 9]), [None, report1])
    counts = metrics.subtract(after, before)
    assert counts["cycles"] == 10 and counts["drafted_tokens"] == 40 and counts["accepted_tokens"] == 32
    assert counts["accepted_per_position"] == [8, 8, 8, 8] and counts["judge_accepted_per_position"] == [4, 3, 2, 1]
    summary = metrics.summarize(counts, wall_time_s=2.0, requests=4)
    assert set(DecodingStats().summary()) <= set(summary)
    assert summary["accepted_lenient"] == 10 and summary["accepted_exact"] == 22      # vLLM's accepted - judge
    assert summary["accepted_per_cycle"] == 3.2 and summary["mean_acceptance_length"] == 4.2
    assert summary["tokens_per_cycle"] == summary["mean_acceptance_length"]
    assert summary["acceptance_rate"] == 0.8 and summary["lenient_accepted_fraction"] == 10 / 32
    assert summary["target_calls"] == 20 and summary["draft_calls"] == 80 and summary["requests"] == 4
    assert summary["tokens_per_second"] == 30.0 and summary["generated_tokens"] == 60
    assert summary["acceptance_rate_per_position"] == [0.8] * 4
    assert summary["sampler"] == {"accepted_exact": 15, "accepted_lenient": 10, "judge_accepted_per_position": [4, 3, 2, 1],
                                  "stock_cycles": 0}
    total = metrics.add(counts, counts)
    assert total["cycles"] == 20 and total["accepted_per_position"] == [16] * 4
    empty = metrics.summarize(metrics.snapshot([]), 0.0, 0)
    assert empty["mean_acceptance_length"] == 0.0 and empty["acceptance_rate_per_position"] == []


def test_package_hf_backend_and_gpu_check_driver_never_import_vllm_and_autojudge_vllm_is_registered():
    code = (
        "import sys, importlib.util\n"
        "import autojudge_harness, autojudge_harness.lm_eval_models.hf\n"
        "import autojudge_harness.vllm_ext, autojudge_harness.vllm_ext.batched\n"
        "import autojudge_harness.vllm_ext.settings, autojudge_harness.vllm_ext.metrics\n"
        f"spec = importlib.util.spec_from_file_location('gpu_check', {str(REPO / 'scripts' / 'gpu_check_vllm.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"   # vllm only in engine subprocesses
        "from autojudge_harness.lm_eval_models.registration import register\n"
        "register()\n"
        "from lm_eval.api.registry import get_model, model_registry\n"
        "assert 'autojudge_vllm' in model_registry and 'autojudge_hf' in model_registry and 'vllm' in model_registry\n"
        "assert get_model('autojudge_hf').__name__ == 'AutoJudgeHFLM'\n"
        "assert 'vllm' not in sys.modules, 'vllm was imported'\n"
        "if importlib.util.find_spec('vllm') is None:\n"
        "    try:\n"
        "        get_model('autojudge_vllm')\n"
        "    except ValueError as e:\n"
        "        assert 'vLLM is not installed' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('autojudge_vllm resolved without vllm')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
