"""Shared fixtures: a tiny random Llama pair (pure unit tests, seconds) and the embedded
SmolLM2 pair (real-model tests, marked slow; converted once into the AUTOJUDGE_CACHE)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_models import make_tiny_model, make_tiny_tokenizer  # noqa: E402,F401 -- the fixtures below use them


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
