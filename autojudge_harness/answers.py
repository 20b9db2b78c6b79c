"""GSM8K answers: the one implementation used by task scoring and by mining's equivalence check.

Contract (pure Python, no heavy imports):
- Answers are normalised number strings: no "$", no thousands commas, no trailing zeros after a
  decimal point ("1,000.00" -> "1000", "$18" -> "18", "0.50" -> "0.5", "-3" -> "-3").
- ``extract_final_answer`` is strict: the number directly after the LAST "The final answer is"
  (Llama-3 format; case-insensitive, optional ":", "**", "$" or "\\boxed{" in between), else None.
- ``extract_last_number`` is the flexible fallback: the last number anywhere, else None.
- ``gold_answer`` reads the number after "####" of a GSM8K answer field (ValueError if none).
- ``answers_equal`` compares numerically; None never equals anything.
- ``read_gsm8k_jsonl`` reads GSM8K-format JSONL ({"question", "answer"} with "#### N") and
  raises ValueError naming the file and line for anything malformed.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .jsonl import iter_jsonl_objects

# A number: optional sign and "$", digits (with well-formed thousands commas), optional decimals.
# Not preceded by a word character or ".", so "3-4" yields 4 (not -4) and "v2" yields nothing.
_NUMBER = r"(?<![\w.])-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_FINAL_RE = re.compile(r"the final answer is", re.IGNORECASE)
_AFTER_FINAL_RE = re.compile(r"[\s:*]*(?:\$?\\boxed\{)?\s*(" + _NUMBER + ")")
_GOLD_RE = re.compile(r"####\s*(" + _NUMBER + ")")


def _normalise(number: str) -> str:
    number = number.replace("$", "").replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def extract_final_answer(text: str) -> str | None:
    """The normalised number right after the last "The final answer is" in ``text``, else None."""
    phrases = list(_FINAL_RE.finditer(text))
    if not phrases:
        return None
    match = _AFTER_FINAL_RE.match(text, phrases[-1].end())
    return _normalise(match.group(1)) if match else None


def extract_last_number(text: str) -> str | None:
    """The normalised last number in ``text``, else None."""
    numbers = _NUMBER_RE.findall(text)
    return _normalise(numbers[-1]) if numbers else None


def gold_answer(answer_field: str) -> str:
    """The normalised number after "####" in a GSM8K answer field; ValueError if there is none."""
    match = _GOLD_RE.search(answer_field)
    if match is None:
        raise ValueError(f"GSM8K answer has no '#### <number>': {answer_field[-120:]!r}")
    return _normalise(match.group(1))


def answers_equal(a: str | None, b: str | None) -> bool:
    """True iff both answers are present and numerically equal (string equality if not numbers)."""
    if a is None or b is None:
        return False
    try:
        return Decimal(_normalise(a)) == Decimal(_normalise(b))
    except InvalidOperation:
        return a.strip() == b.strip()


def read_gsm8k_jsonl(path: str | Path) -> list[dict]:
    """Rows {"question", "answer"} (other fields dropped) of a GSM8K-format JSONL file.

    Blank lines are skipped. Raises ValueError naming the file and line for bad JSON, a missing or non-string field,
    or an answer without "#### <number>"; also for a file with no rows.
    """
    rows = []
    for where, _, row in iter_jsonl_objects(path):
        for field in ("question", "answer"):
            if not isinstance(row.get(field), str):
                raise ValueError(f"{where}: missing or non-string field {field!r}")
        try:
            gold_answer(row["answer"])
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        rows.append({"question": row["question"], "answer": row["answer"]})
    if not rows:
        raise ValueError(f"{path}: no problems")
    return rows
