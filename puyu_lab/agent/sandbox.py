"""A Python interpreter tool that a model may call: the code runs inside an operating-system sandbox.

What guards what
----------------
The guard is **bubblewrap** (``bwrap``, the sandbox Flatpak is built on; Debian package ``bubblewrap``).
It starts the code in new user, PID, network, IPC, UTS and mount namespaces:

* **what the code sees** (mount namespace): a root of its own that holds only the C libraries
  (``/usr/lib*``), the time-zone data, the Python interpreter and its standard library — read-only
  and bound one folder at a time, never the home folder they may live in, the virtualenv, the
  workspace or JupyterLab's runtime files — plus a fresh private working folder ``/sandbox`` and a
  private ``/tmp`` (tmpfs, at most ``disk_mb`` each), a new ``/proc`` and a minimal ``/dev`` (its
  ``/dev/shm`` a third such tmpfs). Everything else is read-only, bubblewrap's own root and ``/dev``
  included: those are tmpfs without a size cap (half the RAM), which a plain ``open('/f', 'wb')`` loop
  could otherwise fill.
  There is no ``/usr/bin``; the few programs ``/usr/lib`` holds (git's helpers, setuid helpers, which
  ``no_new_privs`` and ``nosuid`` disarm) run as confined as Python itself.
* **who it is**: uid/gid 65534 (``nobody``) inside its user namespace. When the lab runs as root,
  also outside: root starts bwrap through a first bwrap (a private mount namespace in which the
  interpreter is reachable) and util-linux's ``setpriv``, so the code is never the host's root —
  the kernel does not count root's processes against ``RLIMIT_NPROC``, and a namespace escape would
  land as ``nobody``.
* **what it can reach**: no network (its own network namespace, with only a loopback of its own), no
  other process (its own PID namespace: nothing outside is visible or signalable), no environment
  (``--clearenv`` and four variables; bwrap itself starts with an empty one, so not even
  ``/proc/1/environ`` inside holds anything of the host's), no nested user namespaces
  (``--disable-userns``, bwrap ≥ 0.8), and only the standard library: it runs the base interpreter
  (never the virtualenv) with ``-I -S``.
* **kernel limits** (``setrlimit``, set inside before the user's code runs): CPU seconds, address
  space, file size, open files and processes.
* **a wall-clock timeout and an output cap**. At the end the sandbox's PID namespace is killed through
  its init process and :func:`run_python` returns only once every process in it has gone, so a
  ``setsid`` child does not outlive the run.
* an **audit hook** (:pep:`578`) that turns forbidden actions (processes, sockets, ``ctypes``, writes
  outside ``/sandbox`` and ``/tmp``) into one friendly line for the model. It is *not* a guard: the
  code can switch it off (its state sits in ``sys.modules['__main__']``), and the red-team tests
  (``tests/agent/test_sandbox_attacks.py``) attack with it switched off.

No silent downgrade: where bubblewrap or user namespaces are missing, :func:`run_python` raises
:class:`SandboxUnavailable` saying what is missing and how to enable it (:func:`isolation_status`
reports the same for ``puyu-lab doctor``). Running *without* isolation takes an explicit, loudly named
opt-in — ``Limits(unsafe_unsandboxed=True)`` or ``PUYU_LAB_UNSAFE_UNSANDBOXED_PYTHON=1`` — and leaves
only the old layers: a child ``python -I`` in a temporary folder with the rlimits and the audit hook.

Why hand-written
----------------
bubblewrap does the isolation; what no library provides is the glue for this use: a one-shot
interpreter run whose every ending (finished, timeout, CPU, memory, output, refused) becomes one line
a model can read, with the interpreter bound into the sandbox without its home folder, and the two-stage
start for root. It is kept in this one file so that each layer can be read — and attacked.

Cost, measured (2-core VM, as root, median of 30 interleaved runs of ``print(1)``): 48 ms through the
sandbox, 34 ms for the same start without it (the unsafe opt-in): the two bwraps and setpriv add ~15 ms
(one bwrap, ~8 ms, for a normal user). The previous audit-hook-only child took 72 ms: it started the
virtualenv's interpreter with ``site`` and imported ``ast`` and ``traceback``; this one starts the base
interpreter with ``-I -S`` and uses ``_ast``. The first run in a process also probes the sandbox once (~0.1 s).

Every way a run can end is reported as one line the model can read (see :class:`RunResult`).
"""
from __future__ import annotations

import json
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass

UNSAFE_ENV = "PUYU_LAB_UNSAFE_UNSANDBOXED_PYTHON"  # =1: run the code WITHOUT operating-system isolation
BWRAP_ENV = "PUYU_LAB_BWRAP"  # the bwrap to use (default: the one on PATH); a missing path makes isolation unavailable
SANDBOX_UID = 65534  # nobody / nogroup
WORKDIR = "/sandbox"  # the code's private working folder (and HOME) inside the sandbox

# runs in the child before the user's code, which it reads from stdin
_BOOT = r'''
import sys, os, resource
_mem, _cpu, _fsize, _nproc = (int(x) for x in sys.argv[1:5])
resource.setrlimit(resource.RLIMIT_AS, (_mem, _mem))
resource.setrlimit(resource.RLIMIT_CPU, (_cpu, _cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (_fsize, _fsize))
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
resource.setrlimit(resource.RLIMIT_NPROC, (_nproc, _nproc))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
del resource
_src = sys.stdin.buffer.read().decode("utf-8", "replace")
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # input() sees an empty stdin
with open("main.py", "w", encoding="utf-8") as _f:  # for the source lines in tracebacks
    _f.write(_src)
# the audit hook: friendlier messages, not the guard (the operating system is)
_WRITABLE = [os.path.realpath(p) for p in sys.argv[5].split(os.pathsep)]
_BLOCKED = {"os.fork": "starting processes", "os.forkpty": "starting processes", "os.system": "running shell commands",
            "os.exec": "running programs", "os.spawn": "starting processes", "os.posix_spawn": "starting processes",
            "subprocess.Popen": "starting processes", "pty.spawn": "starting processes",
            "socket.__new__": "network access", "socket.connect": "network access", "socket.bind": "network access",
            "ctypes.dlopen": "loading C libraries", "ctypes.dlsym": "loading C libraries",
            "ctypes.cdata": "raw memory access", "os.kill": "sending signals", "os.killpg": "sending signals"}
_NO_IMPORT = {"_posixsubprocess": "starting processes", "_ctypes": "loading C libraries"}
def _writable(p):
    return p == os.devnull or any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in _WRITABLE)
def _hook(event, args):
    if event == "import" and args and args[0] in _NO_IMPORT:
        raise PermissionError(f"sandbox: {_NO_IMPORT[args[0]]} is not allowed (import {args[0]})")
    if event in _BLOCKED:
        raise PermissionError(f"sandbox: {_BLOCKED[event]} is not allowed ({event})")
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = (list(args) + [None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                  (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
        if writing and not _writable(os.path.realpath(os.fsdecode(path))):
            raise PermissionError(f"sandbox: writing outside {' and '.join(_WRITABLE)} is not allowed "
                                  f"({os.path.realpath(os.fsdecode(path))})")
    if event in ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod", "os.chown",
                 "os.truncate", "os.utime"):
        for a in args[:2]:
            if isinstance(a, (str, bytes, os.PathLike)) and not _writable(os.path.realpath(os.fsdecode(a))):
                raise PermissionError(f"sandbox: changing files outside {' and '.join(_WRITABLE)} is not allowed "
                                      f"({os.path.realpath(os.fsdecode(a))})")
import _ast  # the C half of ast: importing ast itself would cost more than the rest of the start-up
try:
    _tree = compile(_src, "main.py", "exec", _ast.PyCF_ONLY_AST)
except SyntaxError as e:
    print(f"SyntaxError: {e.msg} (line {e.lineno})", file=sys.stderr); sys.exit(1)
if _tree.body and isinstance(_tree.body[-1], _ast.Expr):  # like a REPL: show the last expression
    _last = _tree.body[-1]
    _call = _ast.Call(_ast.Name("__sandbox_show", _ast.Load()), [_last.value], [])
    _tree.body[-1] = _ast.Expr(_call)
    for _n in (_call, _call.func, _tree.body[-1]):
        for _a in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
            setattr(_n, _a, getattr(_last, _a))
_code = compile(_tree, "main.py", "exec")
def __sandbox_show(v):
    if v is not None:
        print(repr(v))
_g = {"__name__": "__main__", "__sandbox_show": __sandbox_show, "__builtins__": __builtins__}
del _src, _tree
_MEMORY_EXIT = 99
sys.addaudithook(_hook)
try:
    exec(_code, _g)
except MemoryError:
    sys.stdout.flush()
    os.write(2, b"MemoryError\n")
    os._exit(_MEMORY_EXIT)
except BaseException as e:  # a traceback of the user's own lines only
    if isinstance(e, SystemExit):
        raise
    import traceback
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "main.py"]
    sys.stdout.flush()
    print("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
          + "".join(traceback.format_exception_only(type(e), e)), end="", file=sys.stderr)
    sys.exit(1)
'''
_MEMORY_EXIT = 99
_PROBE = "import os\nprint(os.getuid(), os.getgid())"

_UNSAFE_HINT = (f"To run code WITHOUT isolation anyway (unsafe: it can then read and change everything this "
                f"user can), set {UNSAFE_ENV}=1 or pass Limits(unsafe_unsandboxed=True).")
_UNSAFE_WARNING = (f"puyu_lab sandbox: running model-written Python WITHOUT operating-system isolation "
                   f"({UNSAFE_ENV} / Limits(unsafe_unsandboxed=True)): only rlimits and an audit hook that the "
                   f"code can switch off stand between it and your files, processes and network")


class SandboxUnavailable(RuntimeError):
    """The operating-system sandbox cannot run here; the message says what is missing and how to enable it."""


@dataclass
class Limits:
    wall_s: float = 5.0  # wall-clock timeout
    cpu_s: int = 2  # CPU seconds (SIGXCPU, then SIGKILL)
    memory_mb: int = 256  # address space
    max_output: int = 4000  # characters of stdout + stderr kept
    file_mb: int = 8  # largest file the code may write
    disk_mb: int = 64  # size of each private folder (/sandbox, /tmp, /dev/shm); needs bwrap >= 0.7
    nproc: int = 64  # processes of the sandbox's user (uid 65534 in its own user namespace)
    unsafe_unsandboxed: bool = False  # True: NO operating-system isolation (only rlimits + audit hook)


@dataclass
class RunResult:
    output: str
    returncode: int | None
    stopped: str | None  # why it was stopped: timeout, cpu, memory, output; None when it finished
    seconds: float

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.returncode == 0

    def observation(self) -> str:
        """The text the model reads."""
        out = self.output.rstrip()
        if self.stopped:
            return (out + "\n" if out else "") + f"[stopped: {self.stopped}]"
        if self.returncode not in (0, None):
            return out or f"[exited with code {self.returncode}]"
        return out or "[no output: print() what you want to see]"


# ---- what the sandbox is made of ---------------------------------------------------------------------
def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _interpreter() -> tuple[str, list[str]]:
    """The real interpreter (not a virtualenv's link to it) and the folders it needs, outermost only."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    want = [sysconfig.get_path("stdlib"), sysconfig.get_config_var("DESTSHARED"), sysconfig.get_config_var("LIBDIR"),
            os.path.join(sys.base_prefix, "lib")]
    dirs = sorted({os.path.realpath(d) for d in want if d and os.path.isdir(d)})
    outer = [d for d in dirs if not any(o != d and _inside(d, o) for o in dirs)]
    return exe, [d for d in outer if not any(_inside(d, s) for s in _system_dirs())]


def _system_dirs() -> list[str]:
    """The C libraries and time-zone data, bound read-only; no programs (no /usr/bin)."""
    return [d for d in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/usr/share/zoneinfo") if os.path.isdir(d)]


def _top_links() -> list[str]:
    """/lib, /lib64 …: symlinks into /usr on a merged-/usr system (recreated), real folders elsewhere (bound)."""
    args = []
    for p in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    return args


@dataclass
class _Plan:
    bwrap: str
    version: tuple[int, ...]
    setpriv: str | None  # running as root: bwrap → setpriv (to uid 65534) → bwrap
    exe: str
    dirs: list[str]

    def describe(self) -> str:
        v = ".".join(map(str, self.version))
        who = "uid 65534 (nobody, also on the host)" if self.setpriv else f"uid 65534 (uid {os.geteuid()} on the host)"
        return (f"bubblewrap {v} ({self.bwrap}): user, PID, network, IPC, UTS and mount namespaces; code runs as "
                f"{who}, sees a read-only system and private {WORKDIR} and /tmp")


def _sandbox_argv(plan: _Plan, lim: Limits, info_fd: int | None) -> list[str]:
    inner = [plan.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
             "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
             "--clearenv", "--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", "/tmp",
             "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8"]
    if plan.version >= (0, 8):
        inner += ["--disable-userns"]
    for d in _system_dirs():
        inner += ["--ro-bind", d, d]
    inner += _top_links()
    for d in plan.dirs:
        inner += ["--ro-bind", d, d]
    if not any(_inside(plan.exe, d) for d in plan.dirs + _system_dirs()):
        inner += ["--ro-bind", plan.exe, plan.exe]
    inner += ["--proc", "/proc", "--dev", "/dev"]
    for d in ("/tmp", WORKDIR, "/dev/shm"):
        if plan.version >= (0, 7):
            inner += ["--size", str(lim.disk_mb << 20)]
        inner += ["--tmpfs", d]
    # bwrap's root (which holds the mount points) and its /dev are tmpfs without a size cap, writable by
    # the sandbox's user: read-only, or the code fills half the host's RAM through them, past disk_mb
    inner += ["--remount-ro", "/dev", "--remount-ro", "/"]
    inner += ["--chdir", WORKDIR]
    if info_fd is not None:
        inner += ["--info-fd", str(info_fd)]
    inner += ["--", plan.exe, "-I", "-S", "-X", "utf8", "-c", _BOOT, *_boot_args(lim, [WORKDIR, "/tmp"])]
    if not plan.setpriv:
        return inner
    # root: a first bwrap (privileged, no user namespace) makes a private mount namespace in which the
    # interpreter is reachable without the home folder around it, then setpriv drops to uid 65534 for the second
    outer = [plan.bwrap, "--die-with-parent", "--ro-bind", "/usr", "/usr", *_top_links()]
    made = set()
    for p in [*plan.dirs, plan.exe, plan.bwrap, plan.setpriv]:
        if _inside(p, "/usr"):
            continue
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            a = "/" + "/".join(parts[:i])
            if a not in made:
                made.add(a)
                outer += ["--perms", "0755", "--dir", a]
        outer += ["--ro-bind", p, p]
    outer += ["--bind", "/proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
              plan.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"]
    return outer + inner


def _boot_args(lim: Limits, writable: list[str]) -> list[str]:
    return [str(lim.memory_mb << 20), str(lim.cpu_s), str(lim.file_mb << 20), str(lim.nproc), os.pathsep.join(writable)]


# ---- is it available? ----------------------------------------------------------------------------------
_plans: dict[tuple, _Plan] = {}
_plans_lock = threading.Lock()


def _bwrap_path() -> tuple[str | None, str]:
    chosen = os.environ.get(BWRAP_ENV)
    if chosen:
        return (chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None), f"{BWRAP_ENV}={chosen}"
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.path.isfile(p)), None), "PATH"


def _plan() -> _Plan:
    """How to start the sandbox here, probed once (a real sandbox run); :class:`SandboxUnavailable` if it cannot."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"sandbox unavailable: the Python tool isolates code with Linux namespaces "
                                 f"(bubblewrap), and this is {sys.platform}. Run the lab on Linux (WSL2, a container "
                                 f"or a virtual machine). {_UNSAFE_HINT}")
    bwrap, where = _bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(
            f"sandbox unavailable: the Python tool runs code only inside bubblewrap (bwrap), which was not found "
            f"({where}). Install it — `sudo apt-get install bubblewrap` on Debian/Ubuntu, `sudo dnf install bubblewrap` "
            f"on Fedora; `make setup` does it — and call the tool again. {_UNSAFE_HINT}")
    setpriv = None
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv") or next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.path.isfile(p)), None)
        if setpriv is None:
            raise SandboxUnavailable(
                "sandbox unavailable: running as root, the Python tool hands its sandbox to uid 65534 with util-linux's "
                "`setpriv`, which was not found. Install it (`sudo apt-get install util-linux`) or run the lab as a "
                f"normal user. {_UNSAFE_HINT}")
    exe, dirs = _interpreter()
    key = (bwrap, setpriv, exe, tuple(dirs))
    with _plans_lock:
        if key in _plans:
            return _plans[key]
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10, env={}).stdout
        version = tuple(int(x) for x in out.split()[-1].split(".")[:3])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        raise SandboxUnavailable(f"sandbox unavailable: {bwrap} ({where}) is not a working bubblewrap "
                                 f"(`{bwrap} --version` failed). Install the distribution's `bubblewrap` "
                                 f"package. {_UNSAFE_HINT}") from None
    plan = _Plan(bwrap, version, setpriv, exe, dirs)
    try:
        p = subprocess.run(_sandbox_argv(plan, Limits(), None), input=_PROBE.encode(), capture_output=True, timeout=30,
                           env={}, start_new_session=True)
        ok, said = p.returncode == 0 and p.stdout.split() == [str(SANDBOX_UID).encode()] * 2, (p.stderr or p.stdout).decode(errors="replace")
    except (OSError, subprocess.SubprocessError) as e:
        ok, said = False, f"{type(e).__name__}: {e}"
    if not ok:
        said = " ".join(said.strip().splitlines()[-1:]) or "no message"
        raise SandboxUnavailable(
            f"sandbox unavailable: bubblewrap {'.'.join(map(str, version))} ({bwrap}) could not start a sandbox: {said}. "
            f"It needs user namespaces{' for uid 65534' if setpriv else ''}: `sysctl user.max_user_namespaces` must be "
            "above 0; on Debian also `sudo sysctl -w kernel.unprivileged_userns_clone=1`; on Ubuntu 23.10 and later "
            "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; in a Docker container, start it with "
            f"`--security-opt seccomp=unconfined --security-opt apparmor=unconfined`. {_UNSAFE_HINT}")
    with _plans_lock:
        _plans[key] = plan
    return plan


def isolation_status() -> tuple[bool, str]:
    """``(True, what isolates the code)`` or ``(False, what is missing and how to enable it)`` — for the doctor."""
    try:
        return True, _plan().describe()
    except SandboxUnavailable as e:
        return False, str(e)


# ---- one run -------------------------------------------------------------------------------------------
def _exited(pid: int, timeout: float = 0.0) -> bool:
    """Whether the child has exited, waiting up to ``timeout``; it is not reaped (its process group stays reserved)."""
    end = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.002)


def _end(proc: subprocess.Popen, pidfd: int | None) -> None:
    """Kill everything the run started. The sandbox's init (pid 1 of its PID namespace) takes every process in
    the namespace with it, and its pidfd turns readable only once they are all gone."""
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        select.select([pidfd], [], [], 5.0)
        os.close(pidfd)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, limits: Limits | None = None) -> RunResult:
    """Run ``code`` in the sandbox and return what it printed and how it ended.

    Raises :class:`SandboxUnavailable` (with the fix) where the operating-system sandbox cannot run, unless
    the unsafe opt-in (``Limits(unsafe_unsandboxed=True)`` or ``PUYU_LAB_UNSAFE_UNSANDBOXED_PYTHON=1``) is given.
    """
    lim = limits or Limits()
    unsafe = lim.unsafe_unsandboxed or os.environ.get(UNSAFE_ENV) == "1"
    plan = None if unsafe else _plan()
    if unsafe:
        warnings.warn(_UNSAFE_WARNING, RuntimeWarning, stacklevel=2)
    tmp = tempfile.mkdtemp(prefix="puyu-sandbox-") if unsafe else None
    t0 = time.monotonic()
    info_r = info_w = None
    try:
        if unsafe:
            exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
            argv = [exe, "-I", "-S", "-X", "utf8", "-c", _BOOT, *_boot_args(lim, [tmp])]
            kw = {"cwd": tmp, "env": {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}}
        else:
            info_r, info_w = os.pipe()  # bwrap writes the host pid of the sandbox's init here
            argv = _sandbox_argv(plan, lim, info_w)
            kw = {"env": {}, "pass_fds": (info_w,)}
        # the limits are set by the child itself, first thing (no preexec_fn: not safe with threads)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, **kw)
        if info_w is not None:
            os.close(info_w)
            info_w = None
        try:
            out, rc, usage, stopped = _communicate(proc, code, lim, t0, info_r, plan is not None)
        except BaseException:  # e.g. KeyboardInterrupt in a notebook: nothing may outlive it
            _end(proc, None)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        cpu = usage.ru_utime + usage.ru_stime
        text = out.decode("utf-8", errors="replace")
        if len(text) > lim.max_output:
            text = text[:lim.max_output] + "\n…"
            stopped = stopped or f"output: more than {lim.max_output} characters printed"
        if stopped is None and rc < 0:
            sig = -rc
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim.cpu_s):
                stopped = f"cpu: used more than {lim.cpu_s} s of CPU time"
            else:
                try:
                    stopped = f"killed by signal {signal.Signals(sig).name}"
                except ValueError:
                    stopped = f"killed by signal {sig}"
        if stopped is None and rc == _MEMORY_EXIT:
            stopped = f"memory: the program needed more than {lim.memory_mb} MB"
        return RunResult(text, rc, stopped, time.monotonic() - t0)
    finally:
        for fd in (info_r, info_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _communicate(proc, code, lim, t0, info_r, sandboxed):
    """Feed the code in, collect the output until it ends or a limit trips, kill what is left and reap it."""
    out, info, pidfd, stopped = bytearray(), b"", None, None
    try:
        todo = memoryview(code.encode("utf-8", "replace"))  # the code goes in on stdin
        sel = selectors.DefaultSelector()
        for f in (proc.stdin, proc.stdout):
            os.set_blocking(f.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, "in")
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        if info_r is not None:
            sel.register(info_r, selectors.EVENT_READ, "info")
        deadline = t0 + lim.wall_s
        eof = False
        while not eof and stopped is None:
            left = deadline - time.monotonic()
            if left <= 0:
                stopped = f"timeout: still running after {lim.wall_s:g} s of wall-clock time"
                break
            events = sel.select(timeout=min(left, 0.2))
            if not events and _exited(proc.pid):
                break
            for key, _ in events:
                if key.data == "in":
                    try:
                        todo = todo[os.write(proc.stdin.fileno(), todo[:65536]):]
                    except BrokenPipeError:
                        todo = todo[:0]
                    if not todo:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                elif key.data == "info":  # bwrap's {"child-pid": …}, written before the sandbox starts
                    chunk = os.read(info_r, 4096)
                    info += chunk
                    if not chunk or b"}" in info:
                        sel.unregister(info_r)
                        try:
                            pidfd = os.pidfd_open(int(json.loads(info)["child-pid"]))
                        except (ValueError, KeyError, TypeError, OSError, AttributeError):
                            pidfd = None  # gone already (or no pidfds here): killing the process group has to do
                else:
                    chunk = proc.stdout.read(65536)
                    if not chunk:  # EOF: every process closed its output
                        eof = True
                        break
                    out += chunk
                    if len(out) > lim.max_output * 4:  # bytes; characters are checked by the caller
                        stopped = f"output: more than {lim.max_output} characters printed"
                        break
        sel.close()
        if stopped is None:  # it ended by itself: let its exit status come through before anything is killed
            _exited(proc.pid, timeout=1.0)
    finally:
        _end(proc, pidfd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    if sandboxed and 128 < rc < 128 + signal.NSIG:  # bwrap reports "killed by signal n" as 128 + n
        rc = -(rc - 128)
    for f in (proc.stdin, proc.stdout):
        f.close()
    return out, rc, usage, stopped
