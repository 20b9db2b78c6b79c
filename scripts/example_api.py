"""AutoJudge from Python: the same run, with the same numbers, as the CLI command

    lm_eval --model autojudge_hf --model_args preset=smollm2-135m --tasks autojudge_gsm8k_bundled \
        --include_path "$(autojudge tasks-path)" --apply_chat_template --limit 2 --output_path out/example

(tests/test_examples.py checks that both give the same scores and statistics). Keep
``apply_chat_template=True``: without the chat template the instruct model does not answer in a line
but rambles on to max_gen_toks.

    python scripts/example_api.py --limit 2 [--gen_kwargs max_gen_toks=64]
"""

import argparse
import json

import lm_eval
from lm_eval.tasks import TaskManager

from autojudge_harness.lm_eval_models.registration import register
from autojudge_harness.resources import tasks_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=2, help="documents to evaluate (as lm_eval --limit)")
    parser.add_argument("--gen_kwargs", help="generation overrides (as lm_eval --gen_kwargs)")
    args = parser.parse_args()

    register()  # after this, built-in models (hf, vllm, ...) and autojudge_hf are all available
    results = lm_eval.simple_evaluate(
        model="autojudge_hf", model_args="preset=smollm2-135m", tasks=["autojudge_gsm8k_bundled"],
        task_manager=TaskManager(include_path=str(tasks_path())), apply_chat_template=True,
        limit=args.limit, gen_kwargs=args.gen_kwargs)
    print(json.dumps({"results": results["results"], "autojudge": results["config"]["autojudge"]}, indent=2))


if __name__ == "__main__":
    main()
