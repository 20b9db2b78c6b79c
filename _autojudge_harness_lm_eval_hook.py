"""Start-up hook (run by autojudge_harness.pth): registers the AutoJudge models when, and only
when, this process is the lm-eval CLI. Idempotent; never lets Python start-up fail."""


def _run() -> None:
    import sys

    try:
        from autojudge_harness.lm_eval_models.registration import is_lm_eval_cli, register

        if is_lm_eval_cli():
            register()
    except Exception as error:  # a broken hook must not break the interpreter
        print(f"autojudge_harness: lm-eval models not registered ({error!r})", file=sys.stderr)


_run()
