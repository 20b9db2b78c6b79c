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
from autojudge_harness.lm_eval_models.registration import (PENDING_SUFFIX, cli_output_path, is_lm_eval_cli,
                                                           sampling_source, stats_file_for, summary)
from autojudge_harness.paths import PathError
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


def test_nothing_is_silently_ignored_or_blamed_on_the_wrong_setting(tiny_dir, tmp_path, monkeypatch):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    with pytest.raises(ValueError, match="batch_size=8 would be ignored: drop --batch_size"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", batch_size="8")
    with pytest.raises(ValueError, match="batch_size=auto would be ignored"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", batch_size="auto")
    with pytest.raises(FileNotFoundError, match="pretrained: local path '/nonexistent' does not exist"):
        AutoJudgeHFLM(pretrained="/nonexistent")  # the missing path is named, not the missing draft
    in_the_way = tmp_path / "out"
    in_the_way.write_text("a file where lm-eval needs a folder")
    monkeypatch.setattr(sys, "argv", ["lm_eval", "--output_path", str(in_the_way)])
    with pytest.raises(PathError, match=f"--output_path {in_the_way} is a file, not a folder"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1")
    monkeypatch.setattr(sys, "argv", ["lm_eval"])
    with pytest.raises(PathError, match="sample_stats_path .* cannot be created: .* is a file"):
        AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", sample_stats_path=str(in_the_way / "s.jsonl"))


def test_sampling_is_blamed_on_gen_kwargs_or_on_the_task(tiny_dir, monkeypatch):
    from lm_eval.api.instance import Instance

    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM

    assert sampling_source("t", ["lm_eval", "--gen_kwargs", "temperature=0.7"]) == "--gen_kwargs (temperature=0.7)"
    assert sampling_source("t", ["lm_eval", "--gen_kwargs", "max_gen_toks=9"]) == "task 't'"
    lm = AutoJudgeHFLM(pretrained=str(tiny_dir), draft="layers:1", device="cpu")
    request = Instance("generate_until", {}, ("w1 w2", {"do_sample": True, "temperature": 0.7, "until": ["w3"]}), 0,
                       ("some_task", 0, 1))
    monkeypatch.setattr(sys, "argv", ["lm_eval", "--gen_kwargs", "do_sample=True,temperature=0.7"])
    with pytest.raises(ValueError, match=r"greedily; --gen_kwargs \(do_sample=True,temperature=0.7\) asks for"):
        lm.generate_until([request])
    monkeypatch.setattr(sys, "argv", ["lm_eval"])
    with pytest.raises(ValueError, match="greedily; task 'some_task' asks for sampling"):
        lm.generate_until([request])


def test_stats_file_lands_beside_the_results_file_it_belongs_to(tmp_path, monkeypatch):
    """lm-eval's own EvaluationTracker saves the results; the hook moves the pending statistics file
    into lm-eval's model folder, named with the results file's date, and records the final path."""
    from lm_eval.loggers import EvaluationTracker

    from autojudge_harness.lm_eval_models.registration import register

    register()
    pending = tmp_path / f"autojudge_samples_x{PENDING_SUFFIX}"
    pending.write_text('{"task": "t", "doc_id": 0}\n')
    tracker = EvaluationTracker(output_path=str(tmp_path))
    tracker.general_config_tracker.model_name_sanitized = "my__model"
    info = {"mode": "lossless", "window": 4, "threshold": None, "sample_stats_file": str(pending),
            "stats": {"requests": 0}}
    tracker.save_results_aggregated(results={"config": {"autojudge": info}})
    [results] = (tmp_path / "my__model").glob("results_*.json")
    moved = results.parent / f"autojudge_samples_{results.stem.removeprefix('results_')}.jsonl"
    assert stats_file_for(results) == moved and moved.read_text() == '{"task": "t", "doc_id": 0}\n'
    assert not pending.exists() and info["sample_stats_file"] == str(moved)
    assert json.loads(results.read_text())["config"]["autojudge"]["sample_stats_file"] == str(moved)


def test_terminal_summary_names_cost_acceptance_and_the_stats_file():
    from autojudge_harness.stats import DecodingStats

    stats = DecodingStats(generated_tokens=40, target_calls=10, draft_calls=60, cycles=8, drafted_tokens=64,
                          accepted_exact=20, accepted_lenient=4, wall_time_s=2.0, requests=2).summary()
    text = summary({"mode": "judge", "threshold": 0.25, "window": 8, "stats": stats, "sample_stats_file": "o/s.jsonl"})
    assert text.splitlines() == [
        "AutoJudge (judge threshold=0.25, window 8): 2 generate_until requests",
        "  per request: 5.0 target calls, 30.0 draft calls, 20.0 tokens, 1.00 s",
        "  accepted per cycle: 3.00 draft tokens (4.00 tokens per cycle with the target's own); acceptance rate 37.5%",
        "  lenient acceptances: 4 (16.7% of accepted draft tokens)",
        "  per-request statistics: o/s.jsonl"]
    assert "not written (give --output_path)" in summary({**{"mode": "lossless", "window": 8, "stats": stats}})


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
    [results_file] = glob.glob(str(out / "*" / "results_*.json"))
    assert Path(info["sample_stats_file"]) == stats_file_for(Path(results_file))  # beside it, same date
    table_end = run.stdout.index("|strict-match")
    assert run.stdout.index("AutoJudge (judge threshold=0, window 4): 2 generate_until requests") > table_end
    assert f"per-request statistics: {info['sample_stats_file']}" in run.stdout
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
