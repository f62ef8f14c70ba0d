"""The sandbox's start-up: runs in the child (``python -I -S -c <this file's text> …``) before the user's code, which
it reads from stdin. Not imported: :mod:`puyu_lab.agent.sandbox` reads it as text, so that it is a real file that
linters and readers see.

argv: memory (bytes), CPU seconds, file size (bytes), processes, the writable folders (os.pathsep-joined), and the
exit status that means "out of memory". It sets the resource limits, installs an audit hook (friendlier messages,
not the guard: the operating system is), compiles the code like a REPL (the last expression is shown) and runs it.
"""
if __name__ != "__main__":
    raise ImportError("puyu_lab.agent.sandbox_boot runs inside the sandbox's child process; it is not imported")
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
_MEMORY_EXIT = int(sys.argv[6])  # sandbox.MEMORY_EXIT: the parent reads it as 'out of memory'
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
