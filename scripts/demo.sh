#!/usr/bin/env bash
# Install, then the main job: `autojudge demo` on the embedded SmolLM2 pair. Three lm-eval runs of
# autojudge_hf (chat template) on the bundled easy problems: lossless speculative decoding, AutoJudge
# with the preset's shipped judge at its own threshold, and the top-2 baseline; it ends with one
# side-by-side table (accuracy, agreement with lossless, accepted tokens per cycle, cost per request)
# and the paths of the results JSONs (out/demo/). Minutes on 2 CPU cores. Extra arguments go to
# `autojudge demo`, e.g. --limit 20 or --task autojudge_gsm8k_bundled (the harder tier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "${PYTHON:-python3}" -m autojudge_harness demo --out out/demo "$@"
