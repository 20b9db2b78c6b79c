#!/usr/bin/env bash
# Install, then run the whole test suite (real SmolLM2 pair included; ~10 min on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "${PYTHON:-python3}" -m pytest -q "$@"
