"""The tiny random Llama model and word-level tokenizer of the unit tests (imported by conftest.py and
by tests that build their own; a module of its own, since ``from conftest import`` is ambiguous
once a test folder has a conftest.py of its own, as tests/vllm_engine does)."""

from __future__ import annotations

import torch

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
