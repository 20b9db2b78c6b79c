"""Runs ONE test of an untrusted program; started by ``autojudge_harness.grading`` as
``python -I -B sandbox_driver.py SPEC.json`` in a fresh process (its own session), never imported.

Standard library only. Order matters: limits first, then the result file is opened (it lies
outside the working directory), then the LiveCodeBench prelude is imported, then the in-process
guard (an audit hook, which cannot be removed) is installed, and only then is the program run.

SPEC keys: mode ("stdio" | "call"), program (path), workdir, result (path, call mode), fn_name and
args (call mode: the test input, JSON values one per line), memory_bytes, cpu_seconds,
file_bytes, guard (bool).

Exit codes: 0 ran to the end (stdio: the output is in stdout; call: the JSON return value is in
the result file), 1 runtime error, 2 compile error, 3 MemoryError, 4 the requested function is
missing or its return value is not JSON-serialisable.
"""

import json
import os
import resource
import sys
import traceback

RUNTIME_ERROR, COMPILE_ERROR, MEMORY_ERROR, BAD_CALL = 1, 2, 3, 4

# The names LiveCodeBench's runner makes available to every program (lcb_runner's import prelude):
# star imports of these modules plus the modules themselves.
PRELUDE_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
                   "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")

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


def set_limits(spec):
    for limit, value in ((resource.RLIMIT_AS, spec["memory_bytes"]), (resource.RLIMIT_FSIZE, spec["file_bytes"]),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (spec["cpu_seconds"], spec["cpu_seconds"] + 1))


def install_guard(workdir):
    """Audit hook: deny process creation, signals, sockets, ctypes, limit changes, and any
    filesystem change (open for writing, remove, rename, ...) outside ``workdir``."""
    root = os.path.realpath(workdir)
    deny = PermissionError

    def inside(path):
        if isinstance(path, int):  # an already open descriptor (stdin/stdout, or one opened here)
            return True
        real = os.path.realpath(os.fsdecode(path))
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


def fail(code, message):
    try:
        sys.stderr.write(message)
        sys.stderr.flush()
    finally:
        os._exit(code)


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    set_limits(spec)
    sys.set_int_max_str_digits(0)  # lcb_runner raises the limit too: huge integers print and parse
    result_file = open(spec["result"], "w", encoding="utf-8") if spec["mode"] == "call" else None
    with open(spec["program"], encoding="utf-8") as fh:
        source = fh.read()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec("".join(f"from {m} import *\nimport {m}\n" for m in PRELUDE_MODULES), namespace)
    sys.setrecursionlimit(50000)
    if spec["guard"]:
        install_guard(spec["workdir"])
    try:
        code = compile(source, "solution.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        fail(COMPILE_ERROR, traceback.format_exc(limit=2))
    try:
        if spec["mode"] == "stdio":
            try:
                exec(code, namespace)
            except SystemExit:  # lcb_runner treats exit() in a stdin/stdout program as a normal end
                pass
            sys.stdout.flush()
            return
        exec(code, namespace)
        name = spec["fn_name"]
        owner = namespace["Solution"]() if "class Solution" in source and "Solution" in namespace else None
        function = getattr(owner, name, None) if owner is not None else namespace.get(name)
        if not callable(function):
            fail(BAD_CALL, f"the program defines no function {name!r}"
                 + (" in class Solution" if owner is not None else ""))
        args = [json.loads(line) for line in spec["args"].split("\n")]
        value = function(*args)
        if isinstance(value, tuple):  # as lcb_runner: a tuple answers a list
            value = list(value)
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as err:
            fail(BAD_CALL, f"return value is not JSON data: {err}")
        result_file.write(text)
        result_file.flush()
    except MemoryError:
        fail(MEMORY_ERROR, "MemoryError")
    except BaseException:  # noqa: B036 -- any failure of the program (SystemExit in call mode too) is its error
        fail(RUNTIME_ERROR, traceback.format_exc(limit=5)[-4000:])


if __name__ == "__main__":
    main()
