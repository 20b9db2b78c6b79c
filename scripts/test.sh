#!/usr/bin/env bash
# Install, then the tests. By default the fast tier (pytest -m "not slow": tiny random models and pure
# code, <= 5 minutes on 2 idle CPU cores); `--all` (or AUTOJUDGE_TEST_ALL=1) runs everything, the real
# SmolLM2 pair, lm-eval end-to-end runs and the sandbox suites included (what CI runs). Other arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=${AUTOJUDGE_TEST_ALL:-0}
if [[ "${1:-}" == "--all" ]]; then
  ALL=1
  shift
fi
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [[ "$ALL" == 1 ]]; then
  exec "${PYTHON:-python3}" -m pytest -q "$@"
fi
exec "${PYTHON:-python3}" -m pytest -q -m "not slow" "$@"
