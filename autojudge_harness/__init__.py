"""AutoJudge: lossy judge speculative decoding (reference implementation).

Light on import: submodules load torch/transformers only when used.
"""

__version__ = "0.1.0"
