"""HF speculative decoding with an optional judge (or the top-K baseline): greedy, batch size 1.

Each cycle the draft proposes up to W tokens one at a time; the target scores
[last token, d1..dW] in one forward, giving W+1 argmax tokens and the hidden states at the
drafted tokens' own positions (judge features); ``acceptance.accept`` decides; both KV caches
are cropped back to the accepted prefix.

Speed (measured in docs/decoding-speed.md): drafted tokens stay on the device (one host sync per
cycle, plus one when the judge must look at dW); for DD-DT the draft's feature row of dW costs one
more draft forward, paid only when it can change the outcome (d1..d(W-1) accepted, dW != target);
the judge's weights live on the models' device. ``compile=True`` swaps in a preallocated static KV
cache and ``torch.compile``s the short (<= W+1 token) forwards -- for GPUs, where per-kernel launch
overhead dominates a small model; on CPU it measured no faster (the forwards are memory-bound).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import torch
import transformers
from transformers import DynamicCache, StaticCache
from transformers.cache_utils import StaticLayer

from .acceptance import accept, ends_at, judge_allows, top_k_allows
from .models import ModelPair
from .settings import AcceptanceSettings, check_window
from .stats import DecodingStats


@dataclass
class Generation:
    """One request's output: new token ids, decoded text (cut at the first stop string), stats."""

    token_ids: list[int]
    text: str
    stats: DecodingStats
    finish_reason: str  # "eos", "stop", or "length"
    first_lenient_token: int | None = None  # output index of the first lenient acceptance (None: none)


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


class SpeculativeDecoder:
    """AutoJudge decoding for one ``ModelPair`` under ``settings`` (``AcceptanceSettings``: lossless,
    a judge file + threshold, or the top-K baseline; threshold 0 and K=1 are lossless too)."""

    def __init__(self, pair: ModelPair, window: int = 8, settings: AcceptanceSettings = AcceptanceSettings(),
                 compile: bool = False):
        self.window = check_window(window)
        if compile and not static_cache_croppable():
            raise ValueError("compile=True needs transformers >= 5.24 (static KV caches that can be cropped); "
                             f"this is {transformers.__version__}")
        judge = settings.load_judge()
        if judge is not None:
            judge.check_models(pair.target.config.hidden_size, pair.draft.config.hidden_size,
                               pair.target_name, pair.draft_name)
            judge = judge.to(pair.target.device)
        self.pair = pair
        self.settings = settings
        self.judge = judge
        self.threshold = settings.resolved_threshold(judge)
        self.accept_top_k = settings.accept_top_k
        self.oracle = settings.load_oracle()
        self.eos_ids = _eos_ids(pair)
        self._eos_tensor = torch.tensor(sorted(self.eos_ids), dtype=torch.long, device=pair.target.device)
        self.compiled = ((torch.compile(pair.target.model, dynamic=False), torch.compile(pair.draft.model, dynamic=False))
                         if compile else None)
        self._static_models: tuple[CachedModel, CachedModel] | None = None

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int = 256, stop: tuple[str, ...] = ()) -> Generation:
        """Decode greedily from ``prompt_ids`` until EOS, a stop string, or ``max_new_tokens``."""
        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        start = time.perf_counter()
        stats = DecodingStats(requests=1)
        target, draft = self._cached_models(len(prompt_ids) + max_new_tokens + self.window + 1)
        self._request = _Request(len(prompt_ids), tuple(s for s in stop if s),
                                 self.oracle.unimportant(prompt_ids) if self.oracle is not None else None)
        tokens = list(prompt_ids)
        tokens.append(int(target.argmax(target.feed(tokens)[-1:])[0]))
        draft.feed(tokens[:-1])
        first_lenient = None
        while True:
            new = tokens[len(prompt_ids):]
            reason = self._finish_reason(new, max_new_tokens, stop)
            if reason:
                break
            width = min(self.window, max_new_tokens - len(new) - 1)
            lenient = self._cycle(tokens, target, draft, width, stats)
            if first_lenient is None and lenient is not None:
                first_lenient = len(new) + lenient
        new = _truncate_at_eos(new, self.eos_ids)
        text = _cut_at_stop(self.pair.tokenizer.decode(new, skip_special_tokens=True), stop)
        stats.generated_tokens = len(new)
        stats.target_calls, stats.draft_calls = target.calls, draft.calls
        stats.wall_time_s = time.perf_counter() - start
        return Generation(new, text, stats, reason, first_lenient)

    def _cached_models(self, length: int) -> tuple[CachedModel, CachedModel]:
        """Fresh dynamic caches; or, when compiled, the decoder's static caches emptied (reallocated
        only when a request needs more than ``length`` tokens, which recompiles)."""
        if self.compiled is None:
            return CachedModel(self.pair.target), CachedModel(self.pair.draft)
        if self._static_models is None or self._static_models[0].capacity < length:
            length = max(length, 2048)
            self._static_models = (CachedModel(self.pair.target, length, self.compiled[0]),
                                   CachedModel(self.pair.draft, length, self.compiled[1]))
        for model in self._static_models:
            model.reset()
        return self._static_models

    def _cycle(self, tokens: list[int], target: CachedModel, draft: CachedModel, width: int,
               stats: DecodingStats) -> int | None:
        """One draft window + verification; extends ``tokens`` in place; returns the window index of
        its first lenient acceptance (None: none)."""
        drafted, draft_rows = self._propose(tokens, draft, width)
        width = drafted.shape[0]
        start = len(tokens) - 1
        hidden = target.feed(torch.cat([torch.tensor(tokens[-1:], device=target.device), drafted]))
        logits = target.logits(hidden)                        # rows: last token, d1..dW
        target_tokens = logits.argmax(-1)
        allowed = ends = None
        if width and self.judge is not None:
            allowed = self._judge_allows(drafted, target_tokens, hidden[1:], draft_rows, draft)
        elif width and self.accept_top_k is not None:
            allowed = top_k_allows(drafted, logits[:width], self.accept_top_k)
        elif width and self.oracle is not None:
            allowed = self._oracle_allows(tokens, drafted, target_tokens)
        if allowed is not None and self.settings.end_guard:
            ends = self._ends(tokens, drafted, target_tokens[:width], allowed)
        result = accept(drafted, target_tokens, allowed, ends)
        emitted = [t for t in result.tokens.tolist() if t >= 0]   # the cycle's one host sync
        accepted = len(emitted) - 1
        tokens.extend(emitted)
        target.crop(start + 1 + accepted)
        draft.crop(min(draft.length, start + 1 + accepted))
        if not width:
            return None
        judged = int(result.lenient_accepted.sum())
        stats.cycles += 1
        stats.drafted_tokens += width
        stats.accepted_lenient += judged
        stats.accepted_exact += accepted - judged
        return int(result.lenient_accepted.nonzero()[0, 0]) if judged else None

    def _propose(self, tokens: list[int], draft: CachedModel, width: int):
        """Greedy draft tokens d1..dW (a device tensor) and, for a DD-DT judge, the draft's hidden
        states at d1..d(W-1) (produced by feeding them while drafting). On CPU the window ends early
        at a drafted EOS (nothing after it can be used); on GPUs that check would stall the launch
        queue once per token, so the window runs to W there."""
        drafted, rows = [], []
        step = tokens[draft.length:]
        stop_at_eos = draft.device.type == "cpu"
        for _ in range(width):
            hidden = draft.feed(step)
            rows.append(hidden[-1])
            step = draft.argmax(hidden[-1:])
            drafted.append(step)
            if stop_at_eos and int(step) in self.eos_ids:
                break
        keep_rows = self.judge is not None and self.judge.feature_kind == "DD-DT"
        drafted = torch.cat(drafted) if drafted else torch.zeros(0, dtype=torch.long, device=draft.device)
        return drafted, (torch.stack(rows[1:]) if keep_rows and len(drafted) > 1 else None)

    def _judge_allows(self, drafted, target_tokens, target_rows, draft_rows, draft: CachedModel) -> torch.Tensor:
        """The judge's verdicts for d1..dW. DD-DT needs the draft's row at dW (one more draft
        forward): computed only when it can change the outcome, else dW is left to the exact rule."""
        if self.judge.feature_kind == "DT":
            return judge_allows(self.judge.probability(self.judge.features(target_rows, None)), self.threshold)
        width = drafted.shape[0]
        head = torch.zeros(0, dtype=torch.bool, device=drafted.device)
        if width > 1:
            head = judge_allows(self.judge.probability(self.judge.features(target_rows[:-1], draft_rows)),
                                self.threshold)
        exact = drafted == target_tokens[:width]
        if bool((exact[:-1] | head).all() & ~exact[-1]):
            last_row = draft.feed(drafted[-1:])
            last = self.judge.probability(self.judge.features(target_rows[-1:], last_row))
            return torch.cat([head, judge_allows(last, self.threshold)])
        return torch.cat([head, torch.zeros(1, dtype=torch.bool, device=drafted.device)])

    def _oracle_allows(self, tokens: list[int], drafted, target_tokens) -> torch.Tensor:
        """The perfect judge: the mismatches Algorithm 1 labelled unimportant on this prompt, by
        (response position, draft token, target token); nothing where the prompt was not mined."""
        unimportant = self._request.oracle or frozenset()
        offset = len(tokens) - self._request.prompt_length
        pairs = zip(drafted.tolist(), target_tokens.tolist())
        return torch.tensor([(offset + i, d, t) in unimportant for i, (d, t) in enumerate(pairs)],
                            dtype=torch.bool, device=drafted.device)

    def _ends(self, tokens: list[int], drafted, target_tokens, allowed) -> torch.Tensor:
        """The end guard's mask: the target's token is an EOS, or (checked exactly, by decoding, at
        the lenient candidates only) it completes one of the request's stop strings."""
        ends = ends_at(target_tokens, self._eos_tensor)
        stop = self._request.stop
        if not stop:
            return ends
        candidates = (allowed & ~ends & (drafted != target_tokens)).tolist()
        exact = (drafted == target_tokens).tolist()
        new = tokens[self._request.prompt_length:]
        decode = self.pair.tokenizer.decode
        drafted_ids = drafted.tolist()
        for i, (candidate, same) in enumerate(zip(candidates, exact)):
            if candidate:
                before = decode(new + drafted_ids[:i], skip_special_tokens=True)
                after = decode(new + drafted_ids[:i] + [int(target_tokens[i])], skip_special_tokens=True)
                if any(s in after and s not in before for s in stop):
                    ends = ends.clone()
                    ends[i] = True
                    return ends   # rejected here: nothing after it is decided
            elif not same:
                break              # rejected here anyway
        return ends

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


@dataclass(frozen=True)
class _Request:
    """What the cycles of one request need to know about it."""

    prompt_length: int
    stop: tuple[str, ...]
    oracle: frozenset | None   # the perfect judge's unimportant (position, draft, target) triples


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
