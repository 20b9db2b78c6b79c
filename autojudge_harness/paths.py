"""Checks of the paths a user names, run before any model loads: input files exist (judge and oracle
files are also read and validated), output paths can be written. Errors name the setting and the fix."""

from __future__ import annotations

import os
from pathlib import Path


class PathError(ValueError):
    """A named input file is missing or invalid, or an output path cannot be written."""


def check_writable(path: str | Path, setting: str, folder: bool = False) -> None:
    """PathError naming ``setting`` unless ``path`` can be written (an existing writable file or folder, or
    one its nearest existing parent folder can hold); ``folder``: it must not be an existing file."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and folder and not path.is_dir():
        raise PathError(f"{setting} {path} is a file, not a folder: give a folder")
    if existing == path and path.is_file():
        if not os.access(path, os.W_OK):
            raise PathError(f"{setting} {path} is not writable: choose another path or fix its permissions")
        return
    parent = existing if existing.is_dir() else existing.parent
    if existing != path and not existing.is_dir():
        raise PathError(f"{setting} {path} cannot be created: {existing} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"{setting} {path} cannot be written ({parent} is not writable): choose another path "
                        "or fix its permissions")


def check_input(path: str | Path, setting: str) -> None:
    """PathError naming ``setting`` unless ``path`` exists; a judge (``--judge``) or oracle (``--oracle``)
    file is also read and validated (``JudgeFileError`` / ``OracleFileError`` naming the problem)."""
    if not Path(path).expanduser().exists():
        raise PathError(f"{setting} {path} does not exist")
    if setting == "--judge":
        from .judge import load_judge

        load_judge(path)
    elif setting == "--oracle":
        from .oracle import load_oracle

        load_oracle(path)
