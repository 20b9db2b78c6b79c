"""lm-eval integration: lazy registration, the CLI hook, constructor errors (tiny models), and
real runs of ``autojudge_hf`` / ``hf`` through the CLI and the Python API (embedded pair, slow)."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autojudge_harness.judge import JudgeFileError, save_judge
from autojudge_harness.lm_eval_models.registration import cli_output_path, is_lm_eval_cli
from autojudge_harness.resources import tasks_path
from autojudge_harness.settings import AcceptanceSettings

TASK = "autojudge_gsm8k_bundled"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_cli_detection_and_output_path():
    assert is_lm_eval_cli(["/venv/bin/python", "/venv/bin/lm_eval", "--tasks", "x"])
    assert is_lm_eval_cli(["python", "-m", "lm_eval", "run"])
    assert not is_lm_eval_cli(["python", "-m", "pytest"])
    assert not is_lm_eval_cli(["python", "-c", "import lm_eval"])
    assert cli_output_path(["lm_eval", "--output_path", "out/x"]) == "out/x"
    assert cli_output_path(["lm_eval", "--output_path=o"]) == "o"
    assert cli_output_path(["lm_eval", "-o", "p"]) == "p"
    assert cli_output_path(["lm_eval"]) is None


def test_registration_is_lazy_and_keeps_builtins():
    code = (
        "import sys\n"
        "from autojudge_harness.lm_eval_models.registration import register\n"
        "register(); register()\n"  # idempotent
        "from lm_eval.api.registry import get_model, model_registry\n"
        "assert 'hf' in model_registry and 'vllm' in model_registry, 'built-ins lost'\n"
        "cls = get_model('autojudge_hf')\n"
        "assert cls.__name__ == 'AutoJudgeHFLM'\n"
        "assert 'vllm' not in sys.modules, 'autojudge_hf imported vllm'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_hook_is_installed_and_silent_outside_lm_eval():
    out = subprocess.run([sys.executable, "-c", "import sys; print('lm_eval' in sys.modules)"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.stdout.strip() == "False" and out.stderr == ""
    import importlib.util

    assert importlib.util.find_spec("_autojudge_harness_lm_eval_hook") is not None, \
        "the .pth hook is not installed: pip install -e ."


def test_constructor_errors(tiny_dir, tmp_path):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    with pytest.raises(JudgeFileError, match="judge file not found"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", judge=str(tmp_path / "none.safetensors"))
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", window=0)
    with pytest.raises(ValueError, match="unknown preset"):
        AutoJudgeHFLM(preset="gpt-7")
    with pytest.raises(ValueError, match="needs pretrained"):
        AutoJudgeHFLM(pretrained=str(tiny_dir))
    wide = save_judge(tmp_path / "wide.safetensors", feature_kind="DT", target_hidden_size=64, draft_hidden_size=64,
                      target_model=str(tiny_dir), draft_model=f"{tiny_dir}/layers:1", mean=torch.zeros(64),
                      scale=torch.ones(64), weight=torch.zeros(64), bias=0.0, threshold=0.5,
                      threshold_table=[], training={})
    with pytest.raises(JudgeFileError, match="target hidden size 32 != judge's 64"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", judge=str(wide))
    with pytest.raises(ValueError, match="judge and top_k are alternative lenient rules"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", judge=str(wide), accept_top_k=2)
    with pytest.raises(ValueError, match="compile must be true or false"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", compile="yes please")


def test_top_k_model_args_and_configure(tiny_dir):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    lm = AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", accept_top_k="3", device="cpu")
    assert lm.decoder.rule.name == "top_k" and lm.decoder.rule["accept_top_k"] == 3
    info = lm.get_model_info()["autojudge"]
    assert info["accept_top_k"] == 3 and info["judge"] is None and info["compile"] is False
    lm.total_stats.requests = 1   # as if a request had run; configure() starts fresh statistics
    lm.configure(AcceptanceSettings())
    assert lm.decoder.rule is None and lm.total_stats.requests == 0
    assert lm.get_model_info()["autojudge"]["accept_top_k"] is None


def _results(out_dir: Path) -> dict:
    files = glob.glob(str(out_dir / "*" / "results_*.json"))
    assert len(files) == 1, files
    return json.loads(Path(files[0]).read_text())


@pytest.mark.slow
def test_cli_autojudge_hf_offline_with_speed_stats(tmp_path, embedded_pair):
    out = tmp_path / "out"
    cmd = ["lm_eval", "--model", "autojudge_hf", "--model_args", "preset=smollm2-135m,window=4,threshold=0",
           "--tasks", TASK, "--include_path", str(tasks_path()), "--output_path", str(out),
           "--limit", "2", "--gen_kwargs", "max_gen_toks=24", "--apply_chat_template"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = _results(out)
    assert "exact_match,strict-match" in results["results"][TASK]
    info = results["config"]["autojudge"]
    stats = info["stats"]
    assert stats["requests"] == 2 and stats["generated_tokens"] > 0 and stats["cycles"] > 0
    assert stats["target_calls"] > 0 and stats["draft_calls"] > stats["target_calls"]
    assert stats["accepted_per_cycle"] >= 0 and stats["tokens_per_second"] > 0
    assert info["window"] == 4 and info["threshold"] == 0.0 and stats["accepted_lenient"] == 0
    assert info["judge"].endswith("smollm2-135m-gsm8k.safetensors")  # the preset's shipped judge
    rows = [json.loads(line) for line in Path(info["sample_stats_file"]).read_text().splitlines()]
    assert Path(info["sample_stats_file"]).parent == out
    assert sorted((r["task"], r["doc_id"]) for r in rows) == [(TASK, 0), (TASK, 1)]
    assert sum(r["generated_tokens"] for r in rows) == stats["generated_tokens"]


@pytest.mark.slow
def test_builtin_hf_still_works_via_python_m(tmp_path, embedded_pair):
    from autojudge_harness.models import embedded_target_dir

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
           f"pretrained={embedded_target_dir()},dtype=float32", "--device", "cpu", "--tasks", TASK,
           "--include_path", str(tasks_path()), "--output_path", str(out), "--limit", "1",
           "--gen_kwargs", "max_gen_toks=16"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "exact_match,strict-match" in _results(out)["results"][TASK]


@pytest.mark.slow
def test_simple_evaluate_with_judge_accepting_everything(tmp_path, embedded_pair):
    """Python API with a judge whose threshold is above 1: every drafted token is accepted."""
    import lm_eval

    from autojudge_harness.lm_eval_models.registration import register
    from autojudge_harness.models import PRESETS

    register()
    preset = PRESETS["smollm2-135m"]
    hidden = embedded_pair.target.config.hidden_size
    judge = save_judge(tmp_path / "always.safetensors", feature_kind="DD-DT", target_hidden_size=hidden,
                       draft_hidden_size=embedded_pair.draft.config.hidden_size, target_model=preset.target,
                       draft_model=embedded_pair.draft_name, mean=torch.zeros(2 * hidden),
                       scale=torch.ones(2 * hidden), weight=torch.zeros(2 * hidden), bias=0.0, threshold=1.5,
                       threshold_table=[], training={"purpose": "test"})
    results = lm_eval.simple_evaluate(
        model="autojudge_hf", model_args=f"preset=smollm2-135m,window=4,judge={judge}",
        tasks=[TASK], task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_path())),
        limit=1, gen_kwargs="max_gen_toks=21", device="cpu")
    stats = results["config"]["autojudge"]["stats"]
    assert stats["accepted_per_cycle"] == 4.0 and stats["acceptance_rate"] == 1.0
    assert stats["accepted_lenient"] > 0
