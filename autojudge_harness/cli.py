"""``autojudge``: one command with a subcommand per job. Each job lives in its own module with
``configure_parser(parser)`` (its arguments; ``--help`` says what it reads and writes) and an entry
function taking the parsed arguments; modules are imported only for the subcommand that runs
("module:function", like lm-eval's lazy registry), and a job imports torch and lm-eval inside its functions, so
``autojudge --help`` and ``autojudge JOB --help`` load no model code. Before a job runs, ``preflight`` checks the
files it names; a user error or Ctrl-C prints one line (Ctrl-C: what is kept and the command that resumes)."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

COMMANDS = {
    "demo": ("autojudge_harness.experiments.demo:main",
             "lossless vs AutoJudge vs top-K on the bundled problems: one side-by-side table (lm-eval runs)"),
    "mine": ("autojudge_harness.mining.cli:main",
             "Algorithm 1 on GSM8K questions into a sharded, resumable run directory (--merge to merge)"),
    "train": ("autojudge_harness.training:main", "train a judge file on a merged mining run's features"),
    "import": ("autojudge_harness.mining.official:main", "the AutoJudge authors' published mined data as a features file"),
    "sweep": ("autojudge_harness.experiments.sweep:main",
              "lm-eval runs over acceptance rules, each over its grid: leaderboard with intervals + PNG"),
    "compare": ("autojudge_harness.experiments.compare:main", "the documents whose answers differ between two runs, both texts"),
    "oracle": ("autojudge_harness.mining.oracle:main", "the perfect judge for a task (Algorithm 1 on its prompts): an oracle file"),
    "pipeline": ("autojudge_harness.experiments.pipeline:main", "mine -> train -> evaluate (lossless vs judge)"),
    "lcb-5fold": ("autojudge_harness.experiments.lcb_5fold:main", "LiveCodeBench 5-fold out-of-fold protocol"),
    "check-vllm": ("autojudge_harness.vllm_ext.engine_check:main",
                   "the vLLM backend on a real engine: threshold 0 == stock speculative decoding, and more"),
    "bench decoding": ("autojudge_harness.bench.decoding:main",
                       "time decoding modes side by side on one loaded pair"),
    "bench mining": ("autojudge_harness.bench.mining:main", "labelled mismatches per minute of the miners"),
    "bench grading": ("autojudge_harness.bench.grading:run",
                      "LiveCodeBench grader: programs per second and hang bounds per isolation level"),
    "bench drafts": ("autojudge_harness.bench.drafts_command:main", "measure derived drafts; fit exit heads"),
    "tasks-path": (None, "print the installed lm-eval task folder (for lm_eval --include_path)"),
}


def overview() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return ("usage: autojudge COMMAND [ARGS]   (autojudge COMMAND --help for a command's arguments)\n\n"
            "AutoJudge (lossy judge speculative decoding): mining, training, experiments, benchmarks.\n"
            "Evaluation itself is lm-eval's CLI: lm_eval --model autojudge_hf ... --include_path \"$(autojudge "
            "tasks-path)\"\n\ncommands:\n" + "\n".join(lines))


# what an interrupted job keeps on disk (formatted with its parsed arguments); a rerun of the same command resumes
RESUMABLE = {"mine": "the questions mined so far are kept in {out}",
             "sweep": "the finished points are kept in {out}/points",
             "lcb-5fold": "the mined problems and finished folds are kept in {run_dir}"}


# argparse dests that every job uses the same way: models, files it reads, paths it writes (``preflight``)
MODEL_REFERENCES = ("target", "draft")
INPUT_FILES = ("data", "judge", "oracle", "question_ids")
OUTPUT_PATHS = ("out", "run_dir", "out_json", "json", "oracle_cache")


def preflight(args: argparse.Namespace) -> None:
    """Check what a job names before it loads a model: model references written as local paths exist,
    input files exist (a judge or oracle file is also validated), outputs can be written (``paths``);
    the error names the option."""
    from .paths import check_input, check_writable

    for dest in MODEL_REFERENCES:
        if getattr(args, dest, None):
            from .models import check_reference

            check_reference(getattr(args, dest), f"--{dest}")
    for dest in INPUT_FILES:
        if isinstance(getattr(args, dest, None), (str, Path)):  # sweep's --oracle is a flag, not a file
            check_input(getattr(args, dest), f"--{dest.replace('_', '-')}")
    for dest in OUTPUT_PATHS:
        if isinstance(getattr(args, dest, None), (str, Path)):
            check_writable(getattr(args, dest), f"--{dest.replace('_', '-')}")


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or a missing prerequisite (one line, exit 2); any other exception
    is a bug and keeps its traceback. Every project error class derives from ValueError, except
    the sandbox's ``SandboxUnavailable``."""
    from .sandbox import SandboxUnavailable

    return ValueError, OSError, ImportError, SandboxUnavailable


def interrupted(name: str, args: argparse.Namespace, argv: list[str]) -> str:
    """The one line printed on Ctrl-C: what is kept and, for a resumable job, the command that resumes."""
    if name not in RESUMABLE:
        return f"autojudge {name}: interrupted"
    kept = RESUMABLE[name].format(**vars(args))
    return f"autojudge {name}: interrupted; {kept}; resume with: autojudge {shlex.join(argv)}"


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand of ``argv``; a user error or Ctrl-C prints one line on stderr (exit 2 / 130)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        return 0
    name = " ".join(argv[:2]) if " ".join(argv[:2]) in COMMANDS else argv[0]
    if name not in COMMANDS:
        print(f"autojudge: unknown command {' '.join(argv[:2])!r}\n\n{overview()}", file=sys.stderr)
        return 2
    rest = argv[len(name.split()):]
    target, help_text = COMMANDS[name]
    if target is None:  # tasks-path
        from .resources import tasks_path

        argparse.ArgumentParser(prog="autojudge tasks-path", description=help_text).parse_args(rest)
        print(tasks_path())
        return 0
    module_name, function = target.split(":")
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"autojudge {name}", formatter_class=argparse.RawDescriptionHelpFormatter)
    module.configure_parser(parser)
    args = parser.parse_args(rest)
    try:
        preflight(args)
        return getattr(module, function)(args) or 0
    except KeyboardInterrupt:
        print(f"\n{interrupted(name, args, argv)}", file=sys.stderr)
        return 130
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise
        print(f"autojudge {name}: error: {error}", file=sys.stderr)
        return 2
