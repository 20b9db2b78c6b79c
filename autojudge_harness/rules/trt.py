"""TensorRT-LLM's relaxed acceptance (MTP), in probabilities.

    allowed_i = d_i in top-K(p_t)  and  p_t(d_i) >= p_t(top-1) - delta

p_t: softmax of the raw target logits. Defaults ``trt_top_k=1``, ``trt_delta=0`` are off (NVIDIA
used 10 and 0.6). TensorRT-LLM applies delta only inside a reasoning model's thinking span
(between ``<think>`` and ``</think>``); for models without one it is applied at every position
here. At delta 0 the authors' rule would still let an exact probability tie with the top-1 token
through; here delta 0 is off (nothing allowed), so it is bit-identical to lossless.
"""

from __future__ import annotations

import torch

from .base import Inputs, Param, Rule, softmax
from .top_k import top_k_allows


class TRTRelaxed(Rule):
    name = "trt"
    summary = "TensorRT-LLM relaxed: among the top-K and within delta of the top-1 probability"
    params = (Param("trt_top_k", int, 1, "K of the relaxed top-K (1: off)", off=1,
                    check=(lambda k: k >= 1, "an integer >= 1")),
              Param("trt_delta", float, 0.0, "delta, in probability (0: off)", off=0.0,
                    check=(lambda d: 0 <= d <= 1, "a probability in [0, 1]")))
    needs = frozenset({"target_logits"})
    grid = tuple({"trt_top_k": 10, "trt_delta": d} for d in (0.1, 0.2, 0.4, 0.6, 0.8))

    def local(self, x: Inputs) -> torch.Tensor:
        p = softmax(x.target_logits)
        near = p.gather(-1, x.draft_tokens.unsqueeze(-1)).squeeze(-1) >= p.max(-1).values - self["trt_delta"]
        return near & top_k_allows(x.draft_tokens, x.target_logits, self["trt_top_k"])
