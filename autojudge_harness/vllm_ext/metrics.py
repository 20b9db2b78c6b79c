"""Acceptance statistics of a vLLM run, in the keys of ``stats.DecodingStats`` (pure Python).

Sources: vLLM's cumulative metrics (``llm.get_metrics()``, needs ``disable_log_stats=False``)
and the workers' counters (``llm.collective_rpc("autojudge_stats")``). Both are cumulative:
take a ``snapshot`` before and after a run and ``subtract``.

Meaning of the keys here: ``cycles`` = vLLM's spec-decode drafts (windows verified, per
request); ``drafted_tokens``, ``accepted_per_position`` = vLLM's; ``accepted_lenient`` = accepted
draft tokens that differ from the target's argmax (counted by our sampler); ``accepted_exact`` =
vLLM's accepted tokens minus those; ``target_calls`` = batched target forward passes that
produced logits, ``draft_calls`` = batched draft forward passes (one batch serves every request
of a step, so with several requests in flight they are not per request as in the HF backend).
"""

from __future__ import annotations

from ..stats import DecodingStats

COUNTERS = {
    "cycles": "vllm:spec_decode_num_drafts",
    "drafted_tokens": "vllm:spec_decode_num_draft_tokens",
    "accepted_tokens": "vllm:spec_decode_num_accepted_tokens",
    "generated_tokens": "vllm:generation_tokens",
}
PER_POSITION = "vllm:spec_decode_num_accepted_tokens_per_pos"
WORKER_COUNTS = ("target_calls", "draft_calls", "accepted_exact", "accepted_lenient", "stock_cycles",
                 "rejected_windows", "end_stops")
WORKER_VECTORS = ("judge_accepted_per_position",)


def snapshot(metrics, worker_reports=()) -> dict:
    """Cumulative counts now. ``metrics``: vLLM Metric objects (``name`` and ``value`` or
    ``values``; label sets of one name are summed); ``worker_reports``: what each worker's
    ``autojudge_stats`` returned (None on ranks without a sampler; tensor-parallel ranks agree, the
    first report is used)."""
    counts = {key: 0 for key in COUNTERS}
    per_position: list[int] = []
    for metric in metrics:
        for key, name in COUNTERS.items():
            if metric.name == name:
                counts[key] += int(metric.value)
        if metric.name == PER_POSITION:
            per_position = _add_lists(per_position, metric.values)
    counts["accepted_per_position"] = per_position
    report = next((r for r in worker_reports if r is not None), {})
    for key in WORKER_COUNTS:
        counts[key] = int(report.get(key, 0))
    for key in WORKER_VECTORS:
        counts[key] = [int(v) for v in report.get(key, [])]
    return counts


def _add_lists(a: list, b: list, sign: int = 1) -> list:
    n = max(len(a), len(b))
    a, b = list(a) + [0] * (n - len(a)), list(b) + [0] * (n - len(b))
    return [x + sign * y for x, y in zip(a, b)]


def subtract(after: dict, before: dict) -> dict:
    """Counts accumulated between two snapshots."""
    return {k: _add_lists(v, before[k], -1) if isinstance(v, list) else v - before[k] for k, v in after.items()}


def add(a: dict, b: dict) -> dict:
    return {k: _add_lists(v, b[k]) if isinstance(v, list) else v + b[k] for k, v in a.items()}


def summarize(counts: dict, wall_time_s: float, requests: int) -> dict:
    """``DecodingStats.summary()`` keys plus vLLM's: mean_acceptance_length (1 + accepted per
    draft), accepted_per_position and its rate per draft, and the sampler's own counts."""
    judge = counts["accepted_lenient"]
    stats = DecodingStats(generated_tokens=counts["generated_tokens"], target_calls=counts["target_calls"],
                          draft_calls=counts["draft_calls"], cycles=counts["cycles"],
                          drafted_tokens=counts["drafted_tokens"],
                          accepted_exact=max(counts["accepted_tokens"] - judge, 0), accepted_lenient=judge,
                          wall_time_s=wall_time_s, requests=requests)
    cycles = counts["cycles"]
    return {
        **stats.summary(),
        "mean_acceptance_length": 1 + counts["accepted_tokens"] / cycles if cycles else 0.0,
        "accepted_per_position": counts["accepted_per_position"],
        "acceptance_rate_per_position": [a / cycles for a in counts["accepted_per_position"]] if cycles else [],
        "sampler": {key: counts[key] for key in ("accepted_exact", "accepted_lenient", "judge_accepted_per_position",
                                                 "stock_cycles", "rejected_windows", "end_stops")},
    }
