"""A Python interpreter tool that a model may call: a separate process with hard limits.

Layers, from the outside in:

* a **child process** (``python -I``: isolated mode, no user site, no ``PYTHON*`` variables) with a
  **scrubbed environment** (PATH, HOME and TMPDIR only) in a fresh **temporary directory** that is
  removed afterwards; it runs in its own process group, and the whole group is killed at the end;
* **kernel limits** (``setrlimit``): CPU seconds, address space (memory), file size, open files, and
  the number of processes (which the kernel does not enforce for root, hence the next layer);
* an **audit hook** installed before the code runs (:pep:`578`; it cannot be removed): no
  ``fork`` / ``exec`` / ``subprocess`` / ``os.system``, no sockets, no ``ctypes``, no writes outside
  the temporary directory;
* a **wall-clock timeout** and an **output cap**: reading stops after ``max_output`` characters
  and the process is killed.

Every way a run can end is reported as one line the model can read (see :class:`RunResult`).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# runs in the child before the user's code; ``{tmp}`` is the working directory
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
_TMP = os.path.realpath(os.getcwd())
_BLOCKED = {"os.fork": "starting processes", "os.forkpty": "starting processes", "os.system": "running shell commands",
            "os.exec": "running programs", "os.spawn": "starting processes", "os.posix_spawn": "starting processes",
            "subprocess.Popen": "starting processes", "pty.spawn": "starting processes",
            "socket.__new__": "network access", "socket.connect": "network access", "socket.bind": "network access",
            "ctypes.dlopen": "loading C libraries", "ctypes.dlsym": "loading C libraries",
            "ctypes.cdata": "raw memory access", "os.kill": "sending signals", "os.killpg": "sending signals",
            "os.chdir": "changing directory", "shutil.rmtree": "removing trees", "os.putenv": "changing the environment"}
_NO_IMPORT = {"_posixsubprocess": "starting processes", "_ctypes": "loading C libraries"}
def _hook(event, args):
    if event == "import" and args and args[0] in _NO_IMPORT:
        raise PermissionError(f"sandbox: {_NO_IMPORT[args[0]]} is not allowed (import {args[0]})")
    if event in _BLOCKED:
        raise PermissionError(f"sandbox: {_BLOCKED[event]} is not allowed ({event})")
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = (list(args) + [None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                  (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
        if writing:
            p = os.path.realpath(os.fsdecode(path))
            if p != _TMP and not p.startswith(_TMP + os.sep) and p != os.devnull:
                raise PermissionError(f"sandbox: writing outside the working directory is not allowed ({p})")
    if event in ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod", "os.chown",
                 "os.truncate", "os.utime"):
        for a in args[:2]:
            if isinstance(a, (str, bytes, os.PathLike)):
                p = os.path.realpath(os.fsdecode(a))
                if p != _TMP and not p.startswith(_TMP + os.sep):
                    raise PermissionError(f"sandbox: changing files outside the working directory is not allowed ({p})")
import ast
_src = open("main.py", encoding="utf-8").read()
try:
    _tree = ast.parse(_src, "main.py")
except SyntaxError as e:
    print(f"SyntaxError: {e.msg} (line {e.lineno})", file=sys.stderr); sys.exit(1)
if _tree.body and isinstance(_tree.body[-1], ast.Expr):  # like a REPL: show the last expression
    _last = _tree.body[-1].value
    _tree.body[-1] = ast.Expr(ast.Call(ast.Name("__sandbox_show", ast.Load()), [_last], []))
    ast.fix_missing_locations(_tree)
_code = compile(_tree, "main.py", "exec")
def __sandbox_show(v):
    if v is not None:
        print(repr(v))
_g = {"__name__": "__main__", "__sandbox_show": __sandbox_show, "__builtins__": __builtins__}
del ast, _src, _tree
import traceback
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
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "main.py"]
    sys.stdout.flush()
    print("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
          + "".join(traceback.format_exception_only(type(e), e)), end="", file=sys.stderr)
    sys.exit(1)
'''
_MEMORY_EXIT = 99


@dataclass
class Limits:
    wall_s: float = 5.0  # wall-clock timeout
    cpu_s: int = 2  # CPU seconds (SIGXCPU, then SIGKILL)
    memory_mb: int = 256  # address space
    max_output: int = 4000  # characters of stdout + stderr kept
    file_mb: int = 8  # largest file the code may write
    nproc: int = 64  # processes of this user (not enforced for root: the audit hook is)


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


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, limits: Limits | None = None) -> RunResult:
    """Run ``code`` in a sandboxed child process and return what it printed and how it ended."""
    lim = limits or Limits()
    tmp = tempfile.mkdtemp(prefix="puyu-sandbox-")
    t0 = time.monotonic()
    try:
        with open(os.path.join(tmp, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        env = {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
        # the limits are set by the child itself, first thing (no preexec_fn: not safe with threads)
        argv = [str(lim.memory_mb << 20), str(lim.cpu_s), str(lim.file_mb << 20), str(lim.nproc)]
        proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT, *argv], cwd=tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
        out = bytearray()
        stopped = None
        os.set_blocking(proc.stdout.fileno(), False)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = t0 + lim.wall_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stopped = f"timeout: still running after {lim.wall_s:g} s of wall-clock time"
                break
            if not sel.select(timeout=min(left, 0.2)):
                if proc.poll() is not None:
                    break
                continue
            chunk = proc.stdout.read(65536)
            if not chunk:  # EOF: the process closed its output
                break
            out += chunk
            if len(out) > lim.max_output * 4:  # bytes; characters are checked below
                stopped = f"output: more than {lim.max_output} characters printed"
                break
        sel.close()
        _kill_group(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        proc.stdout.close()
        text = out.decode("utf-8", errors="replace")
        if len(text) > lim.max_output:
            text = text[:lim.max_output] + "\n…"
            stopped = stopped or f"output: more than {lim.max_output} characters printed"
        if stopped is None and rc is not None and rc < 0:
            sig = -rc
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim.cpu_s):
                stopped = f"cpu: used more than {lim.cpu_s} s of CPU time"
            else:
                stopped = f"killed by signal {signal.Signals(sig).name}"
        if stopped is None and rc == _MEMORY_EXIT:
            stopped = f"memory: the program needed more than {lim.memory_mb} MB"
        return RunResult(text, rc, stopped, time.monotonic() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
