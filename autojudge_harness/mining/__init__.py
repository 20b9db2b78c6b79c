"""Mining important tokens (AutoJudge Algorithm 1) with features captured during mining.

- ``mining.algorithm``: ``Miner`` (Algorithm 1 for one prompt, KV-cache reuse), ``Equivalence``
  protocol and ``GSM8KEquivalence``;
- ``mining.batched``: ``BatchedMiner`` (Algorithm 1 for many prompts at once, one forward per model
  for all of them; same labels as ``Miner``);
- ``mining.store``: the sharded, append-only, crash-safe record format, resume and merge;
- ``mining.pipeline``: GSM8K prompts (built by the lm-eval task) -> shards; used by scripts/mine.py.
"""
