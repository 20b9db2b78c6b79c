"""LiveCodeBench data as the hub serves it, the sandbox checked when a task loads, and
``lcb-5fold --timeout`` reaching evaluation. Offline: the hub is a local folder in the layout of
livecodebench/code_generation_lite (test.jsonl, test2.jsonl, ...; own problems), read through the
same ``datasets.load_dataset("json", ...)`` call as the hub (``livecodebench.HUB_FILES``)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import pytest

from autojudge_harness import livecodebench as lcb
from autojudge_harness import sandbox
from autojudge_harness.experiments import lcb_5fold
from autojudge_harness.grading import Grader
from autojudge_harness.resources import bundled_problems, tasks_path
from autojudge_harness.stats import DecodingStats

TASKS = tasks_path()


def hub_row(qid: str, date: str, content: str, tests: list[dict], fn_name: str | None = None,
            starter: str = "") -> dict:
    """One row with the hub's columns and encodings (first test public, the rest private)."""
    platform = "leetcode" if fn_name else "atcoder"
    return {"question_title": qid.upper(), "question_content": content, "platform": platform, "question_id": qid,
            "contest_id": f"contest-{qid}", "contest_date": date, "starter_code": starter, "difficulty": "easy",
            "public_test_cases": json.dumps(tests[:1]), "private_test_cases": lcb.encode_private_tests(tests[1:]),
            "metadata": json.dumps({"func_name": fn_name} if fn_name else {})}


def stdin_tests(pairs):
    return [{"input": i, "output": o, "testtype": "stdin"} for i, o in pairs]


SUM = hub_row("hub001", "2024-01-06T00:00:00", "Read N and then N integers on one line; print their sum.",
              stdin_tests([("3\n1 2 3\n", "6\n"), ("1\n-5\n", "-5\n"), ("4\n10 20 30 40\n", "100\n")]))
GAP = hub_row("3101", "2024-02-10T00:00:00", "Return the largest difference between two adjacent numbers of nums.",
              [{"input": "[1, 5, 2]", "output": "4", "testtype": "functional"},
               {"input": "[3]", "output": "0", "testtype": "functional"}],
              fn_name="maxGap", starter="class Solution:\n    def maxGap(self, nums: List[int]) -> int:\n        ")
REVERSE = hub_row("hub003", "2024-03-02T00:00:00", "Read a word and print it reversed.",
                  stdin_tests([("abc\n", "cba\n"), ("x\n", "x\n")]))
SOLUTIONS = {"hub001": "input()\nprint(sum(map(int, input().split())))",
             "3101": "class Solution:\n    def maxGap(self, nums):\n"
                     "        return max((abs(a - b) for a, b in zip(nums, nums[1:])), default=0)",
             "hub003": "print(input()[::-1])"}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A folder in the hub's layout (release_v1 = test.jsonl, release_v2 adds test2.jsonl), made
    ``livecodebench.HUB_FILES``; $AUTOJUDGE_LCB_JSONL unset so the tasks read it."""
    folder = tmp_path / "code_generation_lite"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (SUM, GAP)))
    (folder / "test2.jsonl").write_text(json.dumps(REVERSE) + "\n")
    monkeypatch.setattr(lcb, "HUB_FILES", str(folder))
    monkeypatch.delenv("AUTOJUDGE_LCB_JSONL", raising=False)
    return folder


def test_hub_rows_as_datasets_types_them_load(hub):
    data = lcb.load_hub_rows("release_v2")
    assert data.features["contest_date"].dtype.startswith("timestamp")  # what broke problem_from_row
    problems = [lcb.problem_from_row(row, f"row {i}") for i, row in enumerate(data)]
    assert [p.question_id for p in problems] == ["hub001", "3101", "hub003"]
    assert [p.contest_date for p in problems] == [SUM["contest_date"], GAP["contest_date"], REVERSE["contest_date"]]
    assert [lcb.text_columns(row) for row in data] == [SUM, GAP, REVERSE]  # the hub's text, as written
    assert problems[1].fn_name == "maxGap" and len(problems[0].tests()) == 3
    assert len(lcb.load_hub_rows("release_v1")) == 2


def test_text_columns_errors_name_the_column():
    with pytest.raises(ValueError, match="row 7: column 'difficulty' must be a string, got float"):
        lcb.text_columns({**SUM, "difficulty": 1.5}, "row 7")
    with pytest.raises(ValueError, match="column 'question_content' must be a string, got datetime"):
        lcb.text_columns({**SUM, "question_content": datetime(2024, 1, 1)})
    with pytest.raises(ValueError, match="missing columns \\['metadata'\\]"):
        lcb.text_columns({k: v for k, v in SUM.items() if k != "metadata"})
    assert lcb.text_columns({**SUM, "question_id": 42})["question_id"] == "42"


def test_release_task_reads_the_hub_layout_and_grades(hub):
    from lm_eval.api.instance import Instance
    from lm_eval.tasks import TaskManager

    task = TaskManager(include_path=str(TASKS), include_defaults=False).load(
        ["autojudge_lcb_release_v2"])["tasks"]["autojudge_lcb_release_v2"]
    docs = list(task.eval_docs)
    assert [d["question_id"] for d in docs] == ["hub001", "3101", "hub003"]
    assert "Read N and then N integers" in task.fewshot_context(docs[0], 0)
    resps = [[f"```python\n{SOLUTIONS[d['question_id']]}\n```"] for d in docs]
    instances = [Instance("generate_until", d, ("", {}), i, resps=r) for i, (d, r) in enumerate(zip(docs, resps))]
    task._filters[0].apply(instances)
    assert [task.process_results(i.doc, [i.filtered_resps["sandbox"]]) for i in instances] == [{"pass@1": 1.0}] * 3


def test_lcb_5fold_loader_reads_the_hub_layout(hub):
    data = lcb_5fold.load_data(None, "release_v2", limit=2)
    assert data.task == "autojudge_lcb_release_v2" and data.task_env == {"AUTOJUDGE_LCB_JSONL": None}
    assert data.rows == [SUM, GAP] and [p.question_id for p in data.problems] == ["hub001", "3101"]
    assert data.info["dataset"] == "livecodebench/code_generation_lite release_v2"


# -- the sandbox, checked when a task loads ------------------------------------------------------------


@pytest.fixture
def no_sandbox_tools(tmp_path, monkeypatch):
    """A PATH without bwrap and unshare (the probe's cache cleared before and after)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    sandbox.probe.cache_clear()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("AUTOJUDGE_SANDBOX", raising=False)
    yield
    sandbox.probe.cache_clear()


@pytest.mark.parametrize("name", ["autojudge_lcb_bundled", "autojudge_lcb_release_v1"])
def test_task_load_fails_without_a_sandbox(no_sandbox_tools, hub, name, monkeypatch):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    with pytest.raises(sandbox.SandboxUnavailable) as err:
        manager.load([name])
    message = str(err.value)
    assert "checked before any generation" in message and "bwrap is not installed" in message
    assert "scripts/install_sandbox.sh" in message and "AUTOJUDGE_SANDBOX=guard" in message
    monkeypatch.setenv("AUTOJUDGE_SANDBOX", "guard")  # the explicit opt-in to the weaker level loads
    assert len(list(manager.load([name])["tasks"][name].eval_docs)) >= 2


# -- lcb-5fold --timeout ----------------------------------------------------------------------------------


def test_lcb_5fold_timeout_reaches_evaluation(tmp_path, monkeypatch):
    """``autojudge lcb-5fold --timeout 2.5``: every lm-eval run grades with 2.5 s per test (the
    heavy steps -- models, mining, training, lm-eval itself -- replaced by recorders)."""
    import autojudge_harness.mining.lcb as mining_lcb
    import autojudge_harness.mining.store as store
    import autojudge_harness.models as models

    seen = []

    def fake_lm_eval(model_args, task, samples, **_kwargs):
        seen.append(lcb.task_grader().timeout)  # the grader the task's filter would build now
        ids = samples[task]
        docs = lcb.read_lcb_jsonl(bundled_problems("livecodebench_bundled"))
        verdict = {"passed": False, "status": "no_code"}
        return {"samples": {task: [{"doc_id": i, "doc": docs[i], "filtered_resps": [verdict]} for i in ids]},
                "results": {task: {"pass@1,sandbox": 0.0}},
                "config": {"autojudge": {"stats": DecodingStats(requests=len(ids)).summary()}}}

    monkeypatch.setattr(models, "load_pair", lambda *a, **k: object())
    monkeypatch.setattr(mining_lcb, "mine_lcb", lambda *a, **k: {"questions": 0})
    monkeypatch.setattr(store, "merge", lambda *a, **k: None)
    monkeypatch.setattr(lcb_5fold, "train_fold", lambda *a, **k: {"status": "untrainable", "reason": "test",
                                                                   "decoded": "lossless (no judge)"})
    monkeypatch.setattr(lcb_5fold, "run_lm_eval", fake_lm_eval)
    monkeypatch.setattr(lcb_5fold, "plot", lambda *a, **k: None)
    monkeypatch.delenv("AUTOJUDGE_LCB_TIMEOUT", raising=False)
    parser = argparse.ArgumentParser()
    lcb_5fold.configure_parser(parser)
    args = parser.parse_args(["--preset", "smollm2-135m", "--data", str(bundled_problems("livecodebench_bundled")),
                              "--run-dir", str(tmp_path / "run"), "--timeout", "2.5", "--no-progress"])
    assert lcb_5fold.main(args) == 0
    assert seen == [2.5] * 6  # five folds and the lossless baseline
    assert lcb.task_grader().timeout == Grader().timeout  # set only while lm-eval runs
    result = json.loads((tmp_path / "run" / "fold-0" / "result.json").read_text())
    assert result["settings"]["timeout"] == 2.5  # a rerun with another --timeout evaluates again


def test_task_grader_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUTOJUDGE_LCB_TIMEOUT", "1.5")
    assert lcb.task_grader().timeout == 1.5
    monkeypatch.setenv("AUTOJUDGE_LCB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="AUTOJUDGE_LCB_TIMEOUT='soon' is not a number"):
        lcb.task_grader()
    monkeypatch.setenv("AUTOJUDGE_LCB_TIMEOUT", "0")
    with pytest.raises(ValueError, match="bad grader limits: timeout=0.0"):
        lcb.task_grader()
