"""LiveCodeBench's code-generation prompt per model family, as its runner builds them
(facts from ``lcb_runner/prompts/code_generation.py`` and ``lcb_runner/lm_styles.py`` of
LiveCodeBench/LiveCodeBench; the code here is this project's own).

A ``PromptStyle`` turns a problem (anything with ``content`` and ``starter_code``) into a ``Prompt``:
- a chat prompt (``chat=True``): a system message and a user turn, for the model's chat template
  (``--apply_chat_template``); without a chat template they are joined by ``SEPARATOR``;
- a complete text (``chat=False``): the family's own prompt with its special tokens written in,
  sent as it is; a chat template must not be applied on top.
``whole_output_is_code``: the program is the whole output, stripped (base models), instead of the
last fenced code block. ``stop``: stop strings the style adds (base models: LiveCodeBench's ``###``).

Styles (LiveCodeBench's ``LMStyle`` values they stand for):
- ``generic``: OpenAIChat, LLaMa3, MistralWeb, DeepSeekAPI, TogetherAI, CohereCommand: the fallback;
- ``deepseek_coder``: DeepSeekCodeInstruct; ``codeqwen``: CodeQwenInstruct; ``qwq``: QwQ;
  ``deepseek_r1``: DeepSeekR1 (complete texts);
- ``base``: GenericBase: a one-shot "### Question / ### Answer" text; the whole output is the program.
The API-only styles (OpenAI reasoning, Claude, Gemini, Grok) are not offered.
``style_for_model`` picks the style LiveCodeBench's model list gives a Hugging Face model name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from .resources import package_path

SEPARATOR = "\n\n"
DEFAULT_STYLE, AUTO = "generic", "auto"

SYSTEM_MESSAGE = ("You are an expert Python programmer. You will be given a question (problem specification) "
                  "and will generate a correct Python program that matches the specification and passes all tests.")
FORMAT_WITH_STARTER_CODE = ("You will use the following starter code to write the solution to the problem and "
                            "enclose your code within delimiters.")
FORMAT_WITHOUT_STARTER_CODE = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not "
                               "directly test on the sample inputs). Enclose your code within delimiters as follows. "
                               "Ensure that when the python program runs, it reads the inputs, runs the algorithm "
                               "and writes output to STDOUT.")
TASK_SENTENCE = ("You will be given a question (problem specification) and will generate a correct Python program "
                 "that matches the specification and passes all tests.")
ONLY_THE_PROGRAM = " You will NOT return anything except for the program."
DEEPSEEK_SYSTEM = ("You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by DeepSeek "
                   "Company, and you answer questions related to computer science.")
CODEQWEN_HEADER = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user"
QWQ_HEADER = ("<|im_start|>system\nYou are a helpful and harmless assistant. You are Qwen developed by Alibaba. "
              "You should think step-by-step.<|im_end|>\n<|im_start|>user")
DEEPSEEK_R1_HEADER = (
    "<｜begin▁of▁sentence｜>A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.<｜User｜>")
CHATML_END = "<|im_end|>\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class Prompt:
    """A built prompt: ``chat`` = system + user turns for a chat template, else ``user`` is the
    complete text (``system`` empty)."""

    system: str
    user: str
    chat: bool = True

    def text(self) -> str:
        """The prompt as one text (no chat template): system message, ``SEPARATOR``, user turn."""
        return self.system + SEPARATOR + self.user if self.system else self.user

    def messages(self) -> list[dict]:
        """The chat turns; ValueError for a complete-text prompt."""
        if not self.chat:
            raise ValueError("this LiveCodeBench prompt style is a complete text with its own special tokens: "
                             "run without a chat template (no --apply_chat_template), or choose the generic "
                             "style (--metadata '{\"lcb_prompt\": \"generic\"}')")
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": self.user}]


def _code_block(problem) -> str:
    return f"```python\n{problem.starter_code or '# YOUR CODE HERE'}\n```\n\n"


def _format(problem) -> str:
    return FORMAT_WITH_STARTER_CODE if problem.starter_code else FORMAT_WITHOUT_STARTER_CODE


def generic_question(problem) -> str:
    """LiveCodeBench's generic user turn: ### Question / ### Format (+ code block) / ### Answer."""
    return (f"### Question:\n{problem.content}\n\n### Format: {_format(problem)}\n{_code_block(problem)}"
            "### Answer: (use the provided format with backticks)\n\n")


def _generic(problem) -> Prompt:
    return Prompt(SYSTEM_MESSAGE, generic_question(problem))


def _deepseek_coder(problem) -> Prompt:
    body = (f"### Instruction: {TASK_SENTENCE}{ONLY_THE_PROGRAM}\n\nQuestion:\n{problem.content}\n\n"
            f"### Instruction: {_format(problem)}\n{_code_block(problem)}### Response:\n\n")
    return Prompt("", DEEPSEEK_SYSTEM + SEPARATOR + body, chat=False)


def _qwen_body(problem, intro: str, end: str) -> str:
    """The CodeQwen/QwQ/R1 user text: intro, "Question: ...", format sentence, code block, ``end``."""
    return f"{intro}\n\nQuestion: {problem.content}\n\n{_format(problem)}\n{_code_block(problem)}{end}"


def _codeqwen(problem) -> Prompt:
    return Prompt("", CODEQWEN_HEADER + SEPARATOR + _qwen_body(problem, TASK_SENTENCE + ONLY_THE_PROGRAM, CHATML_END),
                  chat=False)


def _qwq(problem) -> Prompt:
    return Prompt("", QWQ_HEADER + SEPARATOR + _qwen_body(problem, TASK_SENTENCE, CHATML_END), chat=False)


def _deepseek_r1(problem) -> Prompt:
    return Prompt("", DEEPSEEK_R1_HEADER + _qwen_body(problem, TASK_SENTENCE, "<｜Assistant｜>"), chat=False)


FEW_SHOT_ENV = "AUTOJUDGE_LCB_FEW_SHOT"


@lru_cache(maxsize=1)
def base_examples() -> dict:
    """The one-shot examples for base models: {"functional": {question, sample_code, answer}, "stdin":
    {question, answer}}. Our own (``tasks/livecodebench/base_examples.json``), or LiveCodeBench's (the
    first entry of func.json / stdin.json) when ``$AUTOJUDGE_LCB_FEW_SHOT`` names that folder of a
    LiveCodeBench checkout (``lcb_runner/prompts/few_shot_examples/generation``)."""
    folder = os.environ.get(FEW_SHOT_ENV)
    if not folder:
        return json.loads(package_path("tasks", "livecodebench", "base_examples.json").read_text())
    examples = {}
    for key, name in (("functional", "func.json"), ("stdin", "stdin.json")):
        path = Path(folder) / name
        try:
            examples[key] = json.loads(path.read_text())[0]
        except (OSError, ValueError, IndexError, KeyError) as error:
            raise ValueError(f"{FEW_SHOT_ENV}: {path} is not LiveCodeBench's few-shot file ({error})") from None
    return examples


def _base_turn(question: str, starter_code: str | None, answer: str) -> str:
    text = f"### Question\n{question}\n\n"
    if starter_code is not None:
        text += f"### Starter Code\n{starter_code}\n\n"
    return text + "### Answer\n\n" + (answer + "\n\n" if answer else "")


def _base(problem) -> Prompt:
    functional = bool(problem.starter_code)
    example = base_examples()["functional" if functional else "stdin"]
    shot = _base_turn(example["question"], example["sample_code"] if functional else None, example["answer"])
    return Prompt("", shot + _base_turn(problem.content, problem.starter_code if functional else None, ""),
                  chat=False)


@dataclass(frozen=True)
class PromptStyle:
    """One of LiveCodeBench's prompt formats (module docstring)."""

    name: str
    lm_styles: tuple[str, ...]
    build: Callable[[object], Prompt]
    whole_output_is_code: bool = False
    stop: tuple[str, ...] = ()


STYLES = {s.name: s for s in (
    PromptStyle("generic", ("OpenAIChat", "LLaMa3", "MistralWeb", "DeepSeekAPI", "TogetherAI", "CohereCommand"),
                _generic),
    PromptStyle("deepseek_coder", ("DeepSeekCodeInstruct",), _deepseek_coder),
    PromptStyle("codeqwen", ("CodeQwenInstruct",), _codeqwen),
    PromptStyle("qwq", ("QwQ",), _qwq),
    PromptStyle("deepseek_r1", ("DeepSeekR1",), _deepseek_r1),
    PromptStyle("base", ("GenericBase",), _base, whole_output_is_code=True, stop=("###",)),
)}

# LiveCodeBench's model list (lm_styles.py): the Hugging Face models in it, by family.
_MODELS_BY_STYLE = {
    "generic": ["meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-70B-Instruct",
                "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct",
                "meta-llama/Llama-3.1-405B-Instruct-FP8", "meta-llama/Llama-3.3-70B-Instruct",
                "01-ai/Yi-Coder-9B-Chat"],
    "base": ["meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-70B", "meta-llama/Llama-3.1-8B",
             "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-405B-FP8", "deepseek-ai/deepseek-coder-1.3b-base",
             "deepseek-ai/deepseek-coder-6.7b-base", "deepseek-ai/deepseek-coder-33b-base", "bigcode/starcoder2-3b",
             "bigcode/starcoder2-7b", "bigcode/starcoder2-15b", "google/codegemma-2b", "google/codegemma-7b",
             "google/gemma-2b", "google/gemma-7b"],
    "deepseek_coder": ["deepseek-ai/deepseek-coder-1.3b-instruct", "deepseek-ai/deepseek-coder-6.7b-instruct",
                       "deepseek-ai/deepseek-coder-33b-instruct"],
    "codeqwen": ["Qwen/Qwen2-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct",
                 "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-Coder-7B-Instruct", "Qwen/Qwen2.5-Coder-32B-Instruct",
                 "Qwen/Qwen3-235B-A22B"],
    "qwq": ["Qwen/QwQ-32B-Preview", "Qwen/QwQ-32B", "Qwen/QwQ-Max-Preview"],
    "deepseek_r1": ["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
                    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
                    "nvidia/Llama-3_1-Nemotron-Nano-8B-v1", "nvidia/Llama-3_1-Nemotron-Ultra-253B-v1",
                    "agentica-org/DeepCoder-14B-Preview"],
}
MODEL_STYLES = {model: style for style, models in _MODELS_BY_STYLE.items() for model in models}


def style_for_model(model: str | None) -> str:
    """The style LiveCodeBench's model list gives ``model`` (a hub name, or a local path ending in
    owner/name), else ``DEFAULT_STYLE``."""
    if not model:
        return DEFAULT_STYLE
    name = "/".join(str(model).rstrip("/").split("/")[-2:])
    return MODEL_STYLES.get(name, DEFAULT_STYLE)


def resolve_style(requested: str | None, model: str | None = None) -> PromptStyle:
    """The style named ``requested`` (None: ``DEFAULT_STYLE``; "auto": ``style_for_model(model)``);
    ValueError naming the known styles otherwise."""
    name = style_for_model(model) if requested == AUTO else (requested or DEFAULT_STYLE)
    if name not in STYLES:
        raise ValueError(f"unknown LiveCodeBench prompt style {requested!r}; one of {AUTO}, {', '.join(STYLES)}")
    return STYLES[name]
