"""LiveCodeBench code generation: problems, data loading, code extraction, Pass@1 grading (through
``autojudge_harness.grading``) and the lm-eval tasks' glue; the prompts per model family are in
``autojudge_harness.lcb_prompts``. Used by the lm-eval tasks and by mining.

Data: rows with the columns of ``livecodebench/code_generation_lite`` -- question_title,
question_content, platform, question_id, contest_id, contest_date, starter_code, difficulty,
public_test_cases (JSON list of {"input", "output", "testtype"}), private_test_cases (the same
JSON, or base64(zlib(pickle(that JSON text))) as on the hub), metadata (JSON; "func_name" for
call-based problems). Sources:
- ``read_lcb_jsonl(path)``: a local JSONL file (one row per line; ValueError naming file:line);
- ``load_hub_rows(release)``: the hub dataset's JSONL files of a release (release_v5 = the
  AutoJudge paper's 880 problems), read through ``datasets``' json builder, which types
  contest_date as a timestamp; ``text_columns`` turns such rows back into the hub's text.

Private tests are decoded by ``decode_private_tests`` with an unpickler that refuses every class
and function (``find_class`` always raises): only plain data (str, int, float, bool, None, list,
dict, tuple, bytes) can come out, so a payload that would run code is rejected before anything
runs. What it may build is bounded before it is built (``MAX_DECOMPRESSED_BYTES``,
``MAX_PICKLE_ELEMENTS``, ``MAX_JSON_CONTAINERS``), and every failure (bad base64/zlib/UTF-8,
recursion, huge integers) is a ValueError naming the problem and the column.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import pickletools
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable

from .grading import Grader, Test, Verdict
from .jsonl import iter_jsonl_objects
from .lcb_prompts import AUTO, DEFAULT_STYLE, Prompt, PromptStyle, resolve_style
from .sandbox import SandboxUnavailable

HUB_DATASET = "livecodebench/code_generation_lite"
# Where ``load_hub_rows`` reads the release files from (a folder in the hub's layout works too).
HUB_FILES = f"hf://datasets/{HUB_DATASET}"
DEFAULT_RELEASE = "release_v5"
# The hub repository's data files per release (releases are cumulative), as its former loading
# script (code_generation_lite.py, version_tag=...) mapped them.
_FILES = ["test.jsonl"] + [f"test{i}.jsonl" for i in range(2, 7)]
RELEASE_FILES = {f"release_v{i}": _FILES[:i] for i in range(1, 7)} | {"release_latest": _FILES}
COLUMNS = ("question_title", "question_content", "platform", "question_id", "contest_id", "contest_date",
           "starter_code", "difficulty", "public_test_cases", "private_test_cases", "metadata")
MAX_DECOMPRESSED_BYTES = 1 << 30
# What a pickle or JSON text may build, checked before it is built: pickle opcodes that make or
# reference an object (the hub's payload uses 1), and JSON containers ("[" / "{" characters, an
# upper bound). JSON nesting is bounded by Python's recursion limit (reported as an error).
MAX_PICKLE_ELEMENTS = 1_000_000
MAX_JSON_CONTAINERS = 5_000_000
# Opcodes that build or reference nothing.
_FRAMING_OPCODES = frozenset({"PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "MEMOIZE", "PUT", "BINPUT",
                              "LONG_BINPUT"})
# The only opcodes a private-test pickle may hold: framing, the memo, and plain data (None, bool, int,
# float, str, bytes, list, tuple, dict, set). Everything else (globals, EXT1/2/4 served from copyreg's
# cache without ``find_class``, REDUCE, BUILD, INST/OBJ/NEWOBJ, persistent ids, out-of-band buffers)
# is refused before anything is built.
_PLAIN_DATA_OPCODES = _FRAMING_OPCODES | frozenset({
    "DUP", "GET", "BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2",
    "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "EMPTY_LIST",
    "APPEND", "APPENDS", "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_DICT", "DICT",
    "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS", "FROZENSET"})

class UnsafePickleError(ValueError):
    """A pickle asked for a class or function (anything but plain data): refused, nothing ran."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise UnsafePickleError(f"refusing to unpickle {module}.{name}: LiveCodeBench test data must be plain data")

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a pickle with persistent ids: LiveCodeBench test data must be plain data")


def _refusal(opcode: str, arg, pos: int, strings: list[str]) -> str:
    """Why a pickle is refused: the global it names (GLOBAL's argument, STACK_GLOBAL's last two
    strings) or the opcode."""
    if opcode == "GLOBAL":
        what = str(arg).replace(" ", ".")
    elif opcode == "STACK_GLOBAL":
        what = ".".join(strings)
    else:
        what = f"opcode {opcode} at byte {pos}"
    return f"refusing to unpickle {what}: LiveCodeBench test data must be plain data"


def load_plain_pickle(data: bytes, max_elements: int | None = None):
    """Unpickle ``data`` admitting only plain data. The opcodes are checked first (nothing is built):
    one outside ``_PLAIN_DATA_OPCODES`` is an UnsafePickleError, more than ``max_elements`` (default
    ``MAX_PICKLE_ELEMENTS``) object-making or -referencing opcodes a ValueError."""
    limit = MAX_PICKLE_ELEMENTS if max_elements is None else max_elements
    count, strings = 0, ["", ""]
    for opcode, arg, pos in pickletools.genops(data):
        if opcode.name not in _PLAIN_DATA_OPCODES:
            raise UnsafePickleError(_refusal(opcode.name, arg, pos, strings))
        if isinstance(arg, str):
            strings = [strings[1], arg]
        if opcode.name not in _FRAMING_OPCODES:
            count += 1
            if count > limit:
                raise ValueError(f"the pickle builds more than {limit} objects")
    return _PlainDataUnpickler(io.BytesIO(data)).load()


def _json(text: str, where: str, what: str):
    """``json.loads(text)`` with every failure (syntax, nesting, huge integers) a ValueError naming
    ``where``; more than ``MAX_JSON_CONTAINERS`` brackets is refused before parsing."""
    containers = text.count("[") + text.count("{")
    if containers > MAX_JSON_CONTAINERS:
        raise ValueError(f"{where}: {what} has {containers} JSON containers (limit {MAX_JSON_CONTAINERS})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: {what} is not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise ValueError(f"{where}: {what} is JSON nested too deeply") from None
    except ValueError as err:  # e.g. an integer over sys.get_int_max_str_digits()
        raise ValueError(f"{where}: {what}: {err}") from None


def encode_private_tests(tests: Iterable[dict]) -> str:
    """The hub's encoding of a test list: base64(zlib(pickle(json text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(list(tests)), protocol=4))).decode("ascii")


def _test_list(value, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: tests must be a JSON list, got {type(value).__name__}")
    for i, test in enumerate(value):
        if not isinstance(test, dict) or not all(isinstance(test.get(k), str) for k in ("input", "output", "testtype")):
            raise ValueError(f"{where}: test {i} must be an object with string input, output and testtype")
        if test["testtype"] not in ("stdin", "functional"):
            raise ValueError(f"{where}: test {i} has testtype {test['testtype']!r} (stdin or functional)")
    return value


def decode_private_tests(encoded: str, where: str = "private_test_cases") -> list[dict]:
    """Private tests as [{"input", "output", "testtype"}]: plain JSON text, or the hub's
    base64 + zlib + pickle encoding of it, unpickled with ``load_plain_pickle`` (refuses code)."""
    if encoded.lstrip()[:1] in ("[", "{"):
        return _test_list(_json(encoded, where, "the tests"), where)
    try:
        compressed = base64.b64decode(encoded.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_DECOMPRESSED_BYTES)
    except (ValueError, zlib.error) as err:
        raise ValueError(f"{where}: neither JSON nor base64+zlib+pickle ({err})") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"{where}: decompressed tests exceed {MAX_DECOMPRESSED_BYTES} bytes")
    try:
        text = load_plain_pickle(raw)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{where}: {err}") from None
    except Exception as err:  # noqa: BLE001 -- a corrupt pickle raises many types (UnpicklingError, EOFError, ...)
        raise ValueError(f"{where}: corrupt pickled tests ({type(err).__name__}: {err})") from None
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{where}: pickled tests are not UTF-8 ({err.reason} at byte {err.start})") from None
    if not isinstance(text, str):
        raise ValueError(f"{where}: pickled tests must be JSON text, got {type(text).__name__}")
    return _test_list(_json(text, where, "the pickled tests"), where)


@dataclass(frozen=True)
class Problem:
    """One LiveCodeBench problem. ``fn_name`` None = stdin/stdout, else call-based (LeetCode)."""

    question_id: str
    title: str
    content: str
    platform: str
    difficulty: str
    contest_date: str
    starter_code: str
    fn_name: str | None
    public_tests: tuple[Test, ...]
    private_tests_encoded: str

    def tests(self) -> list[Test]:
        """Public then private tests (the private ones decoded now; see ``decode_private_tests``)."""
        private = decode_private_tests(self.private_tests_encoded, f"problem {self.question_id}: private_test_cases")
        self._check_types(private, "private")
        return list(self.public_tests) + [Test(t["input"], t["output"]) for t in private]

    def _check_types(self, tests: list[dict], kind: str) -> None:
        wanted = "stdin" if self.fn_name is None else "functional"
        for i, test in enumerate(tests):
            if test["testtype"] != wanted:
                raise ValueError(f"problem {self.question_id}: {kind} test {i} is {test['testtype']!r} but the "
                                 f"problem is {wanted!r} ({'no ' if self.fn_name is None else ''}metadata func_name)")


def _text(value, column: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if column == "contest_date" and isinstance(value, date):  # datasets' JSON reader makes it a timestamp
        return value.isoformat()
    if column in ("question_id", "contest_id") and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{where}: column {column!r} must be a string, got {type(value).__name__}")


def text_columns(row: dict, where: str = "row") -> dict:
    """The hub's columns of ``row`` as text, as LiveCodeBench's files write them: contest_date as a
    date or timestamp (what ``datasets`` makes of it) -> ISO text, an integer question_id or
    contest_id -> its digits; ValueError naming ``where`` for a missing column or any other type."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}")
    return {c: _text(row[c], c, where) for c in COLUMNS}


def problem_from_row(row: dict, where: str = "row") -> Problem:
    """A Problem from a dataset row (hub columns, as ``text_columns`` reads them); ValueError naming
    ``where`` if malformed. Public tests and metadata are checked here; private tests when
    ``Problem.tests`` decodes them."""
    row = text_columns(row, where)
    public = _test_list(_json(row["public_test_cases"], where, "public_test_cases"), f"{where}: public_test_cases")
    metadata = _json(row["metadata"], where, "metadata")
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: metadata must be a JSON object")
    fn_name = metadata.get("func_name")
    if fn_name is not None and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        raise ValueError(f"{where}: metadata func_name {fn_name!r} is not a Python identifier")
    problem = Problem(row["question_id"], row["question_title"], row["question_content"], row["platform"],
                      row["difficulty"], row["contest_date"], row["starter_code"], fn_name,
                      tuple(Test(t["input"], t["output"]) for t in public), row["private_test_cases"])
    problem._check_types(public, "public")
    return problem


def read_lcb_jsonl(path: str | Path) -> list[dict]:
    """Rows (the hub's columns only) of a local LiveCodeBench JSONL file; blank lines skipped.
    ValueError naming the file and line for bad JSON, a missing/non-string column, malformed
    public tests or metadata, a duplicate question_id, or a file without rows."""
    rows, seen = [], {}
    for where, lineno, row in iter_jsonl_objects(path):
        problem = problem_from_row(row, where)
        if problem.question_id in seen:
            raise ValueError(f"{where}: duplicate question_id {problem.question_id!r} (first on line "
                             f"{seen[problem.question_id]})")
        seen[problem.question_id] = lineno
        rows.append(text_columns(row, where))
    if not rows:
        raise ValueError(f"{path}: no problems")
    return rows


def load_hub_rows(release: str = DEFAULT_RELEASE):
    """The hub dataset's rows of ``release`` as a ``datasets.Dataset`` (memory-mapped, cached), read
    from ``HUB_FILES``. Column types are as ``datasets`` infers them (contest_date a timestamp);
    ``problem_from_row`` / ``text_columns`` read them.

    The repository's loading script (``version_tag=...``) needs ``datasets`` < 4 and
    ``trust_remote_code``; this reads the same JSONL files with ``datasets``' json builder instead."""
    if release not in RELEASE_FILES:
        raise ValueError(f"unknown LiveCodeBench release {release!r}; known: {', '.join(RELEASE_FILES)}")
    import datasets

    files = [f"{HUB_FILES}/{name}" for name in RELEASE_FILES[release]]
    data = datasets.load_dataset("json", data_files={"test": files}, split="test")
    missing = [c for c in COLUMNS if c not in data.column_names]
    if missing:
        raise ValueError(f"{HUB_DATASET} {release}: columns {missing} missing (found {data.column_names})")
    return data.select_columns(list(COLUMNS))


def extract_code(completion: str) -> str | None:
    """The last fenced code block of ``completion`` (LiveCodeBench's ``extract_code``: the lines
    between the last two lines that contain a ``` fence); None if there are fewer than two."""
    lines = completion.split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return None
    return "\n".join(lines[fences[-2] + 1:fences[-1]])


def extract_program(completion: str, style: PromptStyle | None = None) -> str | None:
    """The program in ``completion`` as LiveCodeBench takes it for ``style`` (default generic): the
    whole output, stripped, for base models (None if empty), else ``extract_code``."""
    if style is not None and style.whole_output_is_code:
        return completion.strip() or None
    return extract_code(completion)


NO_CODE = Verdict(False, "no_code", 0, 0, None, "no program in the completion (no fenced code block)")


def grade_programs(problems: list[Problem], programs: list[str | None], grader: Grader | None = None,
                   workers: int | None = None) -> list[Verdict]:
    """Pass/fail of each program on its problem's tests, in parallel; None (no program) -> NO_CODE."""
    if len(problems) != len(programs):
        raise ValueError(f"{len(problems)} problems but {len(programs)} programs")
    grader = grader or Grader()
    jobs = [(program, p.tests(), p.fn_name) for p, program in zip(problems, programs) if program is not None]
    graded = iter(grader.grade_many(jobs, workers))
    return [next(graded) if program is not None else NO_CODE for program in programs]


# -- lm-eval glue (the tasks' utils.py only forward to these) ----------------------------------------

# The docs column naming each doc's prompt style (``lcb_prompts``), added by ``task_dataset``.
STYLE_COLUMN = "lcb_prompt"
# The task grader's isolation (auto | bwrap | unshare | guard: "guard" accepts running without
# kernel isolation), semantics (lcb | intent) and seconds per test; each logged verdict records the
# isolation and semantics it was graded with.
SANDBOX_ENV, SEMANTICS_ENV, TIMEOUT_ENV = "AUTOJUDGE_SANDBOX", "AUTOJUDGE_LCB_SEMANTICS", "AUTOJUDGE_LCB_TIMEOUT"


def task_grader() -> Grader:
    """The tasks' grader, configured by $AUTOJUDGE_SANDBOX, $AUTOJUDGE_LCB_SEMANTICS and
    $AUTOJUDGE_LCB_TIMEOUT (seconds per test, default LiveCodeBench's 6)."""
    timeout = os.environ.get(TIMEOUT_ENV) or None
    try:
        seconds = {} if timeout is None else {"timeout": float(timeout)}
    except ValueError:
        raise ValueError(f"${TIMEOUT_ENV}={timeout!r} is not a number of seconds") from None
    return Grader(isolation=os.environ.get(SANDBOX_ENV) or "auto", semantics=os.environ.get(SEMANTICS_ENV) or "lcb",
                  **seconds)


def check_task_sandbox() -> str:
    """The isolation level the task grader will use; SandboxUnavailable naming the fix when it
    cannot run here. Called when a task loads its docs, so a missing sandbox fails in seconds,
    before any generation."""
    try:
        return task_grader().level()
    except SandboxUnavailable as err:
        raise SandboxUnavailable(f"the LiveCodeBench task grades generated programs in a sandbox, checked before "
                                 f"any generation: {err}") from None


def task_style(lcb_prompt: str = AUTO, pretrained: str | None = None, preset: str | None = None) -> PromptStyle:
    """The prompt style a task run asks for (``--metadata '{"lcb_prompt": ...}'``, default the task
    YAML's "auto"): a style name, or "auto" = LiveCodeBench's choice for the model (``pretrained``,
    or the target of ``preset``; on the lm_eval CLI both come from model_args), generic for a model
    not in its list, none named, or a preset unknown here (the model itself reports that)."""
    model = pretrained
    if lcb_prompt == AUTO and not model and preset:
        from .models import resolve_preset

        try:
            model = resolve_preset(preset).target
        except ValueError:
            model = None
    return resolve_style(lcb_prompt, model)


def task_dataset(rows, style: PromptStyle):
    """The task's DatasetDict: ``rows`` (a ``datasets.Dataset`` or a list of row dicts) as split
    "test", with ``STYLE_COLUMN`` = ``style.name`` on every doc."""
    import datasets

    data = rows if isinstance(rows, datasets.Dataset) else datasets.Dataset.from_list(list(rows))
    return datasets.DatasetDict({"test": data.add_column(STYLE_COLUMN, [style.name] * len(data))})


def doc_style(doc: dict) -> PromptStyle:
    """The prompt style of an lm-eval doc (``STYLE_COLUMN``; generic for a row without it)."""
    return resolve_style(doc.get(STYLE_COLUMN) or DEFAULT_STYLE)


def doc_prompt(doc: dict) -> Prompt:
    """The ``lcb_prompts.Prompt`` of an lm-eval doc (a dataset row), in the doc's style."""
    return doc_style(doc).build(problem_from_row(doc, f"problem {doc.get('question_id')!r}"))


def grade_docs(resps: list[list[str]], docs: list[dict], grader: Grader | None = None) -> list[list[dict]]:
    """lm-eval filter: every response of every doc -> its verdict as a dict (the program taken as
    the doc's style says), graded in parallel."""
    problems, programs = [], []
    for doc, rs in zip(docs, resps):
        problem, style = problem_from_row(doc, f"problem {doc.get('question_id')!r}"), doc_style(doc)
        problems += [problem] * len(rs)
        programs += [extract_program(r, style) for r in rs]
    verdicts = iter(grade_programs(problems, programs, grader))
    return [[next(verdicts).to_dict() for _ in rs] for rs in resps]


def pass_at_1(verdict: dict) -> dict:
    """lm-eval process_results for one greedy sample: {"pass@1": 1.0 | 0.0}."""
    return {"pass@1": float(verdict["passed"])}
