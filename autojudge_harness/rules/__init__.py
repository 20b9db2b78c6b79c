"""The lenient acceptance rules, registered in one place (``RULES``: name -> "module:Class",
imported only when used). Adding a rule is one file with one ``base.Rule`` class and one line
here; settings, both backends, model_args, the sweep and the CLI help discover it from this table.
"""

from __future__ import annotations

import importlib

from .base import INPUTS, Inputs, Param, Rule, RuleError, missing_inputs

RULES = {
    "judge": "autojudge_harness.rules.judge:JudgeRule",
    "top_k": "autojudge_harness.rules.top_k:TopK",
    "oracle": "autojudge_harness.rules.oracle:OracleRule",
    "judi": "autojudge_harness.rules.judi:JuDi",
    "fly": "autojudge_harness.rules.fly:FLy",
    "trt": "autojudge_harness.rules.trt:TRTRelaxed",
    "ensemble": "autojudge_harness.rules.ensemble:Ensemble",
    "typical": "autojudge_harness.rules.typical:Typical",
}

__all__ = ["INPUTS", "RULES", "Inputs", "Param", "Rule", "RuleError", "missing_inputs", "param_owner", "rule_class"]


def rule_class(name: str) -> type[Rule]:
    """The registered rule ``name``; RuleError listing the known ones."""
    if name not in RULES:
        raise RuleError(f"unknown rule {name!r}; known rules: {', '.join(RULES)}")
    module, _, attr = RULES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def param_owner() -> dict[str, str]:
    """model_arg key -> the rule it belongs to (every rule parameter key is unique)."""
    owners = {}
    for name in RULES:
        for param in rule_class(name).params:
            if param.key in owners:
                raise RuleError(f"parameter {param.key!r} of rule {name} is also {owners[param.key]}'s")
            owners[param.key] = name
    return owners
