"""Command-line arguments shared by the ``autojudge`` jobs (argparse only; imports nothing heavy)."""

from __future__ import annotations


def add_pair_arguments(parser, judge_help: str | None = None, window: bool = False) -> None:
    """The arguments of ``models.pair_config`` for a job that loads a pair: --preset (default: the embedded
    pair), --target and --draft overriding its models; --judge (``judge_help`` its help) and --window when
    asked for."""
    parser.add_argument("--preset", default="smollm2-135m", help="named pair; '' to use --target/--draft only")
    parser.add_argument("--target", help="target model reference (overrides the preset's)")
    parser.add_argument("--draft", help="draft model reference, e.g. layers:24 (overrides the preset's)")
    if judge_help:
        parser.add_argument("--judge", help=judge_help)
    if window:
        parser.add_argument("--window", type=int, help="draft tokens per cycle (default: the preset's)")
