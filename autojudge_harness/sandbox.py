"""The isolation layer of the grader: starts ``sandbox_driver.py`` in a sandbox, runs sessions (one
untrusted program each, in a fork of the driver) in it, and tears it down (every process of it
killed) whatever happened. Kernel sandboxes are kept for the next program (``POOL``).

Isolation levels (``ISOLATIONS``):
- ``bwrap`` (bubblewrap) and ``unshare`` (util-linux; as root or with user namespaces): kernel
  isolation. The program gets its own user (no capabilities), PID, network (a loopback of its own,
  nothing outside), mount, IPC and UTS namespaces; a read-only view of /usr, the driver file, /dev,
  its own /proc and the Python installation the user's interpreter needs (``interpreter``: the base
  interpreter of a venv, its prefix, shared library and site-packages, mounted read-only at their
  own paths after the tmpfs, so an interpreter under /tmp works too); a tmpfs working directory
  (/work) and a private /tmp, each ``disk_mb`` in size (the only writable places); no view of the
  repository, the task data, home directories, the grader's processes or environment (a minimal
  fixed environment). Between two programs the driver kills every process of the sandbox but its
  init and itself, empties /work and /tmp and checks System V IPC and keys; a sandbox it cannot
  restore is retired. When a sandbox is closed its PID namespace ends: every process in it dies,
  and its tmpfs are gone.
- ``guard``: no kernel isolation. The driver runs in a fresh session in a temporary directory with
  the in-process audit-hook guard (``sandbox_driver.install_guard``) and a /proc watchdog; one
  sandbox per program. Not a security boundary; used only when the user asks for it explicitly.

Limits, every level (set by the session's process, ``sandbox_driver.set_limits``): RLIMIT_AS
(``memory_mb``, per process), RLIMIT_CPU, RLIMIT_FSIZE (``file_mb``; SIGXFSZ ignored: EFBIG),
RLIMIT_NPROC, no core files; a cgroup (v2, else v1 memory + pids, where writable) caps the memory
of all the sandbox's processes together (``memory_mb`` + both tmpfs) and their number
(``processes``); without a pids cgroup the grader counts the processes itself and stops the
program past ``processes``. Wall time and output size are enforced by the caller
(``Sandbox.receive``)."""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ISOLATIONS = ("bwrap", "unshare", "guard")
DRIVER = Path(__file__).with_name("sandbox_driver.py")
INSIDE_DRIVER = "/sandbox/driver.py"
INSIDE_WORKDIR = "/work"
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": INSIDE_WORKDIR, "TMPDIR": "/tmp",
       "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STDERR_TAIL = 8192


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be used here (the message says why and what to do)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox (see the module docstring)."""

    memory_mb: int
    file_mb: int
    disk_mb: int
    processes: int


# -- what the sandbox shows of the Python installation ------------------------------------------------------

LAYOUT_CODE = ("import json, os, site, sys, sysconfig; print(json.dumps({'executable': os.path.realpath(getattr(sys, "
               "'_base_executable', '') or sys.executable), 'prefixes': [sys.base_prefix, sys.base_exec_prefix], "
               "'libdir': sysconfig.get_config_var('LIBDIR') or '', 'site': site.getsitepackages()}))")


@dataclass(frozen=True)
class Interpreter:
    """How a sandbox runs the user's ``python``: ``executable``, the real path of the base interpreter
    (a venv's symlink or copy resolved); ``shown``, the directories mounted read-only at their own
    paths (its prefixes, its shared library's directory, its site-packages; those under /usr are
    there already); ``import_paths``, the site-packages directories the driver adds to sys.path
    (no .pth processing)."""

    executable: str
    shown: tuple[str, ...]
    import_paths: tuple[str, ...]


@functools.lru_cache(maxsize=None)
def interpreter(python: str) -> Interpreter:
    """The ``Interpreter`` of ``python`` (any location: a venv anywhere, /tmp included, conda, a
    system python), asked of ``python`` itself; ValueError if it does not run."""
    try:
        run = subprocess.run([python, "-I", "-c", LAYOUT_CODE], capture_output=True, text=True, timeout=60)
        info = json.loads(run.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired) as err:
        raise ValueError(f"cannot run the grading interpreter {python!r}: {err}") from None
    executable = info["executable"]
    site_dirs = [os.path.realpath(p) for p in info["site"] if os.path.isdir(p)]
    wanted = {os.path.realpath(p) for p in info["prefixes"]} | {os.path.dirname(os.path.dirname(executable))}
    wanted |= {os.path.realpath(info["libdir"])} if info["libdir"] and os.path.isdir(info["libdir"]) else set()
    wanted |= set(site_dirs)
    outside = [d for d in wanted if d != "/" and d != "/usr" and not d.startswith("/usr/")]
    shown = sorted(d for d in outside if not any(d.startswith(other + "/") for other in outside))
    return Interpreter(executable, tuple(shown), tuple(dict.fromkeys(site_dirs)))


def _root_links() -> list[tuple[str, str | None]]:
    """(/bin, /lib, ...) -> their symlink target, or None for a real directory to show read-only."""
    found = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            found.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            found.append((path, None))
    return found


def driver_layout(shown: tuple[str, ...]) -> str:
    """The driver's JSON argument in a kernel sandbox: the directories it empties after each session
    and the read-only mounts inside them that it keeps."""
    scratch = ["/tmp", INSIDE_WORKDIR]
    keep = [d for d in shown if any(d.startswith(s + "/") for s in scratch)]
    return json.dumps({"scratch": scratch, "keep": keep})


# -- launch commands ------------------------------------------------------------------------------------------


def bwrap_command(python: str, limits: Limits, info_fd: int, control_fd: int) -> list[str]:
    found = interpreter(python)
    size = str(limits.disk_mb << 20)
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
           "--disable-userns", "--die-with-parent", "--new-session", "--hostname", "sandbox",
           "--ro-bind", "/usr", "/usr"]
    for path, target in _root_links():
        cmd += ["--symlink", target, path] if target is not None else ["--ro-bind", path, path]
    cmd += ["--ro-bind", str(DRIVER), INSIDE_DRIVER, "--proc", "/proc", "--dev", "/dev",
            "--size", size, "--perms", "1777", "--tmpfs", "/tmp", "--size", size, "--perms", "1777", "--tmpfs",
            INSIDE_WORKDIR]
    for path in found.shown:  # after the tmpfs: an interpreter under /tmp stays visible
        cmd += ["--ro-bind", path, path]
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", INSIDE_WORKDIR, "--clearenv"]
    for key, value in ENV.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--info-fd", str(info_fd), "--", found.executable, "-I", "-S", INSIDE_DRIVER, str(control_fd),
                  driver_layout(found.shown)]


# Runs inside the new namespaces (as the namespace's root): builds the sandbox's root on a tmpfs at
# $1, then chroots into it and drops every capability; a shell stays the namespace's init (PID 1,
# which ignores signals it has no handler for) and the driver runs as its child (PID 2).
UNSHARE_SETUP = r"""
set -eu
R=$1; DRIVER=$2; SIZE=$3; INODES=$4; PY=$5; FD=$6; LAYOUT=$7; shift 7
robind() { mkdir -p "$R$2"; mount --bind "$1" "$R$2"; mount -o remount,bind,ro,nosuid,nodev "$R$2"; }
mount -t tmpfs -o size=1m,mode=0755 sandbox-root "$R"
robind /usr /usr
while [ "$1" != "--" ]; do
  if [ "$1" = link ]; then ln -s "$3" "$R$2"; else robind "$2" "$2"; fi; shift 3
done
shift
mkdir -p "$R/sandbox" "$R/dev" "$R/proc" "$R/tmp" "$R/work"
touch "$R/sandbox/driver.py"; mount --bind "$DRIVER" "$R/sandbox/driver.py"
mount -o remount,bind,ro "$R/sandbox/driver.py"
for dev in null zero full random urandom; do touch "$R/dev/$dev"; mount --bind "/dev/$dev" "$R/dev/$dev"; done
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o "size=$SIZE,nr_inodes=$INODES,mode=1777,nosuid,nodev" sandbox-tmp "$R/tmp"
mount -t tmpfs -o "size=$SIZE,nr_inodes=$INODES,mode=1777,nosuid,nodev" sandbox-work "$R/work"
for dir in "$@"; do robind "$dir" "$dir"; done
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -o remount,ro "$R"
cd "$R"
exec /usr/sbin/chroot "$R" /usr/bin/setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- \
  /bin/sh -c 'cd /work && "$@" & wait $!' sh "$PY" -I -S /sandbox/driver.py "$FD" "$LAYOUT"
"""


def unshare_command(python: str, limits: Limits, root: str, control_fd: int) -> list[str]:
    found = interpreter(python)
    links = []
    for path, target in _root_links():
        links += ["link", path, target] if target is not None else ["dir", path, "-"]
    inodes = str(max(4096, limits.disk_mb * 1024))
    return ([shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
             "--mount", "--net", "--ipc", "--uts", "--cgroup", "--propagation", "private", "--", "/bin/sh", "-c",
             UNSHARE_SETUP, "sh", root, str(DRIVER), str(limits.disk_mb << 20), inodes, found.executable,
             str(control_fd), driver_layout(found.shown)] + links + ["--"] + list(found.shown))


# -- cgroups --------------------------------------------------------------------------------------------------


class Cgroup:
    """A fresh cgroup (v2, else v1 memory + pids) capping memory and processes; None if not writable."""

    def __init__(self, dirs: list[Path], version: int):
        self.dirs, self.version = dirs, version

    @classmethod
    def create(cls, memory_bytes: int, processes: int) -> Cgroup | None:
        name = f"autojudge-{uuid.uuid4().hex[:16]}"
        v2 = Path("/sys/fs/cgroup")
        try:
            if "memory" in (v2 / "cgroup.controllers").read_text().split():
                parent = v2 / "autojudge"
                parent.mkdir(exist_ok=True)
                (v2 / "cgroup.subtree_control").write_text("+memory +pids")
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
                group = parent / name
                group.mkdir()
                (group / "memory.max").write_text(str(memory_bytes))
                (group / "memory.swap.max").write_text("0")
                (group / "pids.max").write_text(str(processes))
                return cls([group], 2)
        except OSError:
            pass
        made = []
        try:
            for controller, settings in (("memory", {"memory.limit_in_bytes": memory_bytes}),
                                         ("pids", {"pids.max": processes})):
                group = v2 / controller / name
                group.mkdir()
                made.append(group)
                for key, value in settings.items():
                    (group / key).write_text(str(value))
            return cls(made, 1)
        except OSError:
            cls(made, 1).remove()
            return None

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return found

    def memory_exceeded(self) -> bool:
        """Whether the memory cap was hit (an OOM kill or a refused charge)."""
        try:
            if self.version == 2:
                events = dict(line.split() for line in (self.dirs[0] / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0 or int(events.get("oom", 0)) > 0
            return int((self.dirs[0] / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError, IndexError):
            return False

    def processes_exceeded(self) -> bool:
        """Whether a fork was refused at the process cap."""
        group = self.dirs[0] if self.version == 2 else self.dirs[-1]
        try:
            events = dict(line.split() for line in (group / "pids.events").read_text().splitlines())
            return int(events.get("max", 0)) > 0
        except (OSError, ValueError):
            return False

    def kill(self, budget_s: float = 5.0) -> None:
        end = time.monotonic() + budget_s
        while time.monotonic() < end:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                _kill(pid)
            time.sleep(0.005)

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the guard level's process watchdog ----------------------------------------------------------------------


def _clock_ticks_now() -> int:
    with open("/proc/uptime") as fh:
        return int(float(fh.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, process group, session, start time in clock ticks) of ``pid``, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[2]), int(fields[3]), int(fields[19])


def _has_token(pid: int, token: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return token in fh.read()
    except OSError:
        return False


def guard_processes(leader: int, token: bytes, since_ticks: int) -> list[int]:
    """Live processes of an unisolated run: in ``leader``'s process group or session, or started at
    or after ``since_ticks`` with ``token`` in their environment (this catches ``setsid`` escapes)."""
    found, me = [], os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        info = _stat(int(name))
        if info is None or info[0] in ("Z", "X"):
            continue
        _, pgrp, session, start = info
        if pgrp == leader or session == leader or (start >= since_ticks and _has_token(int(name), token)):
            found.append(int(name))
    return found


def pidns_processes(ns_link: str) -> list[int]:
    """Live processes whose PID namespace is ``ns_link`` (``readlink /proc/PID/ns/pid``)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == ns_link:
                    info = _stat(int(name))
                    if info is not None and info[0] not in ("Z", "X"):
                        found.append(int(name))
            except OSError:
                pass
    return found


def remove_tree(path: Path) -> str:
    """Remove ``path`` (restoring permissions a program took away; any depth); "" or what failed.
    Never raises."""
    def fix(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    try:
        if os.path.lexists(path):
            shutil.rmtree(path, onerror=fix)
    except Exception as err:  # noqa: BLE001 -- RecursionError on deep trees, ...
        for _ in range(3):  # the shell's rm handles any depth
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], capture_output=True, timeout=60)
        if os.path.lexists(path):
            return f"could not remove {path}: {type(err).__name__}: {err}"
    return "" if not os.path.lexists(path) else f"could not remove {path}"


# -- probing --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def probe(isolation: str, python: str) -> str:
    """"" if ``isolation`` runs a Python program here, else why not (cached per interpreter)."""
    if isolation == "guard":
        return ""
    tool = "bwrap" if isolation == "bwrap" else "unshare"
    if shutil.which(tool) is None:
        return f"{tool} is not installed"
    limits = Limits(memory_mb=1024, file_mb=1, disk_mb=1, processes=16)
    try:
        box = Sandbox(isolation, limits, python)
    except (OSError, ValueError) as err:
        return f"{tool} could not start: {err}"
    try:
        reply = box.control_message({"probe": True}, 60)
        if reply != {"probe": "ok"}:
            return f"{tool} did not run the driver ({reply}): {box.launch_errors().strip()[-500:]}"
        return ""
    finally:
        box.close()


def resolve_isolation(requested: str, python: str) -> str:
    """The isolation level to use for ``requested`` ("auto" = bwrap, else unshare); SandboxUnavailable
    when it (or, for "auto", any kernel isolation) cannot run here."""
    if requested not in ISOLATIONS + ("auto",):
        raise ValueError(f"unknown isolation {requested!r}; one of auto, {', '.join(ISOLATIONS)}")
    if requested != "auto":
        problem = probe(requested, python)
        if problem:
            raise SandboxUnavailable(f"isolation {requested!r} is not available: {problem}")
        return requested
    problems = {}
    for level in ("bwrap", "unshare"):
        problems[level] = probe(level, python)
        if not problems[level]:
            return level
    raise SandboxUnavailable(
        "no kernel isolation for running model-written code here (bwrap: " + problems["bwrap"] + "; unshare: "
        + problems["unshare"] + "). Install bubblewrap (scripts/install_sandbox.sh), or accept the weaker "
        "in-process guard explicitly: Grader(isolation='guard') / AUTOJUDGE_SANDBOX=guard.")


# -- one running sandbox ------------------------------------------------------------------------------------


class Sandbox:
    """The driver running in a sandbox of level ``isolation``. A session (``start``, then
    ``send``/``receive`` messages, then ``end``) is one fork of the driver with fresh pipes; a kernel
    sandbox serves any number of sessions one after another, each starting as the first did
    (``reusable`` says whether this one still can). ``close`` kills every process of the sandbox;
    never raises. ``workdir``: the program's working directory as the driver sees it."""

    def __init__(self, isolation: str, limits: Limits, python: str, tmp_root: str | None = None):
        self.isolation, self.limits, self.reusable = isolation, limits, isolation != "guard"
        # the cgroup also holds the launcher (bwrap or unshare), the namespace's init and the driver
        self.cgroup = Cgroup.create((limits.memory_mb + 2 * limits.disk_mb) << 20, limits.processes + 3) \
            if isolation != "guard" else None
        self.host_dir = Path(tempfile.mkdtemp(prefix="autojudge-sandbox-", dir=tmp_root)) \
            if isolation != "bwrap" else None
        self.token = f"AUTOJUDGE_SANDBOX_{uuid.uuid4().hex}"
        self._stderr, self._buffer, self._closed, self._info_text = bytearray(), bytearray(), False, b""
        self._launch_stderr = bytearray()
        self._since = _clock_ticks_now() - 1
        self.init_pid, self.ns_link = None, None
        self._commands = self._replies = self._errors = None
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._launch_errors, err_w = os.pipe()
        info_r, info_w = os.pipe()
        fds = [theirs.fileno(), info_w]
        try:
            if isolation == "bwrap":
                cmd = bwrap_command(python, limits, info_w, theirs.fileno())
                env, cwd = {"PATH": ENV["PATH"]}, "/"
            elif isolation == "unshare":
                (self.host_dir / "root").mkdir()
                cmd = unshare_command(python, limits, str(self.host_dir / "root"), theirs.fileno())
                env, cwd = {**ENV, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, "/"  # the setup needs sbin
            else:
                work = self.host_dir / "work"
                work.mkdir(mode=0o700)
                self.workdir = str(work)
                cmd = [python, "-I", "-S", str(DRIVER), str(theirs.fileno())]
                env = {**ENV, "HOME": str(work), "TMPDIR": str(work), "AUTOJUDGE_SANDBOX": self.token}
                cwd = str(work)
            if isolation != "guard":
                self.workdir = INSIDE_WORKDIR
            if self.cgroup is not None:  # join the cgroup before the sandbox exists
                joins = " && ".join(f'echo $$ > "{path}"' for path in self.cgroup.procs_files())
                cmd = ["/bin/sh", "-c", joins + ' && exec "$@"', "sh"] + cmd
            with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
                self.proc = subprocess.Popen(
                    cmd, stdin=null_in, stdout=null_out, stderr=err_w, pass_fds=fds, env=env, cwd=cwd,
                    start_new_session=True, close_fds=True)
        except BaseException:
            for fd in (err_w, info_w, info_r, self._launch_errors):
                os.close(fd)
            theirs.close()
            self.control.close()
            self._release()
            raise
        for fd in (err_w, info_w):
            os.close(fd)
        theirs.close()
        self._info = info_r
        for fd in (self._info, self._launch_errors):
            os.set_blocking(fd, False)

    # -- control --

    def control_message(self, message: dict, timeout: float, fds: tuple[int, ...] = ()) -> dict | None:
        """Send ``message`` (with ``fds``) to the driver and wait up to ``timeout`` s for its answer
        (none for "run"); None if the driver is gone or silent."""
        try:
            socket.send_fds(self.control, [json.dumps(message).encode("utf-8")], list(fds))
            if "run" in message:
                return {}
            ready, _, _ = select.select([self.control], [], [], timeout)
            data = self.control.recv(1 << 16) if ready else b""
            reply = json.loads(data) if data else None
        except (OSError, ValueError):
            return None
        return reply if isinstance(reply, dict) else None

    def launch_errors(self) -> str:
        """What the launcher and the driver wrote to stderr (not a session's output)."""
        try:
            while chunk := os.read(self._launch_errors, 1 << 16):
                self._launch_stderr += chunk
                del self._launch_stderr[:-STDERR_TAIL]
        except OSError:
            pass
        return self._launch_stderr.decode("utf-8", "replace")

    def start(self) -> bool:
        """Start a session: a fresh fork of the driver with fresh pipes to talk to; False if the
        driver is gone."""
        to_child, self._commands = os.pipe()
        self._replies, from_child = os.pipe()
        self._errors, err_w = os.pipe()
        self._stderr, self._buffer, self._too_many = bytearray(), bytearray(), False
        try:
            started = self.control_message({"run": True}, 0, (to_child, from_child, err_w)) is not None
        finally:
            for fd in (to_child, from_child, err_w):
                os.close(fd)
        for fd in (self._commands, self._replies, self._errors):
            os.set_blocking(fd, False)
        return started

    def end(self) -> int | None:
        """End the session: the driver kills its processes and, in a kernel sandbox, restores the
        sandbox to its fresh state (else ``reusable`` becomes False). The session process's exit
        status (-signal for a signal), or None if unknown. Never raises."""
        reply = self.control_message({"end": True}, 30) or {}
        self._drain_stderr()
        for fd in (self._commands, self._replies, self._errors):
            _close(fd)
        self._commands = self._replies = self._errors = None
        if reply.get("clean") != "" or self.memory_exceeded() or self.processes_exceeded():
            self.reusable = False
        status = reply.get("ended")
        return status if isinstance(status, int) else None

    def send(self, message: dict, deadline: float | None = None) -> bool:
        """Write one message; False if the driver is gone or does not read before ``deadline``."""
        data = memoryview(json.dumps(message).encode("utf-8") + b"\n")
        end = deadline if deadline is not None else time.monotonic() + 60
        with selectors.DefaultSelector() as sel:
            sel.register(self._commands, selectors.EVENT_WRITE)
            sel.register(self._errors, selectors.EVENT_READ)
            while data:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                for key, _ in sel.select(min(remaining, 0.2)):
                    if key.fd == self._errors:
                        self._drain_stderr()
                        continue
                    try:
                        data = data[os.write(self._commands, data):]
                    except BlockingIOError:
                        pass
                    except OSError:  # BrokenPipeError: the driver is gone
                        return False
                    if not data:
                        break
                self._check_processes()
                if self._too_many:
                    return False
        return True

    def receive(self, deadline: float, max_bytes: int) -> tuple[dict | None, str]:
        """The driver's next message, or (None, reason): "timeout" (``deadline`` passed), "eof" (the
        driver ended), "overflow" (a message longer than ``max_bytes``), "processes" (too many
        processes), "garbled" (not a JSON object)."""
        self._too_many = False
        with selectors.DefaultSelector() as sel:
            sel.register(self._replies, selectors.EVENT_READ)
            sel.register(self._errors, selectors.EVENT_READ)
            interval = 0.01
            while True:
                newline = self._buffer.find(b"\n")
                if newline >= 0:
                    line = bytes(self._buffer[:newline])
                    del self._buffer[:newline + 1]
                    try:
                        message = json.loads(line)
                    except (ValueError, RecursionError):
                        return None, "garbled"
                    return (message, "") if isinstance(message, dict) else (None, "garbled")
                if len(self._buffer) > max_bytes:
                    return None, "overflow"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None, "timeout"
                events = sel.select(min(remaining, interval))
                interval = min(2 * interval, 0.2)
                for key, _ in events:
                    if key.fd == self._errors:
                        self._drain_stderr()
                        continue
                    try:
                        chunk = os.read(self._replies, 1 << 20)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return None, "eof"
                    self._buffer += chunk
                if not events:
                    self._check_processes()
                    if self._too_many:
                        return None, "processes"

    _too_many = False

    def _check_processes(self) -> None:
        """Count the program's processes where no pids cgroup does (guard level, or no cgroup)."""
        if self.cgroup is not None:
            return
        if self.isolation == "guard":
            count = len(guard_processes(self.proc.pid, self.token.encode(), self._since))
        else:
            if self.ns_link is None:
                self._find_init()
            count = len(pidns_processes(self.ns_link)) if self.ns_link else 0
        self._too_many = count > self.limits.processes + 2  # + the namespace's init and the driver

    def _drain_stderr(self) -> None:
        if self._errors is None:
            return
        try:
            while True:
                chunk = os.read(self._errors, 1 << 16)
                if not chunk:
                    return
                self._stderr += chunk
                del self._stderr[:-STDERR_TAIL]
        except (BlockingIOError, OSError):
            pass

    def stderr_tail(self) -> str:
        self._drain_stderr()
        return self._stderr.decode("utf-8", "replace")

    def memory_exceeded(self) -> bool:
        return self.cgroup is not None and self.cgroup.memory_exceeded()

    def processes_exceeded(self) -> bool:
        return self._too_many or (self.cgroup is not None and self.cgroup.processes_exceeded())

    # -- teardown --

    def _find_init(self) -> None:
        """The PID (here) of the sandbox's namespace init, from bwrap's info fd or unshare's child."""
        if self.init_pid is None and self.isolation == "bwrap":
            try:
                self._info_text += os.read(self._info, 1 << 16)
                self.init_pid = int(json.loads(self._info_text)["child-pid"])
            except (OSError, ValueError, KeyError):  # not written yet (BlockingIOError), or partly
                pass
        elif self.init_pid is None and self.isolation == "unshare":
            try:
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                self.init_pid = int(children[0]) if children else None
            except (OSError, ValueError):
                pass
        if self.init_pid is not None and self.ns_link is None:
            try:
                self.ns_link = os.readlink(f"/proc/{self.init_pid}/ns/pid")
            except OSError:
                pass

    def close(self) -> str:
        """Kill every process of the sandbox and release it; "" or what could not be cleaned up.
        Idempotent; never raises."""
        if self._closed:
            return ""
        self._closed, self.reusable = True, False
        problem = ""
        try:
            self.control.close()
            if self.isolation == "guard":
                self._kill_guarded()
            else:
                self._find_init()
                if self.init_pid is not None:
                    _kill(self.init_pid)  # the PID namespace ends: the kernel kills everything in it
                _kill(self.proc.pid)
                if self.cgroup is not None:
                    self.cgroup.kill()
                elif self.ns_link:
                    end = time.monotonic() + 5
                    while time.monotonic() < end and (pids := pidns_processes(self.ns_link)):
                        for pid in pids:
                            _kill(pid)
                        time.sleep(0.005)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                problem = f"the sandbox process {self.proc.pid} did not end"
        except Exception as err:  # noqa: BLE001 -- teardown must not raise
            problem = f"teardown failed: {type(err).__name__}: {err}"
        finally:
            for fd in (self._commands, self._replies, self._errors, self._info, self._launch_errors):
                _close(fd)
            problem = self._release() or problem
        return problem

    def _kill_guarded(self, budget_s: float = 5.0) -> None:
        token = self.token.encode()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        end = time.monotonic() + budget_s
        while time.monotonic() < end:
            pids = guard_processes(self.proc.pid, token, self._since)
            if not pids:
                break
            for pid in pids:
                _kill(pid)
            time.sleep(0.005)

    def _release(self) -> str:
        if self.cgroup is not None:
            self.cgroup.kill(1.0)
            self.cgroup.remove()
        if self.host_dir is None:
            return ""
        if self.isolation == "unshare":  # the root mount point: empty here (the mount lived in the namespace)
            try:
                (self.host_dir / "root").rmdir()
            except OSError:
                pass
        return remove_tree(self.host_dir)


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


# -- sandboxes kept for reuse ---------------------------------------------------------------------------------


class Pool:
    """Idle kernel sandboxes, kept per (isolation, limits, python, tmp_root) for the next session:
    starting a sandbox costs ~0.1-0.3 s, a session in a running one a fork. ``acquire`` gives an idle
    one or a new one, ``release`` keeps it if it is still ``reusable`` (else closes it); guard-level
    sandboxes are never kept. ``close`` ends every idle sandbox (also at interpreter exit)."""

    def __init__(self):
        self._idle: dict[tuple, list[Sandbox]] = {}
        self._lock = threading.Lock()
        # Sandboxes are started by one long-lived thread: bwrap's --die-with-parent (PR_SET_PDEATHSIG)
        # fires when the thread that started it ends, e.g. a worker of grade_many's thread pool.
        self._launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autojudge-sandbox-launcher")

    def acquire(self, isolation: str, limits: Limits, python: str, tmp_root: str | None) -> Sandbox:
        key = (isolation, limits, python, tmp_root)
        with self._lock:
            idle = self._idle.get(key, [])
            box = idle.pop() if idle else None
        if box is not None and box.proc.poll() is None:
            box.key = key
            return box
        if box is not None:
            box.close()
        box = self._launcher.submit(Sandbox, isolation, limits, python, tmp_root).result()
        box.key = key
        return box

    def release(self, box: Sandbox) -> str:
        """Keep ``box`` for reuse, or close it; "" or what its teardown could not clean up."""
        if box.reusable and box.proc.poll() is None:
            with self._lock:
                self._idle.setdefault(box.key, []).append(box)
            return ""
        return box.close()

    def close(self) -> None:
        with self._lock:
            boxes = [box for idle in self._idle.values() for box in idle]
            self._idle.clear()
        for box in boxes:
            box.close()


POOL = Pool()
atexit.register(POOL.close)
