"""The interface of a lenient acceptance rule (pure torch, no model code).

A rule decides which *mismatching* drafted tokens greedy speculative decoding may accept anyway;
``acceptance.accept`` stays the one place where the accepted prefix is decided (exact matches are
always accepted, the end guard overrules every rule). A rule is one class with:

- ``name`` (its registry key) and ``params``: its ``Param`` s, model_arg keys unique across rules,
  each with the authors' default and the value that switches the rule off; ``grid``: the points a
  sweep tries;
- ``needs``: the inputs it reads, a subset of ``INPUTS``; a backend that cannot supply one refuses
  the rule (``missing_inputs``);
- ``local(x)``: the mask of positions it allows, computed position by position from ``Inputs``;
- ``window(local, exact, valid)``: the mask after looking at the other positions of the window
  (default: ``local``; FLy looks at the following positions);
- ``emitted(x)``: the token emitted when a position is the first rejected one (default None: the
  target's own token; the ensemble rule emits its mixture's argmax).

Shapes: ``Inputs`` fields have leading dims ``...`` (the HF backend: one window (W,); the vLLM
backend: flat verification rows (N,)); ``window`` works on windows (..., W).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # imported where a rule computes: the registry and settings load without torch (light --help)
    import torch

INPUTS = ("target_logits", "draft_logits", "target_hidden", "draft_hidden", "request")


class RuleError(ValueError):
    """A rule's parameters (or the inputs a backend can give it) do not work; names the key."""


@dataclass(frozen=True)
class Param:
    """One parameter of a rule. ``kind``: float, int, or str (a file path); ``default``: the authors'
    default (None: must be given); ``off``: a value at which the rule allows nothing (None: none);
    ``check``: the condition on a value, as (predicate, text)."""

    key: str
    kind: type
    default: object
    help: str
    off: object = None
    check: tuple[Callable[[object], bool], str] | None = None

    def convert(self, value):
        """``value`` (model_args string or a value) as ``kind``, checked; RuleError naming the key."""
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        if self.kind is str:
            return str(value)
        if isinstance(value, bool):
            raise RuleError(f"{self.key} must be a number, got {value!r}")
        try:
            converted = self.kind(value.strip()) if isinstance(value, str) else value
        except ValueError:
            raise RuleError(f"{self.key} must be {'an integer' if self.kind is int else 'a number'}, "
                            f"got {value!r}") from None
        if self.kind is int and isinstance(converted, float):
            if not converted.is_integer():
                raise RuleError(f"{self.key} must be an integer, got {value!r}")
            converted = int(converted)
        if not isinstance(converted, (int, float)):
            raise RuleError(f"{self.key} must be a number, got {value!r}")
        converted = self.kind(converted)
        if self.check is not None and not self.check[0](converted):
            raise RuleError(f"{self.key} must be {self.check[1]}, got {value!r}")
        return converted


@dataclass(frozen=True)
class Inputs:
    """What a rule may read at the drafted positions (leading dims ``...``). ``draft_tokens`` and
    ``target_tokens`` (the target's argmax at the same position) always; the rest when the rule
    ``needs`` them: ``target_logits``/``draft_logits`` (..., V) (the distributions that verified /
    proposed the token), ``target_hidden``/``draft_hidden`` (..., H) (last hidden states at the
    drafted token's own position), ``positions`` (response positions) and ``request`` (per-request
    context: the oracle's table for this prompt)."""

    draft_tokens: torch.Tensor
    target_tokens: torch.Tensor
    target_logits: torch.Tensor | None = None
    draft_logits: torch.Tensor | None = None
    target_hidden: torch.Tensor | None = None
    draft_hidden: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    request: object = None


class Rule:
    """A lenient acceptance rule (see the module docstring). Constructed from its parameter values
    (already converted by ``Param.convert``; missing ones take the defaults)."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    needs: ClassVar[frozenset[str]] = frozenset()
    grid: ClassVar[tuple[dict, ...]] = ()   # the sweep's points: parameter values, least lenient first
    summary: ClassVar[str] = ""

    def __init__(self, **values):
        keys = {p.key for p in self.params}
        unknown = set(values) - keys
        if unknown:
            raise RuleError(f"rule {self.name} has no parameter {sorted(unknown)[0]!r} (its parameters: "
                            f"{', '.join(sorted(keys)) or 'none'})")
        self.values = {p.key: values.get(p.key, p.default) for p in self.params}

    def __getitem__(self, key: str):
        return self.values[key]

    @property
    def off(self) -> bool:
        """True when the parameters allow nothing: decoding is then lossless, bit for bit."""
        return any(p.off is not None and self.values[p.key] == p.off for p in self.params)

    def local(self, x: Inputs) -> torch.Tensor:
        raise NotImplementedError

    def window(self, local: torch.Tensor, exact: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(..., W) allowed mask from the position-local one, ``exact`` (draft == target) and
        ``valid`` (the position holds a real draft); the last dimension is the full window W, padded
        (``valid`` False) where a backend drafted fewer."""
        return local

    def emitted(self, x: Inputs) -> torch.Tensor | None:
        """(...) the token emitted if that position is the first rejected one; None: the target's."""
        return None

    def to(self, device) -> "Rule":
        """The rule with any weights it holds on ``device``."""
        return self

    def describe(self) -> dict:
        """Name and parameter values (JSON-ready), as results record them."""
        return {"rule": self.name, **self.values}


def missing_inputs(rule: type[Rule] | Rule, available) -> list[str]:
    """The inputs ``rule`` needs that a backend offering ``available`` cannot give."""
    return sorted(set(rule.needs) - set(available))


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary probabilities (fp32) of raw logits."""
    import torch

    return torch.softmax(logits.float(), dim=-1)


def shared_vocab(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both logits cut to the vocabulary they share (padded embedding rows differ in length)."""
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n], b[..., :n]


def values_from(params: tuple[Param, ...], given: Mapping) -> dict:
    """The converted values of ``given`` for ``params`` (missing keys left out)."""
    by_key = {p.key: p for p in params}
    return {key: by_key[key].convert(value) for key, value in given.items() if key in by_key}
