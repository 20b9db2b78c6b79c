"""Data installed with the package, found through ``importlib.resources``.

In a source checkout ``autojudge_harness/tasks`` and ``autojudge_harness/classifiers`` are links to
the repository's top-level ``tasks/`` (lm-eval task YAMLs, bundled problems) and ``classifiers/``
(shipped judge files, their reports and data); a wheel holds copies at the same places, so the
same calls work from an installed package, editable or not, in any working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_path(*parts: str) -> Path:
    """Path of an installed package file or folder (``parts`` below ``autojudge_harness/``);
    FileNotFoundError naming it when the installation lacks it."""
    path = Path(str(files("autojudge_harness").joinpath(*parts)))
    if not path.exists():
        raise FileNotFoundError(f"autojudge_harness/{'/'.join(parts)} is missing from this installation "
                                f"({path}); reinstall autojudge-harness")
    return path


def tasks_path() -> Path:
    """The lm-eval task folder (``lm_eval --include_path "$(autojudge tasks-path)"``)."""
    return package_path("tasks")


def shipped_classifier(name: str) -> Path:
    """A judge file shipped in ``classifiers/``, e.g. ``smollm2-135m-gsm8k.safetensors``."""
    return package_path("classifiers", name)


def bundled_problems(task_folder: str) -> Path:
    """``problems.jsonl`` of a bundled task folder (``gsm8k_bundled``, ``livecodebench_bundled``)."""
    return package_path("tasks", task_folder, "problems.jsonl")
