"""The perfect judge (``autojudge_harness.oracle``): its file, and on the embedded pair that
decoding with it reproduces Algorithm 1's final response exactly."""

import json

import pytest

from autojudge_harness.mining.oracle import unimportant_entries
from autojudge_harness.oracle import OracleFileError, load_oracle, prompt_key
from autojudge_harness.settings import AcceptanceSettings


def test_the_perfect_judge_accepts_the_unimportant_mismatches_the_guard_allows():
    mismatches = [{"position": 3, "draft_token": 7, "target_token": 9, "important": False, "target_end": False},
                  {"position": 5, "draft_token": 1, "target_token": 2, "important": True, "target_end": False},
                  {"position": 8, "draft_token": 4, "target_token": 0, "important": False, "target_end": True}]
    assert unimportant_entries(mismatches, end_guard=True) == [[3, 7, 9]]
    assert unimportant_entries(mismatches, end_guard=False) == [[3, 7, 9], [8, 4, 0]]


def test_oracle_files_are_checked(tmp_path):
    path = tmp_path / "oracle.json"
    with pytest.raises(OracleFileError, match="not found.*autojudge oracle"):
        load_oracle(path)
    path.write_text("{nope")
    with pytest.raises(OracleFileError, match="not JSON"):
        load_oracle(path)
    path.write_text(json.dumps({"format": "autojudge-oracle/0", "prompts": {}}))
    with pytest.raises(OracleFileError, match="autojudge-oracle/1"):
        load_oracle(path)
    path.write_text(json.dumps({"format": "autojudge-oracle/1", "task": "t", "prompts": {prompt_key([1, 2]): [[0, 5, 6]]}}))
    oracle = load_oracle(path)
    assert oracle.unimportant([1, 2]) == {(0, 5, 6)} and oracle.unimportant([1, 3]) is None
    assert AcceptanceSettings.from_args(oracle=str(path)).mode == "oracle"


@pytest.mark.slow
def test_oracle_decoding_is_algorithm_1s_final_response(tmp_path, embedded_pair):
    from autojudge_harness.decoding import SpeculativeDecoder
    from autojudge_harness.mining.store import MERGED_JSONL
    from autojudge_harness.mining.oracle import make_oracle

    path = make_oracle(embedded_pair, "autojudge_gsm8k_bundled", tmp_path, limit=1, max_new_tokens=160, progress=False)
    record = json.loads((tmp_path / "mined" / MERGED_JSONL).read_text().splitlines()[0])
    entries = load_oracle(path).unimportant(record["prompt_ids"])
    assert entries, "the first bundled problem has unimportant mismatches on this pair"
    decoder = SpeculativeDecoder(embedded_pair, window=8, settings=AcceptanceSettings.from_args(oracle=str(path)))
    generation = decoder.generate(record["prompt_ids"], 160)
    final = record["response_ids"]
    final = final[: next((i for i, t in enumerate(final) if t in decoder.eos_ids), len(final))]
    assert generation.token_ids == final
    assert generation.stats.accepted_lenient == len(entries)   # each unimportant mismatch on the path, once
    lossless = SpeculativeDecoder(embedded_pair, window=8).generate(record["prompt_ids"], 160)
    assert lossless.token_ids == record["initial_response_ids"][: len(lossless.token_ids)]
    assert generation.stats.summary()["accepted_per_cycle"] >= lossless.stats.summary()["accepted_per_cycle"]
    def shards():
        return sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "mined").glob("shard-*/*") if p.is_file())

    mined = shards()
    make_oracle(embedded_pair, "autojudge_gsm8k_bundled", tmp_path, limit=1, max_new_tokens=160, progress=False)
    assert mined and shards() == mined   # the mining run is the cache: nothing mined again
