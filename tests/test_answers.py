"""GSM8K answer extraction, gold parsing, comparison and JSONL reading (autojudge_harness.answers)."""

from __future__ import annotations

import json

import pytest

from autojudge_harness.answers import (
    answers_equal,
    extract_final_answer,
    extract_last_number,
    gold_answer,
    read_gsm8k_jsonl,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So 21 - 15 = 6. The final answer is 6", "6"),
        ("The final answer is 18.", "18"),
        ("The final answer is $18", "18"),
        ("The final answer is $1,000.00.", "1000"),
        ("The final answer is 2.50 dollars", "2.5"),
        ("The final answer is 3.0", "3"),
        ("The final answer is -3", "-3"),
        ("The final answer is **42**", "42"),
        ("**The final answer is 42**", "42"),
        ("The final answer is: 7", "7"),
        ("The final answer is $\\boxed{12}$", "12"),
        ("the final answer is 5", "5"),
        ("The final answer is 1,234,567", "1234567"),
        ("The final answer is 100, since 4 * 25 = 100.", "100"),
        ("The final answer is 3. Check: 3 + 4 = 7. The final answer is 8", "8"),
        ("Step 1: 12 apples.\nThe final answer is 10\n\nNote: 99 was a typo.", "10"),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "She has 7 apples left.",
        "The answer is 7",
        "The final answer is [answer]",
        "The final answer is seven",
        "The final answer is 7. Your response should end with \"The final answer is [answer]\"",
        "The final answer is\n\nunclear, maybe 4",
    ],
)
def test_extract_final_answer_none(text):
    assert extract_final_answer(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3 * 4 = 12 and 12 - 5 = 7 pencils.", "7"),
        ("She pays $1,000.00.", "1000"),
        ("The final answer is 8", "8"),
        ("It is -5 degrees.", "-5"),
        ("pages 3-4", "4"),
        ("costs 0.250 dollars", "0.25"),
        ("**36**", "36"),
    ],
)
def test_extract_last_number(text, expected):
    assert extract_last_number(text) == expected


@pytest.mark.parametrize("text", ["", "no numbers here", "version v2 of x3"])
def test_extract_last_number_none(text):
    assert extract_last_number(text) is None


def test_gold_answer():
    assert gold_answer("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72") == "72"
    assert gold_answer("...\n#### 1,200") == "1200"
    assert gold_answer("#### -4") == "-4"
    assert gold_answer("#### 2.50") == "2.5"


@pytest.mark.parametrize("field", ["The answer is 72", "#### seventy-two", ""])
def test_gold_answer_missing(field):
    with pytest.raises(ValueError, match="####"):
        gold_answer(field)


@pytest.mark.parametrize(
    "a, b, equal",
    [
        ("18", "18", True),
        ("18", "18.0", True),
        ("1000", "1,000.00", True),
        ("-3", "-3", True),
        ("0.5", ".5", True),
        ("18", "19", False),
        ("-3", "3", False),
        (None, "18", False),
        ("18", None, False),
        (None, None, False),
        ("abc", "abc", True),
        ("abc", "18", False),
    ],
)
def test_answers_equal(a, b, equal):
    assert answers_equal(a, b) is equal


def test_read_gsm8k_jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"question": "Q1?", "answer": "1 + 1 = 2\n#### 2", "extra": 1}, {"question": "Q2?", "answer": "#### 3"}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert read_gsm8k_jsonl(path) == [{"question": "Q1?", "answer": "1 + 1 = 2\n#### 2"}, rows[1]]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"answer": "#### 2"}', "'question'"),
        ('{"question": "Q?"}', "'answer'"),
        ('{"question": "Q?", "answer": 2}', "'answer'"),
        ('{"question": "Q?", "answer": "it is 2"}', "####"),
    ],
)
def test_read_gsm8k_jsonl_malformed(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "Q?", "answer": "#### 1"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_gsm8k_jsonl(path)
    assert f"{path}:2" in str(err.value)


def test_read_gsm8k_jsonl_empty(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(ValueError, match="no problems"):
        read_gsm8k_jsonl(path)
