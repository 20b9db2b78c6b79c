"""``autojudge bench decoding`` on the tiny pair: every mode's cost relative to our lossless decoding."""

import argparse
import json

from autojudge_harness.bench import decoding as bench


def test_rows_report_cost_per_request_relative_to_lossless(tmp_path, tiny_dir, capsys, monkeypatch):
    # the tiny word-level tokenizer maps the task's English to <eos>: give the tiny pair token prompts instead
    prompts = iter([[5, 17, 33, 2, 9], [40, 41, 7]] * 2)
    monkeypatch.setattr(bench.TaskPrompts, "token_ids", lambda self, tokenizer, doc: next(prompts))
    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    args = parser.parse_args(["--preset", "", "--target", str(tiny_dir), "--draft", "layers:2", "--window", "3",
                              "-n", "2", "--max-new-tokens", "12", "--no-chat", "--top-k", "3",
                              "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "bench")])
    monkeypatch.chdir(tmp_path)
    assert bench.main(args) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]   # written under --out only
    rows = {r["mode"]: r for r in json.loads((tmp_path / "bench" / "bench_decoding.json").read_text())["rows"]}
    lossless, greedy = rows["ours, lossless"], rows["target greedy (HF generate)"]
    assert lossless["identical_to_target"] and lossless["target_calls_vs_lossless"] == 1.0
    assert lossless["wall_time_vs_lossless"] == 1.0
    # plain greedy pays one target call per generated token; speculative decoding at most that
    assert greedy["target_calls_per_request"] >= lossless["target_calls_per_request"]
    assert greedy["target_calls_vs_lossless"] == greedy["target_calls_per_request"] / lossless["target_calls_per_request"]
    assert rows["HF assisted generation"]["target_calls_per_request"] is None   # not reported by transformers
    assert "paired" not in rows["HF assisted generation"] and rows["HF assisted generation"]["answer_agreement_ci"]
    # paired with lossless per prompt: lossless against itself is exactly 1 with a zero-width interval
    assert lossless["paired"]["target_calls_vs_lossless_ci"] == [1.0, 1.0] and lossless["paired"]["questions"] == 2
    assert greedy["paired"]["target_calls_vs_lossless"] == greedy["target_calls_vs_lossless"]
    assert greedy["capped"] == lossless["capped"] == lossless["paired"]["capped"]   # the same tokens: capped alike
    top = rows["ours, top-3"]
    assert top["accepted_per_cycle"] >= lossless["accepted_per_cycle"] and top["generated_tokens_per_request"] > 0
    out = capsys.readouterr().out
    assert "| ours, lossless | " in out and "1.00x [1.00, 1.00]" in out and "target calls/request" in out
    assert "| HF assisted generation | - | - | - | " in out
