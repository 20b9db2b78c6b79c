"""The perfect judge ("oracle") file: its format and loader (the producer is ``mining.oracle``).

The perfect judge is the ceiling of what any judge can save on the evaluated prompts.

Algorithm 1 (``autojudge_harness.mining``) is run on the evaluation task's own prompts with the
task's equivalence and the end guard; a judge that accepted exactly the mismatches it labelled
unimportant would decode Algorithm 1's final response, so replaying those labels at decode time
(``AcceptanceSettings(oracle=FILE)``, the ``oracle`` sweep point) gives the perfect judge's target
calls per request and accepted tokens per cycle. Greedy decoding follows Algorithm 1's path
exactly: the first mismatch of a window is the teacher-forced draft's token on the same prefix.

Oracle file (JSON): {"format": "autojudge-oracle/1", "task", "target_model", "draft_model",
"equivalence", "end_guard", "max_new_tokens", "mined_run", "prompts": {KEY: [[position,
draft_token, target_token], ...]}}, KEY = sha1 of the prompt's token ids (``prompt_key``);
position counts response tokens. A prompt whose target answer could not be extracted has an
empty list (no mismatch can be judged equivalent). The mining run (resumable) is the cache: a
second sweep over the same task reuses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

FORMAT = "autojudge-oracle/1"
ORACLE_FILE = "oracle.json"


class OracleFileError(ValueError):
    """An oracle file is missing or malformed."""


def prompt_key(prompt_ids) -> str:
    return hashlib.sha1(",".join(str(int(t)) for t in prompt_ids).encode()).hexdigest()


@dataclass(frozen=True)
class Oracle:
    info: dict
    table: dict[str, frozenset]

    def unimportant(self, prompt_ids) -> frozenset | None:
        """The (position, draft token, target token) triples to accept for this prompt; None when
        the prompt was not mined (the perfect judge then knows nothing: lossless)."""
        return self.table.get(prompt_key(prompt_ids))


def load_oracle(path: str | Path) -> Oracle:
    path = Path(path)
    if not path.is_file():
        raise OracleFileError(f"oracle file not found: {path} (make one with autojudge oracle)")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OracleFileError(f"oracle file {path} is not JSON: {error}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("prompts"), dict):
        raise OracleFileError(f"oracle file {path} is not an {FORMAT} file")
    table = {key: frozenset(tuple(int(v) for v in entry) for entry in entries) for key, entries in doc["prompts"].items()}
    return Oracle({k: v for k, v in doc.items() if k != "prompts"}, table)
