"""The perfect judge: accept exactly the mismatches Algorithm 1 labelled unimportant on this prompt
(an oracle file, ``autojudge oracle``), by (response position, draft token, target token)."""

from __future__ import annotations

import torch

from ..oracle import Oracle, load_oracle
from .base import Inputs, Param, Rule


class OracleRule(Rule):
    name = "oracle"
    summary = "the perfect judge on the evaluated prompts (Algorithm 1's labels): a ceiling"
    params = (Param("oracle", str, None, "oracle file (autojudge oracle)"),)
    needs = frozenset({"request"})
    grid = ({},)

    def __init__(self, oracle: Oracle | str | None = None, **values):
        super().__init__(**values, **({"oracle": oracle} if isinstance(oracle, str) else {}))
        self.table = load_oracle(oracle) if isinstance(oracle, str) else oracle
        if self.table is None:
            raise ValueError("the oracle rule needs an oracle file (oracle=...)")

    def request(self, prompt_ids) -> frozenset:
        """The per-request context: the prompt's unimportant (position, draft, target) triples."""
        return self.table.unimportant(prompt_ids) or frozenset()

    def local(self, x: Inputs) -> torch.Tensor:
        triples = zip(x.positions.tolist(), x.draft_tokens.tolist(), x.target_tokens.tolist())
        return torch.tensor([t in x.request for t in triples], dtype=torch.bool, device=x.draft_tokens.device)
