"""The lm-eval task YAMLs under tasks/: loading, prompts, filters + scoring, data sources. Offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import lm_eval  # noqa: E402
import yaml  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
ZEROSHOT, EIGHTSHOT, BUNDLED = "autojudge_gsm8k_cot_llama_zeroshot", "autojudge_gsm8k_cot_llama", "autojudge_gsm8k_bundled"
INSTRUCTION = (
    "Given the following problem, reason and give a final answer to the problem.\nProblem: {q}\n"
    'Your response should end with "The final answer is [answer]" where [answer] is the response to the problem.'
)
LOCAL_PROBLEMS = [
    {"question": "Ann has 2 bags with 5 apples each. How many apples does she have?", "answer": "2 * 5 = 10\n#### 10"},
    {"question": "A cat sleeps 3 hours, then 4 more hours. How long does it sleep?", "answer": "3 + 4 = 7\n#### 7"},
    {"question": "A jar has 1,500 beads and 300 are used. How many are left?", "answer": "#### 1,200"},
]


@pytest.fixture(scope="module")
def manager():
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def load(manager, name):
    return manager.load([name])["tasks"][name]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def local_jsonl(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "test.jsonl", LOCAL_PROBLEMS)
    monkeypatch.setenv("AUTOJUDGE_GSM8K_JSONL", str(path))
    return path


def score(task, doc, response):
    """{filter name: metrics} for one model response, through the task's own filters and scoring."""
    out = {}
    for ensemble in task._filters:
        inst = Instance("generate_until", doc, ("", {}), 0, resps=[response])
        ensemble.apply([inst])
        out[ensemble.name] = task.process_results(doc, [inst.filtered_resps[ensemble.name]])
    return out


def test_tasks_indexed(manager):
    assert {ZEROSHOT, EIGHTSHOT, BUNDLED} <= set(manager.all_tasks)


def test_bundled_offline(manager):
    task = load(manager, BUNDLED)
    docs = list(task.eval_docs)
    assert len(docs) >= 18
    assert task.config.num_fewshot == 0
    assert task.config.generation_kwargs["max_gen_toks"] == 256
    assert task.config.generation_kwargs["do_sample"] is False
    for doc in docs:
        assert INSTRUCTION.format(q=doc["question"]) in task.doc_to_text(doc)
        assert task.doc_to_target(doc) == doc["answer"].split("####")[-1].strip()


@pytest.mark.parametrize("name", [ZEROSHOT, EIGHTSHOT, BUNDLED])
def test_prompt_and_scoring(manager, local_jsonl, name):
    task = load(manager, name)
    doc = next(iter(task.eval_docs))
    assert INSTRUCTION.format(q=doc["question"]) in task.doc_to_text(doc)
    gold = doc["answer"].split("####")[-1].strip()
    right = f"Some steps with 99 in them. The final answer is {gold}"
    assert score(task, doc, right) == {"strict-match": {"exact_match": 1}, "flexible-extract": {"exact_match": 1}}
    assert score(task, doc, f"I think it is {gold}") == {
        "strict-match": {"exact_match": 0}, "flexible-extract": {"exact_match": 1}}
    assert score(task, doc, f"The final answer is {gold}1. Sorry, {gold}.") == {
        "strict-match": {"exact_match": 0}, "flexible-extract": {"exact_match": 1}}
    assert score(task, doc, "no idea") == {"strict-match": {"exact_match": 0}, "flexible-extract": {"exact_match": 0}}


def test_generation_settings(manager, local_jsonl):
    for name in (ZEROSHOT, EIGHTSHOT):
        gen = load(manager, name).config.generation_kwargs
        assert gen["do_sample"] is False and gen["temperature"] == 0
        assert gen["max_gen_toks"] == 512
        assert {"<|eot_id|>", "<|im_end|>", "Given the following problem"} <= set(gen["until"])


def test_local_jsonl(manager, local_jsonl):
    task = load(manager, ZEROSHOT)
    docs = list(task.eval_docs)
    assert [d["question"] for d in docs] == [p["question"] for p in LOCAL_PROBLEMS]
    assert score(task, docs[2], "The final answer is $1,200.00")["strict-match"] == {"exact_match": 1}


@pytest.mark.parametrize(
    "bad_line, message",
    [("{oops", "invalid JSON"), ('{"question": "Q?"}', "'answer'"), ('{"question": "Q?", "answer": "7"}', "####")],
)
def test_local_jsonl_malformed(manager, tmp_path, monkeypatch, bad_line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", LOCAL_PROBLEMS[:2])
    path.write_text(path.read_text() + bad_line + "\n")
    monkeypatch.setenv("AUTOJUDGE_GSM8K_JSONL", str(path))
    with pytest.raises(ValueError, match=message) as err:
        load(manager, ZEROSHOT)
    assert f"{path}:3" in str(err.value)


def test_hub_is_default(manager, monkeypatch):
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(LOCAL_PROBLEMS)})

    monkeypatch.delenv("AUTOJUDGE_GSM8K_JSONL", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(list(load(manager, ZEROSHOT).eval_docs)) == 3
    assert calls == [(("openai/gsm8k", "main"), {})]


def test_eightshot_exemplars(manager, local_jsonl):
    task = load(manager, EIGHTSHOT)
    upstream = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/gsm8k/gsm8k-cot-llama.yaml").read_text())
    assert task.config.num_fewshot == 8
    assert task.config.fewshot_config.samples == upstream["fewshot_config"]["samples"]
    doc = next(iter(task.eval_docs))

    text = task.fewshot_context(doc, num_fewshot=8)
    assert text.count("Given the following problem") == 8 + 1
    assert len(re.findall(r"The final answer is \d+\n\nGiven the following problem", text)) == 8
    assert text.endswith(task.doc_to_text(doc))

    messages = task.fewshot_context(doc, num_fewshot=8, apply_chat_template=True, fewshot_as_multiturn=True,
                                    chat_template=lambda msgs, add_generation_prompt: msgs)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 8 + ["user"]
    assert messages[1]["content"].endswith("The final answer is 6")
    assert INSTRUCTION.format(q=doc["question"]) in messages[-1]["content"]
