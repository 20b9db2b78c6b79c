#!/usr/bin/env bash
# Install, then the main job on the embedded default: lm-eval's autojudge_hf with the SmolLM2 pair
# on the bundled grade-school problems (chat template, as instruct models are evaluated).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
lm_eval --model autojudge_hf --model_args preset=smollm2-135m \
  --tasks autojudge_gsm8k_bundled --include_path tasks --apply_chat_template \
  --output_path out/demo "$@"
