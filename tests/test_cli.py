"""The ``autojudge`` command: every job is a subcommand whose --help says what it reads and
writes; the overview loads no model code; unknown commands and bad input give clear errors."""

import argparse
import importlib
import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from autojudge_harness.cli import COMMANDS, main

JOBS = [name for name, (target, _) in COMMANDS.items() if target]

JOBS = [name for name, (target, _) in COMMANDS.items() if target]


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


@pytest.mark.parametrize("name", JOBS)
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


def test_every_job_help_imports_neither_torch_nor_lm_eval():
    """``autojudge JOB --help`` stays fast because no job imports torch or lm-eval at module level (checked
    in one fresh interpreter, job after job)."""
    code = ("import sys\nfrom autojudge_harness.cli import main\nfor job in sys.argv[1:]:\n"
            "    try:\n        main([*job.split(), '--help'])\n    except SystemExit:\n        pass\n"
            "    heavy = [m for m in ('torch', 'lm_eval') if m in sys.modules]\n"
            "    assert not heavy, f'autojudge {job} --help imported {heavy}'\n")
    run = subprocess.run([sys.executable, "-c", code, *JOBS], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("usage: autojudge ") == len(JOBS)


@pytest.mark.parametrize("name", JOBS)
def test_every_option_has_a_help_line(name):
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[name][0].split(":")[0]).configure_parser(parser)
    silent = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert not silent, f"autojudge {name}: options without help: {silent}"


def test_files_are_checked_before_a_job_loads_anything(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["mine", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"autojudge mine: error: --data {tmp_path / 'none.jsonl'} does not exist\n"
    assert main(["mine", "--target", "/nonexistent", "--data", str(blocker), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "autojudge mine: error: --target: local path '/nonexistent' does not exist\n"
    assert main(["sweep", "--out", str(blocker / "sweep")]) == 2
    assert capsys.readouterr().err == (f"autojudge sweep: error: --out {blocker / 'sweep'} cannot be created: "
                                       f"{blocker} is a file, not a folder\n")
    assert main(["sweep", "--judge", str(blocker), "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autojudge sweep: error: judge file {blocker} is not a readable safetensors file")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("job,args,kept", [
    ("mine", ["--out", "runs/x", "--data", "train.jsonl"], "the questions mined so far are kept in runs/x"),
    ("sweep", ["--out", "out/s"], "the finished points are kept in out/s/points"),
    ("train", ["--features", "f", "--out", "j"], None)])
def test_ctrl_c_says_what_is_kept_and_how_to_resume(job, args, kept, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text("")
    module = importlib.import_module(COMMANDS[job][0].split(":")[0])

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, COMMANDS[job][0].split(":")[1], interrupted)
    assert main([job, *args]) == 130
    line = capsys.readouterr().err.strip()
    if kept is None:
        assert line == f"autojudge {job}: interrupted"
    else:
        assert line == f"autojudge {job}: interrupted; {kept}; resume with: autojudge {job} {' '.join(args)}"
