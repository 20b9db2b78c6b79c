"""Where an answer ends, one definition for every backend and the miners: the end-token ids of a
model (its config's and generation config's EOS ids, and the tokenizer's), the cut at EOS and the
cut at the first stop string (pure Python)."""

from __future__ import annotations

from collections.abc import Sequence


def end_token_ids(*values) -> tuple[int, ...]:
    """The sorted distinct token ids among ``values`` (each an int, a list of ints, or None), as
    configs give EOS ids."""
    ids = set()
    for value in values:
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValueError(f"token ids must be integers, got {item!r}")
            ids.add(item)
    return tuple(sorted(ids))


def pair_end_ids(pair) -> frozenset[int]:
    """A loaded ``ModelPair``'s end tokens: the target's generation-config EOS ids and the tokenizer's."""
    return frozenset(end_token_ids(pair.target.generation_config.eos_token_id, pair.tokenizer.eos_token_id))


def truncate_at_eos(new: list[int], eos_ids) -> list[int]:
    """Drop everything from the first EOS on."""
    for i, t in enumerate(new):
        if t in eos_ids:
            return new[:i]
    return new


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (excluding) the earliest stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]
