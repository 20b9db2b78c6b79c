"""Reading user-supplied JSONL data files with errors that name the file and line; appending records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator


def iter_jsonl_objects(path: str | Path) -> Iterator[tuple[str, int, dict]]:
    """(``"path:line"``, line number, object) for each non-blank line of ``path``; ValueError
    naming the file and line for invalid JSON or a value that is not a JSON object."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object")
            yield where, lineno, row


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append ``rows`` to ``path``, one JSON object per line (the folder is created if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
