"""Model loading: local paths, derived drafts, presets, tokenizer checks (tiny models)."""

import dataclasses

import pytest
import torch

from tiny_models import make_tiny_model, make_tiny_tokenizer
from autojudge_harness.models import PRESETS, check_tokenizers_match, load_pair, resolve_preset
from autojudge_harness.resources import shipped_classifier


def test_separate_local_draft_loads(tiny_dir, tiny_draft_dir):
    pair = load_pair(str(tiny_dir), str(tiny_draft_dir))
    assert pair.draft.config.num_hidden_layers == 1 and pair.target.config.num_hidden_layers == 3
    assert pair.draft_name == str(tiny_draft_dir)


def test_derived_draft_shares_nothing(tiny_pair):
    target_ids = {id(p) for p in tiny_pair.target.parameters()}
    assert not target_ids & {id(p) for p in tiny_pair.draft.parameters()}
    assert tiny_pair.draft.config.num_hidden_layers == 2 and tiny_pair.target.config.num_hidden_layers == 3
    ids = torch.tensor([[4, 8, 15, 16]])
    # the draft's 2 layers are exactly the target's first 2, followed by the target's final norm
    with torch.no_grad():
        after_two = tiny_pair.target.model(ids, output_hidden_states=True).hidden_states[2]
        draft_last = tiny_pair.draft.model(ids).last_hidden_state
    torch.testing.assert_close(tiny_pair.target.model.norm(after_two), draft_last)


def test_tokenizer_mismatch_is_refused(tiny_dir, tmp_path):
    other = tmp_path / "other-draft"
    make_tiny_model(seed=2, layers=1).save_pretrained(other)
    make_tiny_tokenizer(prefix="v").save_pretrained(other)
    with pytest.raises(ValueError, match="different tokenizers"):
        load_pair(str(tiny_dir), str(other))
    with pytest.raises(ValueError, match="different tokenizers"):
        check_tokenizers_match(make_tiny_tokenizer(), make_tiny_tokenizer(vocab_size=50), "a", "b")


def test_unknown_preset_and_bad_references(tiny_dir):
    with pytest.raises(ValueError, match="unknown preset 'nope'; known presets: smollm2-135m"):
        resolve_preset("nope")
    assert resolve_preset("smollm2-135m") is PRESETS["smollm2-135m"]
    with pytest.raises(ValueError, match="1 <= K <= 3"):
        load_pair(str(tiny_dir), "layers:9")
    with pytest.raises(ValueError, match="layers:K"):
        load_pair(str(tiny_dir), "layers:x")
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        load_pair(str(tiny_dir / "missing.gguf"), "layers:1")
    with pytest.raises(ValueError, match="unknown dtype"):
        load_pair(str(tiny_dir), "layers:1", dtype="float8")


def test_pair_config_overrides_the_preset():
    from autojudge_harness.models import pair_config

    preset = PRESETS["smollm2-135m"]
    shipped = str(shipped_classifier(preset.judge))   # a preset names a judge file shipped in classifiers/
    assert pair_config("smollm2-135m") == dataclasses.replace(preset, judge=shipped)
    custom = pair_config("smollm2-135m", draft="layers:3", window=4, judge="")
    assert (custom.target, custom.draft, custom.window, custom.judge) == (preset.target, "layers:3", 4, shipped)
    assert pair_config("smollm2-135m", judge="/x/mine.safetensors").judge == "/x/mine.safetensors"
    assert pair_config(None, "t", "d").window == 8
    with pytest.raises(ValueError, match="needs pretrained"):
        pair_config(None, "t")
    with pytest.raises(ValueError, match="unknown preset"):
        pair_config("nope")
