"""Mining important tokens (AutoJudge Algorithm 1) with features captured during mining.

- ``mining.algorithm``: ``Miner`` (Algorithm 1 for one prompt, KV-cache reuse), ``Equivalence``
  protocol and ``GSM8KEquivalence``;
- ``mining.batched``: ``BatchedMiner`` (Algorithm 1 for many prompts at once, one forward per model
  for all of them; same labels as ``Miner``);
- ``mining.store``: the sharded, append-only, crash-safe record format, resume and merge;
- ``mining.pipeline``: questions -> prompts (built by the lm-eval task) -> shards; GSM8K wired here;
- ``mining.lcb``: LiveCodeBench problems, with the pass/fail-of-the-tests equivalence;
- ``mining.oracle``: the perfect judge's producer (Algorithm 1 on an evaluation task's prompts);
- ``mining.cli``: ``autojudge mine``.
Design and record format: docs/mining.md and mining/README.md.
"""
