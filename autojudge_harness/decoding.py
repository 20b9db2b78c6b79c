"""HF speculative decoding with an optional lenient rule (``rules``: the AutoJudge judge, top-K,
the perfect judge, JuDi, FLy, TensorRT-LLM relaxed, ensemble): greedy, batch size 1.

Each cycle the draft proposes up to W tokens one at a time; the target scores
[last token, d1..dW] in one forward, giving W+1 argmax tokens and the hidden states at the
drafted tokens' own positions (judge features); the rule reads what it ``needs`` of those (and
of the draft's logits / hidden states, kept while drafting only when needed); ``acceptance.accept``
decides; both KV caches are cropped back to the accepted prefix.

Speed (measured in docs/decoding-speed.md): drafted tokens stay on the device (one host sync per
cycle, plus one when the judge must look at dW); for DD-DT the draft's feature row of dW costs one
more draft forward, paid only when it can change the outcome (d1..d(W-1) accepted, dW != target);
the judge's weights live on the models' device. ``compile=True`` swaps in a preallocated static KV
cache and ``torch.compile``s the short (<= W+1 token) forwards -- for GPUs, where per-kernel launch
overhead dominates a small model; on CPU it measured no faster (the forwards are memory-bound).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace

import torch
import transformers

from .acceptance import accept, ends_at
from .cached_model import CachedModel, static_cache_croppable
from .endings import cut_at_stop, pair_end_ids, truncate_at_eos
from .models import ModelPair
from .rules import Inputs, Rule
from .settings import DEFAULT_WINDOW, AcceptanceSettings, check_window
from .stats import DecodingStats


@dataclass
class Generation:
    """One request's output: new token ids, decoded text (cut at the first stop string), stats."""

    token_ids: list[int]
    text: str
    stats: DecodingStats
    finish_reason: str  # "eos", "stop", or "length"
    first_lenient_token: int | None = None  # output index of the first lenient acceptance (None: none)


class SpeculativeDecoder:
    """Speculative decoding for one ``ModelPair`` under ``settings`` (``AcceptanceSettings``: lossless
    or one lenient rule; a rule at its off value decodes exactly as lossless)."""

    def __init__(self, pair: ModelPair, window: int = DEFAULT_WINDOW, settings: AcceptanceSettings = AcceptanceSettings(),
                 compile: bool = False):
        self.window = check_window(window)
        if compile and not static_cache_croppable():
            raise ValueError("compile=True needs transformers >= 5.24 (static KV caches that can be cropped); "
                             f"this is {transformers.__version__}")
        rule = settings.build_rule()
        if rule is not None and rule.name == "judge":
            rule.model.check_models(pair.target.config.hidden_size, pair.draft.config.hidden_size,
                                    pair.target_name, pair.draft_name)
        self.pair = pair
        self.settings = settings
        # a rule at its off value allows nothing (lossless tokens) but still runs, unless it cannot (unset parameters)
        self.rule: Rule | None = None if rule is None or (rule.off and None in rule.values.values()) else \
            rule.to(pair.target.device)
        self.threshold = rule["threshold"] if rule is not None and rule.name == "judge" else None
        self.eos_ids = pair_end_ids(pair)
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
        context = self.rule.request(prompt_ids) if self.rule is not None and "request" in self.rule.needs else None
        self._request = _Request(len(prompt_ids), tuple(s for s in stop if s), context)
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
        new = truncate_at_eos(new, self.eos_ids)
        text = cut_at_stop(self.pair.tokenizer.decode(new, skip_special_tokens=True), stop)
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
        its first lenient decision (an accepted mismatch, or the rule's own token emitted at the first
        rejection; None: none)."""
        drafted, draft_rows, draft_logits = self._propose(tokens, draft, width)
        width = drafted.shape[0]
        start = len(tokens) - 1
        hidden = target.feed(torch.cat([torch.tensor(tokens[-1:], device=target.device), drafted]))
        logits = target.logits(hidden)                        # rows: last token, d1..dW
        target_tokens = logits.argmax(-1)
        allowed = ends = emitted = None
        if width and self.rule is not None:
            x = Inputs(drafted, target_tokens[:width], logits[:width], draft_logits, hidden[1:], draft_rows,
                       len(tokens) - self._request.prompt_length + torch.arange(width, device=drafted.device),
                       self._request.context)
            allowed, emitted = self._rule_allows(x, draft)
            if self.settings.end_guard:
                ends = self._ends(tokens, drafted, target_tokens[:width], allowed, emitted)
        result = accept(drafted, target_tokens, allowed, ends, emitted)
        # the cycle's one host sync: the tokens, then the lenient flags of d1..dW and of the emitted token
        row = torch.cat([result.tokens, result.lenient_accepted.long(), result.lenient_emitted.long().view(1)]).tolist()
        emitted_tokens = [t for t in row[:width + 1] if t >= 0]
        lenient, replaced = row[width + 1:-1], bool(row[-1])
        accepted = len(emitted_tokens) - 1
        tokens.extend(emitted_tokens)
        target.crop(start + 1 + accepted)
        draft.crop(min(draft.length, start + 1 + accepted))
        if not width:
            return None
        judged = sum(lenient)
        stats.cycles += 1
        stats.drafted_tokens += width
        stats.accepted_lenient += judged
        stats.accepted_exact += accepted - judged
        stats.lenient_emitted += int(replaced)
        if judged:
            return lenient.index(1)
        return accepted if replaced else None

    def _propose(self, tokens: list[int], draft: CachedModel, width: int):
        """Greedy draft tokens d1..dW (a device tensor); for a rule that needs them, the draft's hidden
        states at d1..d(W-1) (produced by feeding them while drafting; dW's is left to
        ``_rule_allows``) and the draft's logits that proposed d1..dW. On CPU the window ends early
        at a drafted EOS (nothing after it can be used); on GPUs that check would stall the launch
        queue once per token, so the window runs to W there."""
        needs = self.rule.needs if self.rule is not None else frozenset()
        drafted, rows, logit_rows = [], [], []
        step = tokens[draft.length:]
        stop_at_eos = draft.device.type == "cpu"
        for _ in range(width):
            hidden = draft.feed(step)
            rows.append(hidden[-1])
            logits = draft.logits(hidden[-1:])
            step = logits.argmax(-1)
            drafted.append(step)
            logit_rows.append(logits)
            if stop_at_eos and int(step) in self.eos_ids:
                break
        drafted = torch.cat(drafted) if drafted else torch.zeros(0, dtype=torch.long, device=draft.device)
        draft_rows = torch.stack(rows[1:]) if "draft_hidden" in needs and len(drafted) > 1 else None
        draft_logits = torch.cat(logit_rows) if "draft_logits" in needs and logit_rows else None
        return drafted, draft_rows, draft_logits

    def _rule_allows(self, x: Inputs, draft: CachedModel) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The rule's allowed mask for d1..dW and its tokens to emit at a rejection (or None). A rule
        that needs the draft's hidden state of dW (a DD-DT judge) costs one more draft forward:
        made only when it can change the outcome (d1..d(W-1) accepted, dW != target), else dW is
        left to the exact rule."""
        rule = self.rule
        exact = x.draft_tokens == x.target_tokens
        emitted = rule.emitted(x)
        if "draft_hidden" not in rule.needs:
            return self._window(rule.local(x), exact), emitted
        width = exact.shape[0]
        head = torch.zeros(0, dtype=torch.bool, device=exact.device)
        if width > 1:
            head = rule.local(_positions(x, slice(0, width - 1)))
        if bool((exact[:-1] | head).all() & ~exact[-1]):
            last = _positions(x, slice(width - 1, width))
            last = replace(last, draft_hidden=draft.feed(x.draft_tokens[-1:]))
            local = torch.cat([head, rule.local(last)])
        else:
            local = torch.cat([head, torch.zeros(1, dtype=torch.bool, device=exact.device)])
        return self._window(local, exact), emitted

    def _window(self, local: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
        """The rule's window step over the full window W (a window cut short at a drafted EOS or the
        token cap is padded with missing drafts), cut back to the drafted positions."""
        width = local.shape[0]
        pad = torch.zeros(self.window - width, dtype=torch.bool, device=local.device)
        valid = torch.cat([torch.ones_like(local), pad])
        return self.rule.window(torch.cat([local, pad]), torch.cat([exact, pad]), valid)[:width]

    def _ends(self, tokens: list[int], drafted, target_tokens, allowed, emitted=None) -> torch.Tensor:
        """The end guard's mask: the target's token is an EOS, or (checked exactly, by decoding, at
        the rule's candidates only: an allowed mismatch, or the first rejection where the rule would
        emit its own token) it completes one of the request's stop strings."""
        ends = ends_at(target_tokens, self._eos_tensor)
        stop = self._request.stop
        if not stop:
            return ends
        own = (emitted != target_tokens) if emitted is not None else torch.zeros_like(allowed)
        candidates = ((allowed | own) & ~ends & (drafted != target_tokens)).tolist()
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
                if not bool(allowed[i]):
                    return ends   # rejected here, the rule's own token emitted
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
    context: object            # the rule's per-request context (the perfect judge's triples), or None


def _positions(x: Inputs, index: slice) -> Inputs:
    """``x`` restricted to the window positions ``index`` (tensor fields sliced, context kept)."""
    return replace(x, **{f.name: getattr(x, f.name)[index] for f in fields(x)
                         if isinstance(getattr(x, f.name), torch.Tensor)})
