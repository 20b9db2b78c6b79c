"""LiveCodeBench data and extraction (autojudge_harness.livecodebench; the prompts are in
test_lcb_prompts, hub-typed data in test_lcb_hub), the restricted unpickler, the bundled problems,
and the lm-eval tasks (offline; the CLI run is marked slow)."""

from __future__ import annotations

import ast
import base64
import glob
import importlib.util
import json
import os
import pickle
import subprocess
import zlib
from pathlib import Path

import pytest

from autojudge_harness import livecodebench as lcb
from autojudge_harness.grading import Grader
from autojudge_harness.lcb_prompts import STYLES
from autojudge_harness.resources import tasks_path, bundled_problems

TASKS = tasks_path()
BUNDLED = TASKS / "livecodebench_bundled" / "problems.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}


def builder():
    spec = importlib.util.spec_from_file_location("build_problems", TASKS / "livecodebench_bundled" / "build_problems.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encode_raw(payload: bytes) -> str:
    return base64.b64encode(zlib.compress(payload)).decode()


# -- the restricted unpickler ---------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_unpickler_rejects_code_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    for protocol in (0, 2, 4, 5):
        payload = encode_raw(pickle.dumps(_RunsCode(marker), protocol=protocol))
        with pytest.raises(lcb.UnsafePickleError, match="refusing to unpickle (posix|os)\\.system"):
            lcb.decode_private_tests(payload, "problem x")
    nested = encode_raw(pickle.dumps([{"input": "1", "output": _RunsCode(marker)}]))
    with pytest.raises(lcb.UnsafePickleError, match="problem y: refusing"):
        lcb.decode_private_tests(nested, "problem y")
    builtin = encode_raw(b"cbuiltins\neval\n(S'__import__(\"os\").system(\"touch " + str(marker).encode() + b"\")'\ntR.")
    with pytest.raises(lcb.UnsafePickleError, match="builtins.eval"):
        lcb.decode_private_tests(builtin)
    assert not marker.exists()


def test_unpickler_admits_plain_data():
    data = {"s": "x", "i": 3, "f": 1.5, "b": True, "n": None, "l": [1, 2], "t": (1, "a"), "by": b"\x00"}
    assert lcb.load_plain_pickle(pickle.dumps(data, protocol=4)) == data
    tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    assert lcb.decode_private_tests(lcb.encode_private_tests(tests)) == tests
    assert lcb.decode_private_tests(json.dumps(tests)) == tests  # plain JSON is accepted too (as lcb_runner)


def test_private_test_decoding_errors(monkeypatch):
    with pytest.raises(ValueError, match="p1: neither JSON nor base64"):
        lcb.decode_private_tests("not base64 !!", "p1")
    with pytest.raises(ValueError, match="corrupt pickled tests"):
        lcb.decode_private_tests(encode_raw(b"\x80\x04garbage"), "p2")
    with pytest.raises(ValueError, match="must be JSON text, got list"):
        lcb.decode_private_tests(encode_raw(pickle.dumps([1, 2])), "p3")
    with pytest.raises(ValueError, match="test 0 must be an object"):
        lcb.decode_private_tests(encode_raw(pickle.dumps(json.dumps([{"input": 1}]))), "p4")
    monkeypatch.setattr(lcb, "MAX_DECOMPRESSED_BYTES", 1000)
    with pytest.raises(ValueError, match="exceed 1000 bytes"):
        lcb.decode_private_tests(encode_raw(pickle.dumps("x" * 5000)), "p5")


# -- extraction -------------------------------------------------------------------------------------


def bundled_problems() -> list[lcb.Problem]:
    return [lcb.problem_from_row(row) for row in lcb.read_lcb_jsonl(BUNDLED)]


def test_extract_code_takes_the_last_fenced_block():
    assert lcb.extract_code("```python\nprint(1)\n```") == "print(1)"
    text = "First:\n```python\nprint(1)\n```\nBetter:\n```\nprint(2)\nprint(3)\n```\nDone."
    assert lcb.extract_code(text) == "print(2)\nprint(3)"
    assert lcb.extract_code("print(1)") is None
    assert lcb.extract_code("```python\nprint(1)\n") is None  # unterminated (e.g. cut by max_gen_toks)
    assert lcb.extract_code("```python\n```") == ""


# -- data -----------------------------------------------------------------------------------------------


def test_bundled_problems_load_and_reference_solutions_pass(tmp_path):
    problems = bundled_problems()
    assert len(problems) == 10
    assert {p.fn_name is None for p in problems} == {True, False}  # both styles
    assert all(p.public_tests and len(p.tests()) > len(p.public_tests) for p in problems)
    raw = [json.loads(line) for line in BUNDLED.read_text().splitlines()]
    assert all(not r["private_test_cases"].lstrip().startswith("[") for r in raw)  # the hub's encoding
    build = builder()
    built = build.build()
    assert [lcb.problem_from_row(r).tests() for r in built] == [p.tests() for p in problems]  # file is current
    references = build.reference_solutions()
    grader = Grader(timeout=10.0, tmp_root=str(tmp_path))
    verdicts = grader.grade_many([(references[p.question_id], p.tests(), p.fn_name) for p in problems], workers=2)
    assert [v.status for v in verdicts] == ["passed"] * 10
    wrong = lcb.grade_programs(problems[:2], [lcb.extract_program(c) for c in ("```python\nprint(7)\n```", "none")],
                               grader)
    assert [v.status for v in wrong] == ["wrong_answer", "no_code"] and wrong[0].tests_passed == 2


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_malformed_data_errors_name_file_and_line(tmp_path):
    good = lcb.read_lcb_jsonl(BUNDLED)[0]
    cases = [
        (["{not json"], ":1: invalid JSON"),
        ([good, {k: v for k, v in good.items() if k != "metadata"}], ":2: missing columns \\['metadata'\\]"),
        ([{**good, "question_title": 5}], ":1: column 'question_title' must be a string"),
        ([{**good, "public_test_cases": "[{\"input\": 1}]"}], ":1: public_test_cases: test 0 must be an object"),
        ([{**good, "metadata": "{\"func_name\": \"not an id\"}"}], "not a Python identifier"),
        ([{**good, "metadata": json.dumps({"func_name": "f"})}], "public test 0 is 'stdin' but the problem is 'functional'"),
        ([good, "", good], ":3: duplicate question_id 'lcbb01' \\(first on line 1\\)"),
    ]
    for i, (rows, message) in enumerate(cases):
        path = write_rows(tmp_path / f"bad{i}.jsonl", rows)
        with pytest.raises(ValueError, match=f"{path.name}{message}" if message.startswith(":") else message):
            lcb.read_lcb_jsonl(path)
    with pytest.raises(ValueError, match="no problems"):
        lcb.read_lcb_jsonl(write_rows(tmp_path / "empty.jsonl", [""]))
    broken = lcb.problem_from_row({**good, "private_test_cases": "%%%"})
    with pytest.raises(ValueError, match="problem lcbb01: private_test_cases: neither JSON"):
        broken.tests()


def test_hub_release_names():
    assert lcb.RELEASE_FILES["release_v5"] == ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl"]
    assert lcb.RELEASE_FILES["release_latest"][-1] == "test6.jsonl"
    with pytest.raises(ValueError, match="unknown LiveCodeBench release 'v9'"):
        lcb.load_hub_rows("v9")


# -- lm-eval tasks ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS), include_defaults=False)


def test_tasks_config_and_scoring(manager, tmp_path):
    names = {"autojudge_lcb_bundled"} | {f"autojudge_lcb_release_v{i}" for i in range(1, 7)} | {"autojudge_lcb_release_latest"}
    assert names <= set(manager.all_tasks)
    task = manager.load(["autojudge_lcb_bundled"])["tasks"]["autojudge_lcb_bundled"]
    assert task.UNSAFE_CODE and not task.config.description  # the task class builds the prompt (test_lcb_prompts)
    assert task.config.generation_kwargs["do_sample"] is False and task.config.generation_kwargs["max_gen_toks"] == 256
    docs = list(task.eval_docs)
    messages = task.fewshot_context(docs[6], num_fewshot=0, apply_chat_template=True,
                                    chat_template=lambda m, add_generation_prompt=True: m)
    assert messages == STYLES["generic"].build(lcb.problem_from_row(docs[6])).messages()
    references = builder().reference_solutions()
    resps = [[f"Here:\n```python\n{references[docs[0]['question_id']]}\n```"], ["```python\nprint(1)\n```"], ["none"]]
    from lm_eval.api.instance import Instance

    ensemble = task._filters[0]
    instances = [Instance("generate_until", doc, ("", {}), i, resps=r) for i, (doc, r) in enumerate(zip(docs, resps))]
    ensemble.apply(instances)
    scores = [task.process_results(inst.doc, [inst.filtered_resps["sandbox"]]) for inst in instances]
    assert scores == [{"pass@1": 1.0}, {"pass@1": 0.0}, {"pass@1": 0.0}]
    assert instances[2].filtered_resps["sandbox"]["status"] == "no_code"
    logged = instances[0].filtered_resps["sandbox"]  # what --log_samples records
    assert logged["isolation"] in ("bwrap", "unshare") and logged["semantics"] == "lcb"


def test_task_grader_follows_the_environment(monkeypatch):
    spec = importlib.util.spec_from_file_location("lcb_task_utils", TASKS / "livecodebench" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    assert (utils.grader().isolation, utils.grader().semantics) == ("auto", "lcb")
    monkeypatch.setenv("AUTOJUDGE_SANDBOX", "guard")
    monkeypatch.setenv("AUTOJUDGE_LCB_SEMANTICS", "intent")
    assert (utils.grader().isolation, utils.grader().semantics) == ("guard", "intent")
    monkeypatch.setenv("AUTOJUDGE_SANDBOX", "docker")
    with pytest.raises(ValueError, match="unknown isolation 'docker'"):
        utils.grader()


def test_real_task_reads_a_local_file(monkeypatch, tmp_path):
    from lm_eval.tasks import TaskManager

    path = write_rows(tmp_path / "lcb.jsonl", lcb.read_lcb_jsonl(BUNDLED)[:3])
    monkeypatch.setenv("AUTOJUDGE_LCB_JSONL", str(path))
    task = TaskManager(include_path=str(TASKS), include_defaults=False).load(
        ["autojudge_lcb_release_v5"])["tasks"]["autojudge_lcb_release_v5"]
    assert [d["question_id"] for d in task.eval_docs] == ["lcbb01", "lcbb02", "lcbb03"]
    assert task.config.generation_kwargs["max_gen_toks"] == 2048 and task.UNSAFE_CODE


@pytest.mark.slow
def test_cli_runs_with_confirmation_and_refuses_without(tmp_path):
    out = tmp_path / "out"
    base = ["lm_eval", "--model", "autojudge_hf", "--model_args", "preset=smollm2-135m,window=8,threshold=0",
            "--tasks", "autojudge_lcb_bundled", "--include_path", str(TASKS), "--limit", "2",
            "--gen_kwargs", "max_gen_toks=40", "--apply_chat_template", "--device", "cpu"]
    refused = subprocess.run(base, capture_output=True, text=True, env=ENV, timeout=900)
    assert refused.returncode != 0
    assert "unsafe" in (refused.stderr + refused.stdout) and "confirm_run_unsafe_code" in refused.stderr + refused.stdout
    run = subprocess.run(base + ["--confirm_run_unsafe_code", "--output_path", str(out), "--log_samples"],
                         capture_output=True, text=True, env=ENV, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    [results_file] = glob.glob(str(out / "*" / "results_*.json"))
    results = json.loads(Path(results_file).read_text())
    assert results["results"]["autojudge_lcb_bundled"]["pass@1,sandbox"] in (0.0, 0.5, 1.0)
    assert results["config"]["autojudge"]["stats"]["requests"] == 2
    [samples_file] = glob.glob(str(out / "*" / "samples_autojudge_lcb_bundled_*.jsonl"))
    samples = [json.loads(line) for line in Path(samples_file).read_text().splitlines()]
    assert len(samples) == 2
    for sample in samples:  # the verdict of each greedy completion is logged (lm-eval writes str(dict))
        verdict = ast.literal_eval(sample["filtered_resps"][0])
        assert verdict["status"] in ("passed", "wrong_answer", "runtime_error", "compile_error", "no_code",
                                     "time_limit_exceeded", "memory_limit_exceeded")
        assert sample["pass@1"] == float(verdict["passed"])
