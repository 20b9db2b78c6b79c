"""scripts/gpu_check_vllm.py without a GPU: its configurations, checks and table (the engine runs
themselves need a GPU and vllm)."""

import importlib.util
from pathlib import Path

import pytest

from autojudge_harness.settings import AcceptanceSettings
from autojudge_harness.vllm_ext.settings import WORKER_CLS, load_vllm_judge

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check_vllm.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check_vllm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(token_ids, drafted=0, accepted=0, judged=0, tok_s=10.0):
    stats = {"wall_time_s": 1.0, "generated_tokens": 5, "tokens_per_second": tok_s, "mean_acceptance_length": 2.0,
             "accepted_per_cycle": 1.0, "lenient_accepted_fraction": 0.0}
    return {"token_ids": token_ids, "stats": stats,
            "counts": {"drafted_tokens": drafted, "accepted_tokens": accepted, "accepted_lenient": judged}}


def test_configurations_and_random_judge(gpu_check, tiny_dir, tiny_draft_dir, tmp_path):
    args = gpu_check.parse_args(["--target", str(tiny_dir), "--draft", str(tiny_draft_dir), "--window", "4",
                                 "--accept-top-k", "3"])
    judge = gpu_check.random_judge(args, tmp_path)
    load_vllm_judge(AcceptanceSettings.from_args(judge), 32, 32, str(tiny_dir), str(tiny_draft_dir))   # fits the pair
    modes = gpu_check.configurations(args, judge)
    assert list(modes) == ["target only", "stock speculative decoding", "ours, threshold 0",
                           "ours, judge file's threshold (random judge)", "ours, threshold 2.0", "ours, top-3"]
    assert modes["target only"] == {}
    assert modes["stock speculative decoding"] == {"speculative_config": {
        "model": str(tiny_draft_dir), "method": "draft_model", "num_speculative_tokens": 4}}
    for name in list(modes)[2:]:
        assert modes[name]["worker_cls"] == WORKER_CLS
        assert modes[name]["speculative_config"] == modes["stock speculative decoding"]["speculative_config"]
    assert modes["ours, threshold 0"]["additional_config"]["autojudge"]["threshold"] == 0.0
    assert modes["ours, threshold 2.0"]["additional_config"]["autojudge"]["threshold"] == 2.0
    assert modes["ours, top-3"]["additional_config"]["autojudge"] == {"judge": None, "threshold": None,
                                                                      "accept_top_k": 3, "oracle": None, "end_guard": True}


def test_checks_pass_and_fail(gpu_check):
    ok = {"target only": run([[1, 2]], tok_s=10.0), "stock speculative decoding": run([[1, 2]], 8, 5, tok_s=20.0),
          "ours, threshold 0": run([[1, 2]], 8, 5), "ours, threshold 2.0": run([[1, 3]], 8, 8, 3)}
    assert gpu_check.check_results(ok) == []
    text = gpu_check.table(ok)
    assert "| stock speculative decoding | 1.0 | 5 | 20.0 | 2.00x | 2.00 | 1.00 | 0.000 | yes |" in text
    assert "| target only | 1.0 | 5 | 10.0 | 1.00x | - | - | - | yes |" in text
    assert "| ours, threshold 2.0 |" in text and text.rstrip().endswith("| no |")
    bad = {**ok, "ours, threshold 0": run([[1, 4]], 8, 5, 1), "ours, threshold 2.0": run([[1, 3]], 8, 7)}
    failures = gpu_check.check_results(bad)
    assert failures == ["threshold 0 differs from stock speculative decoding (first at prompt 0)",
                        "threshold 0 judge-accepted 1 tokens",
                        "threshold 2.0: accepted 7 of 8 drafted tokens (expected all)"]
