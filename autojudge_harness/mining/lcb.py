"""Mining LiveCodeBench problems: Algorithm 1 with the pass/fail equivalence of the protocol.

A response's answer key is the pass/fail verdict of its extracted program (the last fenced code
block, ``autojudge_harness.livecodebench.extract_code``) on the problem's public + private tests,
graded by the same sandbox as the task (``autojudge_harness.grading``). No code block -> None:
the target's question is skipped ("no_target_answer"), and an alternative without code is never
equivalent (important). Equal keys (both pass or both fail) = equivalent. Verdicts are cached per
program text, so an alternative that produces the same program is not run again.

Prompts are built by the lm-eval task ``autojudge_lcb_bundled`` (every ``autojudge_lcb_*`` task
shares its template: LiveCodeBench's system message + user turn, chat template applied) from any
LiveCodeBench row; its ``until`` strings are the miner's stop strings. Question ids in the store
are the problems' positions in the data; records also carry the LiveCodeBench ``lcb_question_id``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from ..endings import cut_at_stop
from ..grading import Grader
from ..livecodebench import Problem, extract_code

from .algorithm import MinedQuestion
from ..prompts import TaskPrompts
from .pipeline import make_miner, mine_questions, mined_record, run_manifest

LCB_PROMPT_TASK = "autojudge_lcb_bundled"
PASS, FAIL = "pass", "fail"


class LCBEquivalence:
    """Pass/fail of the extracted program on ``problem``'s tests (see the module docstring)."""

    def __init__(self, problem: Problem, grader: Grader, stop: Sequence[str] = ()):
        self.problem, self.grader, self.stop = problem, grader, tuple(stop)
        self.name = equivalence_name(grader)
        self._tests = None
        self.verdicts: dict[str, object] = {}  # program text -> Verdict (the cache)

    def answer(self, text: str) -> str | None:
        program = extract_code(cut_at_stop(text, self.stop))
        if program is None:
            return None
        if program not in self.verdicts:
            if self._tests is None:
                self._tests = self.problem.tests()
            self.verdicts[program] = self.grader.grade(program, self._tests, self.problem.fn_name)
        return PASS if self.verdicts[program].passed else FAIL

    def equal(self, a, b) -> bool:
        return a is not None and b is not None and a == b


def equivalence_name(grader: Grader) -> str:
    """The manifest's equivalence entry: the rule plus the limits that decide verdicts."""
    return f"lcb-pass-fail (timeout {grader.timeout:g} s, memory {grader.memory_mb} MiB)"


def problems_digest(problems: Sequence[Problem]) -> str:
    """sha256 over the problems' ids and statements (identifies the data in the manifest)."""
    digest = hashlib.sha256()
    for p in problems:
        digest.update(f"{p.question_id}\n{p.content}\n".encode())
    return digest.hexdigest()


def lcb_record(qid: int, problem: Problem, mined: MinedQuestion, equivalence: LCBEquivalence) -> dict:
    return mined_record(qid, mined, lcb_question_id=problem.question_id,
                        question_sha1=hashlib.sha1(problem.content.encode()).hexdigest(), gold=None,
                        programs_graded=len(equivalence.verdicts))


def mine_lcb(pair, problems: Sequence[Problem], rows: Sequence[dict], data_info: dict, out: str | Path,
             ids: Sequence[int], grader: Grader | None = None, shard: tuple[int, int] = (0, 1),
             max_new_tokens: int = 2048, lookahead: int | None = None, dtype: str = "float32", progress: bool = True,
             batch_size: int | None = None, grade_workers: int = 2) -> dict:
    """Mine problems ``ids`` (positions in ``problems``/``rows``, the same data as Problem and as
    dataset row) into run ``out``; resumable like ``mining.pipeline.mine_questions``. With
    ``batch_size`` > 1 (``make_miner``; default per device) the programs are graded by
    ``grade_workers`` threads while the other problems keep decoding."""
    grader = grader or Grader()
    prompter = TaskPrompts(LCB_PROMPT_TASK)
    equivalences: dict[int, LCBEquivalence] = {}

    def equivalence(qid: int) -> LCBEquivalence:
        equivalences[qid] = LCBEquivalence(problems[qid], grader, prompter.stop)
        return equivalences[qid]

    manifest = run_manifest(pair, data_info, prompter, SimpleNamespace(name=equivalence_name(grader)),
                            max_new_tokens, dtype)  # the end guard on, as in decoding
    miner = make_miner(pair, None, batch_size, max_new_tokens, prompter.stop, lookahead, answer_workers=grade_workers)
    return mine_questions(miner, manifest, out, ids, lambda qid: prompter.token_ids(pair.tokenizer, rows[qid]), equivalence,
                          lambda qid, mined: lcb_record(qid, problems[qid], mined, equivalences.pop(qid)),
                          shard, progress)
