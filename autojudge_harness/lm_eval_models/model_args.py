"""model_args checks shared by the AutoJudge lm-eval models: unknown keys are refused naming the
closest known one, before any model is loaded."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable

from ..settings import SettingsError

# what lm-eval itself passes to every model's constructor (CLI and simple_evaluate)
LM_EVAL_KEYS = frozenset({"batch_size", "max_batch_size", "device"})


def parameters(*callables) -> set[str]:
    """Named parameters of ``callables`` (``self``, ``*args`` and ``**kwargs`` excluded)."""
    names = set()
    for fn in callables:
        for name, p in inspect.signature(fn).parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                names.add(name)
    return names


def check_known(model: str, given: Iterable[str], own: Iterable[str], passed_on: Iterable[str] = (),
                passed_to: str = "") -> None:
    """SettingsError for the first key of ``given`` that is neither ``own`` (the model's keys),
    ``passed_on`` (keys of the wrapped lm-eval class ``passed_to``) nor one lm-eval itself passes."""
    own = set(own)
    known = own | set(passed_on) | LM_EVAL_KEYS
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(own) + sorted(known - own), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            also = f", and {passed_to}'s arguments" if passed_to else ""
            raise SettingsError(f"{model}: unknown model_arg {key!r}{hint} (its keys: {', '.join(sorted(own))}{also})")
