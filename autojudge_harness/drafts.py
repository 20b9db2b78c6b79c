"""Drafts derived from the target model (offline, same tokenizer).

A derived draft reference is ``layers:K`` followed by optional ``+modifier`` parts:

``layers:K``
    deep copy of the target's embeddings, first K layers, final norm and lm_head.
``+exit``
    replace the final norm by a shipped early-exit head: a linear map (hidden x hidden + bias)
    fit by least squares from the layer-K residual stream (optionally RMS-normalised first) to
    the target's final-norm hidden state. Looked up as ``presets/exit-head-L{K}.safetensors``
    next to this module; ``+exit:PATH`` names another file. The head's output is the draft's
    ``last_hidden_state`` (judge features) and goes through the target's lm_head.
``+int8``
    dynamic int8 quantization (``torch.ao.quantization.quantize_dynamic``) of the nn.Linear
    modules inside the decoder layers (not the exit head, not the lm_head: the decoding loop
    multiplies by ``get_output_embeddings().weight`` itself, which must stay a float tensor).
``+bf16``
    the whole draft in bfloat16.

References contain no ``,`` or ``=`` so they can travel inside lm-eval's ``model_args``.
The result is an ordinary transformers causal LM: ``draft(input_ids, cache=..., use_cache=True)`` (``past_key_values=`` before transformers 5.21)
gives logits and ``draft.model(...)`` gives ``last_hidden_state``; no module or parameter is
shared with the target.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import torch

PRESETS_DIR = Path(str(files("autojudge_harness") / "presets"))  # shipped exit heads
MODIFIERS = ("exit", "int8", "bf16")
_REF = re.compile(r"^layers:([^+]*)((?:\+.*)?)$")


@dataclass(frozen=True)
class DraftSpec:
    """A parsed derived-draft reference."""

    layers: int
    exit_head: str | None = None  # "" = the shipped head for ``layers``; else a path
    int8: bool = False
    bf16: bool = False
    modifiers: tuple[str, ...] = field(default=())


def parse_draft_reference(ref: str) -> DraftSpec | None:
    """Parse ``layers:K[+exit[:PATH]][+int8][+bf16]``; None when ``ref`` is not a derived draft."""
    if not ref.startswith("layers:"):
        return None
    match = _REF.match(ref)
    k_text, rest = match.group(1), match.group(2)
    try:
        k = int(k_text)
    except ValueError:
        raise ValueError(f"bad draft reference {ref!r}: expected layers:K with an integer K "
                         f"(then optional +{' +'.join(MODIFIERS)})") from None
    exit_head, int8, bf16, mods = None, False, False, []
    for part in rest.split("+")[1:]:
        name, _, arg = part.partition(":")
        if name not in MODIFIERS or (arg and name != "exit"):
            raise ValueError(f"bad draft reference {ref!r}: unknown modifier {part!r}; "
                             f"known: {', '.join('+' + m for m in MODIFIERS)} (+exit:PATH for another head file)")
        if name in mods:
            raise ValueError(f"bad draft reference {ref!r}: modifier +{name} given twice")
        mods.append(name)
        if name == "exit":
            exit_head = arg
        elif name == "int8":
            int8 = True
        else:
            bf16 = True
    if int8 and bf16:
        raise ValueError(f"bad draft reference {ref!r}: +int8 and +bf16 do not combine")
    return DraftSpec(k, exit_head, int8, bf16, tuple(mods))


def truncated_copy(model: torch.nn.Module, num_layers: int) -> torch.nn.Module:
    """A new model with deep copies of ``model``'s embeddings, first ``num_layers`` layers,
    final norm and lm_head (no shared modules, so hooks and caches stay separate)."""
    total = model.config.num_hidden_layers
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= total:
        raise ValueError(f"draft 'layers:{num_layers}' needs an integer 1 <= K <= {total} (the target's layer count)")
    layers = model.model.layers
    model.model.layers = torch.nn.ModuleList()  # keep the full stack out of the deep copy
    try:
        draft = copy.deepcopy(model)
    finally:
        model.model.layers = layers
    draft.model.layers = torch.nn.ModuleList(copy.deepcopy(layers[i]) for i in range(num_layers))
    draft.config = copy.deepcopy(model.config)
    draft.config.num_hidden_layers = num_layers
    draft.model.config = draft.config
    if getattr(draft.config, "layer_types", None):
        draft.config.layer_types = draft.config.layer_types[:num_layers]
    return draft.eval()


# ----------------------------------------------------------------------------- exit heads

class ExitHead(torch.nn.Module):
    """Early-exit head replacing ``model.norm``: ``proj(x / rms(x))`` (prenorm) or ``proj(x)``."""

    def __init__(self, hidden_size: int, prenorm: bool = True, eps: float = 1e-5):
        super().__init__()
        self.prenorm = prenorm
        self.eps = eps
        self.proj = torch.nn.Linear(hidden_size, hidden_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prenorm:
            x32 = x.float()
            x = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        return self.proj(x)


def target_fingerprint(model: torch.nn.Module) -> float:
    """A cheap identity check of a target: the sum of its final-norm weight."""
    return float(model.model.norm.weight.detach().float().sum())


def exit_head_path(num_layers: int, path: str = "") -> Path:
    return Path(path) if path else PRESETS_DIR / f"exit-head-L{num_layers}.safetensors"


def save_exit_head(head: ExitHead, path: str | Path, metadata: dict) -> None:
    """Write ``head`` as safetensors (metadata inside) plus a readable ``.json`` record next to it."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(metadata, prenorm=head.prenorm, eps=head.eps, hidden_size=head.proj.in_features)
    tensors = {k: v.detach().float().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(path), metadata={"record": json.dumps(meta)})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_exit_head(path: str | Path, model: torch.nn.Module, num_layers: int) -> ExitHead:
    """Load an exit head for ``model``'s first ``num_layers`` layers; ValueError on any mismatch."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"exit head file {path} not found; fit one with "
                         f"autojudge bench drafts --data GSM8K_TRAIN.jsonl --fit-exit-head {num_layers} --out {path}")
    with safe_open(str(path), framework="pt") as f:
        record = json.loads((f.metadata() or {}).get("record", "{}"))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    hidden = model.config.hidden_size
    expected = {"proj.weight": (hidden, hidden), "proj.bias": (hidden,)}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        raise ValueError(f"exit head {path} has tensors {got}; a model with hidden size {hidden} "
                         f"needs {expected}")
    if "layers" in record and int(record["layers"]) != num_layers:
        raise ValueError(f"exit head {path} was fit on layer {record['layers']}, not layer {num_layers}")
    fp = record.get("target_fingerprint")
    if fp is not None and abs(float(fp) - target_fingerprint(model)) > 1e-3 * max(1.0, abs(float(fp))):
        raise ValueError(f"exit head {path} was fit for another target ({record.get('target')!r}): "
                         f"final-norm fingerprint {fp} vs {target_fingerprint(model)}")
    head = ExitHead(hidden, prenorm=bool(record.get("prenorm", True)), eps=float(record.get("eps", 1e-5)))
    head.load_state_dict(tensors)
    return head.eval()


@torch.no_grad()
def fit_exit_head(residuals: torch.Tensor, finals: torch.Tensor, prenorm: bool = True,
                  eps: float = 1e-5, ridge: float = 0.0) -> tuple[ExitHead, dict]:
    """Closed-form least squares (float64) from residuals (N, H) to final hidden states (N, H).

    Returns the head and fit statistics (relative residual ``|XA - Y| / |Y|``)."""
    n, hidden = residuals.shape
    head = ExitHead(hidden, prenorm=prenorm, eps=eps)
    x = residuals.double()
    if prenorm:
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    x = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)
    y = finals.double()
    if ridge > 0:  # ridge via augmented rows
        x = torch.cat([x, ridge ** 0.5 * torch.eye(hidden + 1, dtype=x.dtype)[:hidden]], 0)
        y = torch.cat([y, torch.zeros(hidden, hidden, dtype=y.dtype)], 0)
    sol = torch.linalg.lstsq(x, y, driver="gelsd").solution  # (H+1, H)
    head.proj.weight.copy_(sol[:hidden].T.float())
    head.proj.bias.copy_(sol[hidden].float())
    pred = x[:n] @ sol
    rel = float((pred - y[:n]).norm() / y[:n].norm())
    return head.eval(), {"rows": n, "relative_residual": rel, "ridge": ridge}


# ----------------------------------------------------------------------------- building

def quantize_int8(draft: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of the decoder layers' nn.Linear modules (in place)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao eager quantization is deprecated in favour of torchao
        quantize_dynamic(draft.model.layers, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return draft


def build_draft(target: torch.nn.Module, ref: str | DraftSpec) -> torch.nn.Module:
    """The derived draft for ``ref`` (``layers:K[+exit][+int8][+bf16]``), built from ``target``."""
    spec = parse_draft_reference(ref) if isinstance(ref, str) else ref
    if spec is None:
        raise ValueError(f"{ref!r} is not a derived draft reference (layers:K...)")
    total = target.config.num_hidden_layers
    if not 1 <= spec.layers <= total:
        raise ValueError(f"draft 'layers:{spec.layers}' needs 1 <= K <= {total} (the target's layer count)")
    head = None
    if spec.exit_head is not None:
        if spec.layers == total:
            raise ValueError(f"+exit needs K < {total}: the full model already ends in the final norm")
        head = load_exit_head(exit_head_path(spec.layers, spec.exit_head), target, spec.layers)
    draft = truncated_copy(target, spec.layers)
    if head is not None:
        param = next(target.parameters())
        draft.model.norm = head.to(device=param.device, dtype=param.dtype)
    if spec.bf16:
        draft = draft.to(torch.bfloat16)
    if spec.int8:
        if next(draft.parameters()).device.type != "cpu":
            raise ValueError("+int8 (torch dynamic quantization) runs on CPU only")
        quantize_int8(draft)
    return draft.eval()
