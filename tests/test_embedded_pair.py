"""The embedded SmolLM2 pair, real weights: lossless decoding is token-identical to the target's
own greedy ``generate`` on the bundled problems; threshold > 1 accepts every window."""

import pytest
import torch

from autojudge_harness.decoding import SpeculativeDecoder
from autojudge_harness.judge import save_judge
from autojudge_harness.prompts import TaskPrompts
from autojudge_harness.settings import AcceptanceSettings
MAX_NEW = 32

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundled_prompts(embedded_pair):
    task = TaskPrompts("autojudge_gsm8k_bundled")
    docs = task.docs()
    assert len(docs) >= 18
    return [task.token_ids(embedded_pair.tokenizer, doc) for doc in docs]


def test_lossless_is_token_identical_to_target_generate(embedded_pair, bundled_prompts):
    decoder = SpeculativeDecoder(embedded_pair, window=4)
    eos = embedded_pair.tokenizer.eos_token_id
    accepted = 0
    for prompt in bundled_prompts:
        ids = torch.tensor([prompt])
        ref = embedded_pair.target.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW,
                                            do_sample=False, pad_token_id=eos)[0, len(prompt):].tolist()
        ref = ref[: ref.index(eos)] if eos in ref else ref
        gen = decoder.generate(prompt, max_new_tokens=MAX_NEW)
        assert gen.token_ids == ref, embedded_pair.tokenizer.decode(prompt[-30:])
        accepted += gen.stats.accepted_tokens
    assert accepted > 0  # the draft really was used


def test_threshold_above_one_accepts_every_window(embedded_pair, bundled_prompts, tmp_path):
    t_hidden, d_hidden = embedded_pair.target.config.hidden_size, embedded_pair.draft.config.hidden_size
    size = t_hidden + d_hidden
    path = save_judge(tmp_path / "j.safetensors", feature_kind="DD-DT", target_hidden_size=t_hidden,
                      draft_hidden_size=d_hidden, target_model=embedded_pair.target_name,
                      draft_model=embedded_pair.draft_name, mean=torch.zeros(size), scale=torch.ones(size),
                      weight=torch.randn(size, generator=torch.Generator().manual_seed(0)) * 0.05, bias=0.0,
                      threshold=2.0, threshold_table=[], training={})
    decoder = SpeculativeDecoder(embedded_pair, window=4, settings=AcceptanceSettings(judge=str(path)))
    for prompt in bundled_prompts[:3]:
        stats = decoder.generate(prompt, max_new_tokens=21).stats
        assert stats.accepted_tokens == stats.drafted_tokens == 4 * stats.cycles
