"""The README and the topic pages in docs/ name only files that exist, every table of measured
numbers there has the command that regenerates it beside it, and the README's headline table is the
sweep JSON it cites.

Paths checked: markdown link targets (relative to the page) and any path-like token, in prose,
inline code or code blocks, that starts with a top-level entry of the repository (``scripts/...``,
``autojudge_harness/...``; relative to the repository root). Output paths a user creates (``out/``,
``runs/``) have roots that are not in the repository and are not checked; nor are templates
(``<mode>``, ``{K}``, ``*``, ``...``). A page may exempt path prefixes with a comment
``<!-- doc-paths-ignore: PREFIX (reason) -->``."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE_MARKER = re.compile(r"<!--\s*doc-paths-ignore:\s*(\S+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
TEMPLATE_CHARS = set("<>{}*$")
# a table of measurements: a cell holding a decimal number or a share (0.83, 1.05x, ~55.3, 77%)
MEASURED_CELL = re.compile(r"^\**~?-?(\d+\.\d+x?|\d+(\.\d+)?%)\**$")
COMMAND = re.compile(r"(^|[`\s(])(autojudge |autojudge-lm-eval |lm_eval |python3? |bash |AUTOJUDGE_\w+=)")
COMMAND_BEFORE, COMMAND_AFTER = 40, 20


def doc_pages(repo: Path = REPO) -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


def repo_roots(repo: Path = REPO) -> set[str]:
    """The top-level names of the repository's tracked files (``autojudge_harness``, ``scripts``, ...)."""
    listed = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout ({listed.stderr.strip()}): the repository's roots are unknown")
    return {line.split("/", 1)[0] for line in listed.stdout.splitlines() if "/" in line}


def path_tokens(text: str, roots: set[str]) -> list[str]:
    """Path-like tokens of ``text`` that start with one of ``roots`` followed by a slash."""
    alternatives = "|".join(re.escape(root) for root in sorted(roots, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w./~-])((?:{alternatives})/[\w./<>{{}}*$-]*)")
    return [match.rstrip(".,") for match in pattern.findall(text)]


def link_targets(text: str) -> list[str]:
    """Relative markdown link targets of ``text`` (no URLs, no in-page anchors), without their anchors."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def is_template(path: str) -> bool:
    return bool(TEMPLATE_CHARS & set(path)) or "..." in path


def missing_paths(page: Path, repo: Path, roots: set[str]) -> list[str]:
    """The paths ``page`` names that do not exist, each as 'PATH (how it was named)'."""
    text = page.read_text(encoding="utf-8")
    ignored = tuple(IGNORE_MARKER.findall(text))
    missing = []
    for token in path_tokens(text, roots):
        if not is_template(token) and not token.startswith(ignored) and not (repo / token).exists():
            missing.append(f"{token} (path from the repository root)")
    for target in link_targets(text):
        resolved = (page.parent / target).resolve()
        shown = resolved.relative_to(repo) if resolved.is_relative_to(repo) else resolved
        if not is_template(target) and not str(shown).startswith(ignored) and not resolved.exists():
            missing.append(f"{target} (link, resolves to {shown})")
    return missing


def tables(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indexes of each markdown table in ``lines``."""
    found, start = [], None
    for i, line in enumerate([*lines, ""]):
        if line.lstrip().startswith("|") and start is None:
            start = i
        elif not line.lstrip().startswith("|") and start is not None:
            found.append((start, i - 1))
            start = None
    return found


def is_measured(rows: list[str]) -> bool:
    cells = [cell.strip() for row in rows for cell in row.strip().strip("|").split("|")]
    return any(MEASURED_CELL.match(cell) for cell in cells)


def tables_without_command(page: Path) -> list[int]:
    """1-based first lines of the tables of measured numbers in ``page`` that have no command line
    (``autojudge ...``, ``lm_eval ...``, ``bash ...``) within COMMAND_BEFORE lines before them or
    COMMAND_AFTER lines after them."""
    lines = page.read_text(encoding="utf-8").splitlines()
    bare = []
    for first, last in tables(lines):
        if not is_measured(lines[first:last + 1]):
            continue
        nearby = lines[max(0, first - COMMAND_BEFORE):first] + lines[last + 1:last + 1 + COMMAND_AFTER]
        if not any(COMMAND.search(line) for line in nearby):
            bare.append(first + 1)
    return bare


def test_docs_name_only_existing_files():
    roots = repo_roots()
    missing = {str(page.relative_to(REPO)): found for page in doc_pages()
               if (found := missing_paths(page, REPO, roots))}
    assert not missing, "README/docs name files that do not exist:\n" + "\n".join(
        f"  {page}: {path}" for page, paths in missing.items() for path in paths)


def test_every_measured_table_has_its_command():
    bare = {str(page.relative_to(REPO)): lines for page in doc_pages() if (lines := tables_without_command(page))}
    assert not bare, "tables of measured numbers without the command that regenerates them nearby:\n" + "\n".join(
        f"  {page}: table at line {line}" for page, lines in bare.items() for line in lines)


def shown_equals(shown: str, value: float) -> bool:
    """Whether the table cell ``shown`` (``0.84x``, ``5.2``) is ``value`` rounded to the cell's digits."""
    number = shown.strip().strip("*").rstrip("x")
    decimals = len(number.split(".", 1)[1]) if "." in number else 0
    return abs(float(number) - value) <= 0.5 * 10 ** -decimals + 1e-9


def cell_matches(shown: str, point: dict, key: str) -> bool:
    """A headline cell against the sweep JSON: ``0.84x [0.71, 0.97]`` is ``key`` and its ``_ci``
    interval (``agreement_with_lossless``'s is ``agreement_ci``), ``1/2`` is capped here / lossless."""
    if key == "capped":
        return shown.strip() == f"{point['capped']}/{point['lossless_capped']}"
    value, _, interval = shown.partition("[")
    if not shown_equals(value, point[key]):
        return False
    if not interval:
        return True
    ci = point["agreement_ci" if key == "agreement_with_lossless" else f"{key}_ci"]
    low, high = interval.rstrip("] ").split(",")
    return shown_equals(low, ci[0]) and shown_equals(high, ci[1])


HEADLINE_JSON = "docs/sweep/smollm2-135m-gsm8k-unmined40-256.json"
HEADLINE_ROWS = {"lossless": "lossless", "AutoJudge, judge t=0.497": "judge t=0.4974", "top-2 baseline": "top_k K=2",
                 "perfect judge (oracle)": "oracle"}
HEADLINE_COLUMNS = ("agreement_with_lossless", "target_calls_per_request", "target_calls_vs_lossless", "capped",
                    "target_calls_vs_lossless_uncapped", "accepted_per_cycle", "generated_tokens_per_request")


def test_readme_headline_table_is_the_sweep_json():
    """The README's headline table shows the numbers of the sweep JSON it cites, row by row."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert HEADLINE_JSON in readme, f"the README no longer cites {HEADLINE_JSON}: update this test"
    points = {point["label"]: point for point in json.loads((REPO / HEADLINE_JSON).read_text())["points"]}
    rows = {cells[0]: cells[1:] for line in readme.splitlines() if line.startswith("| ")
            for cells in [[cell.strip() for cell in line.strip().strip("|").split("|")]] if cells[0] in HEADLINE_ROWS}
    assert set(rows) == set(HEADLINE_ROWS), f"headline rows found: {sorted(rows)}"
    assert all(len(cells) == len(HEADLINE_COLUMNS) for cells in rows.values()), rows
    drifted = [f"{row} / {column}: README {shown}, JSON {points[HEADLINE_ROWS[row]].get(column)}"
               for row, cells in rows.items() for column, shown in zip(HEADLINE_COLUMNS, cells)
               if not cell_matches(shown, points[HEADLINE_ROWS[row]], column)]
    assert not drifted, "README headline table differs from " + HEADLINE_JSON + ":\n" + "\n".join(drifted)


def test_usage_lists_every_autojudge_hf_model_arg():
    """docs/usage.md's model_args table has one row per key autojudge_hf accepts, and no other, except
    the rules' own parameters: those are documented in docs/rules.md, one mention each."""
    from autojudge_harness.lm_eval_models.hf import OWN_KEYS
    from autojudge_harness.rules import RULES, param_owner

    rule_keys = set(param_owner()) - {"judge", "threshold", "accept_top_k", "oracle"}
    lines = (REPO / "docs" / "usage.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("### `autojudge_hf` model_args")
    first, last = tables(lines[start:])[0]
    rows = lines[start + first + 2:start + last + 1]  # after the header and its separator
    documented = {re.sub(r"[`*]", "", row.strip("|").split("|")[0]).strip() for row in rows}
    expected = set(OWN_KEYS) - rule_keys
    assert documented == expected, (f"docs/usage.md model_args: missing {sorted(expected - documented)}, "
                                    f"not accepted {sorted(documented - expected)}")
    rules_page = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    missing = sorted(key for key in rule_keys | set(RULES) if f"`{key}`" not in rules_page)
    assert not missing, f"docs/rules.md does not document {missing}"


def fence_lines(page: Path) -> int:
    return sum(line.lstrip().startswith("```") for line in page.read_text(encoding="utf-8").splitlines())


def test_code_fences_are_closed():
    open_fences = [str(page.relative_to(REPO)) for page in doc_pages() if fence_lines(page) % 2]
    assert not open_fences, f"a code block is not closed (odd number of ``` lines) in: {', '.join(open_fences)}"


def test_the_checks_catch_a_missing_file_and_a_bare_table(tmp_path):
    """The checks themselves: a missing file is named, output paths and templates are not, and a
    table of numbers without a command is found."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "demo.sh").write_text("")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("Run `bash scripts/demo.sh`, then `scripts/gone.sh` and [a](../scripts/lost.sh) and\n"
                    "[b](../scripts/demo.sh); results in `out/demo/<mode>.json` and `scripts/x{K}.sh`.\n\n"
                    "| mode | calls |\n|---|---:|\n| lossless | 6.3 |\n")
    assert missing_paths(page, tmp_path, {"scripts", "docs"}) == [
        "scripts/gone.sh (path from the repository root)", "../scripts/lost.sh (link, resolves to scripts/lost.sh)"]
    assert tables_without_command(page) == []  # the command in the first line is within reach
    page.write_text("\n" * 50 + "| mode | calls |\n|---|---:|\n| lossless | 6.3 |\n\n| key | default |\n|---|---|\n"
                    "| window | 8 |\n<!-- doc-paths-ignore: scripts/gone -->`scripts/gone.sh`\n")
    assert tables_without_command(page) == [51]
    assert missing_paths(page, tmp_path, {"scripts"}) == []
