"""The acceptance settings: what decoding does with a drafted token that differs from the
target's own, built and validated in this one place for every backend.

A settings object names one lenient rule of the registry (``autojudge_harness.rules``: judge, top_k,
oracle, judi, fly, trt, ensemble) with its parameters, or none (``lossless``: exact matches only),
and the end guard (on by default: no rule accepts a mismatch where the target's own token ends the
answer; off is the paper-exact rule). Parameters are model_arg keys unique across rules, so the
rule can be named (``rule=judi,judi_tau=0.3``) or follow from them (``judge=FILE``,
``accept_top_k=3``). Bad combinations are errors: a threshold without a judge, parameters of two
rules. Values from the command line (strings) are converted here; every error names its key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .judge import JudgeFileError, load_judge
from .rules import RULES, Rule, RuleError, param_owner, rule_class

DEFAULT_WINDOW = 8   # W, draft tokens per cycle: the one default of every backend and job
PATH_PARAMS = ("judge", "oracle")   # file parameters: absolute paths (engine workers may run elsewhere)


class SettingsError(ValueError):
    """Acceptance settings (or model_args) that cannot run, with the offending key named."""


@dataclass(frozen=True, init=False)
class AcceptanceSettings:
    """``rule``: a registry name or None (lossless); ``params``: its parameter values (sorted
    (key, value) pairs, converted and checked); ``end_guard``. Legacy keywords ``judge``,
    ``threshold``, ``accept_top_k``, ``oracle`` are parameters of the judge / top_k / oracle rules.
    Validated on construction; ``build_rule`` makes the rule object (loads the judge or oracle)."""

    rule: str | None
    params: tuple
    end_guard: bool

    def __init__(self, rule: str | None = None, params: Mapping | None = None, end_guard: bool = True, *,
                 judge=None, threshold=None, accept_top_k=None, oracle=None):
        given = dict(params or {})
        given |= {k: v for k, v in (("judge", judge), ("threshold", threshold), ("accept_top_k", accept_top_k),
                                    ("oracle", oracle)) if v is not None}
        values = converted(given)
        rule = resolve_rule(rule, values)
        for key in PATH_PARAMS:
            value = values.get(key)
            if value is not None and not Path(value).is_absolute():
                raise SettingsError(f"{key} must be an absolute path (engine workers may run elsewhere), got {value!r}")
        if not isinstance(end_guard, bool):
            raise SettingsError(f"end_guard must be true or false, got {end_guard!r}")
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "params", tuple(sorted(values.items())))
        object.__setattr__(self, "end_guard", end_guard)
        if rule in ("judge", "oracle") and self.param(rule) is None:
            raise SettingsError(f"the {rule} rule needs a file: give {rule}=PATH")
        if rule == "top_k" and self.accept_top_k is None:
            raise SettingsError("the top_k rule needs accept_top_k=K")

    @classmethod
    def from_args(cls, judge=None, threshold=None, accept_top_k=None, oracle=None, end_guard=True, rule=None,
                  **rule_params) -> "AcceptanceSettings":
        """From user input (model_args, CLI flags; strings or values): converts numbers and booleans,
        resolves the paths and checks that a judge (oracle) file is valid (cheap: no model is loaded).
        Empty strings count as not given."""
        given = {k: v for k, v in dict(rule_params, judge=judge, threshold=threshold, accept_top_k=accept_top_k,
                                       oracle=oracle).items() if v not in ("", None)}
        if given.get("judge") is not None:
            path = Path(str(given["judge"])).expanduser().resolve()
            if not path.is_file():
                raise JudgeFileError(f"judge file not found: {given['judge']}")
            load_judge(path)  # JudgeFileError naming the problem
            given["judge"] = str(path)
        if given.get("oracle") is not None:
            from .oracle import load_oracle

            given["oracle"] = str(Path(str(given["oracle"])).expanduser().resolve())
            load_oracle(given["oracle"])  # OracleFileError naming the problem
        return cls(rule if rule not in ("", None) else None, given, boolean(end_guard, "end_guard"))

    def param(self, key: str):
        """The value of the rule parameter ``key`` (None when not set or not this rule's)."""
        return dict(self.params).get(key)

    @property
    def mode(self) -> str:
        """The rule's name, or "lossless"."""
        return self.rule or "lossless"

    @property
    def judge(self) -> str | None:
        return self.param("judge")

    @property
    def threshold(self) -> float | None:
        return self.param("threshold")

    @property
    def accept_top_k(self) -> int | None:
        return self.param("accept_top_k")

    @property
    def oracle(self) -> str | None:
        return self.param("oracle")

    def build_rule(self) -> Rule | None:
        """The rule object (judge or oracle file loaded), or None for lossless. Built once per backend."""
        return None if self.rule is None else rule_class(self.rule)(**dict(self.params))

    def with_params(self, **values) -> "AcceptanceSettings":
        """The same rule with some parameters changed."""
        return AcceptanceSettings(self.rule, {**dict(self.params), **values}, self.end_guard)

    def to_dict(self) -> dict:
        """Flat and JSON-ready: {"rule", "end_guard", **params}; ``from_dict`` reads it back."""
        return {"rule": self.rule, "end_guard": self.end_guard, **dict(self.params)}

    @classmethod
    def from_dict(cls, entry: Mapping) -> "AcceptanceSettings":
        """Read back ``to_dict`` (e.g. inside a vLLM worker); unknown keys are refused."""
        if not isinstance(entry, Mapping):
            raise SettingsError(f"acceptance settings must be a mapping, got {type(entry).__name__}")
        known = {"rule", "end_guard", *param_owner()}
        unknown = set(entry) - known
        if unknown:
            raise SettingsError(f"acceptance settings have unknown keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
        params = {k: v for k, v in entry.items() if k not in ("rule", "end_guard")}
        return cls(entry.get("rule"), params, entry.get("end_guard", True))


def converted(given: Mapping) -> dict:
    """The given rule parameters (None values dropped) converted and checked by their rule's ``Param``."""
    owners = param_owner()
    unknown = [key for key in given if key not in owners]
    if unknown:
        raise SettingsError(f"unknown rule parameter {unknown[0]!r}")
    params = {p.key: p for name in set(owners.values()) for p in rule_class(name).params}
    try:
        values = {key: params[key].convert(value) for key, value in given.items()}
    except RuleError as error:
        raise SettingsError(str(error)) from None
    return {key: value for key, value in values.items() if value is not None}


def resolve_rule(rule: str | None, given: Mapping) -> str | None:
    """The rule named, or the one the given parameters belong to; SettingsError when they disagree,
    belong to two rules, or a threshold comes without a judge."""
    if rule is not None and rule not in RULES:
        raise SettingsError(f"unknown rule {rule!r}; known rules: {', '.join(RULES)} (or none: lossless)")
    owners = param_owner()
    rules = sorted({owners[key] for key, value in given.items() if value is not None})
    if given.get("threshold") is not None and given.get("judge") is None and rule in (None, "judge"):
        raise SettingsError("threshold needs a judge file (judge=...); without one decoding is lossless")
    if len(rules) > 1:
        keys = ", ".join(sorted(k for k in given if given[k] is not None))
        raise SettingsError(f"{' and '.join(rules)} are alternative lenient rules (given: {keys}): give one rule's "
                            "parameters")
    if rule is not None and rules and rules != [rule]:
        raise SettingsError(f"rule={rule} does not take {', '.join(k for k in given if owners[k] != rule)} "
                            f"(parameters of {rules[0]})")
    return rule or (rules[0] if rules else None)


def number(value, kind, key: str):
    """``value`` (None, a number or a string) as ``kind`` (int or float); SettingsError naming ``key``."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise SettingsError(f"{key} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            raise SettingsError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise SettingsError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if isinstance(value, (int, float)):
        return kind(value)
    raise SettingsError(f"{key} must be a number, got {value!r}")


def check_window(window) -> int:
    """W (draft tokens per cycle) as an int >= 1, from an int or a string; SettingsError otherwise."""
    try:
        value = number(window, int, "window")
    except SettingsError:
        value = None
    if value is None or value < 1:
        raise SettingsError(f"window must be an integer >= 1, got {window!r}")
    return value


def boolean(value, key: str) -> bool:
    """true/false/1/0 (strings from model_args, or bools); SettingsError naming ``key``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise SettingsError(f"{key} must be true or false, got {value!r}")
