"""One lm-eval run of an AutoJudge model through lm-eval's Python API, as the experiment drivers
use it: the installed task folder, the chat template, and the run's speed statistics."""

from __future__ import annotations


def run_lm_eval(model_args: str, task: str, model: str = "autojudge_hf", **kwargs) -> dict:
    """``lm_eval.simple_evaluate`` of ``model`` with ``model_args`` on ``task`` (chat template
    applied); ``kwargs`` go to simple_evaluate (limit, samples, device, gen_kwargs, log_samples...)."""
    import lm_eval

    from ..lm_eval_models.registration import register
    from ..resources import tasks_path

    register()
    return lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=[task],
                                   task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_path())),
                                   apply_chat_template=True, **kwargs)
