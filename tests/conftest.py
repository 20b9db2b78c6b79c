"""Shared fixtures: a tiny random Llama pair (pure unit tests, seconds) and the embedded
SmolLM2 pair (real-model tests, marked slow; converted once into the AUTOJUDGE_CACHE)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_VOCAB = 96


def make_tiny_tokenizer(vocab_size: int = TINY_VOCAB, prefix: str = "w"):
    """A word-level fast tokenizer: '<eos>' is id 0, then '{prefix}1'... separated by spaces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, **{f"{prefix}{i}": i for i in range(1, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def make_tiny_model(seed: int = 0, layers: int = 2, hidden: int = 32, vocab_size: int = TINY_VOCAB):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, eos_token_id=0, pad_token_id=0, bos_token_id=None,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = 0
    return model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A saved tiny target model + tokenizer directory (a 'local path' reference)."""
    path = tmp_path_factory.mktemp("tiny-target")
    make_tiny_model(layers=3).save_pretrained(path)
    make_tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_draft_dir(tmp_path_factory):
    """An independently initialised 1-layer draft with the same tokenizer (agrees rarely)."""
    path = tmp_path_factory.mktemp("tiny-draft")
    make_tiny_model(seed=1, layers=1).save_pretrained(path)
    make_tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pair(tiny_dir):
    """The 3-layer tiny target with its first 2 layers as draft (agrees often, not always)."""
    from autojudge_harness.models import load_pair

    return load_pair(str(tiny_dir), "layers:2")


@pytest.fixture(scope="session")
def embedded_pair():
    from autojudge_harness.models import PRESETS, load_pair

    torch.set_num_threads(2)
    preset = PRESETS["smollm2-135m"]
    return load_pair(preset.target, preset.draft)
