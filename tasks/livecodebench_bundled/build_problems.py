"""Writes problems.jsonl: ten small original coding problems in LiveCodeBench's row format
(stdin/stdout and call-based), each with public and private tests, the private ones in the hub's
base64+zlib+pickle encoding. Expected outputs come from the reference solutions below (run
in-process: they are this file's own code).

    python tasks/livecodebench_bundled/build_problems.py     # rewrites problems.jsonl

``tests/test_livecodebench.py`` checks that every reference solution passes its problem through
the sandboxed grader and that problems.jsonl is what this script writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from autojudge_harness.livecodebench import encode_private_tests  # noqa: E402

OUT = Path(__file__).with_name("problems.jsonl")

# (id, title, statement, solution source, public inputs, private inputs) -- stdin/stdout problems
STDIN_PROBLEMS = [
    ("lcbb01", "Add Two Numbers",
     "You are given two integers A and B on one line, separated by a space. Print A + B.\n\n"
     "Constraints: -10^9 <= A, B <= 10^9.\n\nSample Input 1\n\n3 4\n\nSample Output 1\n\n7\n\n"
     "Sample Input 2\n\n-5 12\n\nSample Output 2\n\n7",
     "a, b = map(int, input().split())\nprint(a + b)\n",
     ["3 4\n", "-5 12\n"], ["0 0\n", "1000000000 1000000000\n", "-7 -8\n"]),
    ("lcbb02", "Vowel Counter",
     "A line contains a word S made of lowercase English letters. Print how many of its letters are "
     "vowels (a, e, i, o, u).\n\nConstraints: 1 <= |S| <= 100.\n\nSample Input 1\n\nbanana\n\n"
     "Sample Output 1\n\n3\n\nSample Input 2\n\nrhythm\n\nSample Output 2\n\n0",
     "s = input().strip()\nprint(sum(c in 'aeiou' for c in s))\n",
     ["banana\n", "rhythm\n"], ["queueing\n", "x\n", "aeiouaeiou\n"]),
    ("lcbb03", "Largest Gap",
     "The first line holds N. The second line holds N integers in increasing order. Print the largest "
     "difference between two neighbouring integers.\n\nConstraints: 2 <= N <= 1000, values fit in 32 bits."
     "\n\nSample Input 1\n\n4\n1 3 8 10\n\nSample Output 1\n\n5\n\nSample Input 2\n\n2\n-4 4\n\n"
     "Sample Output 2\n\n8",
     "n = int(input())\nv = list(map(int, input().split()))\nprint(max(b - a for a, b in zip(v, v[1:])))\n",
     ["4\n1 3 8 10\n", "2\n-4 4\n"], ["5\n1 2 3 4 5\n", "3\n0 100 101\n", "6\n-10 -9 -1 0 7 30\n"]),
    ("lcbb04", "Mirror Words",
     "A line holds several words separated by single spaces. Print the words in reverse order, "
     "separated by single spaces.\n\nSample Input 1\n\nred green blue\n\nSample Output 1\n\n"
     "blue green red\n\nSample Input 2\n\nsolo\n\nSample Output 2\n\nsolo",
     "print(' '.join(reversed(input().split())))\n",
     ["red green blue\n", "solo\n"], ["a b\n", "one two three four five\n", "x y x\n"]),
    ("lcbb05", "Mean Rainfall",
     "The first line holds N, the number of days. The second line holds N non-negative integers, the "
     "rainfall of each day in millimetres. Print the mean rainfall. Your answer is accepted if it equals "
     "the exact mean as a decimal number (trailing zeros do not matter).\n\nSample Input 1\n\n4\n1 2 3 4\n\n"
     "Sample Output 1\n\n2.5\n\nSample Input 2\n\n2\n6 6\n\nSample Output 2\n\n6",
     "n = int(input())\nv = list(map(int, input().split()))\nm = sum(v) / n\nprint(int(m) if m == int(m) else m)\n",
     ["4\n1 2 3 4\n", "2\n6 6\n"], ["5\n0 0 0 0 1\n", "1\n42\n", "4\n10 0 5 0\n"]),
    ("lcbb06", "Staircase",
     "Given N, print N lines: line i (1-based) holds i asterisks.\n\nConstraints: 1 <= N <= 50.\n\n"
     "Sample Input 1\n\n3\n\nSample Output 1\n\n*\n**\n***\n\nSample Input 2\n\n1\n\nSample Output 2\n\n*",
     "n = int(input())\nfor i in range(1, n + 1):\n    print('*' * i)\n",
     ["3\n", "1\n"], ["2\n", "5\n", "7\n"]),
]

# (id, title, statement, function name, starter code, solution, public args, private args)
CALL_PROBLEMS = [
    ("lcbb07", "Double The Evens",
     "Given an integer array nums, return a new array where every even element is doubled and every odd "
     "element is kept.\n\nExample 1:\n\nInput: nums = [1,2,3,4]\nOutput: [1,4,3,8]\n\nExample 2:\n\n"
     "Input: nums = [7]\nOutput: [7]\n\nConstraints:\n\n1 <= nums.length <= 100\n-1000 <= nums[i] <= 1000",
     "doubleEvens", "class Solution:\n    def doubleEvens(self, nums: List[int]) -> List[int]:\n        ",
     "class Solution:\n    def doubleEvens(self, nums: List[int]) -> List[int]:\n"
     "        return [x * 2 if x % 2 == 0 else x for x in nums]\n",
     [([1, 2, 3, 4],), ([7],)], [([0, -2, 5],), ([2, 2, 2],), ([-3, 10, 11, 12],)]),
    ("lcbb08", "Palindrome Check",
     "Given a string s of lowercase letters, return true if s reads the same forwards and backwards.\n\n"
     "Example 1:\n\nInput: s = \"level\"\nOutput: true\n\nExample 2:\n\nInput: s = \"ab\"\nOutput: false\n\n"
     "Constraints:\n\n1 <= s.length <= 100",
     "isPalindrome", "class Solution:\n    def isPalindrome(self, s: str) -> bool:\n        ",
     "class Solution:\n    def isPalindrome(self, s: str) -> bool:\n        return s == s[::-1]\n",
     [("level",), ("ab",)], [("a",), ("abca",), ("racecar",)]),
    ("lcbb09", "Pairs With Target Sum",
     "Given an integer array nums and an integer target, return the number of index pairs (i, j) with "
     "i < j and nums[i] + nums[j] == target.\n\nExample 1:\n\nInput: nums = [1,2,3,4], target = 5\n"
     "Output: 2\n\nExample 2:\n\nInput: nums = [2,2,2], target = 4\nOutput: 3\n\nConstraints:\n\n"
     "2 <= nums.length <= 200\n-100 <= nums[i], target <= 100",
     "countPairs", "class Solution:\n    def countPairs(self, nums: List[int], target: int) -> int:\n        ",
     "class Solution:\n    def countPairs(self, nums: List[int], target: int) -> int:\n"
     "        n = len(nums)\n"
     "        return sum(nums[i] + nums[j] == target for i in range(n) for j in range(i + 1, n))\n",
     [([1, 2, 3, 4], 5), ([2, 2, 2], 4)], [([1, 1], 3), ([0, 0, 0, 0], 0), ([-1, 6, 3, 2, 4], 5)]),
    ("lcbb10", "Longest Run",
     "Given a non-empty string s, return the length of the longest block of consecutive equal "
     "characters.\n\nExample 1:\n\nInput: s = \"aabbbc\"\nOutput: 3\n\nExample 2:\n\nInput: s = \"xyz\"\n"
     "Output: 1\n\nConstraints:\n\n1 <= s.length <= 1000",
     "longestRun", "class Solution:\n    def longestRun(self, s: str) -> int:\n        ",
     "class Solution:\n    def longestRun(self, s: str) -> int:\n        best = run = 1\n"
     "        for a, b in zip(s, s[1:]):\n            run = run + 1 if a == b else 1\n"
     "            best = max(best, run)\n        return best\n",
     [("aabbbc",), ("xyz",)], [("q",), ("zzzzz",), ("abccba",)]),
]


def run_stdin(source: str, stdin: str) -> str:
    out = io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out):
            exec(source, {"__name__": "__main__"})
    finally:
        sys.stdin = old
    return out.getvalue()


def call(source: str, name: str, args: tuple):
    namespace: dict = {}
    exec("from typing import List\n" + source, namespace)
    return getattr(namespace["Solution"](), name)(*args)


def row(qid, title, statement, starter, func_name, public, private) -> dict:
    return {"question_title": title, "question_content": statement, "platform": "bundled", "question_id": qid,
            "contest_id": "autojudge-bundled", "contest_date": "2025-01-01T00:00:00", "starter_code": starter,
            "difficulty": "easy", "public_test_cases": json.dumps(public),
            "private_test_cases": encode_private_tests(private),
            "metadata": json.dumps({"func_name": func_name} if func_name else {})}


def build() -> list[dict]:
    rows = []
    for qid, title, statement, solution, public, private in STDIN_PROBLEMS:
        tests = [[{"input": i, "output": run_stdin(solution, i), "testtype": "stdin"} for i in inputs]
                 for inputs in (public, private)]
        rows.append(row(qid, title, statement, "", None, *tests))
    for qid, title, statement, name, starter, solution, public, private in CALL_PROBLEMS:
        tests = [[{"input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(call(solution, name, args)),
                   "testtype": "functional"} for args in arg_lists] for arg_lists in (public, private)]
        rows.append(row(qid, title, statement, starter, name, *tests))
    return rows


def reference_solutions() -> dict[str, str]:
    """question_id -> reference solution source."""
    return {p[0]: p[3] for p in STDIN_PROBLEMS} | {p[0]: p[5] for p in CALL_PROBLEMS}


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


if __name__ == "__main__":
    OUT.write_text(render(build()))
    print(f"wrote {OUT}")
