"""The Python example (scripts/example_api.py) gives the same numbers as the lm_eval CLI run it
stands for (embedded pair, one short document: slow)."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autojudge_harness.resources import tasks_path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SMALL = ["--limit", "1", "--gen_kwargs", "max_gen_toks=24"]
COUNTERS = ("requests", "generated_tokens", "target_calls", "draft_calls", "cycles", "drafted_tokens",
            "accepted_exact", "accepted_lenient")


@pytest.mark.slow
def test_python_example_gives_the_numbers_of_its_cli_command(tmp_path, embedded_pair):
    cli = subprocess.run(["lm_eval", "--model", "autojudge_hf", "--model_args", "preset=smollm2-135m",
                          "--tasks", "autojudge_gsm8k_bundled", "--include_path", str(tasks_path()),
                          "--apply_chat_template", "--output_path", str(tmp_path), *SMALL],
                         capture_output=True, text=True, env=ENV, timeout=1200)
    assert cli.returncode == 0, cli.stderr[-3000:]
    [results_file] = glob.glob(str(tmp_path / "*" / "results_*.json"))
    from_cli = json.loads(Path(results_file).read_text())
    api = subprocess.run([sys.executable, str(REPO / "scripts" / "example_api.py"), *SMALL],
                         capture_output=True, text=True, env=ENV, timeout=1200)
    assert api.returncode == 0, api.stderr[-3000:]
    from_api = json.loads(api.stdout[api.stdout.index("{"):])
    assert from_api["results"] == from_cli["results"]
    cli_stats, api_stats = from_cli["config"]["autojudge"]["stats"], from_api["autojudge"]["stats"]
    assert {k: api_stats[k] for k in COUNTERS} == {k: cli_stats[k] for k in COUNTERS}
