"""Derived drafts (autojudge_harness/drafts.py): structure, caching, reference parsing, exit heads.

Structural tests use a tiny random Llama (4 layers, hidden 64) and run in seconds; tests marked
``slow`` use the embedded SmolLM2 pair when its converted copy is cached ($AUTOJUDGE_CACHE).
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from autojudge_harness import drafts
from autojudge_harness.cached_model import cache_argument
from autojudge_harness.drafts import parse_draft_reference, truncated_copy
from autojudge_harness.models import PRESETS, cache_dir

HIDDEN = 64
LAYERS = 4


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def _head_file(tmp_path, model, layers, hidden=HIDDEN, name="head.safetensors", **meta):
    torch.manual_seed(1)
    head = drafts.ExitHead(hidden)
    record = {"layers": layers, "target_fingerprint": drafts.target_fingerprint(model), **meta}
    path = tmp_path / name
    drafts.save_exit_head(head, path, record)
    return path


def _refs(tmp_path, model):
    head = _head_file(tmp_path, model, 2)
    return ["layers:2", f"layers:{LAYERS}", "layers:2+int8", "layers:2+bf16", f"layers:2+exit:{head}",
            f"layers:2+exit:{head}+int8"]


def _tensors(module):
    """Every parameter/buffer tensor, including packed int8 weights of quantized Linear modules."""
    out = list(module.parameters()) + list(module.buffers())
    for m in module.modules():
        if callable(getattr(m, "_weight_bias", None)):
            w, b = m._weight_bias()
            out += [w] + ([b] if b is not None else [])
    return out


def test_builders_share_nothing_and_truncate(tiny, tmp_path):
    target_ptrs = {t.untyped_storage().data_ptr() for t in _tensors(tiny)}
    target_modules = {id(m) for m in tiny.modules()}
    for ref in _refs(tmp_path, tiny):
        draft = drafts.build_draft(tiny, ref)
        k = drafts.parse_draft_reference(ref).layers
        assert len(draft.model.layers) == k and draft.config.num_hidden_layers == k, ref
        assert not target_modules & {id(m) for m in draft.modules()}, ref
        draft_tensors = [t for t in _tensors(draft) if t.numel()]
        assert not target_ptrs & {t.untyped_storage().data_ptr() for t in draft_tensors}, ref
    assert tiny.config.num_hidden_layers == LAYERS and len(tiny.model.layers) == LAYERS


@torch.inference_mode()
def test_cached_forward_matches_uncached(tiny, tmp_path):
    torch.manual_seed(2)
    ids = torch.randint(0, 128, (1, 12))
    for ref in _refs(tmp_path, tiny):
        draft = drafts.build_draft(tiny, ref)
        full = draft(input_ids=ids).logits[0].float()
        cache = DynamicCache(config=draft.config)
        parts = [draft(input_ids=ids[:, :7], use_cache=True, **{cache_argument(draft): cache}).logits[0]]
        for i in range(7, 12):
            parts.append(draft(input_ids=ids[:, i:i + 1], use_cache=True, **{cache_argument(draft): cache}).logits[0])
        cached = torch.cat(parts).float()
        # int8 quantizes activations per call (scale from the rows passed), bf16 rounds differently
        tol = 0.15 if ("int8" in ref or "bf16" in ref) else 1e-4
        assert torch.allclose(full, cached, atol=tol * max(1.0, float(full.abs().max()))), ref
        # the decoding loop's path: draft.model(...).last_hidden_state, then lm_head weight
        hidden = draft.model(input_ids=ids).last_hidden_state[0]
        w = draft.get_output_embeddings().weight
        assert isinstance(w, torch.Tensor)
        assert torch.allclose((hidden @ w.T).float(), full, atol=tol * max(1.0, float(full.abs().max()))), ref


@torch.inference_mode()
def test_exit_head_output_is_last_hidden_state(tiny, tmp_path):
    path = _head_file(tmp_path, tiny, 2)
    draft = drafts.build_draft(tiny, f"layers:2+exit:{path}")
    assert isinstance(draft.model.norm, drafts.ExitHead)
    ids = torch.tensor([[1, 5, 9, 3]])
    hs = draft.model(input_ids=ids, output_hidden_states=True)
    residual = tiny.model(input_ids=ids, output_hidden_states=True).hidden_states[2]
    assert torch.allclose(hs.last_hidden_state, draft.model.norm(residual), atol=1e-5)


def test_fit_exit_head_recovers_linear_map():
    torch.manual_seed(3)
    x = torch.randn(500, 16) * 3
    a, b = torch.randn(16, 16), torch.randn(16)
    y = x @ a + b
    head, stats = drafts.fit_exit_head(x, y, prenorm=False)
    assert stats["relative_residual"] < 1e-5
    assert torch.allclose(head(x), y, atol=1e-3)
    head, stats = drafts.fit_exit_head(x, y, prenorm=True)
    assert stats["rows"] == 500 and head.prenorm


def test_save_load_roundtrip_and_record(tiny, tmp_path):
    path = _head_file(tmp_path, tiny, 3, lines=[0, 1])
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["layers"] == 3 and record["lines"] == [0, 1] and record["hidden_size"] == HIDDEN
    head = drafts.load_exit_head(path, tiny, 3)
    assert head.proj.weight.shape == (HIDDEN, HIDDEN)


@pytest.mark.parametrize("ref, message", [
    ("layers:x", "integer K"),
    ("layers:", "integer K"),
    ("layers:99", "1 <= K <= 4"),
    ("layers:0", "1 <= K <= 4"),
    ("layers:2+foo", "unknown modifier"),
    ("layers:2+int8:3", "unknown modifier"),
    ("layers:2+int8+int8", "twice"),
    ("layers:2+int8+bf16", "do not combine"),
    ("layers:4+exit", "K < 4"),
    ("layers:2+exit:/nonexistent/head.safetensors", "not found"),
])
def test_bad_references(tiny, ref, message):
    with pytest.raises(ValueError, match=message):
        drafts.build_draft(tiny, ref)


def test_bad_exit_heads(tiny, tmp_path):
    wrong_shape = _head_file(tmp_path, tiny, 2, hidden=32, name="small.safetensors")
    with pytest.raises(ValueError, match="hidden size 64"):
        drafts.build_draft(tiny, f"layers:2+exit:{wrong_shape}")
    wrong_layer = _head_file(tmp_path, tiny, 3, name="l3.safetensors")
    with pytest.raises(ValueError, match="layer 3, not layer 2"):
        drafts.build_draft(tiny, f"layers:2+exit:{wrong_layer}")
    other = _head_file(tmp_path, tiny, 2, name="other.safetensors")
    meta = json.loads(other.with_suffix(".json").read_text())
    meta["target_fingerprint"] += 10.0
    drafts.save_exit_head(drafts.load_exit_head(other, tiny, 2), other, meta)
    with pytest.raises(ValueError, match="another target"):
        drafts.build_draft(tiny, f"layers:2+exit:{other}")


def test_models_entry_points(tiny):
    assert parse_draft_reference("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    assert parse_draft_reference("layers:3+exit+int8") == drafts.DraftSpec(3, "", True, False, ("exit", "int8"))
    with pytest.raises(ValueError, match="integer K"):
        parse_draft_reference("layers:x")
    assert len(truncated_copy(tiny, 3).model.layers) == 3
    with pytest.raises(ValueError, match="1 <= K <= 4"):
        truncated_copy(tiny, 5)


def test_preset_draft_reference_is_shippable():
    for preset in PRESETS.values():
        ref = preset.draft
        assert "," not in ref and "=" not in ref  # travels inside lm-eval's model_args
        spec = drafts.parse_draft_reference(ref)
        if spec is not None and spec.exit_head == "":
            path = drafts.exit_head_path(spec.layers)
            assert path.is_file() and path.with_suffix(".json").is_file()
            assert json.loads(path.with_suffix(".json").read_text())["layers"] == spec.layers


@pytest.mark.slow
@pytest.mark.skipif(not (cache_dir() / "smollm2-135m-instruct" / "config.json").is_file(),
                    reason="embedded model not converted in $AUTOJUDGE_CACHE")
@torch.inference_mode()
def test_embedded_preset_draft():
    from autojudge_harness.models import EMBEDDED_TARGET, load_pair

    pair = load_pair(EMBEDDED_TARGET, PRESETS["smollm2-135m"].draft)
    target, draft = pair.target, pair.draft
    assert not {id(m) for m in target.modules()} & {id(m) for m in draft.modules()}
    assert len(draft.model.layers) == drafts.parse_draft_reference(PRESETS["smollm2-135m"].draft).layers
    ids = torch.tensor([pair.tokenizer.encode("Natalia sold clips to 48 of her friends in April, and then")])
    full = draft(input_ids=ids).logits[0]
    cache = DynamicCache(config=draft.config)
    a = draft(input_ids=ids[:, :-3], use_cache=True, **{cache_argument(draft): cache}).logits[0]
    b = torch.cat([draft(input_ids=ids[:, i:i + 1], use_cache=True, **{cache_argument(draft): cache}).logits[0]
                   for i in range(ids.shape[1] - 3, ids.shape[1])])
    cached = torch.cat([a, b])
    assert (cached.argmax(-1) == full.argmax(-1)).float().mean() > 0.9
    # the draft should mostly agree with the target on the target's own greedy continuation
    out = target.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    pred = draft(input_ids=out[:, :-1]).logits[0, ids.shape[1] - 1:].argmax(-1)
    assert (pred == out[0, ids.shape[1]:]).float().mean() > 0.3
