"""``autojudge compare``: the documents whose answers differ between two run folders."""

import json

import pytest

from autojudge_harness.cli import main

TASK = "autojudge_gsm8k_bundled"


def _run_folder(path, answers, texts, first_lenient=None, stamp="2026-12-07T10-00-00"):
    """A run folder as ``evaluation.evaluate_into`` writes it (lm-eval's file names)."""
    path.mkdir(parents=True)
    (path / f"results_{stamp}.json").write_text(json.dumps(
        {"results": {TASK: {"exact_match,strict-match": 0.5}}, "model_name": "T", "task_hashes": {}}))
    samples = [{"doc_id": doc, "filter": "strict-match", "filtered_resps": [answer], "resps": [[text]], "exact_match": 1.0}
               for doc, (answer, text) in enumerate(zip(answers, texts))]
    (path / f"samples_{TASK}_{stamp}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    if first_lenient is not None:
        stats = [{"doc_id": doc, "target_calls": 5, "finish_reason": "eos", "first_lenient_token": token}
                 for doc, token in enumerate(first_lenient)]
        (path / "autojudge_samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats))
    return path


def test_compare_prints_the_differing_documents_with_both_texts_and_the_first_lenient_acceptance(tmp_path, capsys):
    a = _run_folder(tmp_path / "lossless", ["42", "7", "3"], ["so 42.", "so 7.", "so 3."], [None, None, None])
    b = _run_folder(tmp_path / "judge", ["42", "8", "3"], ["so 42.", "hence 8.", "so 3."], [4, 11, None])
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{TASK}: 1 of 3 documents answer differently")
    assert ("== document 1: A answers ['7'] (no lenient acceptance), B answers ['8'] "
            "(first lenient acceptance at output token 11)") in out
    assert "-- A:\n   so 7.\n-- B:\n   hence 8." in out and "document 0" not in out
    c = _run_folder(tmp_path / "vllm", ["1", "7", "3"], ["one", "so 7.", "so 3."])   # no per-request statistics
    assert main(["compare", str(a), str(c)]) == 0
    assert "B answers ['1'] (not recorded)" in capsys.readouterr().out


def test_compare_names_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="no results_"):
        main(["compare", str(tmp_path), str(tmp_path)])
    run = _run_folder(tmp_path / "a", ["1"], ["x"])
    (run / f"samples_{TASK}_2026-12-07T10-00-00.jsonl").unlink()
    with pytest.raises(SystemExit, match="no samples of"):
        main(["compare", str(run), str(run)])


def test_the_first_lenient_acceptance_is_where_the_output_leaves_lossless(tiny_pair):
    from autojudge_harness.decoding import SpeculativeDecoder
    from autojudge_harness.settings import AcceptanceSettings

    prompt = [5, 17, 33, 2, 9]
    lossless = SpeculativeDecoder(tiny_pair, window=3).generate(prompt, 24)
    assert lossless.first_lenient_token is None
    vocab = tiny_pair.target.config.vocab_size
    lenient = SpeculativeDecoder(tiny_pair, window=3, settings=AcceptanceSettings(accept_top_k=vocab,
                                                                                   end_guard=False)).generate(prompt, 24)
    first = lenient.first_lenient_token
    assert first is not None and lenient.stats.accepted_lenient > 0
    assert lenient.token_ids[:first] == lossless.token_ids[:first]   # the same greedy tokens before it
    assert lenient.token_ids[first] != lossless.token_ids[first]     # the accepted draft token differs there
