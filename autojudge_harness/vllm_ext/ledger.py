"""``RequestLedger``: what every step of the model runner did for each request (worker side, torch).

One record per request per step: (tokens sampled, draft tokens verified, lenient-accepted tokens).
Records stay on the device (no host synchronisation per step) until ``take`` reads and clears
them (the ``autojudge_requests`` RPC). Which records count for a request is decided on the driver
(``metrics.request_counts``): under async scheduling, or when a stop string aborts a request, the
runner also runs steps whose output the request never receives.
"""

from __future__ import annotations

import torch

FIELDS = ("sampled", "drafted", "lenient")
COMPACT_EVERY = 256   # steps between concatenations of the pending device tensors


class RequestLedger:
    """Per-request step records, in step order."""

    def __init__(self):
        self._req_ids: list[str] = []
        self._rows: list[torch.Tensor] = []

    def add(self, req_ids: list[str], rows: torch.Tensor) -> None:
        """Record one step: ``rows`` (R, 3) int64 in ``FIELDS`` order, row j for ``req_ids[j]``."""
        if rows.shape != (len(req_ids), len(FIELDS)):
            raise ValueError(f"ledger rows must be ({len(req_ids)}, {len(FIELDS)}), got {tuple(rows.shape)}")
        self._req_ids.extend(req_ids)
        self._rows.append(rows)
        if len(self._rows) >= COMPACT_EVERY:
            self._rows = [torch.cat(self._rows)]

    def take(self) -> dict[str, list[list[int]]]:
        """Request id -> its records ([sampled, drafted, lenient] per step, in order); clears the ledger
        (synchronises with the device)."""
        rows = torch.cat(self._rows).tolist() if self._rows else []
        records: dict[str, list[list[int]]] = {}
        for req_id, row in zip(self._req_ids, rows):
            records.setdefault(req_id, []).append(row)
        self._req_ids, self._rows = [], []
        return records


def step_rows(num_sampled: torch.Tensor, cu_num_logits: torch.Tensor, lenient: torch.Tensor | None) -> torch.Tensor:
    """(R, 3) ledger rows of one step: ``num_sampled`` (R,) tokens each request received, its draft
    tokens (logits rows - 1; 0 without drafts) from ``cu_num_logits`` (R+1,), and ``lenient`` (R,)
    lenient-accepted tokens (None: none this step)."""
    drafted = (cu_num_logits[1:] - cu_num_logits[:-1]).long().sub(1).clamp(min=0)
    sampled = num_sampled.long()
    lenient = torch.zeros_like(sampled) if lenient is None else lenient.long()
    return torch.stack([sampled, drafted, lenient], dim=-1)
