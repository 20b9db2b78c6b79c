"""Mining important tokens (AutoJudge Algorithm 1) with features captured during mining.

- ``mining.algorithm``: ``Miner`` (Algorithm 1 for one prompt, KV-cache reuse), ``Equivalence``
  protocol and ``GSM8KEquivalence``;
- ``mining.store``: the sharded, append-only, crash-safe record format, resume and merge;
- ``mining.pipeline``: GSM8K prompts (built by the lm-eval task) -> shards; used by scripts/mine.py.
"""
