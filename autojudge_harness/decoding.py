"""HF speculative decoding with an optional judge: greedy, batch size 1, KV caches for both models.

Each cycle the draft proposes up to W tokens one at a time; the target scores
[last token, d1..dW] in one forward, giving W+1 argmax tokens and the hidden states at the
drafted tokens' own positions (judge features); ``acceptance.accept`` decides; both KV caches
are cropped back to the accepted prefix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .acceptance import accept, judge_allows, top_k_allows
from .judge import Judge
from .models import ModelPair
from .stats import DecodingStats


@dataclass
class Generation:
    """One request's output: new token ids, decoded text (cut at the first stop string), stats."""

    token_ids: list[int]
    text: str
    stats: DecodingStats
    finish_reason: str  # "eos", "stop", or "length"


class CachedModel:
    """A causal LM with its KV cache: feed tokens, get last-layer hidden states; crop to roll back."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.lm_head = model.get_output_embeddings().weight
        self.cache = DynamicCache(config=model.config)
        self.length = 0
        self.calls = 0

    def feed(self, token_ids: list[int]) -> torch.Tensor:
        """Append ``token_ids`` to the cache; return their hidden states (T, H) after the final norm."""
        ids = torch.tensor([token_ids], device=self.lm_head.device)
        out = self.model.model(input_ids=ids, cache=self.cache, use_cache=True)
        self.length += len(token_ids)
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


def check_window(window) -> None:
    """Raise ValueError unless ``window`` (draft tokens per cycle) is an integer >= 1."""
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")


class SpeculativeDecoder:
    """AutoJudge decoding for one ``ModelPair``. No judge (or threshold 0) is lossless;
    ``accept_top_k`` replaces the judge with the top-K baseline (K=1 is lossless)."""

    def __init__(self, pair: ModelPair, window: int = 8, judge: Judge | None = None,
                 threshold: float | None = None, accept_top_k: int | None = None):
        check_window(window)
        if accept_top_k is not None and (judge is not None or threshold):
            raise ValueError("accept_top_k is an alternative to the judge: give one or the other")
        if accept_top_k is not None and (not isinstance(accept_top_k, int) or accept_top_k < 1):
            raise ValueError(f"accept_top_k must be an integer >= 1, got {accept_top_k!r}")
        if judge is not None:
            judge.check_models(pair.target.config.hidden_size, pair.draft.config.hidden_size,
                               pair.target_name, pair.draft_name)
        self.pair = pair
        self.window = window
        self.judge = judge
        self.threshold = judge.threshold if threshold is None and judge is not None else (threshold or 0.0)
        self.accept_top_k = accept_top_k
        self.eos_ids = _eos_ids(pair)

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int = 256, stop: tuple[str, ...] = ()) -> Generation:
        """Decode greedily from ``prompt_ids`` until EOS, a stop string, or ``max_new_tokens``."""
        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        start = time.perf_counter()
        stats = DecodingStats(requests=1)
        target, draft = CachedModel(self.pair.target), CachedModel(self.pair.draft)
        tokens = list(prompt_ids)
        tokens.append(int(target.argmax(target.feed(tokens)[-1:])[0]))
        draft.feed(tokens[:-1])
        while True:
            new = tokens[len(prompt_ids):]
            reason = self._finish_reason(new, max_new_tokens, stop)
            if reason:
                break
            width = min(self.window, max_new_tokens - len(new) - 1)
            self._cycle(tokens, target, draft, width, stats)
        new = _truncate_at_eos(new, self.eos_ids)
        text = _cut_at_stop(self.pair.tokenizer.decode(new, skip_special_tokens=True), stop)
        stats.generated_tokens = len(new)
        stats.target_calls, stats.draft_calls = target.calls, draft.calls
        stats.wall_time_s = time.perf_counter() - start
        return Generation(new, text, stats, reason)

    def _cycle(self, tokens: list[int], target: CachedModel, draft: CachedModel, width: int,
               stats: DecodingStats) -> None:
        """One draft window + verification; extends ``tokens`` in place."""
        drafted, draft_hidden = self._propose(tokens, draft, width)
        start = len(tokens) - 1
        hidden = target.feed([tokens[-1]] + drafted)          # rows: last token, d1..dW
        logits = target.logits(hidden)
        target_tokens = logits.argmax(-1)
        draft_tokens = torch.tensor(drafted, dtype=torch.long, device=target_tokens.device)
        allowed = None
        if self.judge is not None and width > 0:
            probs = self.judge.probability(self.judge.features(hidden[1:], draft_hidden))
            allowed = judge_allows(probs, self.threshold)
        elif self.accept_top_k is not None and width > 0:
            allowed = top_k_allows(draft_tokens, logits[:width], self.accept_top_k)
        result = accept(draft_tokens, target_tokens, allowed)
        accepted = int(result.num_accepted)
        tokens.extend(result.tokens[: accepted + 1].tolist())
        target.crop(start + 1 + accepted)
        draft.crop(min(draft.length, start + 1 + accepted))
        if width:
            judged = int(result.judge_accepted.sum())
            stats.cycles += 1
            stats.drafted_tokens += width
            stats.accepted_judge += judged
            stats.accepted_exact += accepted - judged

    def _propose(self, tokens: list[int], draft: CachedModel, width: int):
        """Greedy draft tokens d1..dW and, when the judge needs them, the draft's hidden states
        at those tokens' positions (one extra forward for dW)."""
        drafted, rows = [], []
        pending = tokens[draft.length:]
        need_hidden = self.judge is not None and self.judge.feature_kind == "DD-DT"
        for i in range(width + (1 if need_hidden and width else 0)):
            hidden = draft.feed(pending)
            if i:
                rows.append(hidden[-1])
            if i == width:
                break
            drafted.append(int(draft.argmax(hidden[-1:])[0]))
            pending = drafted[-1:]
        return drafted, (torch.stack(rows) if need_hidden and rows else None)

    def _finish_reason(self, new: list[int], max_new_tokens: int, stop: tuple[str, ...]) -> str | None:
        if any(t in self.eos_ids for t in new):
            return "eos"
        if stop:
            text = self.pair.tokenizer.decode(new, skip_special_tokens=True)
            if any(s and s in text for s in stop):
                return "stop"
        if len(new) >= max_new_tokens:
            return "length"
        return None


def _eos_ids(pair: ModelPair) -> frozenset[int]:
    ids = pair.target.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if pair.tokenizer.eos_token_id is not None:
        ids.append(pair.tokenizer.eos_token_id)
    return frozenset(ids)


def _truncate_at_eos(new: list[int], eos_ids: frozenset[int]) -> list[int]:
    """Drop everything from the first EOS on."""
    for i, t in enumerate(new):
        if t in eos_ids:
            return new[:i]
    return new


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to (excluding) the earliest stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]
