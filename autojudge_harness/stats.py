"""Decoding statistics: one record per request, the same keys from every backend.

A *cycle* is one draft window verified by one target forward. Per cycle, the tokens emitted
are the accepted draft tokens plus one token from the target (the correction or the bonus).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class DecodingStats:
    """Counters for one or more requests; ``+`` aggregates."""

    generated_tokens: int = 0       # tokens returned to the caller (after stop/EOS/max truncation)
    target_calls: int = 0           # target forward passes, prefill included
    draft_calls: int = 0            # draft forward passes, prefill included
    cycles: int = 0                 # verification cycles (windows checked by the target)
    drafted_tokens: int = 0         # draft tokens proposed
    accepted_exact: int = 0         # accepted draft tokens equal to the target's argmax
    accepted_lenient: int = 0       # accepted draft tokens that differ (the lenient rule allowed them)
    lenient_emitted: int = 0        # tokens a rule emitted at a rejection in place of the target's (ensemble)
    wall_time_s: float = 0.0
    requests: int = 0

    def __add__(self, other: "DecodingStats") -> "DecodingStats":
        return DecodingStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def accepted_tokens(self) -> int:
        return self.accepted_exact + self.accepted_lenient

    def summary(self) -> dict:
        """Counters plus derived rates (JSON-ready)."""
        cycles, requests = max(self.cycles, 1), max(self.requests, 1)
        return {
            **asdict(self),
            # what a request costs: the speed figures to compare (accepted per cycle is the paper's figure)
            "target_calls_per_request": self.target_calls / requests,
            "draft_calls_per_request": self.draft_calls / requests,
            "generated_tokens_per_request": self.generated_tokens / requests,
            "wall_time_per_request_s": self.wall_time_s / requests,
            "accepted_per_cycle": self.accepted_tokens / cycles,
            "tokens_per_cycle": (self.accepted_tokens + self.cycles) / cycles,
            "lenient_accepted_fraction": self.accepted_lenient / max(self.accepted_tokens, 1),
            "acceptance_rate": self.accepted_tokens / max(self.drafted_tokens, 1),
            "tokens_per_second": self.generated_tokens / self.wall_time_s if self.wall_time_s else 0.0,
        }
