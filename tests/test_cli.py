"""The ``autojudge`` command: every job is a subcommand whose --help says what it reads and
writes; the overview loads no model code; unknown commands and bad input give clear errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from autojudge_harness.cli import COMMANDS, main


def autojudge(*args):
    return subprocess.run([sys.executable, "-m", "autojudge_harness", *args], capture_output=True, text=True,
                          timeout=300)


def test_overview_lists_every_command_without_importing_torch():
    code = ("import sys; from autojudge_harness.cli import main; main(['--help']); "
            "assert 'torch' not in sys.modules and 'lm_eval' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for name in COMMANDS:
        assert name in run.stdout


@pytest.mark.parametrize("name", [n for n, (target, _) in COMMANDS.items() if target])
def test_each_command_help_says_what_it_reads_and_writes(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*name.split(), "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: autojudge {name}" in text and "Reads:" in text
    assert "Writes:" in text or "Writes (under --" in text


def test_tasks_path_and_unknown_command():
    run = autojudge("tasks-path")
    assert run.returncode == 0
    tasks = Path(run.stdout.strip())
    assert (tasks / "gsm8k_bundled" / "autojudge_gsm8k_bundled.yaml").is_file()
    bad = autojudge("mien")
    assert bad.returncode == 2 and "unknown command 'mien'" in bad.stderr


def test_user_errors_are_one_clear_line(tmp_path):
    missing = tmp_path / "nothing.safetensors"
    run = autojudge("train", "--features", str(missing), "--out", str(tmp_path / "j.safetensors"))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (f"autojudge train: error: mined features file not found: {missing} "
                                                   "(run autojudge mine --out RUN --merge first)")
    assert "Traceback" not in run.stderr
