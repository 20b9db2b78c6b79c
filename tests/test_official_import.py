"""``autojudge import`` on fixture files that these tests write in the official format (the layout
garipovroma/autojudge's src/calc_hiddens.py saves): layout mapping, provenance, dtype, refusals,
and import -> train -> a judge the backends accept for the recorded pair."""

from pathlib import Path

import numpy as np
import pytest
import torch

from autojudge_harness.cli import main as cli_main
from autojudge_harness.judge import load_judge
from autojudge_harness.mining.official import OfficialFormatError, import_official, pair_spec
from autojudge_harness.mining.store import read_features, read_provenance
from autojudge_harness.training import C_GRID, train

TARGET, DRAFT = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"
HT, HD = 12, 8                      # small stand-ins for the pair's hidden sizes (--hidden-sizes 12,8)
SPEC = pair_spec(TARGET, DRAFT, f"{HT},{HD}")
EOS = 128009
GRID = C_GRID[-8:]


def official_record(rng, qid, hd=HD, ht=HT, mismatches=6, both=True, bf16=True, task="gsm8k", prompt=7, length=60):
    """One per-question dict as the official miner + calc_hiddens.py leave it; returns (record, truth) where
    truth holds the [draft ; target] rows for the draft token (what the import must keep) and the labels."""
    response = torch.as_tensor(rng.integers(10, 1000, size=(1, prompt + length)), dtype=torch.long)
    positions = sorted(rng.choice(np.arange(prompt + 1, prompt + length), size=mismatches, replace=False).tolist())
    entries, rows, prev_rows, kept = [], [], [], []
    for position in positions:
        important = bool(rng.random() < 0.4)
        other = int(response[0, position]) + 1000
        if important:    # R keeps the target's token
            target_token, draft_token = int(response[0, position]), other
        else:            # R took the draft's token
            target_token, draft_token = (EOS if rng.random() < 0.2 else other), int(response[0, position])
        entries.append((position, important, target_token, draft_token))
        draft_h, target_h = torch.randn(hd), torch.randn(ht)
        target_h[0] += 3.0 * important            # the target's state carries the label
        for_draft_token = torch.cat([draft_h, target_h])
        for_target_token = torch.randn(hd + ht)
        row = torch.cat([for_draft_token, for_target_token]) if both else for_draft_token
        row = row.to(torch.bfloat16).to(torch.float32) if bf16 else row
        rows.append(row)
        prev_rows.append(torch.randn(row.numel()))
        kept.append(row[:hd + ht])
    record = {"changed_token_indices": entries, "colored_tokens": "...", "current_response": response,
              "hiddens": rows, "prev_hiddens": prev_rows}
    if task == "gsm8k":
        record |= {"draft_answer": ["18"], "target_answer": ["18"], "id": qid}
    else:
        record |= {"draft_score": 0.0, "target_score": 1.0, "global_id": qid, "question_id": f"abc{qid:03d}_a",
                   "prompt": "Write a program..."}
    return record, {"rows": torch.stack(kept).numpy(), "labels": [int(e[1]) for e in entries], "entries": entries}


def write_official(path, questions=12, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    pairs = [official_record(rng, q, **kwargs) for q in range(questions)]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([record for record, _ in pairs], path)
    return [truth for _, truth in pairs]


def test_a_downloaded_folder_is_searched_by_content_and_mapped_onto_our_layout(tmp_path):
    hub = tmp_path / "snapshot"
    truths = write_official(hub / "data" / "blob-without-a-telling-name", questions=5)
    (hub / "README.md").write_text("# AutoJudge mined data")
    torch.save(["abc301_a", "abc302_b"], hub / "folds.pt")                         # a torch file, no mined records
    torch.save([{"changed_token_indices": [(9, True, 1, 2)], "current_response": torch.zeros(1, 12, dtype=torch.long),
                 "target_answer": ["1"]}], hub / "mined_before_hiddens.pt")      # mined, no hidden states
    write_official(hub / "lcb.pt", questions=2, task="livecodebench")
    out = tmp_path / "features.safetensors"
    provenance = import_official([hub], out, "gsm8k", SPEC, progress=False)

    arrays, manifest = read_features(out)
    rows = np.concatenate([t["rows"] for t in truths])
    np.testing.assert_array_equal(arrays["features_draft"], rows[:, :HD])           # DD-DT = [draft ; target]
    np.testing.assert_array_equal(arrays["features_target"], rows[:, HD:HD + HT])   # DT = the target half
    entries = [e for t in truths for e in t["entries"]]
    assert arrays["labels"].tolist() == [int(e[1]) for e in entries]
    assert arrays["positions"].tolist() == [e[0] for e in entries]
    assert arrays["target_end"].tolist() == [int(e[2] == EOS) for e in entries]
    assert arrays["question_ids"].tolist() == [q for q, t in enumerate(truths) for _ in t["entries"]]
    assert (manifest["target_model"], manifest["draft_model"], manifest["dtype"]) == (TARGET, DRAFT, "bfloat16")
    assert (manifest["target_hidden_size"], manifest["draft_hidden_size"], manifest["end_guard"]) == (HT, HD, False)
    assert read_provenance(out) == provenance
    assert provenance["source"] == "official" and provenance["task"] == "gsm8k"
    assert [Path(f["path"]).name for f in provenance["files"]] == ["blob-without-a-telling-name"]
    reasons = {Path(s["path"]).name: s["reason"] for s in provenance["skipped_files"]}
    assert reasons["README.md"] == "not a torch.save archive"
    assert "without mined records" in reasons["folds.pt"]
    assert "without hidden states" in reasons["mined_before_hiddens.pt"]
    assert reasons["lcb.pt"] == "livecodebench records, not gsm8k"


def test_float32_rows_of_one_concatenation_skip_records_and_livecodebench_names(tmp_path):
    truths = write_official(tmp_path / "lcb.pt", questions=4, both=False, bf16=False, task="livecodebench")
    records = torch.load(tmp_path / "lcb.pt", weights_only=True)
    unimportant = next(e for e in records[0]["changed_token_indices"] if not e[1])
    records[0]["current_response"][0, unimportant[0]] = unimportant[2]   # the authors' earlier variant
    records.insert(1, {"skip": True, "question_id": "skipped"})
    torch.save({"last_batch_end": 8, "data": records}, tmp_path / "checkpoint.pt")   # an interrupted merge
    provenance = import_official([tmp_path / "checkpoint.pt"], tmp_path / "f.safetensors", "livecodebench", SPEC,
                                 progress=False)
    arrays, manifest = read_features(tmp_path / "f.safetensors")
    np.testing.assert_array_equal(arrays["features_target"], np.concatenate([t["rows"] for t in truths])[:, HD:])
    assert manifest["dtype"] == "float32" and provenance["skipped_questions"] == 1
    assert provenance["target_token_at_unimportant"] == 1
    assert provenance["question_names"] == {str(q): f"abc{q:03d}_a" for q in range(4)}


class Payload:
    """An object whose unpickling would leave a mark: the import must refuse it unread."""

    def __reduce__(self):
        return (Path.touch, (Path(MARK),))


MARK = "/nonexistent"


def test_malformed_files_are_refused_with_the_problem_named(tmp_path):
    global MARK
    wide = tmp_path / "other-pair.pt"
    write_official(wide, questions=2, hd=HD + 4)
    with pytest.raises(OfficialFormatError, match=r"hidden-state width \[48\], not 20 or 40 of "
                                                  r"meta-llama/Llama-3.2-1B-Instruct -> meta-llama/Llama-3.1-8B"):
        import_official([wide], tmp_path / "f.safetensors", "gsm8k", SPEC, progress=False)

    missing = tmp_path / "missing-field.pt"
    write_official(missing, questions=3)
    records = torch.load(missing, weights_only=True)
    del records[2]["current_response"]
    torch.save(records, missing)
    with pytest.raises(OfficialFormatError, match=r"question \[2\] lacks current_response"):
        import_official([missing], tmp_path / "f.safetensors", "gsm8k", SPEC, progress=False)

    MARK = str(tmp_path / "code-ran")
    (tmp_path / "folder").mkdir()
    torch.save([{"changed_token_indices": [], "hiddens": [], "extra": Payload()}], tmp_path / "folder" / "x.pt")
    with pytest.raises(OfficialFormatError, match="holds pickled objects other than tensors and plain containers, "
                                                  "refused unread"):
        import_official([tmp_path / "folder"], tmp_path / "f.safetensors", "gsm8k", SPEC, progress=False)
    assert not Path(MARK).exists()
    assert not (tmp_path / "f.safetensors").exists()


def test_other_departures_from_the_format(tmp_path):
    def refused(mutate, message, **kwargs):
        path = tmp_path / "case.pt"
        write_official(path, questions=2, **kwargs)
        records = torch.load(path, weights_only=True)
        mutate(records[1])
        torch.save(records, path)
        with pytest.raises(OfficialFormatError, match=message):
            import_official([path], tmp_path / "f.safetensors", "gsm8k", SPEC, progress=False)

    refused(lambda r: r["hiddens"].pop(), r"hiddens must be a list of one tensor per mismatch \(6\)")
    refused(lambda r: r["prev_hiddens"].__setitem__(0, torch.zeros(3)), r"prev_hiddens\[0\] has width 3")
    refused(lambda r: r["current_response"].__setitem__((0, r["changed_token_indices"][0][0]), 5),
            r"neither the target's .* positions do not index current_response")
    refused(lambda r: r["changed_token_indices"].reverse(), "is not after the previous mismatch")
    refused(lambda r: r["changed_token_indices"].__setitem__(0, (3, True, 4)), r"must be \(position, important")
    refused(lambda r: r["hiddens"][0].__setitem__(0, float("nan")), "non-finite")
    with pytest.raises(OfficialFormatError, match="livecodebench records, not gsm8k"):
        write_official(tmp_path / "lcb.pt", questions=1, task="livecodebench")
        import_official([tmp_path / "lcb.pt"], tmp_path / "f.safetensors", "gsm8k", SPEC, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OfficialFormatError, match=r"no mined gsm8k mismatches .*\(no files\)"):
        import_official([tmp_path / "empty"], tmp_path / "f.safetensors", "gsm8k", SPEC, progress=False)
    with pytest.raises(OfficialFormatError, match="hidden sizes of some/model are not known; give --hidden-sizes"):
        pair_spec("some/model", DRAFT)
    assert pair_spec(TARGET, DRAFT).width == 2048 + 4096


def test_import_then_train_gives_a_judge_for_the_hub_ids(tmp_path):
    write_official(tmp_path / "official.pt", questions=40)
    features = tmp_path / "official.features.safetensors"
    import_official([tmp_path / "official.pt"], features, "gsm8k", SPEC, progress=False)
    report = train(features, tmp_path / "judge.safetensors", "DT", grid=GRID)
    assert report["kinds"]["DT"]["val_auc"] > 0.8
    judge = load_judge(tmp_path / "judge.safetensors")
    assert (judge.feature_kind, judge.dtype, judge.task_family) == ("DT", "bfloat16", "gsm8k")
    assert judge.training["provenance"]["source"] == "official"
    assert judge.training["provenance"]["origin"] == "mightyneighbor/Autojudge"
    judge.check_models(HT, HD, TARGET, DRAFT)   # what autojudge_hf / autojudge_vllm check
    snapshot = tmp_path / "hub" / "models--meta-llama--Llama-3.1-8B-Instruct" / "snapshots" / "0e9e39f"
    snapshot.mkdir(parents=True)
    judge.check_models(HT, HD, str(snapshot), DRAFT)   # a local copy in the hub cache names its hub id


def test_cli_import_and_its_errors(tmp_path, capsys):
    write_official(tmp_path / "official.pt", questions=3)
    args = ["import", str(tmp_path / "official.pt"), "--out", str(tmp_path / "f.safetensors"), "--task", "gsm8k",
            "--target", TARGET, "--draft", DRAFT, "--hidden-sizes", f"{HT},{HD}", "--no-progress"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "18 mismatches from 3 questions" in printed and "hidden states in bfloat16" in printed
    assert cli_main(args[:-3] + ["--no-progress"]) == 2    # the real pair's widths (2048 + 4096) do not fit
    assert "not 6144 or 12288" in capsys.readouterr().err


@pytest.mark.slow   # loads the embedded SmolLM2 pair through autojudge_hf
def test_an_imported_judge_for_the_embedded_pair_loads_in_autojudge_hf(tmp_path):
    from autojudge_harness.lm_eval_models.hf import AutoJudgeHFLM
    from autojudge_harness.models import PRESETS

    preset = PRESETS["smollm2-135m"]
    draft = f"{preset.target}/{preset.draft}"
    write_official(tmp_path / "official.pt", questions=30, hd=576, ht=576, mismatches=4)
    features = tmp_path / "features.safetensors"
    assert cli_main(["import", str(tmp_path), "--out", str(features), "--task", "gsm8k", "--target", preset.target,
                     "--draft", draft, "--hidden-sizes", "576,576", "--eos-ids", "2", "--no-progress"]) == 0
    train(features, tmp_path / "judge.safetensors", "DD-DT", grid=GRID[-2:])
    lm = AutoJudgeHFLM(preset="smollm2-135m", judge=str(tmp_path / "judge.safetensors"), window=4)
    judge = lm.decoder.rule.model   # checked against the loaded pair when the decoder was built
    assert judge.training["provenance"]["source"] == "official"
    assert (judge.target_model, judge.draft_model, judge.dtype) == (preset.target, draft, "bfloat16")
