"""Statistics of a vLLM run, in the keys of ``stats.DecodingStats`` (pure Python).

Per request, as in the HF backend (``request_counts``): ``target_calls`` = target forward passes
that included the request (prefill chunks and verification steps), ``draft_calls`` = draft forward
passes that drafted for it (W per step for a draft model, EAGLE or MTP; 0 for n-gram lookup),
``cycles`` / ``drafted_tokens`` / ``accepted_*`` = its verification steps, draft tokens and
accepted ones, ``generated_tokens`` = its output tokens without the final EOS. They come from the
workers' ``RequestLedger`` (``llm.collective_rpc("autojudge_requests")``), keeping only the steps
whose output the request received: async scheduling and stop-string aborts run steps past a
request's end, which the scheduler drops. Batch size and scheduling therefore leave them unchanged.

Engine-wide (``snapshot``, cumulative: take one before and after a run and ``subtract``):
vLLM's counters (``llm.get_metrics()``, needs ``disable_log_stats=False``) and the workers'
(``llm.collective_rpc("autojudge_stats")``): ``target_forwards`` / ``draft_forwards`` = batched
forward passes (one serves every request of a step), the sampler's exact / lenient counts.
"""

from __future__ import annotations

from ..stats import DecodingStats

COUNTERS = {
    "engine_cycles": "vllm:spec_decode_num_drafts",
    "engine_drafted_tokens": "vllm:spec_decode_num_draft_tokens",
    "engine_accepted_tokens": "vllm:spec_decode_num_accepted_tokens",
    "engine_generated_tokens": "vllm:generation_tokens",
}
PER_POSITION = "vllm:spec_decode_num_accepted_tokens_per_pos"
WORKER_COUNTS = ("target_forwards", "draft_forwards", "accepted_exact", "accepted_lenient", "stock_cycles",
                 "rejected_windows", "end_stops")
WORKER_VECTORS = ("judge_accepted_per_position",)
REQUEST_KEYS = ("generated_tokens", "target_calls", "draft_calls", "cycles", "drafted_tokens", "accepted_exact",
                "accepted_lenient", "dropped_steps")


def snapshot(metrics, worker_reports=()) -> dict:
    """Cumulative engine-wide counts now. ``metrics``: vLLM Metric objects (``name`` and ``value``
    or ``values``; label sets of one name are summed); ``worker_reports``: what each worker's
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


def request_counts(records: list, output_tokens: int, ends_with_eos: bool, draft_steps: int) -> dict:
    """One request's counts (``REQUEST_KEYS``) from its ledger ``records`` ([sampled, drafted, lenient]
    per step, in order). Kept: the shortest prefix whose sampled tokens reach ``output_tokens`` (the
    length vLLM returned, EOS included); later steps ran after the request had ended and are counted
    as ``dropped_steps``. ``ends_with_eos``: the output's last token is an EOS (not counted, as in the
    HF backend); ``draft_steps``: draft forwards per drafting step (W, or 0 for n-gram lookup)."""
    total, kept = 0, 0
    while total < output_tokens and kept < len(records):
        total += records[kept][0]
        kept += 1
    if total < output_tokens:
        raise RuntimeError(f"the workers recorded {total} sampled tokens for a request whose output has "
                           f"{output_tokens}: its step records are incomplete")
    steps = records[:kept]
    verified = [r for r in steps if r[1] > 0 and r[0] > 0]
    accepted = sum(r[0] - 1 for r in verified)
    lenient = sum(r[2] for r in verified)
    return {"generated_tokens": output_tokens - int(ends_with_eos), "target_calls": kept,
            "draft_calls": draft_steps * sum(1 for r in steps if r[0] > 0), "cycles": len(verified),
            "drafted_tokens": sum(r[1] for r in verified), "accepted_exact": accepted - lenient,
            "accepted_lenient": lenient, "dropped_steps": len(records) - kept}


def scheduler_agrees(counts: dict, spec_metrics) -> bool | None:
    """Whether a request's kept verification steps match what vLLM's scheduler counted for it
    (``CompletionOutput.spec_decode_metrics``: ``histogram`` of accepted tokens per step and
    ``num_draft_tokens``); None when vLLM reported nothing."""
    if spec_metrics is None:
        return None
    histogram = list(spec_metrics.histogram)
    return (sum(histogram) == counts["cycles"]
            and sum(j * n for j, n in enumerate(histogram)) == counts["accepted_exact"] + counts["accepted_lenient"]
            and spec_metrics.num_draft_tokens == counts["drafted_tokens"])


def external_request_id(internal: str, external_ids) -> str | None:
    """The id a caller gave (``RequestOutput.request_id``) of a worker-side request id: vLLM appends
    '-' and 8 random characters unless VLLM_DISABLE_REQUEST_ID_RANDOMIZATION is set."""
    if internal in external_ids:
        return internal
    head, _, tail = internal.rpartition("-")
    return head if len(tail) == 8 and head in external_ids else None


def ends_with_eos(completion) -> bool:
    """A vLLM ``CompletionOutput`` ended at an EOS, which vLLM keeps in ``token_ids`` (finish reason
    "stop" without a stop string or stop token id)."""
    return completion.finish_reason == "stop" and completion.stop_reason is None and len(completion.token_ids) > 0


def generated_tokens(outputs) -> int:
    """Output tokens of vLLM ``RequestOutput``s (first completions), without a final EOS (HF's count)."""
    return sum(len(o.outputs[0].token_ids) - int(ends_with_eos(o.outputs[0])) for o in outputs)


def outputs_counts(outputs, records_by_id: dict, draft_steps: int) -> list[dict]:
    """``request_counts`` of each vLLM ``RequestOutput`` (first completion) from the workers'
    ``autojudge_requests`` report, plus ``scheduler_agrees`` (None after a stop string: the
    scheduler counts the steps it ran before the driver's abort arrived)."""
    ids = {o.request_id for o in outputs}
    by_external = {}
    for internal, records in records_by_id.items():
        external = external_request_id(internal, ids)
        if external is not None:
            by_external.setdefault(external, []).extend(records)
    counts = []
    for output in outputs:
        completion = output.outputs[0]
        one = request_counts(by_external.get(output.request_id, []), len(completion.token_ids),
                             ends_with_eos(completion), draft_steps)
        stopped_by_string = isinstance(completion.stop_reason, str)
        one["scheduler_agrees"] = None if stopped_by_string else scheduler_agrees(
            one, getattr(completion, "spec_decode_metrics", None))
        counts.append(one)
    return counts


def summarize(requests: list[dict], engine: dict, wall_time_s: float) -> dict:
    """``DecodingStats.summary()`` of the per-request counts (``outputs_counts``), so that every
    ``*_per_request`` means what it means in the HF backend; plus ``engine``-wide counts (a
    ``subtract`` of two snapshots): batched forward passes, vLLM's spec-decode counters (which include
    steps past a request's end), accepted per position, and the sampler's own counts."""
    total = {key: sum(r[key] for r in requests) for key in REQUEST_KEYS}
    stats = DecodingStats(**{k: total[k] for k in REQUEST_KEYS if k != "dropped_steps"},
                          wall_time_s=wall_time_s, requests=len(requests))
    cycles = engine["engine_cycles"]
    return {
        **stats.summary(),
        "dropped_steps": total["dropped_steps"],
        "scheduler_mismatches": sum(1 for r in requests if r.get("scheduler_agrees") is False),
        "batched": {"target_forwards": engine["target_forwards"], "draft_forwards": engine["draft_forwards"],
                    **{key: engine[key] for key in COUNTERS}},
        "mean_acceptance_length": 1 + engine["engine_accepted_tokens"] / cycles if cycles else 0.0,
        "accepted_per_position": engine["accepted_per_position"],
        "acceptance_rate_per_position": [a / cycles for a in engine["accepted_per_position"]] if cycles else [],
        "sampler": {key: engine[key] for key in ("accepted_exact", "accepted_lenient", "judge_accepted_per_position",
                                                 "stock_cycles", "rejected_windows", "end_stops")},
    }
