"""Derived drafts exported as checkpoints (what vLLM loads) and the vLLM presets, without vLLM."""

import pytest
import torch

from autojudge_harness import draft_export
from autojudge_harness.drafts import build_draft
from autojudge_harness.models import load_causal_lm


def test_exported_draft_is_the_derived_draft(tiny_dir, tmp_path):
    out = draft_export.export_draft(str(tiny_dir), "layers:2", tmp_path / "draft")
    exported = load_causal_lm(str(out))
    derived = build_draft(load_causal_lm(str(tiny_dir)), "layers:2")
    assert exported.config.num_hidden_layers == 2 and (out / "tokenizer_config.json").is_file()
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, derived(ids).logits)
    with pytest.raises(FileExistsError, match="exists already"):
        draft_export.export_draft(str(tiny_dir), "layers:2", out)


@pytest.mark.parametrize("draft, message", [("layers:2+exit", r"only plain layers:K .*\+exit"),
                                            ("layers:2+bf16", r"\+bf16"), ("some/dir", "not a derived draft")])
def test_export_refuses_modifiers_and_other_references(tiny_dir, tmp_path, draft, message):
    with pytest.raises(ValueError, match=message):
        draft_export.export_draft(str(tiny_dir), draft, tmp_path / "d")


def test_engine_pair_caches_the_export_and_passes_other_references(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOJUDGE_CACHE", str(tmp_path))
    pair = draft_export.engine_pair(str(tiny_dir), "layers:1")
    assert pair.target == pair.target_path == str(tiny_dir) and pair.draft == f"{tiny_dir}/layers:1"
    assert pair.draft_path.startswith(str(tmp_path / "drafts")) and load_causal_lm(pair.draft_path).config.num_hidden_layers == 1
    assert draft_export.engine_pair(str(tiny_dir), "layers:1") == pair           # cached: exported once
    other = draft_export.engine_pair("org/target", "org/draft")
    assert (other.target_path, other.draft, other.draft_path) == ("org/target", "org/draft", "org/draft")


def test_vllm_presets():
    preset = draft_export.vllm_preset("smollm2-135m")
    assert preset["target"] == "embedded:SmolLM2-135M-Instruct" and preset["draft"] == "layers:28"
    assert preset["judge"].endswith("classifiers/smollm2-135m-vllm-draft-dt.safetensors") and preset["window"] == 8
    with pytest.raises(ValueError, match="unknown vLLM preset 'x'; known: smollm2-135m"):
        draft_export.vllm_preset("x")
