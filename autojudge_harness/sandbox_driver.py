"""Runs untrusted programs for ``autojudge_harness.grading``, inside the sandbox
(``autojudge_harness.sandbox``): started as ``python -I -S sandbox_driver.py CONTROL_FD [JSON]``,
never imported by the grader. Standard library only.

The driver serves sessions, one at a time, each in a fork of itself (``serve``). Control messages
are JSON packets on a SOCK_SEQPACKET socket (fd CONTROL_FD): ``{"probe": true}`` is answered
``{"probe": "ok"}``; ``{"run": true}`` carries three fds (the session's input pipe, reply pipe and
stderr) and forks the session's process; ``{"end": true}`` kills it and is answered
``{"ended": EXIT_STATUS, "clean": ""}`` (or what could not be restored). In a kernel sandbox (JSON
gives the scratch directories) ``end`` kills every process of the sandbox but its init and the
driver, empties /work and /tmp and checks System V IPC and keys, so the next session starts as the
first did.

A session speaks newline-delimited JSON over its two pipes:
1. grader: ``{"setup": {...}}`` -- semantics ("lcb" | "intent"), kind ("stdio" | "call"), program,
   fn_name, timeout (s), limits {memory_bytes, cpu_seconds, file_bytes, processes}, output_bytes,
   int_max_str_digits, sys_path (extra import paths), guard (a working directory: install the
   in-process audit-hook guard, for the unisolated mode), stdout_file (intent mode).
2. session: ``{"ready": true}`` or a failure ``{"status": ..., "message": ...}``.
3. grader: ``{"test": INPUT}``; session: ``{"output": TEXT}`` (stdio), ``{"value": TOKENS}`` (call,
   lcb: the typed encoding of ``encode_value``), ``{"json": TEXT}`` (call, intent) or a failure.
   Repeated until the grader stops sending (lcb) or after one test (intent).
Failure statuses: compile_error, runtime_error, time_limit_exceeded, memory_limit_exceeded,
output_limit_exceeded. Outputs are compared by the grader; expected outputs never enter here.

Semantics "lcb" is LiveCodeBench's runner (lcb_runner/evaluation/testing_util.py), reimplemented:
the import prelude and ``sys.setrecursionlimit(50000)``; a module named ``tmp_sol``; call-based:
``Solution()`` when the text ``class Solution`` occurs, one instance for all tests, a tuple result
becomes a list; stdin/stdout: a last ``if __name__ == '__main__':`` block unwrapped, every
non-import top-level statement moved into ``wrapped_function``, called once per test with
``sys.stdin`` replaced by ``MockStdin``, the original stdin object's read/readline/readlines and
``builtins.open`` patched, ``sys.stdout`` captured (``SystemExit`` ends the test normally); a
per-test SIGALRM that raises ``TimeoutException`` in the program (after printing LiveCodeBench's
message); its reliability guard's disabled functions (``os.kill``, ``os.getcwd``, ``quit``, ...).
Semantics "intent" runs the program as ``__main__`` with the real stdin/stdout (one process per
test) and compares call results after a JSON round trip.
"""

import ast
import builtins
import io
import json
import os
import resource
import signal
import sys
import time
import traceback
import types

PRELUDE_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
                   "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")
# LiveCodeBench's prelude: star imports of every module above, plain imports of all but the last two.
PRELUDE = ("".join(f"from {m} import *\n" for m in PRELUDE_MODULES)
           + "".join(f"import {m}\n" for m in PRELUDE_MODULES[:-2]) + "sys.setrecursionlimit(50000)\n")
TIMEOUT_MESSAGE = "timeout occured: alarm went off"  # (sic) LiveCodeBench's handler prints this to stdout
# What LiveCodeBench's reliability guard sets to None before running a program.
DISABLED = {"os": ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
                   "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
                   "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"),
            "shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",), "builtins": ("quit", "help")}
BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")


class TimeoutException(Exception):
    """Raised in the program by the per-test alarm (lcb semantics)."""


class OutputLimit(BaseException):
    """Raised by ``Capture.write`` once the output cap is reached."""


class Capture(io.StringIO):
    """The captured ``sys.stdout`` of one test, capped at ``limit`` characters. As in LiveCodeBench,
    ``close()`` without an argument fails (TypeError) and with one does nothing."""

    def __init__(self, limit):
        super().__init__()
        self.limit, self.overflow = limit, False

    def write(self, text):
        if self.tell() + len(text) > self.limit:
            self.overflow = True
            raise OutputLimit("output limit reached")
        return super().write(text)

    def close(self, _unused):
        return 1


class MockBuffer:
    """``sys.stdin.buffer`` during a test: ``read`` gives all input bytes, ``readline`` the first line."""

    def __init__(self, text):
        self.data = text.encode("utf-8")

    def read(self, *_args):
        return self.data

    def readline(self, *_args):
        return self.data.split(b"\n")[0] + b"\n"


class MockStdin:
    """``sys.stdin`` during a test (lcb semantics): ``read`` gives the whole input, ``readline`` the
    next line (with its newline), ``readlines`` the input split on "\\n"; not iterable; other
    attributes come from a StringIO of the input."""

    def __init__(self, text):
        self.text, self.stream, self.buffer = text, io.StringIO(text), MockBuffer(text)

    def read(self, *_args):
        return self.text

    def readline(self, *args):
        return self.stream.readline(*args)

    def readlines(self, *_args):
        return self.text.split("\n")

    def __getattr__(self, name):
        return getattr(self.stream, name)


class Channel:
    """The grader's messages and this driver's replies (the pipes' fds are the arguments)."""

    def __init__(self, fd_in, fd_out):
        for fd in (fd_in, fd_out):
            os.set_inheritable(fd, False)
        self.reader, self.writer, self.dumps = os.fdopen(fd_in, "rb"), os.fdopen(fd_out, "wb"), json.dumps

    def receive(self):
        line = self.reader.readline()
        return json.loads(line) if line else None

    def send(self, **message):
        self.writer.write(self.dumps(message).encode("utf-8") + b"\n")
        self.writer.flush()


def set_limits(limits):
    """The program's rlimits: address space, file size, no core files, processes (of this user),
    CPU seconds (soft; SIGKILL one second later); SIGXFSZ ignored, so that writing past the file-size
    cap fails with EFBIG instead of killing the process."""
    for which, value in ((resource.RLIMIT_AS, limits["memory_bytes"]), (resource.RLIMIT_FSIZE, limits["file_bytes"]),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, limits["processes"])):
        resource.setrlimit(which, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past the file-size cap fails instead of killing


def failure(status, limit=4000):
    return {"status": status, "message": traceback.format_exc(limit=6)[-limit:]}


def classify(err):
    if isinstance(err, TimeoutException):
        return "time_limit_exceeded"
    if isinstance(err, MemoryError):
        return "memory_limit_exceeded"
    if isinstance(err, OutputLimit):
        return "output_limit_exceeded"
    return "compile_error" if isinstance(err, SyntaxError) else "runtime_error"


# -- the in-process guard (only where no kernel isolation is used) -----------------------------------------

# Audit events that are refused outright: process creation and signalling, foreign code, sockets,
# raising resource limits.
DENIED_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
    "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "socket.__new__", "socket.connect", "socket.bind",
    "socket.getaddrinfo", "socket.sendto", "socket.sendmsg", "resource.setrlimit", "resource.prlimit",
    "os.link", "os.symlink", "os.setxattr", "os.removexattr", "os.chflags", "os.lchflags",
})
# Modules that would bypass the audit events above (fork_exec raises no event in 3.11; ctypes can
# call anything).
DENIED_IMPORTS = ("_posixsubprocess", "ctypes", "_ctypes", "_testcapi")
# Filesystem-changing events: allowed inside the working directory only. Value = indices of the
# path arguments; a ``dir_fd`` argument other than the default (-1 / None) is refused (it hides the
# real target; so is shutil.rmtree's descriptor-based removal).
PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.truncate": (0,), "os.chmod": (0,),
               "os.chown": (0,), "os.mkdir": (0,), "os.utime": (0,), "shutil.rmtree": (0,)}
DIR_FD_ARGS = {"os.remove": (1,), "os.rmdir": (1,), "os.rename": (2, 3), "os.chmod": (2,), "os.chown": (3,),
               "os.mkdir": (2,), "os.utime": (3,), "shutil.rmtree": (1,)}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def install_guard(workdir):
    """Audit hook: deny process creation, signals, sockets, ctypes, limit changes, and any
    filesystem change (open for writing, remove, rename, ...) outside ``workdir``."""
    root = os.path.realpath(workdir)
    deny, getcwd = PermissionError, os.getcwd

    def inside(path):
        if isinstance(path, int):  # an already open descriptor (stdin/stdout, or one opened here)
            return True
        real = os.path.realpath(os.path.join(getcwd(), os.fsdecode(path)))  # os.getcwd may be disabled later
        return real == root or real.startswith(root + os.sep) or real == os.devnull

    def hook(event, args):
        if event in DENIED_EVENTS:
            raise deny(f"{event} is not allowed in the grading sandbox")
        if event == "import":
            name = args[0]
            if any(name == m or name.startswith(m + ".") for m in DENIED_IMPORTS):
                raise ImportError(f"import of {name} is not allowed in the grading sandbox")
        elif event == "open":
            path, mode, flags = args
            if flags & WRITE_FLAGS and (mode is None or not inside(path)):
                raise deny(f"writing {path!r} is not allowed in the grading sandbox (only inside the working directory)")
        elif event in PATH_EVENTS:
            if any(i < len(args) and args[i] not in (None, -1) for i in DIR_FD_ARGS.get(event, ())):
                raise deny(f"{event} with dir_fd is not allowed in the grading sandbox")
            for i in PATH_EVENTS[event]:
                if not inside(args[i]):
                    raise deny(f"{event} on {args[i]!r} is not allowed in the grading sandbox")

    # ``import subprocess`` keeps working (lcb_runner allows it; Popen is refused by the hook), but
    # the module it holds, _posixsubprocess, is cut loose so that a fresh import of it is refused.
    import subprocess

    subprocess._posixsubprocess = None
    del sys.modules["_posixsubprocess"]
    sys.addaudithook(hook)


# -- the typed encoding of call results (lcb semantics) ---------------------------------------------------


def encode_value(value, max_tokens):
    """A flat token list for ``value`` that the grader rebuilds for Python ``==`` against the expected
    JSON value (``grading.decode_value``), without recursion: None, bool, int, float, complex, str,
    bytes, list, tuple, dict, set/frozenset, Decimal, Fraction (subclasses as their base; numpy
    scalars as ``.item()``; numpy arrays as ["A"] + their list) and ["O", type name] for anything
    else. ValueError past ``max_tokens`` tokens (e.g. a cyclic list)."""
    tokens, stack = [], [value]
    while stack:
        if len(tokens) > max_tokens:
            raise ValueError(f"the return value has more than {max_tokens} elements")
        x = stack.pop()
        kind = type(x)
        module = getattr(kind, "__module__", "")
        if x is None:
            tokens.append(["N"])
        elif isinstance(x, bool):
            tokens.append(["B", int(x)])
        elif isinstance(x, int):
            tokens.append(["I", hex(int(x))])
        elif isinstance(x, float):
            tokens.append(["F", float(x).hex()])
        elif isinstance(x, complex):
            tokens.append(["C", x.real.hex(), x.imag.hex()])
        elif isinstance(x, str):
            tokens.append(["S", str(x)])
        elif isinstance(x, (bytes, bytearray)):
            tokens.append(["Y", bytes(x).decode("latin-1")])
        elif isinstance(x, (list, tuple)):
            tokens.append(["L" if isinstance(x, list) else "T", len(x)])
            stack.extend(reversed(list(x)))
        elif isinstance(x, dict):
            items = list(x.items())
            tokens.append(["D", len(items)])
            stack.extend(element for pair in reversed(items) for element in reversed(pair))
        elif isinstance(x, (set, frozenset)):
            tokens.append(["E", len(x)])
            stack.extend(list(x))
        elif module == "decimal" and kind.__name__ == "Decimal":
            tokens.append(["M", str(x)])
        elif module == "fractions" and kind.__name__ == "Fraction":
            tokens.append(["Q", hex(x.numerator), hex(x.denominator)])
        elif module.startswith("numpy") and kind.__name__ == "ndarray":
            tokens.append(["A"])
            stack.append(x.tolist())
        elif module.startswith("numpy") and hasattr(x, "item"):
            stack.append(x.item())
        else:
            tokens.append(["O", f"{module}.{kind.__qualname__}"])
    return tokens


# -- lcb semantics -----------------------------------------------------------------------------------------


def wrap_stdio(source):
    """LiveCodeBench's transformation of a stdin/stdout program: the prelude, the top-level imports,
    then everything else as the body of ``wrapped_function`` (a last ``if __name__ == '__main__':``
    block unwrapped first). Unparsable source comes back unchanged (and fails to compile)."""
    try:
        body = ast.parse(source).body
    except Exception:  # noqa: BLE001 -- SyntaxError, ValueError (NUL bytes), RecursionError, ...
        return source
    if body and isinstance(body[-1], ast.If) and ast.unparse(body[-1].test).strip() == "__name__ == '__main__'":
        body = body[:-1] + body[-1].body
    try:
        imports = [s for s in body if isinstance(s, (ast.Import, ast.ImportFrom))]
        function = ast.FunctionDef(name="wrapped_function", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                   kw_defaults=[], defaults=[]), body=[s for s in body if s not in imports],
                                   decorator_list=[], lineno=-1)
        return PRELUDE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(function)
    except Exception:  # noqa: BLE001 -- unparse failures: LiveCodeBench keeps the source then
        return source


def disable_like_lcb(source):
    """LiveCodeBench's reliability guard. Its process has numpy imported before the guard, so a
    program that names numpy gets it imported first here too (numpy's import needs os.putenv)."""
    import shutil  # noqa: F401 -- imported so that its functions can be disabled
    import subprocess  # noqa: F401

    if "numpy" in source:
        try:
            import numpy  # noqa: F401
        except ImportError:
            pass

    os.environ["OMP_NUM_THREADS"] = "1"
    for module, names in DISABLED.items():
        for name in names:
            setattr(sys.modules[module], name, None)
    for name in BLOCKED_MODULES:
        sys.modules[name] = None


class LcbRunner:
    """One program under LiveCodeBench's semantics; ``prepare`` once, then ``run`` per test."""

    def __init__(self, setup, channel):
        self.setup, self.channel, self.call = setup, channel, setup["kind"] == "call"
        self.timeout, self.output_bytes = setup["timeout"], setup["output_bytes"]
        self.function = None

    def arm(self):
        signal.setitimer(signal.ITIMER_REAL, self.timeout)

    @staticmethod
    def disarm():
        signal.setitimer(signal.ITIMER_REAL, 0)

    def prepare(self):
        source = self.setup["program"]
        code = PRELUDE + "\n\n" + source if self.call else wrap_stdio(source)
        module = types.ModuleType("tmp_sol", "")
        try:
            self.arm()
            try:
                exec(code, module.__dict__)
                owner = module.Solution() if "class Solution" in code else module
            finally:
                self.disarm()
            name = self.setup["fn_name"] if self.call else "wrapped_function"
            self.function = getattr(owner, name, None)
            if self.function is None:
                return {"status": "runtime_error", "message": f"the program defines no {name!r}"
                        + (" in class Solution" if owner is not module else "")}
        except BaseException as err:  # noqa: B036 -- whatever the program raises is its failure
            return failure(classify(err))
        return None

    def run(self, text):
        return self.run_call(text) if self.call else self.run_stdio(text)

    def run_call(self, text):
        try:
            args = [json.loads(line) for line in text.split("\n")]
        except ValueError as err:
            return {"status": "runtime_error", "message": f"test input is not JSON, one value per line: {err}"}
        try:
            self.arm()
            try:
                value = self.function(*args)
            finally:
                self.disarm()
            if isinstance(value, tuple):
                value = list(value)
            return {"value": encode_value(value, max(1000, self.output_bytes // 8))}
        except BaseException as err:  # noqa: B036
            return failure(classify(err))

    def run_stdio(self, text):
        from unittest import mock

        capture, stdout, lines = Capture(self.output_bytes), sys.stdout, iter(text.split("\n"))
        real_stdin = sys.stdin
        patches = [mock.patch.object(real_stdin, "read", lambda *_a: text),
                   mock.patch.object(real_stdin, "readlines", lambda *_a: text.split("\n")),
                   mock.patch.object(real_stdin, "readline", lambda *_a: next(lines)),
                   mock.patch.object(sys, "stdin", MockStdin(text)),
                   mock.patch.object(builtins, "open", mock.mock_open(read_data=text))]
        sys.stdout = capture
        try:
            for patch in patches:
                patch.start()
            self.arm()
            try:
                self.function()
            except SystemExit:
                pass
            finally:
                self.disarm()
        except BaseException as err:  # noqa: B036
            return failure("output_limit_exceeded" if capture.overflow else classify(err))
        finally:
            sys.stdout = stdout
            for patch in reversed(patches):
                try:
                    patch.stop()
                except RuntimeError:  # not started (a failure while starting the patches)
                    pass
        if capture.overflow:
            return {"status": "output_limit_exceeded", "message": f"more than {self.output_bytes} characters"}
        return {"output": capture.getvalue()}


def on_alarm(_signum, _frame):
    print(TIMEOUT_MESSAGE)
    raise TimeoutException


# -- intent semantics --------------------------------------------------------------------------------------


def redirect_intent(setup, text):
    """Intent semantics, before the guard: stdin becomes the test input, stdout ``stdout_file``."""
    if setup["kind"] == "call":
        return
    path = setup["stdout_file"]
    with open(path + ".in", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.dup2(os.open(path + ".in", os.O_RDONLY), 0)
    os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace")


def run_intent(setup, text):
    """The program as ``__main__`` on one test (stdio redirected by ``redirect_intent``)."""
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    exec(PRELUDE, namespace)
    call = setup["kind"] == "call"
    try:
        code = compile(setup["program"], "solution.py", "exec")
    except BaseException:  # noqa: B036 -- SyntaxError, ValueError, RecursionError, MemoryError
        return failure("compile_error")
    try:
        if call:
            args = [json.loads(line) for line in text.split("\n")]
        exec(code, namespace)
        if call:
            name = setup["fn_name"]
            owner = namespace["Solution"]() if "Solution" in namespace else None
            function = getattr(owner, name, None) if owner is not None else namespace.get(name)
            if not callable(function):
                return {"status": "runtime_error", "message": f"the program defines no function {name!r}"}
            value = function(*args)
            return {"json": json.dumps(list(value) if isinstance(value, tuple) else value)}
    except SystemExit:
        pass
    except BaseException as err:  # noqa: B036
        return failure("output_limit_exceeded" if os.fstat(1).st_size >= setup["output_bytes"] else classify(err))
    try:
        sys.stdout.flush()
    except OSError:
        pass
    size = os.fstat(1).st_size
    if size >= setup["output_bytes"]:
        return {"status": "output_limit_exceeded", "message": f"output reached {size} bytes"}
    with open(setup["stdout_file"], "rb") as fh:
        return {"output": fh.read().decode("utf-8", "replace")}


def run_session(setup, channel):
    """One session: the program of ``setup`` on the tests the grader sends (this process is the
    session's fork of the driver; it is killed by the driver afterwards)."""
    set_limits(setup["limits"])
    sys.path.extend(p for p in setup["sys_path"] if os.path.isdir(p))
    sys.set_int_max_str_digits(setup["int_max_str_digits"])
    if setup["semantics"] == "intent":
        channel.send(ready=True)
        text = channel.receive()["test"]
        redirect_intent(setup, text)
        if setup["guard"] is not None:
            install_guard(setup["guard"])
        channel.send(**run_intent(setup, text))
        return
    if setup["guard"] is not None:
        install_guard(setup["guard"])
    signal.signal(signal.SIGALRM, on_alarm)
    disable_like_lcb(setup["program"])
    runner = LcbRunner(setup, channel)
    problem = runner.prepare()
    channel.send(**(problem or {"ready": True}))
    while problem is None:
        message = channel.receive()
        if message is None:
            return
        reply = runner.run(message["test"])
        channel.send(**reply)
        problem = reply.get("status")


# -- the driver: one session at a time, each in a fork ------------------------------------------------------

PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


def prctl(option, value):
    """``prctl(option, value)`` through libc; False where that is impossible (no ctypes)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (ImportError, OSError, AttributeError):
        return False


def start_session(control, fds, pooled):
    """Fork the session's process: it gets ``fds`` (the grader's messages, its replies, its stderr),
    its own session and process group, and nothing else of the driver's (``control`` is closed);
    ``pooled``: undo the driver's non-dumpable state (ctypes is imported only then: the guard level
    refuses it to programs)."""
    fd_in, fd_out, fd_err = fds
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    try:
        control.close()
        os.setsid()
        os.dup2(fd_err, 2)
        os.close(fd_err)
        if pooled:
            prctl(PR_SET_DUMPABLE, 1)
        try:
            with open("/proc/self/oom_score_adj", "w") as fh:  # the program, never the driver, is the OOM victim
                fh.write("1000")
        except OSError:
            pass
        channel = Channel(fd_in, fd_out)
        message = channel.receive()
        if message is not None:
            run_session(message["setup"], channel)
    finally:
        os._exit(0)  # threads the program left running end here


def kill_others(child):
    """SIGKILL every process of this PID namespace but its init and the driver, until none is left
    (a fork racing the signal is caught by the next round); (the session process's exit status as
    ``subprocess`` reports it (-signal) or None, "" or which processes survived 10 s)."""
    me, status, end = os.getpid(), None, time.monotonic() + 10
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # all it may signal in its PID namespace but itself and init
        except ProcessLookupError:
            pass
        status = reap(child, status)
        left = [pid for pid in live_pids() if pid not in (1, me)]
        if not left:
            return reap(child, status), ""
        if time.monotonic() > end:
            return status, f"processes {left[:5]} survived SIGKILL"
        time.sleep(0.001)


def reap(child, status):
    """Reap every ended child (the driver is the namespace's subreaper); ``child``'s status if seen."""
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = exit_status(code)


def exit_status(code):
    """A ``waitpid`` status as ``subprocess`` reports it: the exit code, or -signal."""
    return -os.WTERMSIG(code) if os.WIFSIGNALED(code) else os.WEXITSTATUS(code)


def kill_session(child):
    """SIGKILL the session's process group (the guard level); its process's exit status, or None."""
    if child is None:
        return None
    try:
        os.killpg(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return exit_status(os.waitpid(child, 0)[1])


def live_pids():
    """PIDs in /proc that are not zombies."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                found.append(int(name))
    return found


def empty_directory(path, keep):
    """Remove everything in ``path`` but the paths in ``keep`` (read-only mounts) and the directories
    leading to them; "" or what could not be removed."""
    try:
        os.chmod(path, 0o1777)
        for entry in os.scandir(path):
            if entry.path in keep:
                continue
            if any(k.startswith(entry.path + "/") for k in keep):
                problem = empty_directory(entry.path, keep)
            else:
                problem = remove(entry.path)
            if problem:
                return problem
        left = sorted(set(os.listdir(path)) - {os.path.relpath(k, path).split("/")[0] for k in keep
                                               if k.startswith(path + "/")})
        return f"could not empty {path}: {left[:3]}" if left else ""
    except (OSError, RecursionError) as err:
        return f"could not empty {path}: {type(err).__name__}: {err}"


def remove(path):
    """Remove a file or a tree the program left (restoring the permissions it took away)."""
    import shutil

    def fix(func, name, _exc):
        os.chmod(os.path.dirname(name), 0o700)
        if os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, 0o700)
        func(name)

    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=fix)
    else:
        os.unlink(path)
    return ""


def kernel_state():
    """What a program could leave behind in the sandbox's kernel objects besides files and processes:
    System V IPC objects and keys."""
    state = []
    for path in ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem", "/proc/keys"):
        try:
            with open(path, "rb") as fh:
                state.append(fh.read())
        except OSError:
            state.append(b"")
    return state


def clean(scratch, keep, baseline):
    """Empty the ``scratch`` directories (but ``keep``) and check the kernel state against
    ``baseline``; "" or what is left."""
    for path in scratch:
        problem = empty_directory(path, keep)
        if problem:
            return problem
    return "the program left System V IPC objects or keys" if kernel_state() != baseline else ""


def serve(control, scratch, keep):
    """Answer the grader's control messages until it closes the socket: ``probe``; ``run`` (with the
    session's three fds) forks a session; ``end`` ends it. With ``scratch`` directories (a kernel
    sandbox: the driver is the only process of its PID namespace but its init), ``end`` kills every other process of the
    sandbox, empties ``scratch`` (but ``keep``) and checks that no kernel state was left, so that
    the next session starts as the first did; without (the guard level), it kills the session's
    process and the grader then ends this driver."""
    import socket

    pooled = bool(scratch)
    if pooled:
        if os.getppid() != 1 or len(live_pids()) > 2:  # kill(-1) below must not reach beyond the sandbox
            raise SystemExit("sandbox_driver: scratch directories given outside a fresh PID namespace")
        prctl(PR_SET_DUMPABLE, 0)  # a program may not ptrace the driver or read its memory
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    baseline, child = kernel_state(), None
    while True:
        data, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 3)
        if not data:
            return
        message = json.loads(data)
        if "probe" in message:
            reply = {"probe": "ok"}
        elif "run" in message and len(fds) == 3 and child is None:
            child = start_session(control, fds, pooled)
            continue
        elif "end" in message:
            status, problem = kill_others(child) if pooled else (kill_session(child), "")
            child = None
            problem = problem or (clean(scratch, keep, baseline) if pooled else "")
            reply = {"ended": status, "clean": problem}
        else:
            reply = {"error": f"unexpected control message {str(message)[:100]}"}
        control.send(json.dumps(reply).encode("utf-8"))


def main():
    """``sandbox_driver.py CONTROL_FD [JSON]``: JSON {"scratch": [...], "keep": [...]} for a kernel sandbox."""
    import socket

    layout = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    control = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(control.fileno(), False)
    for module in PRELUDE_MODULES + ("ast", "unittest.mock", "shutil", "subprocess"):  # once, not per session
        __import__(module)
    serve(control, layout.get("scratch", []), set(layout.get("keep", [])))


if __name__ == "__main__":
    main()
    os._exit(0)
