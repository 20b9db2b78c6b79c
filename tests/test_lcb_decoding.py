"""Bounded decoding of LiveCodeBench test data: hostile pickles and JSON are refused before they
are built, and every failure is a ValueError naming the problem."""

from __future__ import annotations

import base64
import json
import pickle
import tracemalloc
import zlib

import pytest

from autojudge_harness import livecodebench as lcb


def encode_raw(payload: bytes) -> str:
    return base64.b64encode(zlib.compress(payload, 9)).decode()


def test_amplifying_pickle_is_refused_before_it_is_built():
    # ~2 bytes per empty list appended to one list: ~30x amplification once built
    payload = b"\x80\x04]" + b"]a" * 3_000_000 + b"."
    encoded = encode_raw(payload)
    assert len(encoded) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="problem p: corrupt pickled tests .*more than 1000000 objects"):
            lcb.decode_private_tests(encoded, "problem p")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak  # the 3 million lists (> 150 MB) were never made


def test_json_failures_name_the_problem(monkeypatch):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="problem d: the tests is JSON nested too deeply"):
        lcb.decode_private_tests(deep, "problem d")
    with pytest.raises(ValueError, match="problem d2: the pickled tests is JSON nested too deeply"):
        lcb.decode_private_tests(encode_raw(pickle.dumps(deep)), "problem d2")
    huge = json.dumps([{"input": "1", "output": "2", "testtype": "stdin"}])[:-1] + ", " + "9" * 60_000 + "]"
    with pytest.raises(ValueError, match="problem h: the tests: Exceeds the limit"):
        lcb.decode_private_tests(huge, "problem h")
    with pytest.raises(ValueError, match="problem u: pickled tests are not UTF-8"):
        lcb.decode_private_tests(encode_raw(pickle.dumps(b"\xff\xfe[]")), "problem u")
    monkeypatch.setattr(lcb, "MAX_JSON_CONTAINERS", 10)
    with pytest.raises(ValueError, match="problem c: the tests has 12 JSON containers"):
        lcb.decode_private_tests("[" + "[]," * 10 + "[]]", "problem c")


def test_legitimate_payload_still_decodes():
    tests = [{"input": "[1, 2]\n" * 1000, "output": "3", "testtype": "functional"}] * 50
    assert lcb.decode_private_tests(lcb.encode_private_tests(tests)) == tests
    assert lcb.load_plain_pickle(pickle.dumps({"a": (1, [2.5])}), max_elements=10) == {"a": (1, [2.5])}
    with pytest.raises(ValueError, match="more than 3 objects"):
        lcb.load_plain_pickle(pickle.dumps([1, 2, 3, 4]), max_elements=3)
