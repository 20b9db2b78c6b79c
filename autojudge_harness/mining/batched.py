"""Algorithm 1 over many questions at once.

``BatchedMiner`` keeps up to ``batch_size`` questions active, each a ``Miner.steps`` generator (the
same per-question logic as the sequential ``Miner.mine``), and refills a finished slot from the
queue. Every round, the ``Feed`` requests of all active questions go to one forward per model (the
target's greedy continuation steps of all questions together; the draft's teacher forcing and
feature rows likewise), and the greedy tokens of all requested rows come from one lm_head product.
``Answer`` requests (the equivalence check) are answered inline, or in a thread pool
(``answer_workers``: LiveCodeBench's sandboxed grading), while the other questions keep decoding.

``BatchedLM`` holds one KV-cache row per slot. A forward feeds each requesting slot its own tokens at
its own positions: chunks right-padded to the longest, position ids per row, a 4-D mask under which
a token sees exactly its own row's first (position + 1) keys -- never another row, never padding.
Rows without a request in the forward's row range get padding too (written past their length and
never read). Requests longer than ``SHORT`` tokens (a prompt, a new response's teacher forcing) are
compute-bound: each gets a forward of its own row, so they pad nothing.

Numerics: a batched forward computes the same values as a batch-1 forward up to float rounding
(other matrix shapes, other summation orders), so a greedy argmax can only differ at a near-tie of
the top two logits; ``autojudge bench mining`` and the tests compare labels with the sequential miner.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass
from typing import Hashable, Iterable, Iterator, Sequence

import torch

from ..cached_model import cache_argument
from .algorithm import Equivalence, Feed, MinedQuestion, Miner

SHORT = 16  # requests of more tokens get a forward of their own


def default_batch_size(device: str | torch.device) -> int:
    """Questions mined together by default: 8 on CPUs (a forward of 8 one-token rows costs ~1.5
    forwards of one), 32 on a GPU."""
    return 32 if torch.device(device).type == "cuda" else 8


def default_lookahead(batch_size: int) -> int:
    """Look-ahead tokens per continuation step by default: 8 for the sequential miner, 0 in a batch
    (proposed tokens are padded into every row of the forward and cost compute there)."""
    return 8 if batch_size == 1 else 0


class BatchedLM:
    """``slots`` independent KV-cache rows of one causal LM (a transformers model with ``.model``,
    full attention); ``forward`` feeds several rows at once, ``lengths[s]`` = tokens row s holds."""

    def __init__(self, model: torch.nn.Module, slots: int):
        if slots < 1:
            raise ValueError(f"batch size must be >= 1, got {slots}")
        config = model.config
        kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"} or (getattr(config, "use_sliding_window", True)
                                           and getattr(config, "sliding_window", None)):
            raise ValueError(f"batched mining needs full-attention layers; {config.model_type} has "
                             f"{sorted(kinds)} (sliding window {getattr(config, 'sliding_window', None)}): "
                             "use --batch-size 1")
        self.attn = config._attn_implementation
        if self.attn not in ("sdpa", "eager"):
            raise ValueError(f"batched mining supports the sdpa and eager attention implementations, not {self.attn!r}")
        self.model, self.base = model, model.model
        self.lm_head = model.get_output_embeddings().weight
        self.device = self.lm_head.device
        self.dtype = next(self.base.parameters()).dtype
        self.cache_arg = cache_argument(self.base)
        self.layers = config.num_hidden_layers
        self.kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.slots = slots
        self.lengths = [0] * slots
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.capacity = 0
        self.forwards = 0

    def _reserve(self, length: int) -> None:
        """Grow every layer's (slots, kv_heads, capacity, head_dim) buffers to hold ``length`` keys."""
        if length <= self.capacity:
            return
        capacity = max(length, 2 * self.capacity, 64)
        capacity = -(-capacity // 64) * 64
        shape = (self.slots, self.kv_heads, capacity, self.head_dim)
        for buffers in (self.keys, self.values):
            for i in range(self.layers):
                grown = torch.zeros(shape, dtype=self.dtype, device=self.device)
                if i < len(buffers):
                    grown[:, :, :self.capacity] = buffers[i][:, :, :self.capacity]
                    buffers[i] = grown
                else:
                    buffers.append(grown)
        self.capacity = capacity

    def forward(self, requests: Sequence[tuple[int, int, Sequence[int]]]) -> list[torch.Tensor]:
        """One forward for ``requests`` = (slot, keep, tokens): row ``slot`` keeps its first ``keep``
        cached tokens and is fed ``tokens``. Returns each request's hidden states (len(tokens), H)
        after the final norm."""
        slots = [s for s, _, _ in requests]
        if len(set(slots)) != len(slots):
            raise ValueError(f"one request per slot and forward, got slots {slots}")
        first, last = min(slots), max(slots) + 1
        width = max(len(tokens) for _, _, tokens in requests)
        ids = torch.zeros(last - first, width, dtype=torch.long)
        starts = torch.tensor(self.lengths[first:last], dtype=torch.long)
        for slot, keep, tokens in requests:
            if not 0 <= keep <= self.lengths[slot] or not tokens:
                raise ValueError(f"slot {slot}: cannot keep {keep} of {self.lengths[slot]} cached tokens "
                                 f"and feed {len(tokens)}")
            ids[slot - first, :len(tokens)] = torch.as_tensor(list(tokens), dtype=torch.long)
            starts[slot - first] = keep
        positions = starts[:, None] + torch.arange(width)
        kv_length = int(positions.max()) + 1
        self._reserve(kv_length)
        mask = (torch.arange(kv_length)[None, None, :] <= positions[:, :, None])[:, None]
        if self.attn == "eager":
            mask = torch.zeros(mask.shape, dtype=self.dtype).masked_fill(~mask, torch.finfo(self.dtype).min)
        cache = _RowCache(self, first, last, positions.to(self.device), kv_length)
        out = self.base(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                        position_ids=positions.to(self.device), use_cache=True, **{self.cache_arg: cache})
        self.forwards += 1
        for slot, keep, tokens in requests:
            self.lengths[slot] = keep + len(tokens)
        hidden = out.last_hidden_state
        return [hidden[slot - first, :len(tokens)] for slot, _, tokens in requests]

    def argmax(self, hidden: torch.Tensor) -> torch.Tensor:
        """Greedy next tokens (T,) for hidden states (T, H)."""
        return (self.lm_head @ hidden.T).T.argmax(-1)


class _RowCache:
    """The cache one forward of ``BatchedLM`` hands the model: ``update`` writes rows first..last-1's
    new keys/values at their positions and returns those rows' first ``kv_length`` keys/values."""

    def __init__(self, lm: BatchedLM, first: int, last: int, positions: torch.Tensor, kv_length: int):
        self.lm, self.first, self.last, self.kv_length = lm, first, last, kv_length
        self.index = positions[:, None, :, None]  # (rows, 1, T, 1)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        out = []
        for buffers, states in ((self.lm.keys, key_states), (self.lm.values, value_states)):
            rows = buffers[layer_idx][self.first:self.last]
            rows.scatter_(2, self.index.expand_as(states), states.to(rows.dtype))
            out.append(rows[:, :, :self.kv_length])
        return out[0], out[1]


@dataclass
class _Slot:
    key: Hashable
    steps: object           # the question's Miner.steps generator
    request: Feed | None = None
    waiting: cf.Future | None = None


class SlotMiner:
    """The slot scheduler of the many-question miners: up to ``batch_size`` questions active, each a
    ``Miner.steps`` generator; a finished slot is refilled from the queue. A subclass makes a slot
    (``_new_slot``), computes one round of the active slots' requests (``_dispatch``) and runs a slot to
    its next request (``_advance``); answers computed in the pool wake their slots here."""

    def __init__(self, miner: Miner, batch_size: int, answer_workers: int = 0):
        self.miner = miner
        self.batch_size = batch_size
        self.answer_workers = answer_workers

    @property
    def on_progress(self):
        """The wrapped ``Miner.on_progress``: hears of the progress of every question in the batch."""
        return self.miner.on_progress

    @on_progress.setter
    def on_progress(self, callback) -> None:
        self.miner.on_progress = callback

    def mine(self, prompt_ids: Sequence[int], equivalence: Equivalence | None = None) -> MinedQuestion:
        """Algorithm 1 on one prompt (a batch of one)."""
        return next(self.mine_many([(None, prompt_ids, equivalence)]))[1]

    def mine_many(self, questions: Iterable[tuple[Hashable, Sequence[int], Equivalence | None]]
                  ) -> Iterator[tuple[Hashable, MinedQuestion]]:
        """(key, MinedQuestion) for each (key, prompt ids, equivalence) of ``questions``, in the order
        they finish; ``questions`` is consumed lazily (a slot is refilled when one finishes)."""
        queue = iter(questions)
        slots: list = [None] * self.batch_size
        finished: list[tuple[Hashable, MinedQuestion]] = []
        pool = cf.ThreadPoolExecutor(self.answer_workers) if self.answer_workers else None
        try:
            while True:
                for i in range(self.batch_size):
                    item = next(queue, None) if slots[i] is None else None
                    if item is not None:
                        slots[i] = self._new_slot(*item)
                        self._advance(slots, i, None, pool, finished)
                yield from finished
                finished.clear()
                if all(s is None for s in slots):
                    return
                if not self._dispatch(slots, pool, finished):
                    waiting = [s.waiting for s in slots if s and s.waiting]
                    if not waiting:
                        raise AssertionError("an active question has neither a request nor a pending answer")
                    cf.wait(waiting, return_when=cf.FIRST_COMPLETED)
                for i, slot in enumerate(slots):
                    if slot and slot.waiting and slot.waiting.done():
                        self._advance(slots, i, slot.waiting.result(), pool, finished)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _new_slot(self, key: Hashable, prompt_ids: Sequence[int], equivalence: Equivalence | None):
        raise NotImplementedError

    def _dispatch(self, slots: list, pool, finished: list) -> bool:
        """Compute this round's requests of the active slots and advance them; False if none had one."""
        raise NotImplementedError

    def _advance(self, slots: list, i: int, reply, pool, finished: list) -> None:
        raise NotImplementedError


class BatchedMiner(SlotMiner):
    """Algorithm 1 for many questions at once (module docstring); ``miner`` supplies the settings and
    the per-question logic, ``target`` / ``draft`` are the pair's transformers models."""

    def __init__(self, miner: Miner, target: torch.nn.Module, draft: torch.nn.Module, batch_size: int,
                 answer_workers: int = 0):
        super().__init__(miner, batch_size, answer_workers)
        self.lms = {"target": BatchedLM(target, batch_size), "draft": BatchedLM(draft, batch_size)}

    @classmethod
    def for_pair(cls, pair, equivalence: Equivalence | None, batch_size: int, max_new_tokens: int = 192,
                 stop: Sequence[str] = (), lookahead: int = 0, end_guard: bool = True,
                 answer_workers: int = 0) -> "BatchedMiner":
        """A batched miner for an ``autojudge_harness.models.ModelPair`` (KV-cache reuse always on)."""
        miner = Miner.for_pair(pair, equivalence, max_new_tokens, stop, True, lookahead, end_guard)
        return cls(miner, pair.target, pair.draft, batch_size, answer_workers)

    def _new_slot(self, key, prompt_ids, equivalence) -> _Slot:
        return _Slot(key, self.miner.steps(prompt_ids, equivalence))

    def _dispatch(self, slots: list, pool, finished: list) -> bool:
        """One forward per model for the Feed requests of all active slots."""
        feeds = {name: [(i, s.request) for i, s in enumerate(slots) if s and s.request and s.request.model == name]
                 for name in self.lms}
        for name, requests in feeds.items():
            if requests:
                for (i, _), reply in zip(requests, batch_replies(self.lms[name], requests)):
                    self._advance(slots, i, reply, pool, finished)
        return any(feeds.values())

    def _advance(self, slots: list, i: int, reply, pool, finished: list) -> None:
        """Send ``reply`` to slot i's question and run it to its next Feed (or pending answer, or end)."""
        slot = slots[i]
        slot.request = slot.waiting = None
        while True:
            try:
                request = slot.steps.send(reply)
            except StopIteration as done:
                finished.append((slot.key, done.value))
                slots[i] = None
                return
            if isinstance(request, Feed):
                slot.request = request
                return
            if pool is not None:
                slot.waiting = pool.submit(request.equivalence.answer, request.text)
                return
            reply = request.equivalence.answer(request.text)



@torch.inference_mode()
def batch_replies(lm: BatchedLM, requests: list[tuple[int, Feed]]) -> list[tuple[torch.Tensor, list | None]]:
    """Replies to the ``Feed`` requests (slot, request) of one model: the short ones in one forward, each
    long one in its own; greedy tokens of all requested rows from one lm_head product."""
    short = [(i, r) for i, r in requests if len(r.tokens) <= SHORT]
    groups = ([short] if short else []) + [[(i, r)] for i, r in requests if len(r.tokens) > SHORT]
    hidden: dict[int, torch.Tensor] = {}
    for group in groups:
        outs = lm.forward([(i, r.keep, r.tokens) for i, r in group])
        hidden.update({i: h[len(h) - r.rows:] for (i, r), h in zip(group, outs)})
    wanted = [i for i, r in requests if r.argmax]
    tokens = lm.argmax(torch.cat([hidden[i] for i in wanted])).tolist() if wanted else []
    replies, at = {}, 0
    for i, r in requests:
        if r.argmax:
            replies[i] = (hidden[i], tokens[at:at + r.rows])
            at += r.rows
        else:
            replies[i] = (hidden[i], None)
    return [replies[i] for i, _ in requests]
