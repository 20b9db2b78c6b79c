"""Algorithm 1 of AutoJudge (mining important tokens) for one prompt, with the judge features
captured in the same forward passes that produce the labels.

Per prompt (greedy everywhere, batch size 1):

1. The target's greedy response R (at most ``max_new_tokens``, ends at EOS or a stop string; an
   EOS token that ends R is part of R). Its answer a* = ``equivalence.answer(text(R))``; if a* is
   None the question is SKIPPED (the reference's "remove target nones").
2. left = 0. Loop: teacher-force the draft on R; p = first position >= left where the draft's
   argmax d != R[p]; none -> stop; R[:p] already finished (EOS / stop string) -> stop. The target
   continues greedily from R[:p] + [d] to the end (same length budget) -> R'. If
   ``equivalence.equal(answer(R'), a*)``: record (p, important=False), R = R'; else record
   (p, important=True), R unchanged. left = p + 1.

Labels are relative to the target's own answer. Every later mismatch lies after an earlier one,
so the final R's prefix R[:p] is exactly the prefix each mismatch was mined on: the final
response plus (position, draft token) reproduces every feature row from scratch.

Features (the judge's inputs, "last hidden state after the final norm" at the drafted token's own
position, i.e. the row produced when d is fed at position p):
- target: the first forward of the target's continuation (which feeds d) -- free;
- draft: the draft's cache cropped to prompt + R[:p], then d fed (one token).
DT = target only; DD-DT = [draft ; target].

Efficiency (``reuse_cache=True``): both models keep their KV caches across the whole question and
only feed what their cache does not already hold (a ``_Prefix`` tracks the cached tokens: crop to
the longest common prefix, feed the rest in one forward). The target's continuation therefore
costs prompt-free one-token steps; the draft's teacher forcing is incremental (an important
verdict leaves R unchanged, so the draft's predictions beyond p stay valid and nothing is
re-fed; an unimportant one re-feeds only R'[p+1:]).

``reuse_cache=False`` is the straightforward reference-style mode (as in the paper's code): every
target continuation starts from an empty cache (prompt + R[:p] + [d] in one forward, then cached
greedy steps -- what ``generate`` per mismatch does) and the draft re-encodes prompt + R from
scratch at every step (and prompt + R[:p] + [d] for the feature). Same labels, used by tests and
the throughput benchmark.

Models are passed as ``CachedModel``-like objects (``autojudge_harness.cached_model.CachedModel``):
``feed(ids) -> (T, H)`` hidden states, ``argmax(hidden) -> (T,)``, ``crop(n)``, ``length``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Iterator, Protocol, Sequence

import torch

from ..endings import cut_at_stop


class Equivalence(Protocol):
    """How two responses are compared: ``answer`` extracts a comparable key from a response's text
    (None = no answer), ``equal`` compares two keys (None must never be equal to anything)."""

    name: str

    def answer(self, text: str) -> Hashable | None: ...

    def equal(self, a: Hashable | None, b: Hashable | None) -> bool: ...


class GSM8KEquivalence:
    """GSM8K: the final numbers are numerically equal, extracted by ``autojudge_harness.answers``
    exactly as the task scores: strict ("The final answer is N", the default) or flexible (the
    last number; the task's second filter). ``stop`` strings cut the text first, as lm-eval's
    ``until`` does."""

    def __init__(self, stop: Sequence[str] = (), flexible: bool = False):
        self.stop = tuple(stop)
        self.flexible = flexible
        self.name = "gsm8k-last-number" if flexible else "gsm8k-final-answer"

    def answer(self, text: str) -> str | None:
        from autojudge_harness.answers import extract_final_answer, extract_last_number

        text = cut_at_stop(text, self.stop)
        return extract_last_number(text) if self.flexible else extract_final_answer(text)

    def equal(self, a, b) -> bool:
        from autojudge_harness.answers import answers_equal

        return answers_equal(a, b)


@dataclass
class Mismatch:
    """One labelled mismatch: R[position] = target_token, the draft proposed draft_token.
    ``target_end``: the target's token ends the response there (an EOS, or it completes a stop
    string) -- a mismatch the end guard never lets a lenient rule accept at decode time."""

    position: int
    important: bool
    target_token: int
    draft_token: int
    target_hidden: torch.Tensor  # (Ht,) target hidden state where draft_token is fed at position
    draft_hidden: torch.Tensor   # (Hd,) draft hidden state at the same place
    target_end: bool = False


@dataclass
class MinedQuestion:
    """Algorithm 1's result for one prompt. ``skipped`` is None or the reason (then no mismatches)."""

    prompt_ids: list[int]
    initial_response_ids: list[int]
    response_ids: list[int]
    answer: Hashable | None
    skipped: str | None
    mismatches: list[Mismatch] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def feature_arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(target features (N, Ht), draft features (N, Hd)), float32 on CPU."""
        if not self.mismatches:
            return torch.zeros(0, 0), torch.zeros(0, 0)
        return (torch.stack([m.target_hidden for m in self.mismatches]).float().cpu(),
                torch.stack([m.draft_hidden for m in self.mismatches]).float().cpu())


@dataclass(frozen=True)
class Progress:
    """What ``Miner.steps`` reports to ``Miner.on_progress`` as a question advances: the tokens fed to
    both models for it since its previous report, and the mismatch just labelled (None: the target's
    first response is done)."""

    tokens: int
    mismatch: Mismatch | None


@dataclass(frozen=True)
class Feed:
    """A request of ``Miner.steps``: crop the question's KV cache of ``model`` ("target" or "draft")
    to its first ``keep`` tokens, then feed ``tokens`` in one forward. Reply: (hidden states (rows, H)
    of the last ``rows`` fed tokens, their greedy next tokens as a list, or None unless ``argmax``)."""

    model: str
    keep: int
    tokens: list[int]
    rows: int
    argmax: bool = True


@dataclass(frozen=True)
class Answer:
    """A request of ``Miner.steps``: reply ``equivalence.answer(text)`` (a grader may take long:
    a driver can compute it in a pool while other questions decode)."""

    equivalence: Equivalence
    text: str


class _Prefix:
    """Bookkeeping of the tokens held in one model's KV cache for one question; its methods return
    the ``Feed`` requests that bring the cache there.

    ``feed(prefix, new)``: the cache shall hold prefix + new, the reply is the hidden states of
    ``new``; with ``reuse`` the request keeps the longest common prefix and feeds only the rest,
    without it re-encodes prefix + new from an empty cache.
    """

    def __init__(self, model: str, reuse: bool):
        self.model, self.reuse = model, reuse
        self.tokens: list[int] = []
        self.fed = 0
        self.forwards = 0

    def _request(self, keep: int, chunk: list[int], rows: int, argmax: bool) -> Feed:
        self.fed += len(chunk)
        self.forwards += 1
        return Feed(self.model, keep, chunk, rows, argmax)

    def feed(self, prefix: Sequence[int], new: Sequence[int], argmax: bool = True) -> Feed:
        prefix, new = list(prefix), list(new)
        keep = _common_prefix(self.tokens, prefix) if self.reuse else 0
        self.tokens = prefix + new
        return self._request(keep, prefix[keep:] + new, len(new), argmax)

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` cached tokens (applied by the next request's ``keep``)."""
        self.tokens = self.tokens[:length]

    def append(self, new: Sequence[int]) -> Feed:
        """Feed ``new`` after the tokens held (a cached greedy step, in both modes)."""
        keep = len(self.tokens)
        self.tokens += list(new)
        return self._request(keep, list(new), len(new), True)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Miner:
    """Algorithm 1 over one target/draft pair. ``target`` and ``draft`` are CachedModel-like;
    ``decode(ids) -> text`` turns response ids into text (special tokens skipped); ``eos_ids`` end
    a response; a ``stop`` string in the decoded response ends it too (lm-eval's ``until``).
    ``end_guard`` (as at decode time, ``acceptance``): a mismatch where the target's token ends the
    response is labelled and flagged ``target_end``, but R is never replaced there (the guard keeps
    the target's end), so nothing past the target's end is mined; off: the paper's Algorithm 1.

    The per-question logic is ``steps`` (a generator of ``Feed`` / ``Answer`` requests); ``mine``
    answers them one at a time on ``target`` / ``draft``, ``mining.batched.BatchedMiner`` answers
    the requests of many questions together. ``on_progress`` (None or a callable taking a ``Progress``)
    hears of every question's progress under either driver."""

    def __init__(self, target, draft, decode: Callable[[list[int]], str], eos_ids, equivalence: Equivalence | None,
                 max_new_tokens: int = 192, stop: Sequence[str] = (), reuse_cache: bool = True,
                 lookahead: int = 0, end_guard: bool = True):
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.target, self.draft = target, draft
        self.decode = decode
        self.eos_ids = frozenset(eos_ids)
        self.equivalence = equivalence
        self.max_new_tokens = max_new_tokens
        self.stop = tuple(s for s in stop if s)
        self.reuse_cache = reuse_cache
        self.lookahead = lookahead if reuse_cache else 0
        self.end_guard = end_guard
        self.on_progress: Callable[[Progress], None] | None = None

    @classmethod
    def for_pair(cls, pair, equivalence: Equivalence | None, max_new_tokens: int = 192, stop: Sequence[str] = (),
                 reuse_cache: bool = True, lookahead: int = 0, end_guard: bool = True) -> "Miner":
        """A miner for an ``autojudge_harness.models.ModelPair`` (wraps both models in CachedModel)."""
        from ..cached_model import CachedModel
        from ..endings import pair_end_ids

        tokenizer = pair.tokenizer
        return cls(CachedModel(pair.target), CachedModel(pair.draft),
                   lambda ids: tokenizer.decode(ids, skip_special_tokens=True), pair_end_ids(pair), equivalence,
                   max_new_tokens, stop, reuse_cache, lookahead, end_guard)

    # -- helpers --------------------------------------------------------------------------------

    def text(self, response: Sequence[int]) -> str:
        return self.decode([t for t in response if t not in self.eos_ids])

    def ends_at(self, response: Sequence[int], position: int) -> bool:
        """True when ``response[position]`` ends the (not yet finished) response: an EOS token, or
        the token that completes a stop string."""
        return response[position] in self.eos_ids or (bool(self.stop) and self.finished(response[:position + 1]))

    def finished(self, response: Sequence[int]) -> bool:
        """True when ``response`` already ended: it holds an EOS token or a stop string."""
        if any(t in self.eos_ids for t in response):
            return True
        return bool(self.stop) and any(s in self.text(response) for s in self.stop)

    def _continue(self, target: _Prefix, prefix: list[int], head: list[int], first: int,
                  source: Sequence[int] = (), skip: int = 0):
        """(generator) Feed ``first`` after prefix + head; continue greedily until EOS, a stop string
        or ``max_new_tokens`` (counted on ``(head + [first])[skip:]``, the response proper).
        Returns (hidden state of ``first`` (H,), head + [first] + continuation).

        With ``self.lookahead`` > 0 and a ``source`` (the response being replaced), the greedy
        continuation is verified speculatively: up to ``lookahead`` tokens copied from ``source``
        where the continuation's tail matches it (prompt-lookup decoding) are fed together with the
        pending token in one forward and kept while they equal the target's argmax -- the same greedy
        tokens, fewer target forwards when the alternative re-joins the old response."""
        response = head + [first]
        limit = self.max_new_tokens + skip
        ended = (lambda: len(response) >= limit or (self.stop and self.finished(response[skip:])))
        proposal = self._lookup(response, source, len(head))[:max(0, limit - len(response))]
        rows, predicted = yield target.feed(prefix + head, [first] + proposal)
        first_hidden = rows[0]
        if (skip == 0 and first in self.eos_ids) or ended():
            target.truncate(len(prefix) + len(response))
            return first_hidden, response
        while True:  # predicted: after the pending token, then after each proposed token
            accepted = 0
            while accepted < len(proposal) and proposal[accepted] == predicted[accepted]:
                accepted += 1
            done = False
            for token in predicted[:accepted + 1]:
                response.append(token)
                if token in self.eos_ids or ended():
                    done = True
                    break
            target.truncate(len(prefix) + len(response) - 1)  # cache = prefix + response[:-1]
            if done:
                return first_hidden, response
            proposal = self._lookup(response, source, len(head))[:max(0, limit - len(response))]
            _, predicted = yield target.append([response[-1]] + proposal)

    def _lookup(self, response: list[int], source: Sequence[int], start: int) -> list[int]:
        """Up to ``lookahead`` tokens of ``source`` following a place (at or after ``start``) where
        ``source`` ends like ``response`` (the 3- or 2-token tail; the occurrence nearest to the
        unshifted position wins); right after the swapped token, ``source[start + 1:]``."""
        k = self.lookahead
        if not k or not source:
            return []
        if len(response) == start + 1:
            return list(source[start + 1:start + 1 + k])
        for n in (3, 2):
            if len(response) - start < n + 1:
                continue
            tail = response[-n:]
            hits = [j for j in range(start, len(source) - n + 1) if source[j:j + n] == tail]
            if hits:
                j = min(hits, key=lambda j: abs(j + n - len(response)))
                return list(source[j + n:j + n + k])
        return []

    def _draft_predictions(self, draft: _Prefix, prompt: list[int], response: list[int], start: int,
                           preds: list[int]):
        """(generator) Draft argmax for positions start..len(response)-1 (teacher forcing on
        prompt + response); returns preds[:start] + those."""
        if start >= len(response):
            return preds[:start]
        _, predicted = yield draft.feed(prompt + response[:start - 1] if start else prompt[:-1],
                                        ([response[start - 1]] if start else [prompt[-1]]) + response[start:-1])
        return preds[:start] + predicted

    # -- Algorithm 1 ----------------------------------------------------------------------------

    def steps(self, prompt_ids: Sequence[int], equivalence: Equivalence | None = None):
        """Algorithm 1 on one prompt as a generator: yields ``Feed`` / ``Answer`` requests, is sent
        their replies, returns the ``MinedQuestion``. ``equivalence`` (default: the miner's) compares
        the answers -- a per-question one where the check needs the question (LiveCodeBench: its
        tests). The requests depend only on the replies, so any driver that answers them correctly
        gets the same labels."""
        equivalence = equivalence or self.equivalence
        if equivalence is None:
            raise ValueError("no equivalence: give one to Miner or to mine()")
        prompt = list(prompt_ids)
        if not prompt:
            raise ValueError("prompt_ids must not be empty")
        return self._steps(prompt, equivalence)

    def _steps(self, prompt: list[int], equivalence: Equivalence):
        start = time.perf_counter()
        reuse = self.reuse_cache
        target, draft = _Prefix("target", reuse), _Prefix("draft", reuse)
        reported = 0

        def report(mismatch: Mismatch | None) -> None:
            nonlocal reported
            if self.on_progress is not None:
                self.on_progress(Progress(target.fed + draft.fed - reported, mismatch))
                reported = target.fed + draft.fed

        _, response = yield from self._continue(target, prompt[:-1], [], prompt[-1], skip=1)
        report(None)
        response = response[1:]  # drop the prompt's last token
        initial = list(response)
        answer = yield Answer(equivalence, self.text(response))
        result = MinedQuestion(prompt, initial, response, answer, None)
        if answer is None:
            result.skipped = "no_target_answer"
        else:
            preds = yield from self._draft_predictions(draft, prompt, response, 0, [])
            left = 0
            while True:
                if not reuse:  # reference style: re-encode prompt + R from scratch every step
                    preds = yield from self._draft_predictions(draft, prompt, response, 0, [])
                p = next((i for i in range(left, len(response)) if preds[i] != response[i]), None)
                if p is None or self.finished(response[:p]):
                    break
                d = preds[p]
                rows, nxt = yield draft.feed(prompt + response[:p], [d], argmax=reuse)
                draft_hidden = rows[-1]
                target_hidden, alternative = yield from self._continue(target, prompt, response[:p], d, response)
                important = not equivalence.equal((yield Answer(equivalence, self.text(alternative))), answer)
                target_end = self.ends_at(response, p)
                result.mismatches.append(Mismatch(p, important, response[p], d, target_hidden.clone(),
                                                  draft_hidden.clone(), target_end))
                report(result.mismatches[-1])
                if not important and not (target_end and self.end_guard):
                    response = alternative
                    if reuse:  # the draft's cache holds prompt + R'[:p+1]: predictions from p+1 on
                        preds = (yield from self._draft_predictions(draft, prompt, response, p + 2,
                                                                    preds[:p + 1] + nxt)) \
                            if p + 1 < len(response) else preds[:p + 1]
                left = p + 1
            result.response_ids = response
        result.stats = {"seconds": time.perf_counter() - start, "target_tokens_fed": target.fed,
                        "draft_tokens_fed": draft.fed, "target_forwards": target.forwards,
                        "draft_forwards": draft.forwards, "mismatches": len(result.mismatches),
                        "important": sum(m.important for m in result.mismatches)}
        return result

    @torch.inference_mode()
    def reply(self, request: Feed | Answer):
        """The reply to one request of ``steps``, computed on this miner's own models."""
        if isinstance(request, Answer):
            return request.equivalence.answer(request.text)
        lm = self.target if request.model == "target" else self.draft
        lm.crop(request.keep)
        hidden = lm.feed(request.tokens)
        rows = hidden[len(hidden) - request.rows:]
        return rows, (lm.argmax(rows).tolist() if request.argmax else None)

    def mine(self, prompt_ids: Sequence[int], equivalence: Equivalence | None = None) -> MinedQuestion:
        """Algorithm 1 on one prompt (``steps`` answered one request at a time)."""
        steps = self.steps(prompt_ids, equivalence)
        reply = None
        while True:
            try:
                request = steps.send(reply)
            except StopIteration as done:
                return done.value
            reply = self.reply(request)

    def mine_many(self, questions: Iterable[tuple[Hashable, Sequence[int], Equivalence | None]]
                  ) -> Iterator[tuple[Hashable, MinedQuestion]]:
        """(key, MinedQuestion) for each (key, prompt ids, equivalence) of ``questions``, in order."""
        for key, prompt_ids, equivalence in questions:
            yield key, self.mine(prompt_ids, equivalence)
