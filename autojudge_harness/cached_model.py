"""A causal LM with its KV cache, fed token by token (the HF backend's decoder and the miners use it)."""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache, StaticCache
from transformers.cache_utils import StaticLayer


class CachedModel:
    """A causal LM with its KV cache: feed tokens, get last-layer hidden states; crop to roll back.

    ``static_length`` preallocates a static cache of that many tokens (needed by ``compiled``
    forwards); otherwise the cache grows dynamically."""

    def __init__(self, model: torch.nn.Module, static_length: int | None = None, compiled=None):
        self.model = model
        self.lm_head = model.get_output_embeddings().weight
        self.device = self.lm_head.device
        self.cache = (StaticCache(config=model.config, max_cache_len=static_length) if static_length
                      else DynamicCache(config=model.config))
        self.capacity = static_length
        self.compiled = compiled
        self.cache_arg = cache_argument(model.model)
        self.length = 0
        self.calls = 0

    def reset(self) -> None:
        """Empty the cache (kept allocated) and the call count."""
        self.crop(0)
        self.calls = 0

    def feed(self, token_ids) -> torch.Tensor:
        """Append ``token_ids`` (list or 1-D tensor) to the cache; return their hidden states (T, H)
        after the final norm."""
        ids = torch.as_tensor(token_ids, device=self.device).view(1, -1)
        forward = self.compiled if self.compiled is not None and self.length else self.model.model
        out = forward(input_ids=ids, use_cache=True, **{self.cache_arg: self.cache})
        self.length += ids.shape[1]
        self.calls += 1
        return out.last_hidden_state[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits (T, V) for hidden states (T, H) (``W @ h.T``: faster than F.linear for few rows)."""
        return (self.lm_head @ hidden.T).T

    def argmax(self, hidden: torch.Tensor) -> torch.Tensor:
        """Greedy next tokens (T,) for hidden states (T, H)."""
        return self.logits(hidden).argmax(-1)

    def crop(self, length: int) -> None:
        """Keep the first ``length`` cached tokens."""
        if length < self.length:
            self.cache.crop(length - self.length)
            self.length = length


def cache_argument(model: torch.nn.Module) -> str:
    """The name ``model.forward`` takes its KV cache by: ``cache`` from transformers 5.21 on (5.24 is
    pinned for the HF backend), ``past_key_values`` before (vLLM 0.33.0's transformers < 5.21)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def static_cache_croppable() -> bool:
    """Whether this transformers' static cache layers support ``crop`` (5.24 does, 5.20 does not)."""
    return hasattr(StaticLayer, "crop")
