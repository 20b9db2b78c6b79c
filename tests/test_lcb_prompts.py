"""LiveCodeBench's prompt per model family (autojudge_harness.lcb_prompts) against the formats of
LiveCodeBench's runner (lcb_runner/prompts/code_generation.py, written out here as the expected
texts), the style's program extraction, and the style chosen through the lm-eval task (metadata
lcb_prompt), with the separator between system message and question without a chat template."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autojudge_harness import lcb_prompts as lp
from autojudge_harness import livecodebench as lcb
from autojudge_harness.resources import tasks_path

TASKS = tasks_path()
SYSTEM = ("You are an expert Python programmer. You will be given a question (problem specification) and will "
          "generate a correct Python program that matches the specification and passes all tests.")
WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your "
                "code within delimiters.")
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
                   "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the "
                   "python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")
TASK = ("You will be given a question (problem specification) and will generate a correct Python program that "
        "matches the specification and passes all tests.")
ONLY = " You will NOT return anything except for the program."
STDIN = SimpleNamespace(content="Print A + B.", starter_code="")
CALL = SimpleNamespace(content="Return x + 1.",
                       starter_code="class Solution:\n    def inc(self, x: int) -> int:\n        ")


def block(problem):
    return f"```python\n{problem.starter_code or '# YOUR CODE HERE'}\n```\n\n"


def fmt(problem):
    return WITH_STARTER if problem.starter_code else WITHOUT_STARTER


@pytest.mark.parametrize("problem", [STDIN, CALL], ids=["stdin", "call"])
def test_chat_and_text_styles_match_livecodebench(problem):
    generic = lp.STYLES["generic"].build(problem)
    user = (f"### Question:\n{problem.content}\n\n### Format: {fmt(problem)}\n{block(problem)}"
            "### Answer: (use the provided format with backticks)\n\n")
    assert generic == lp.Prompt(SYSTEM, user, chat=True)
    assert generic.messages() == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    assert generic.text() == SYSTEM + "\n\n" + user  # no chat template: a separator, not "...tests.### Question"

    deepseek = ("You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by DeepSeek "
                "Company, and you answer questions related to computer science.\n\n"
                f"### Instruction: {TASK}{ONLY}\n\nQuestion:\n{problem.content}\n\n"
                f"### Instruction: {fmt(problem)}\n{block(problem)}### Response:\n\n")
    codeqwen = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\n"
                f"{TASK}{ONLY}\n\nQuestion: {problem.content}\n\n{fmt(problem)}\n{block(problem)}"
                "<|im_end|>\n<|im_start|>assistant\n")
    qwq = ("<|im_start|>system\nYou are a helpful and harmless assistant. You are Qwen developed by Alibaba. You "
           "should think step-by-step.<|im_end|>\n<|im_start|>user\n\n"
           f"{TASK}\n\nQuestion: {problem.content}\n\n{fmt(problem)}\n{block(problem)}"
           "<|im_end|>\n<|im_start|>assistant\n")
    r1 = ("<｜begin▁of▁sentence｜>A conversation between User and Assistant. The user asks a question, and the "
          "Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides "
          "the user with the answer. The reasoning process and answer are enclosed within <think> </think> and "
          "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
          f"</answer>.<｜User｜>{TASK}\n\nQuestion: {problem.content}\n\n{fmt(problem)}\n{block(problem)}<｜Assistant｜>")
    for name, text in (("deepseek_coder", deepseek), ("codeqwen", codeqwen), ("qwq", qwq), ("deepseek_r1", r1)):
        prompt = lp.STYLES[name].build(problem)
        assert prompt == lp.Prompt("", text, chat=False) and prompt.text() == text, name
        with pytest.raises(ValueError, match="complete text .*\\(no --apply_chat_template\\)"):
            prompt.messages()
        assert not lp.STYLES[name].whole_output_is_code and lp.STYLES[name].stop == ()


def test_base_style_is_livecodebench_one_shot():
    examples = lp.base_examples()
    assert examples["stdin"]["answer"].startswith("def boxes(n, k):")
    assert examples["functional"]["sample_code"].startswith("class Solution:\n    def longestRise")
    stdin = lp.STYLES["base"].build(STDIN).text()
    shot = examples["stdin"]
    assert stdin == (f"### Question\n{shot['question']}\n\n### Answer\n\n{shot['answer']}\n\n"
                     f"### Question\n{STDIN.content}\n\n### Answer\n\n")
    call = lp.STYLES["base"].build(CALL).text()
    shot = examples["functional"]
    assert call == (f"### Question\n{shot['question']}\n\n### Starter Code\n{shot['sample_code']}\n\n### Answer\n\n"
                    f"{shot['answer']}\n\n### Question\n{CALL.content}\n\n### Starter Code\n{CALL.starter_code}\n\n"
                    "### Answer\n\n")
    assert lp.STYLES["base"].whole_output_is_code and lp.STYLES["base"].stop == ("###",)


def test_extraction_per_style():
    fenced = "Here:\n```python\nprint(1)\n```\nand\n```\nprint(2)\n```\n"
    for name in ("generic", "deepseek_coder", "codeqwen", "qwq", "deepseek_r1"):
        assert lcb.extract_program(fenced, lp.STYLES[name]) == "print(2)"
        assert lcb.extract_program("print(3)", lp.STYLES[name]) is None
    assert lcb.extract_program("\nprint(3)\n\n", lp.STYLES["base"]) == "print(3)"  # the whole output is the program
    assert lcb.extract_program("  \n", lp.STYLES["base"]) is None


def test_style_selection():
    assert lp.resolve_style(None).name == lp.resolve_style("generic").name == "generic"
    assert lp.resolve_style("auto", "deepseek-ai/deepseek-coder-6.7b-instruct").name == "deepseek_coder"
    assert lp.resolve_style("auto", "/models/Qwen/Qwen2.5-Coder-7B-Instruct/").name == "codeqwen"
    assert lp.resolve_style("auto", "meta-llama/Llama-3.1-8B").name == "base"
    assert lp.resolve_style("auto", "meta-llama/Llama-3.1-8B-Instruct").name == "generic"
    assert lp.resolve_style("auto", "HuggingFaceTB/SmolLM2-135M-Instruct").name == "generic"  # not listed: fallback
    assert lp.resolve_style("auto", None).name == "generic"
    with pytest.raises(ValueError, match="unknown LiveCodeBench prompt style 'qwen'; one of auto, generic, "):
        lp.resolve_style("qwen")
    assert lcb.task_style("auto", preset="smollm2-135m").name == "generic"


# -- through the lm-eval task --------------------------------------------------------------------------


def load(metadata=None, name="autojudge_lcb_bundled"):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS), include_defaults=False, metadata=metadata)
    return manager.load([name])["tasks"][name]


def identity(messages, add_generation_prompt=True):
    return messages


def test_task_default_is_auto_generic_with_a_separator():
    task = load()
    assert task.config.metadata["lcb_prompt"] == "auto"  # no model named: the generic fallback
    doc = list(task.eval_docs)[0]
    prompt = lp.STYLES["generic"].build(lcb.problem_from_row(doc))
    assert doc[lcb.STYLE_COLUMN] == "generic"
    assert task.fewshot_context(doc, 0) == SYSTEM + "\n\n" + prompt.user
    assert task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=identity) == prompt.messages()
    assert task.fewshot_context(doc, 0, system_instruction="Be brief.", apply_chat_template=True,
                                chat_template=identity)[0] == {"role": "system", "content": "Be brief.\n\n" + SYSTEM}
    assert task.config.generation_kwargs["until"] == ["<|eot_id|>", "<|im_end|>", "</s>"]
    with pytest.raises(ValueError, match="take no lm-eval few-shot examples"):
        task.fewshot_context(doc, 2)


def test_task_metadata_selects_the_style_and_its_extraction():
    from lm_eval.api.instance import Instance

    task = load({"lcb_prompt": "base"})
    docs = list(task.eval_docs)
    assert {d[lcb.STYLE_COLUMN] for d in docs} == {"base"}
    assert task.fewshot_context(docs[0], 0) == lp.STYLES["base"].build(lcb.problem_from_row(docs[0])).text()
    assert task.config.generation_kwargs["until"][-1] == "###"  # LiveCodeBench's stop for base models
    with pytest.raises(ValueError, match="complete text"):
        task.fewshot_context(docs[0], 0, apply_chat_template=True, chat_template=identity)
    # the whole output is the program: an A + B solution without fences passes
    inst = Instance("generate_until", docs[0], ("", {}), 0, resps=["a, b = map(int, input().split())\nprint(a + b)\n"])
    task._filters[0].apply([inst])
    assert inst.filtered_resps["sandbox"]["status"] == "passed"
    for metadata, start in (({"lcb_prompt": "deepseek_coder"}, "You are an AI programming assistant, utilizing"),
                            ({"lcb_prompt": "auto", "pretrained": "Qwen/QwQ-32B"}, "<|im_start|>system\nYou are a "
                                                                                   "helpful and harmless assistant.")):
        task = load(metadata)
        assert task.fewshot_context(next(iter(task.eval_docs)), 0).startswith(start)
    with pytest.raises(ValueError, match="unknown LiveCodeBench prompt style 'llama'"):
        load({"lcb_prompt": "llama"})


def test_task_default_follows_the_model_in_model_args():
    """On the lm_eval CLI the model_args are the task's metadata: the default "auto" picks
    LiveCodeBench's style for the model named there."""
    for metadata, style in (({"pretrained": "deepseek-ai/deepseek-coder-1.3b-base", "window": 8}, "base"),
                            ({"pretrained": "meta-llama/Llama-3.1-8B-Instruct"}, "generic"),
                            ({"preset": "smollm2-135m"}, "generic"),
                            ({"pretrained": "Qwen/Qwen2.5-Coder-7B-Instruct", "lcb_prompt": "generic"}, "generic")):
        task = load(metadata)
        assert {d[lcb.STYLE_COLUMN] for d in task.eval_docs} == {style}, metadata


def test_base_examples_from_a_livecodebench_checkout(tmp_path, monkeypatch):
    """$AUTOJUDGE_LCB_FEW_SHOT: the first entries of LiveCodeBench's func.json / stdin.json (its layout)."""
    (tmp_path / "func.json").write_text('[{"question": "Q1", "sample_code": "class Solution:", "answer": "A1"}, {}]')
    (tmp_path / "stdin.json").write_text('[{"question": "Q2", "answer": "A2"}]')
    monkeypatch.setenv(lp.FEW_SHOT_ENV, str(tmp_path))
    lp.base_examples.cache_clear()
    try:
        assert lp.base_examples() == {"functional": {"question": "Q1", "sample_code": "class Solution:", "answer": "A1"},
                                      "stdin": {"question": "Q2", "answer": "A2"}}
        (tmp_path / "stdin.json").write_text("[]")
        lp.base_examples.cache_clear()
        with pytest.raises(ValueError, match="AUTOJUDGE_LCB_FEW_SHOT: .*stdin.json is not LiveCodeBench's few-shot file"):
            lp.base_examples()
    finally:
        lp.base_examples.cache_clear()
