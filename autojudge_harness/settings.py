"""The acceptance settings: what decoding does with a drafted token that differs from the
target's own, built and validated in this one place for every backend.

Modes: ``lossless`` (no lenient rule: only exact matches are accepted), ``judge`` (a judge file;
accept a mismatch when P(important) < ``threshold``, default the file's own), ``top_k`` (the top-K
baseline: accept a mismatch that is among the target's K best tokens), ``oracle`` (the perfect
judge: an oracle file of the mismatches Algorithm 1 labelled unimportant on the evaluated prompts,
``autojudge oracle``). ``end_guard`` (on by default): no lenient rule accepts a mismatch where the
target's own token ends the answer (``acceptance``); off is the paper-exact rule. One policy for bad
combinations: a threshold without a judge, or two lenient rules at once, is an error. Values from
the command line (strings) are converted here; every error names its key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .judge import Judge, JudgeFileError, load_judge

DEFAULT_WINDOW = 8   # W, draft tokens per cycle: the one default of every backend and job

FIELDS = ("judge", "threshold", "accept_top_k", "oracle", "end_guard")


class SettingsError(ValueError):
    """Acceptance settings (or model_args) that cannot run, with the offending key named."""


@dataclass(frozen=True)
class AcceptanceSettings:
    """judge: absolute path of a judge file, or None; threshold: None = the judge file's;
    accept_top_k: K of the top-K baseline, or None; oracle: absolute path of an oracle file, or None;
    end_guard: the end guard on (default) or off. Validated on construction."""

    judge: str | None = None
    threshold: float | None = None
    accept_top_k: int | None = None
    oracle: str | None = None
    end_guard: bool = True

    def __post_init__(self):
        for key in ("judge", "oracle"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not Path(value).is_absolute()):
                raise SettingsError(f"{key} must be an absolute path (engine workers may run elsewhere), got {value!r}")
        if not isinstance(self.end_guard, bool):
            raise SettingsError(f"end_guard must be true or false, got {self.end_guard!r}")
        rules = [key for key in ("judge", "accept_top_k", "oracle") if getattr(self, key) is not None]
        if len(rules) > 1:
            raise SettingsError(f"{' and '.join(rules)} are alternative lenient rules: give one of judge, "
                                "accept_top_k, oracle")
        if self.threshold is not None:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                    or not math.isfinite(self.threshold) or self.threshold < 0:
                raise SettingsError(f"threshold must be a finite number >= 0, got {self.threshold!r}")
            if self.judge is None:
                raise SettingsError("threshold needs a judge file (judge=...); without one decoding is lossless")
        if self.accept_top_k is not None:
            if isinstance(self.accept_top_k, bool) or not isinstance(self.accept_top_k, int) or self.accept_top_k < 1:
                raise SettingsError(f"accept_top_k must be an integer >= 1, got {self.accept_top_k!r}")

    @classmethod
    def from_args(cls, judge=None, threshold=None, accept_top_k=None, oracle=None,
                  end_guard=True) -> "AcceptanceSettings":
        """From user input (model_args, CLI flags; strings or values): converts numbers and booleans,
        resolves the paths and checks that the judge (oracle) file is valid (cheap: no model is loaded)."""
        if judge in ("", None):
            judge = None
        else:
            path = Path(str(judge)).expanduser().resolve()
            if not path.is_file():
                raise JudgeFileError(f"judge file not found: {judge}")
            load_judge(path)  # JudgeFileError naming the problem
            judge = str(path)
        if oracle in ("", None):
            oracle = None
        else:
            from .oracle import load_oracle

            oracle = str(Path(str(oracle)).expanduser().resolve())
            load_oracle(oracle)  # OracleFileError naming the problem
        return cls(judge, number(threshold, float, "threshold"), number(accept_top_k, int, "accept_top_k"), oracle,
                   boolean(end_guard, "end_guard"))

    @property
    def mode(self) -> str:
        if self.judge:
            return "judge"
        return "top_k" if self.accept_top_k else "oracle" if self.oracle else "lossless"

    def load_judge(self) -> Judge | None:
        return load_judge(self.judge) if self.judge else None

    def load_oracle(self):
        """The oracle file's table (``autojudge_harness.oracle.Oracle``), or None."""
        from .oracle import load_oracle

        return load_oracle(self.oracle) if self.oracle else None

    def resolved_threshold(self, judge: Judge | None) -> float:
        """The threshold in force: the settings', else the judge file's (0 without a judge)."""
        if self.threshold is not None:
            return float(self.threshold)
        return float(judge.threshold) if judge is not None else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: Mapping) -> "AcceptanceSettings":
        """Read back ``to_dict`` (e.g. inside a vLLM worker); unknown keys are refused."""
        if not isinstance(entry, Mapping):
            raise SettingsError(f"acceptance settings must be a mapping, got {type(entry).__name__}")
        unknown = set(entry) - set(FIELDS)
        if unknown:
            raise SettingsError(f"acceptance settings have unknown keys {sorted(unknown)}; known: {', '.join(FIELDS)}")
        return cls(**entry)


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
