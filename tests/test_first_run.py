"""What a first run shows: no misleading lm-eval warnings, run folders named after the target, a
warning for a judge used outside its task family, LiveCodeBench's bundled file under its own task."""

import logging
import os
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from autojudge_harness.judge import Judge, load_judge, save_judge, task_family
from autojudge_harness.lm_eval_models.registration import LOG_FILTERS, register
from autojudge_harness.resources import bundled_problems, shipped_classifier, tasks_path


def _record(logger: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.WARNING, __file__, 1, message, None, None)


def test_lm_eval_hints_that_do_not_apply_are_dropped_and_the_rest_kept():
    register()
    for name, log_filter in LOG_FILTERS.items():
        assert log_filter in logging.getLogger(name).filters
    task_filter = LOG_FILTERS["lm_eval.api.task"]
    hint = ": Custom kwargs can be passed to `--metadata` in console (as json string) or to the TaskManager."
    assert not task_filter.filter(_record("lm_eval.api.task", "autojudge_gsm8k_bundled" + hint))
    assert task_filter.filter(_record("lm_eval.api.task", "someone_elses_task" + hint))
    assert task_filter.filter(_record("lm_eval.api.task", "autojudge_gsm8k_bundled: something else"))


def test_the_gen_kwargs_warning_is_shown_once_per_process():
    from autojudge_harness.lm_eval_models.registration import DropRecords, _once

    log_filter = DropRecords(_once("specified through cli, these settings will update set parameters"))
    message = ("generation_kwargs: {'max_gen_toks': 8} specified through cli, these settings will update set "
               "parameters in yaml tasks. Ensure 'do_sample=True' for non-greedy decoding!")
    assert [log_filter.filter(_record("lm_eval.evaluator", message)) for _ in range(3)] == [True, False, False]
    assert log_filter.filter(_record("lm_eval.evaluator", "another warning"))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_no_loaded_model_warnings_from_our_constructor_only(tiny_dir, tiny_pair):
    from lm_eval.models.huggingface import HFLM

    from autojudge_harness.lm_eval_models.hf import LOADED_MODEL_WARNINGS, AutoJudgeHFLM

    logger = logging.getLogger("lm_eval.models.huggingface")
    records = _Records()
    logger.addHandler(records)
    try:
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", device="cpu")
        assert not [m for m in records.messages if m.startswith(LOADED_MODEL_WARNINGS)]
        HFLM(pretrained=tiny_pair.target, tokenizer=tiny_pair.tokenizer)   # someone else's call still warns
        assert len([m for m in records.messages if m.startswith(LOADED_MODEL_WARNINGS)]) == 2
    finally:
        logger.removeHandler(records)


def test_model_args_get_the_target_so_that_the_run_folder_is_named_after_it(tiny_pair, monkeypatch):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    monkeypatch.setattr("autojudge_harness.lm_eval_models.hf.load_pair", lambda *a, **k: tiny_pair)
    model_args = {"preset": "smollm2-135m", "accept_top_k": "2"}   # as lm-eval's CLI passes them
    AutoJudgeHFLM.create_from_arg_obj(model_args, {"device": "cpu", "batch_size": 1})
    assert model_args["pretrained"] == tiny_pair.target_name
    given = {"pretrained": "mine", "preset": "smollm2-135m", "accept_top_k": "2"}
    AutoJudgeHFLM.create_from_arg_obj(given, {"device": "cpu"})
    assert given["pretrained"] == "mine"


def test_task_families():
    assert task_family("autojudge_gsm8k_bundled_easy") == task_family("gsm8k_cot_llama") == "gsm8k"
    assert task_family("autojudge_lcb_bundled") == task_family("autojudge_lcb_release_v5 (chat)") == "livecodebench"
    assert task_family("arc_easy") is None and task_family(None) is None
    # files from before the field: inferred from the training data's path
    assert load_judge(shipped_classifier("smollm2-135m-gsm8k.safetensors")).task_family == "gsm8k"
    old = Judge("DT", 4, 4, "t", "d", 0.1, None, None, training={"dataset": "/data/other/train.jsonl"})
    assert old.task_family is None
    assert Judge("DT", 4, 4, "t", "d", 0.1, None, None, training={"task_family": "livecodebench"}).task_family == "livecodebench"


def test_a_judge_used_outside_its_task_family_warns_naming_both(tiny_dir, tiny_pair, tmp_path):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    hidden = tiny_pair.target.config.hidden_size
    judge = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=hidden,
                       draft_hidden_size=hidden, target_model=tiny_pair.target_name, draft_model=tiny_pair.draft_name,
                       mean=torch.zeros(hidden), scale=torch.ones(hidden), weight=torch.zeros(hidden), bias=0.0,
                       threshold=0.5, threshold_table=[], training={"task_family": "gsm8k"})
    lm = AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:2", judge=str(judge), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm._check_task_families({"autojudge_gsm8k_bundled"})   # its own family: silent
    with pytest.warns(UserWarning, match=r"trained on gsm8k mismatches but decodes task autojudge_lcb_bundled \(livecodebench\)"):
        lm._check_task_families({"autojudge_lcb_bundled", "autojudge_gsm8k_bundled"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm._check_task_families({"autojudge_lcb_bundled"})   # once per task and configuration


def test_the_bundled_lcb_file_runs_as_the_bundled_task(tmp_path):
    from autojudge_harness.experiments.lcb_5fold import JSONL_ENV, local_task

    assert local_task(bundled_problems("livecodebench_bundled").resolve()) == ("autojudge_lcb_bundled", {JSONL_ENV: None})
    other = tmp_path / "lcb.jsonl"
    assert local_task(other) == ("autojudge_lcb_release_v5", {JSONL_ENV: str(other)})


@pytest.mark.slow
def test_cli_run_folder_and_log_are_clean(tmp_path, embedded_pair):
    out = tmp_path / "out"
    cmd = ["lm_eval", "--model", "autojudge_hf", "--model_args", "preset=smollm2-135m,window=4",
           "--tasks", "autojudge_gsm8k_bundled_easy", "--include_path", str(tasks_path()), "--output_path", str(out),
           "--limit", "1", "--apply_chat_template"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["embedded__SmolLM2-135M-Instruct"]
    for misleading in ("not of type `str`", "already-initialized model", "Custom kwargs can be passed",
                       "is not available; using"):
        assert misleading not in run.stderr
    logged = [line for line in run.stderr.splitlines() if " WARNING " in line]
    assert all("--limit SHOULD ONLY BE USED FOR TESTING" in line for line in logged), logged   # the one warning due


def test_training_records_the_task_family_of_the_mined_prompt(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file
    from test_classifier_train import write_features

    from autojudge_harness.training import train

    feats = write_features(tmp_path / "f.safetensors")
    with safe_open(str(feats), framework="numpy") as f:
        arrays, manifest = {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["manifest"])
    save_file(arrays, str(feats), metadata={"manifest": json.dumps({**manifest, "prompt": "autojudge_lcb_bundled (chat)"})})
    train(feats, tmp_path / "j.safetensors", grid=[1.0])
    assert load_judge(tmp_path / "j.safetensors").training["task_family"] == "livecodebench"
