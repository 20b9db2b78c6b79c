"""Hostile programs against the kernel sandbox (bwrap and unshare): each gets the right verdict in
bounded time, nothing of it survives, nothing outside changes, and the grader then grades the next
program correctly. The programs bypass LiveCodeBench's in-process guard on purpose (``posix.*``,
ctypes, subinterpreters): only the kernel isolation stands in their way."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from autojudge_harness import sandbox
from autojudge_harness.grading import Grader, Test
from autojudge_harness.sandbox import DRIVER, probe

REPO = Path(__file__).resolve().parents[1]
MARKER = f"autojudge-hostile-marker-{os.getpid()}"  # this run's: other runs may share the machine
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
SUM_TESTS = [Test("3 4\n", "7\n"), Test("10 -5\n", "5\n")]
LEVELS = [pytest.param(level, marks=pytest.mark.skipif(bool(probe(level, os.sys.executable)),
                                                       reason=f"{level} unavailable: {probe(level, os.sys.executable)}"))
          for level in ("bwrap", "unshare")]


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def idle_sandboxes() -> set[int]:
    """The processes of the pool's idle sandboxes: launcher, namespace init, driver (nothing else)."""
    found = set()
    for boxes in sandbox.POOL._idle.values():
        for box in boxes:
            found.add(box.proc.pid)
            for init in children(box.proc.pid):
                found |= {init, *children(init)}
    return found


def parents() -> dict[int, int]:
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                found[int(name)] = int(Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return found


def descends_from_me(pid: int, parent: dict[int, int]) -> bool:
    me = os.getpid()
    while pid > 1:
        pid = parent.get(pid, 0)
        if pid == me:
            return True
    return False


def sandbox_processes() -> list[str]:
    """Live processes of this run's sandboxes but the idle ones kept for reuse: drivers (and forks of
    them) started by this process, or a hostile program's processes marked with this run's marker."""
    found, idle, parent = [], idle_sandboxes(), parents()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in idle:
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        driver = b"/sandbox/driver.py" in cmdline or str(DRIVER).encode() in cmdline
        if state not in (b"Z", b"X") and ((driver and descends_from_me(int(name), parent))
                                          or MARKER.encode() in cmdline):
            found.append(f"{name}: {cmdline[:200]!r}")
    return found


def snapshot(path: Path) -> tuple:
    st = path.stat()
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


@pytest.fixture(params=LEVELS)
def grader(request, tmp_path):
    root = tmp_path / "sandboxes"
    root.mkdir()
    yield Grader(timeout=1.0, memory_mb=256, disk_mb=16, output_mb=1, max_processes=16, isolation=request.param,
                 tmp_root=str(root))
    sandbox.POOL.close()  # idle sandboxes are kept for reuse until then
    assert list(root.iterdir()) == [], "temporary directories left behind"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("keep")
    path.chmod(0o644)
    return path


def hostile(grader: Grader, program: str, tests=None, fn_name=None, bound: float = 30.0):
    """Grade ``program``, check the bound (generous: the machine may be loaded; a failure to contain
    would take far longer), that nothing survives, and that the next program is graded right."""
    start = time.monotonic()
    verdict = grader.grade(program, tests or SUM_TESTS, fn_name)
    assert time.monotonic() - start < bound, verdict
    assert sandbox_processes() == [], verdict
    after = grader.grade(SUM, SUM_TESTS)
    assert after.status == "passed", after
    assert verdict.isolation == grader.isolation
    return verdict


BYPASS = "import posix, time, sys\n"  # posix.* is what LiveCodeBench's guard (os.fork = None, ...) leaves


def test_fork_bomb(grader):
    program = BYPASS + "while True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n"
    verdict = hostile(grader, program)
    assert verdict.status in ("process_limit_exceeded", "time_limit_exceeded"), verdict


def test_process_creation_and_setsid_escape(grader):
    program = (BYPASS + f"for _ in range(2):\n    if posix.fork() == 0:\n        posix.setsid()\n"
               f"        if posix.fork() == 0:\n            posix.execv('/bin/sh', ['sh', '-c', 'sleep 1000; : {MARKER}'])\n"
               "        posix._exit(0)\n" + SUM)
    verdict = hostile(grader, program)
    assert verdict.status == "passed", verdict  # the answer is right; the daemons are killed


def test_subinterpreter_and_ctypes_cannot_reach_outside(grader, victim, tmp_path):
    marker = tmp_path / "pwned"
    sub = f"import os; open({str(marker)!r}, 'w'); os.unlink({str(victim)!r})"
    program = (BYPASS + "import _xxsubinterpreters as si, ctypes\n"
               f"try:\n    si.run_string(si.create(), {sub!r})\nexcept Exception as e:\n    print('sub', type(e).__name__, file=sys.stderr)\n"
               f"libc = ctypes.CDLL(None)\nlibc.system(b'touch {marker}; rm -f {victim}; (sleep 1000; : {MARKER}) &')\n"
               + SUM)
    assert hostile(grader, program).status == "passed"
    assert not marker.exists() and victim.read_text() == "keep"


def test_cannot_signal_the_grader(grader):
    me = os.getpid()
    program = (BYPASS + "import signal\n"
               f"for pid in [{me}, posix.getppid(), 1] + list(range(2, 5000)):\n"
               "    try:\n        posix.kill(pid, 9)\n    except OSError:\n        pass\n"
               f"try:\n    signal.pidfd_send_signal(posix.pidfd_open({me}), 9)\nexcept OSError:\n    pass\n" + SUM)
    verdict = hostile(grader, program)
    assert verdict.status in ("passed", "runtime_error"), verdict  # it may kill itself; never the grader
    assert os.getpid() == me


def test_environment_outside_files_and_task_data_are_hidden(grader, monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOJUDGE_TEST_SECRET", "hunter2")
    secret = tmp_path / "secret.txt"
    secret.write_text("expected outputs")
    paths = [str(secret), str(REPO / "tasks" / "livecodebench_bundled" / "problems.jsonl"), str(REPO / "README.md"),
             "/root/.bashrc", "/home", f"/proc/{os.getpid()}/environ", "/etc/passwd"]
    program = (BYPASS + "import glob\nseen = []\n"
               f"for path in {paths!r}:\n    try:\n        open(path).read(1)\n        seen.append(path)\n"
               "    except IsADirectoryError:\n        seen.append(path)\n    except OSError:\n        pass\n"
               "for env in glob.glob('/proc/*/environ'):\n    try:\n        if b'hunter2' in open(env, 'rb').read():\n"
               "            seen.append(env)\n    except OSError:\n        pass\n"
               "seen += [k for k, v in posix.environ.items() if b'hunter2' in v]\nprint(seen)\n")
    verdict = hostile(grader, program, [Test("", "[]")])
    assert verdict.status == "passed", verdict.message


def test_outside_writes_and_metadata_changes_fail(grader):
    before = snapshot(DRIVER)
    program = (BYPASS + "done = []\nfd = posix.open('/sandbox/driver.py', posix.O_RDONLY)\n"
               "for name, act in [('write', lambda: open('/sandbox/driver.py', 'a')), ('fchmod', lambda: posix.fchmod(fd, 0o777)),"
               " ('fchown', lambda: posix.fchown(fd, 0, 0)), ('utime', lambda: posix.utime('/sandbox/driver.py', (0, 0))),"
               " ('chmod', lambda: posix.chmod('/usr/bin', 0o777)), ('mkfifo', lambda: posix.mkfifo('/usr/fifo')),"
               " ('mknod', lambda: posix.mknod('/work/null', 0o666 | 0o020000, posix.makedev(1, 3))),"
               " ('root', lambda: open('/new', 'w')), ('remount', lambda: posix.system('mount -o remount,rw /usr 2>/dev/null') and 1 / 0)]:\n"
               "    try:\n        act()\n        done.append(name)\n    except (OSError, ZeroDivisionError):\n        pass\n"
               "posix.mkfifo('/work/inside-fifo')\nprint(done)\n")
    verdict = hostile(grader, program, [Test("", "[]")])
    assert verdict.status == "passed", verdict.message
    assert snapshot(DRIVER) == before


def test_no_network_to_a_loopback_listener(grader):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    program = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=0.5)\n    print('connected')\n"
               "except OSError:\n    print('no network')\n" % port)
    try:
        assert hostile(grader, program, [Test("", "no network")]).status == "passed"
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()


def test_memory_bombs(grader):
    assert hostile(grader, "x = bytearray(8 << 30)\n").status == "memory_limit_exceeded"
    spread = (BYPASS + "kids = []\nfor _ in range(6):\n    pid = posix.fork()\n    if pid == 0:\n"
              "        x = bytearray(150 << 20)\n        time.sleep(5)\n        posix._exit(0)\n    kids.append(pid)\n"
              "for pid in kids:\n    posix.waitpid(pid, 0)\nprint(0)\n")
    verdict = hostile(grader, spread, [Test("", "0")])
    assert verdict.status in ("memory_limit_exceeded", "time_limit_exceeded"), verdict  # the cgroup (or rlimit) stops it


def test_disk_fillers_deep_trees_and_immutable_files(grader):
    big = "out = open('big', 'wb')\nwhile True:\n    out.write(b'x' * (1 << 20))\n    out.flush()\n"
    assert hostile(grader, big).status == "runtime_error"  # ENOSPC / EFBIG
    many = BYPASS + "i = 0\nwhile True:\n    open(f'/tmp/f{i}', 'w').close()\n    i += 1\n"
    assert hostile(grader, many).status in ("runtime_error", "time_limit_exceeded")
    deep = (BYPASS + "for _ in range(3000):\n    posix.mkdir('d')\n    posix.chdir('d')\n"
            "import fcntl\nfd = posix.open('f', posix.O_CREAT | posix.O_RDONLY)\n"
            "try:\n    fcntl.ioctl(fd, 0x40086602, b'\\x10\\0\\0\\0\\0\\0\\0\\0')\nexcept OSError:\n    pass\n" + SUM)
    assert hostile(grader, deep).status == "passed"


def test_output_floods(grader):
    # 100 kB lines pass the 1 MiB output cap in 11 writes, long before the 1 s time limit even on a
    # loaded machine (1 kB lines needed ~1000 writes, and a slowed process hit the time limit first)
    assert hostile(grader, "while True:\n    print('x' * 100000)\n").status == "output_limit_exceeded"
    for flood in ("import sys\nwhile True:\n    sys.stderr.write('x' * 10000)\n",
                  "import posix\nwhile True:\n    posix.write(1, b'x' * 10000)\n"):
        assert hostile(grader, flood).status == "time_limit_exceeded"


def test_threads_that_never_end(grader):
    program = "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n" + SUM
    assert hostile(grader, program).status == "passed"


def test_loops_that_ignore_signals(grader):
    program = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    start = time.monotonic()
    verdict = hostile(grader, program, [Test("", "1")], bound=60)
    assert verdict.status == "time_limit_exceeded"
    assert time.monotonic() - start >= grader.problem_cap(1)  # only the problem's cap stops it


def test_program_ending_its_own_process(grader):
    assert hostile(grader, BYPASS + "posix.kill(posix.getpid(), 9)\n").status == "runtime_error"
    assert hostile(grader, BYPASS + "posix._exit(0)\n").status == "runtime_error"


def test_parallel_hostile_batch_keeps_one_verdict_per_program(grader):
    jobs = [(SUM, SUM_TESTS, None), ("print(float('nan'))", [Test("", "sNaN")], None),
            ("class Solution:\n    def f(self, x):\n        v = []\n        for _ in range(100000):\n            v = [v]\n"
             "        return v\n", [Test("1", "[[1]]")], "f"),
            (BYPASS + "posix.kill(0, 9)\n", SUM_TESTS, None), ("while True: pass", SUM_TESTS, None)]
    statuses = [v.status for v in grader.grade_many(jobs, workers=3)]
    assert statuses == ["passed", "wrong_answer", "wrong_answer", "runtime_error", "time_limit_exceeded"]
    assert sandbox_processes() == []


def test_threads_of_the_grader_are_not_visible(grader):
    """The sandbox's /proc shows only its own processes."""
    program = "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]) <= 3)\n"
    assert hostile(grader, program, [Test("", "True")]).status == "passed"
    assert threading.main_thread().is_alive()
