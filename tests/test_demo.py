"""``autojudge demo``: its points, model_args and table, a real run on a tiny pair, and (slow) the
embedded pair end to end through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autojudge_harness.experiments.demo import DEFAULT_TASK, demo_points, demo_table, point_model_args
from autojudge_harness.judge import save_judge


def test_points_are_lossless_judge_top_k_and_validated():
    assert [p.label for p in demo_points(0.25, 3, "/j.safetensors")] == ["lossless", "judge t=0.25", "top_k K=3"]
    with pytest.raises(ValueError, match="K >= 2"):
        demo_points(0.25, 1, "/j.safetensors")
    with pytest.raises(ValueError, match="threshold >= 0"):
        demo_points(-0.1, 2, "/j.safetensors")
    with pytest.raises(ValueError, match="needs a judge file"):
        demo_points(0.25, 2, None)


def test_model_args_are_what_the_cli_takes(tmp_path):
    stats = tmp_path / "s.jsonl"
    lossless, judge, top_k = demo_points(0.3, 2, "j.safetensors")
    assert point_model_args(lossless, "T", "layers:2", 8, stats) == \
        f"pretrained=T,draft=layers:2,window=8,sample_stats_path={stats}"   # no judge: lossless
    assert "judge=j.safetensors,threshold=0.3," in point_model_args(judge, "T", "D", 4, stats)
    top_k_args = point_model_args(top_k, "T", "D", 4, stats)
    assert "accept_top_k=2" in top_k_args and "judge" not in top_k_args
    with pytest.raises(ValueError, match="comma"):
        point_model_args(lossless, "a,b", "D", 4, stats)


def test_table_has_one_row_per_mode_with_the_costs_and_intervals():
    row = {"target_calls_per_request": 3.25, "generated_tokens_per_request": 10.0, "wall_time_per_request_s": 0.5,
           "metric": 0.5, "agreement_with_lossless": 1.0, "accepted_per_cycle": 2.0, "target_calls_vs_lossless": 1.0,
           "wall_time_vs_lossless": 1.0, "metric_ci": [0.25, 0.75], "agreement_ci": [1.0, 1.0],
           "target_calls_vs_lossless_ci": [1.0, 1.0], "capped": 0}
    combined = {"metric": "exact_match,flexible-extract", "points": [
        {**row, "label": "lossless", "rule": "lossless", "model_args": {}},
        {**row, "label": "judge t=0.388", "rule": "judge", "model_args": {"threshold": 0.388},
         "agreement_with_lossless": 0.75, "agreement_ci": [0.5, 1.0]},
        {**row, "label": "top_k K=2", "rule": "top_k", "model_args": {"accept_top_k": 2}, "target_calls_per_request": 2.0,
         "target_calls_vs_lossless": 2.0 / 3.25, "target_calls_vs_lossless_ci": [0.5, 0.7], "capped": 1}]}
    lines = demo_table(combined).splitlines()
    assert "accuracy (exact_match,flexible-extract) [95% CI]" in lines[0] and len(lines) == 5
    assert lines[2] == ("| lossless | 0.50 [0.25, 0.75] | 1.00 [1.00, 1.00] | 2.00 | 3.2 | 1.00x [1.00, 1.00] | 0 | "
                        "10.0 | 0.50 | 1.00x |")
    assert lines[3].startswith("| AutoJudge t=0.388 | 0.50 [0.25, 0.75] | 0.75 [0.50, 1.00] |")
    assert lines[4].startswith("| top-2 baseline |") and "| 2.0 | 0.62x [0.50, 0.70] | 1 |" in lines[4]


@pytest.fixture(scope="module")
def tiny_chat_dir(tmp_path_factory):
    """The tiny target of conftest with a chat template (the demo applies it, as lm-eval's CLI does)."""
    from tiny_models import make_tiny_model, make_tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-chat")
    make_tiny_model(layers=3).save_pretrained(path)
    tokenizer = make_tiny_tokenizer()
    # the prompt's words are unknown to the tiny vocabulary (id 0 = EOS): end it with known words
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}w3 w17 w42"
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow   # three lm-eval runs (task building, 128-token generations): ~1 min on 2 idle cores
def test_demo_on_a_tiny_pair_writes_three_runs_and_prints_the_table(tiny_chat_dir, tmp_path, capsys):
    from autojudge_harness.cli import main
    from autojudge_harness.models import load_pair

    tiny_dir = tiny_chat_dir
    pair = load_pair(str(tiny_dir), "layers:2")
    hidden = pair.target.config.hidden_size
    judge = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=hidden,
                       draft_hidden_size=hidden, target_model=pair.target_name, draft_model=pair.draft_name,
                       mean=torch.zeros(hidden), scale=torch.ones(hidden), weight=torch.zeros(hidden), bias=0.0,
                       threshold=1.5, threshold_table=[], training={"task_family": "gsm8k"})
    out = tmp_path / "demo"
    assert main(["demo", "--preset", "", "--target", str(tiny_dir), "--draft", "layers:2", "--judge", str(judge),
                 "--limit", "2", "--window", "4", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    combined = json.loads((out / "demo.json").read_text())
    assert [r["label"] for r in combined["points"]] == ["lossless", "judge t=1.5", "top_k K=2"]
    lossless, judge_row, _ = combined["points"]
    assert lossless["agreement_with_lossless"] == 1.0 and lossless["requests"] == 2
    # threshold 1.5 > every probability: the judge accepts mismatches, so cycles carry more draft tokens
    assert judge_row["lenient_accepted_fraction"] > 0 and lossless["lenient_accepted_fraction"] == 0
    assert judge_row["accepted_per_cycle"] > lossless["accepted_per_cycle"]
    for row in combined["points"]:
        results_file = Path(row["results_file"])
        assert results_file.is_file() and row["results_file"] in printed and results_file.name.startswith("results_")
        saved = json.loads(results_file.read_text())   # lm-eval's own fields, so its tooling reads the file
        assert saved["model_name"] == str(tiny_dir) and saved["task_hashes"] and saved["total_evaluation_time_seconds"]
        samples = [json.loads(line) for line in next(results_file.parent.glob("samples_*.jsonl")).read_text().splitlines()]
        assert {s["doc_id"] for s in samples} == {0, 1} and all(isinstance(s["resps"][0][0], str) for s in samples)
        assert row["target_calls_per_request"] > 0 and row["agreement_ci"] and row["target_calls_vs_lossless_ci"]
    assert "| AutoJudge t=1.5 |" in printed and "| top-2 baseline |" in printed
    assert f"pretrained={tiny_dir},draft=layers:2,window=4" in printed   # the equivalent lm_eval call


@pytest.mark.slow
def test_demo_on_the_embedded_pair(tmp_path, embedded_pair):
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "autojudge_harness", "demo", "--limit", "2", "--threads", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    combined = json.loads((out / "demo.json").read_text())
    assert combined["task"] == DEFAULT_TASK and [r["rule"] for r in combined["points"]] == ["lossless", "judge", "top_k"]
    assert all(r["requests"] == 2 for r in combined["points"])
    assert "| lossless |" in run.stdout and "Results JSONs" in run.stdout
    for misleading in ("not of type `str`", "already-initialized model", "Custom kwargs can be passed"):
        assert misleading not in run.stderr
