"""Model pairs for engines that load every model from a directory (vLLM): derived drafts exported
as transformers checkpoints, and the vLLM presets.

A derived draft ``layers:K`` (``drafts.py``: the target's embeddings, first K decoder layers, final
norm and lm_head) is an ordinary checkpoint of the target's architecture with K layers, so it is
exported as one (``export_draft``) and cached under ``$AUTOJUDGE_CACHE/drafts/``. Modifiers are not
exported: an ``+exit`` head cannot be folded exactly into a Llama checkpoint (its input is the raw
residual stream, which the checkpoint's final RMS norm rescales; folded, the SmolLM2 draft's greedy
agreement with the target fell to 0.55 against 0.695 for the plain ``layers:28``), and ``+int8`` /
``+bf16`` are engine settings there.

vLLM presets are JSON files ``presets/NAME-vllm.json`` beside this module: ``target`` and ``draft``
model references, ``judge`` (a file shipped in ``classifiers/``) and ``window``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .drafts import PRESETS_DIR, parse_draft_reference
from .models import EMBEDDED_TARGET, cache_dir, embedded_target_dir
from .resources import shipped_classifier


@dataclass(frozen=True)
class EnginePair:
    """A target/draft pair as an engine loads it: directories (or hub ids) ``target_path`` and
    ``draft_path``; ``target`` and ``draft`` are the references a judge file names (its identity)."""

    target: str
    draft: str
    target_path: str
    draft_path: str


def export_draft(target: str, draft: str, out: str | Path) -> Path:
    """Write the derived draft ``draft`` (``layers:K``, no modifiers) of the model ``target`` as a
    transformers checkpoint (weights, config, tokenizer) into the new directory ``out``."""
    spec = parse_draft_reference(draft)
    if spec is None:
        raise ValueError(f"draft {draft!r} is not a derived draft reference (layers:K)")
    if spec.modifiers:
        raise ValueError(f"draft {draft!r}: only plain layers:K can be exported (+{'+'.join(spec.modifiers)} is not "
                         "an exact part of a checkpoint; see autojudge_harness/draft_export.py)")
    from .drafts import build_draft
    from .models import load_causal_lm, load_tokenizer

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"export directory {out} exists already")
    model = build_draft(load_causal_lm(target), spec)
    model.save_pretrained(out)
    load_tokenizer(target).save_pretrained(out)
    return out


def exported_draft_dir(target: str, draft: str) -> Path:
    """The cached export of ``draft`` for ``target`` (``export_draft`` on first use; concurrent
    exporters race harmlessly)."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{target}--{draft}").strip("-")
    out = cache_dir() / "drafts" / name
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".export-"))
    export_draft(target, draft, tmp / "draft")
    try:
        (tmp / "draft").rename(out)
    except OSError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def engine_path(reference: str) -> str:
    """A model reference as an engine loads it: the embedded target's converted directory, others as given."""
    return str(embedded_target_dir()) if reference == EMBEDDED_TARGET else reference


def engine_pair(target: str, draft: str) -> EnginePair:
    """``target`` and ``draft`` references resolved to loadable paths: the embedded target to its
    converted directory, a derived draft to its export; other references (directories, hub ids) as given."""
    target_path = engine_path(target)
    draft_path = str(exported_draft_dir(target, draft)) if parse_draft_reference(draft) is not None else draft
    return EnginePair(target, f"{target}/{draft}" if draft_path != draft else draft, target_path, draft_path)


def vllm_preset(name: str) -> dict:
    """The vLLM preset ``name`` (``presets/NAME-vllm.json``): target, draft, judge (absolute path
    of the shipped file) and window; ValueError listing the known presets."""
    path = PRESETS_DIR / f"{name}-vllm.json"
    if not path.is_file():
        known = sorted(p.name[:-len("-vllm.json")] for p in PRESETS_DIR.glob("*-vllm.json"))
        raise ValueError(f"unknown vLLM preset {name!r}; known: {', '.join(known) or 'none'}")
    preset = json.loads(path.read_text())
    return {**preset, "judge": str(shipped_classifier(preset["judge"]))}
