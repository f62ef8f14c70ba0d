"""A Python interpreter tool that a model may call: the code runs inside an operating-system sandbox.

What guards what
----------------
The guard is **bubblewrap** (``bwrap`` >= 0.8, the sandbox Flatpak is built on; Debian package ``bubblewrap``).
It starts the code in new user, PID, network, IPC, UTS, cgroup and mount namespaces:

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
* **only the standard library**: it runs the base interpreter (never the virtualenv) with ``-I -S``, and
  every third-party package folder inside the bound folders — the base interpreter's purelib/platlib
  (``…/lib/python3.X/site-packages``: boto3, awscli, pip …) and any ``site-packages``/``dist-packages``
  such as the system Python's ``/usr/lib/python3/dist-packages`` — is masked by an empty read-only
  tmpfs, so ``sys.path.append`` finds nothing there. (The standard library's own ``ensurepip`` wheels,
  pip and setuptools as zip files, stay importable from a ``sys.path`` entry: pure Python, no network.)
* **who it is**: uid/gid 65534 (``nobody``) inside its user namespace. When the lab runs as root,
  also outside: root starts bwrap through a first bwrap (a private mount namespace in which the
  interpreter is reachable) and util-linux's ``setpriv``, so the code is never the host's root —
  the kernel does not count root's processes against ``RLIMIT_NPROC``, and a namespace escape would
  land as ``nobody``.
* **what it can reach**: no network (its own network namespace, with only a loopback of its own), no
  other process (its own PID namespace: nothing outside is visible or signalable), no environment
  (``--clearenv`` and four variables; bwrap itself starts with an empty one, so not even
  ``/proc/1/environ`` inside holds anything of the host's), no nested user namespaces
  (``--disable-userns``).
* **kernel limits** (``setrlimit``, set inside before the user's code runs): CPU seconds, address
  space (``memory_mb``), file size, open files (64) and processes (``nproc``, 16). These are *per
  process*: alone they bound a run's memory only to about ``nproc`` × ``memory_mb``, and not at all
  what is held outside an address space — SysV shared memory (``shmget`` via ``ctypes``), ``memfd``
  files, pipes.
* **total memory** (a cgroup, made, read and removed by :mod:`puyu_lab.agent.cgroup`), where this process
  may make one: as root, or inside a cgroup v2 delegated to its user. Each run gets a memory cgroup of its
  own (with the pids controller where there is one), made inside the caller's cgroup (v1), or the nearest
  ancestor that delegates memory (v2), before the run starts (a ``/bin/sh`` gate holds the start until it
  is in the cgroup, so every process of the run starts there) and removed after it (an empty one left by a
  process that died is swept on the next start).
  Its limit, ``memory_mb + 3 × disk_mb`` (448 MB by default; no swap), covers everything the kernel
  charges to the run: its processes' memory, SysV and POSIX shared memory, memfds and the files in its
  tmpfs folders; ``pids.max`` is ``nproc + 8``. When the kernel kills a process of the run at that limit,
  the run ends as ``memory: …``. Where no such cgroup can be made (a normal user without a delegated
  cgroup, a container without one) there is **no** cap on a run's total memory:
  :func:`isolation_status` says so, and why.
* **SysV shared memory**, as root: the first stage makes the IPC namespace and caps it there
  (``kernel.shmmax`` and ``shmall`` at ``memory_mb``, ``shmmni`` 32), the second shares it; the code's
  user cannot change those. For a normal user only the cgroup, if there is one, bounds it.
* **a wall-clock timeout and an output cap**. At the end the sandbox's PID namespace is killed through
  its init process and :func:`run_python` returns only once every process in it has gone, so a
  ``setsid`` child does not outlive the run.
* an **audit hook** (:pep:`578`) that turns forbidden actions (processes, sockets, ``ctypes``, writes
  outside ``/sandbox`` and ``/tmp``) into one friendly line for the model. It is *not* a guard: the
  code can switch it off (its state sits in ``sys.modules['__main__']``), and the red-team tests
  (``tests/agent/test_sandbox_attacks.py``) attack with it switched off.

What does not guard: there is **no system-call filter** (no seccomp). Every system call the namespaces
allow reaches the kernel, so a kernel bug reachable from an unprivileged user namespace is the risk
left; keep the kernel updated.

No silent downgrade: where bubblewrap or user namespaces are missing, or bubblewrap is older than 0.8
(without ``--size``, 0.7, its private folders would be tmpfs of up to half the RAM; without
``--disable-userns``, 0.8, the code could make user namespaces of its own), :func:`run_python` raises
:class:`SandboxUnavailable` saying what is missing and how to get it (:func:`isolation_status` reports
the same for ``puyu-lab doctor``, and whether a run's total memory is capped). Running *without*
isolation takes an explicit, loudly named opt-in — ``Limits(unsafe_unsandboxed=True)`` or
``PUYU_LAB_UNSAFE_UNSANDBOXED_PYTHON=1`` — and leaves only the old layers: a child ``python -I`` in a
temporary folder with the rlimits and the audit hook.

Why hand-written
----------------
bubblewrap does the isolation; what no library provides is the glue for this use: a one-shot
interpreter run whose every ending (finished, timeout, CPU, memory, output, refused) becomes one line
a model can read, with the interpreter bound into the sandbox without its home folder, and the two-stage
start for root. Apart from the child's start-up (``sandbox_boot.py``) and each run's cgroup (``cgroup.py``)
it is kept in this one file so that each layer can be read — and attacked — in one place: that is why the file
runs past 450 lines.

What a run costs to start is measured by ``make bench`` (``benchmarks/bench_sandbox.py``: ``print(1)`` through
the sandbox beside the unsafe opt-in, the first run of a process, one run's cgroup), not quoted here. Where the
time goes: most of the sandbox's extra time over the unsafe start is moving the run into its cgroup (on cgroup v1
the kernel waits for an RCU grace period); then, as root, the two bwraps and setpriv (a normal user, who has no
cgroup step, starts one bwrap); making and removing the cgroup and the shell gate are small. The child starts the
base interpreter with ``-I -S`` and uses ``_ast``: no ``site``, and no ``ast`` or ``traceback`` to import. The
first run in a process also probes the sandbox once.

Every way a run can end is reported as one line the model can read (see :class:`RunResult`).
"""
from __future__ import annotations

import glob
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
from pathlib import Path

from ..errors import Msg, zh_of
from .cgroup import CgroupBase, RunGroup, find_cgroup_base

UNSAFE_ENV = "PUYU_LAB_UNSAFE_UNSANDBOXED_PYTHON"  # =1: run the code WITHOUT operating-system isolation
BWRAP_ENV = "PUYU_LAB_BWRAP"  # the bwrap to use (default: the one on PATH); a missing path makes isolation unavailable
SANDBOX_UID = 65534  # nobody / nogroup
WORKDIR = "/sandbox"  # the code's private working folder (and HOME) inside the sandbox
BWRAP_MIN = (0, 8, 0)  # --size (0.7) caps the private folders, --disable-userns (0.8) forbids nested user namespaces
_PIDS_EXTRA = 8  # pids.max = nproc + this: the bwraps, setpriv and the sandbox's init

# runs in the child before the user's code (a real file, read as text: see sandbox_boot.py)
_BOOT = (Path(__file__).with_name("sandbox_boot.py")).read_text(encoding="utf-8")
MEMORY_EXIT = 99  # the child's exit status for a MemoryError (sandbox_boot.py)
_PROBE = "import os\nprint(os.getuid(), os.getgid())"

_UNSAFE_HINT = (f"To run code WITHOUT isolation anyway (unsafe: it can then read and change everything this "
                f"user can), set {UNSAFE_ENV}=1 or pass Limits(unsafe_unsandboxed=True).")
_UNSAFE_WARNING = (f"puyu_lab sandbox: running model-written Python WITHOUT operating-system isolation "
                   f"({UNSAFE_ENV} / Limits(unsafe_unsandboxed=True)): only rlimits and an audit hook that the "
                   f"code can switch off stand between it and your files, processes and network")
_UNSAFE_WARNING_ZH = (f"puyu_lab 沙箱：正在没有操作系统隔离的情况下运行模型写的 Python 代码（{UNSAFE_ENV} / "
                      f"Limits(unsafe_unsandboxed=True)）：挡在它和你的文件、进程、网络之间的，只有资源限制（rlimit）"
                      f"和一个代码自己就能关掉的审计钩子")


class SandboxUnavailable(RuntimeError):
    """The operating-system sandbox cannot run here; the message says what is missing and how to enable it."""


@dataclass
class Limits:
    wall_s: float = 5.0  # wall-clock timeout
    cpu_s: int = 2  # CPU seconds (SIGXCPU, then SIGKILL)
    memory_mb: int = 256  # address space of each process; also the cap on SysV shared memory (as root)
    max_output: int = 4000  # characters of stdout + stderr kept
    file_mb: int = 8  # largest file the code may write
    disk_mb: int = 64  # size of each private folder (/sandbox, /tmp, /dev/shm)
    nproc: int = 16  # processes (and threads) of the sandbox's user (uid 65534 in its own user namespace)
    unsafe_unsandboxed: bool = False  # True: NO operating-system isolation (only rlimits + audit hook)

    @property
    def total_mb(self) -> int:
        """What one run may hold in RAM in all — its processes, shared memory and the files in its three
        private folders (tmpfs) — where a cgroup enforces it (see :func:`isolation_status`)."""
        return self.memory_mb + 3 * self.disk_mb


@dataclass
class RunResult:
    output: str
    returncode: int | None
    # why it was stopped: timeout, cpu, memory, output; None when it finished. A Msg: the English (what the model
    # reads, starting with the kind: "timeout: …") and its Chinese (.zh) for a learner reading the trace in Chinese
    stopped: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.returncode == 0

    def observation(self) -> Msg:
        """The text the model reads (the English: a Msg compares, formats and serializes as that), with the same
        text for a learner in Chinese as ``.zh``: what the code printed as it is, the sandbox's own line in Chinese."""
        out = self.output.rstrip()
        if self.stopped:
            head = out + "\n" if out else ""
            return Msg(head + f"[stopped: {self.stopped}]", head + f"[已停止：{zh_of(self.stopped)}]")
        if self.returncode not in (0, None):
            return Msg(out, out) if out else Msg(f"[exited with code {self.returncode}]",
                                                 f"[程序退出，退出码 {self.returncode}]")
        return Msg(out, out) if out else Msg("[no output: print() what you want to see]",
                                             "[没有输出：想看什么，就 print() 出来]")


# ---- what the sandbox is made of ---------------------------------------------------------------------
from .cgroup import path_inside as _inside  # noqa: E402 (one definition of "a path inside a folder")


def _interpreter() -> tuple[str, list[str]]:
    """The real interpreter (not a virtualenv's link to it) and the folders it needs, outermost only."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    want = [sysconfig.get_path("stdlib"), sysconfig.get_config_var("DESTSHARED"), sysconfig.get_config_var("LIBDIR"),
            os.path.join(sys.base_prefix, "lib")]
    dirs = sorted({os.path.realpath(d) for d in want if d and os.path.isdir(d)})
    outer = [d for d in dirs if not any(o != d and _inside(d, o) for o in dirs)]
    return exe, [d for d in outer if not any(_inside(d, s) for s in _system_dirs())]


def _package_dirs(bound: list[str]) -> list[str]:
    """Third-party packages inside the folders bound into the sandbox, masked there by an empty read-only tmpfs:
    the base interpreter's purelib/platlib and every ``site-packages``/``dist-packages`` a folder or one of its
    ``python*`` folders holds (``/usr/lib/python3/dist-packages`` of the system's Python, …)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix,
            "installed_platbase": sys.base_exec_prefix}
    found = set()
    for k in ("purelib", "platlib"):
        try:
            found.add(sysconfig.get_path(k, "posix_prefix", vars=base))
        except KeyError:
            pass
    for d in bound:
        for pattern in ("*-packages", "python*/*-packages", "*/python*/*-packages"):
            found.update(glob.glob(os.path.join(glob.escape(d), pattern)))
    real = {os.path.realpath(p) for p in found if p and os.path.basename(p) in ("site-packages", "dist-packages")}
    return sorted(p for p in real if os.path.isdir(p) and any(_inside(p, d) for d in bound))


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
    masked: list[str]  # site-packages … inside the bound folders, hidden by an empty tmpfs
    sh: str  # /bin/sh: the cgroup gate, and (as root) capping SysV shared memory in the first stage
    cgroup: CgroupBase | None = None  # where each run gets its own memory (and pids) cgroup
    no_cgroup: str = ""  # why there is none

    def describe(self, lang: str = "en") -> str:
        """What isolates the code, in English (``lang="en"``) or in Chinese (``"zh"``, what the doctor prints)."""
        def say(zh: str, en: str) -> str:
            return zh if lang == "zh" else en

        v, cg = ".".join(map(str, self.version)), self.cgroup
        who = (say("uid 65534（nobody，在宿主机上也是）", "uid 65534 (nobody, also on the host)") if self.setpriv
               else say(f"uid 65534（宿主机上的 uid {os.geteuid()}）", f"uid 65534 (uid {os.geteuid()} on the host)"))
        text = say(f"bubblewrap {v}（{self.bwrap}）：独立的用户、PID、网络、IPC、UTS 和挂载命名空间；代码以 {who}的身份运行，"
                   f"只看得到只读的系统和标准库（屏蔽了 {len(self.masked)} 个 site-packages 目录），以及私有的 {WORKDIR} 和 "
                   "/tmp；",
                   f"bubblewrap {v} ({self.bwrap}): user, PID, network, IPC, UTS and mount namespaces; code runs as "
                   f"{who}, sees a read-only system with only the standard library ({len(self.masked)} site-packages "
                   f"folders masked) and private {WORKDIR} and /tmp; ")
        if cg:
            text += say(f"每次运行的总内存（进程、共享内存、写下的文件）由 cgroup 限制（v{cg.version}，"
                        f"{'内存和进程数' if cg.pids else '内存'}，位于 {cg.memory}）为 memory_mb + 3 x disk_mb",
                        f"each run's total memory (processes, shared memory, its files) capped by a cgroup "
                        f"({cg.describe()}) at memory_mb + 3 x disk_mb")
        else:
            unbounded = (say("memfd 和管道", "memfds and pipes") if self.setpriv
                         else say("SysV 共享内存、memfd 和管道", "SysV shared memory, memfds and pipes"))
            text += say(f"不限制单次运行的总内存（{self.no_cgroup}）：只限制每个进程的地址空间（memory_mb，最多 nproc 个进程），"
                        f"{unbounded}完全不受限",
                        f"NO cap on a run's total memory ({self.no_cgroup}): only each process's address space is "
                        f"limited (memory_mb, for up to nproc processes), and {unbounded} not at all")
        if self.setpriv:
            text += say("；IPC 命名空间里的 SysV 共享内存上限为 memory_mb",
                        "; SysV shared memory capped at memory_mb in its IPC namespace")
        return text + say("；没有系统调用过滤", "; no system-call filter")


def _sandbox_argv(plan: _Plan, lim: Limits, info_fd: int | None) -> list[str]:
    # as root the first stage makes the IPC namespace (and caps SysV shared memory in it): the second shares it
    ns = ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    inner = [plan.bwrap, *(ns if plan.setpriv else ["--unshare-all", "--unshare-user"]), "--disable-userns",
             "--die-with-parent", "--new-session",
             "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
             "--clearenv", "--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", "/tmp",
             "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8"]
    for d in _system_dirs():
        inner += ["--ro-bind", d, d]
    inner += _top_links()
    for d in plan.dirs:
        inner += ["--ro-bind", d, d]
    if not any(_inside(plan.exe, d) for d in plan.dirs + _system_dirs()):
        inner += ["--ro-bind", plan.exe, plan.exe]
    for d in plan.masked:  # third-party packages: an empty, read-only tmpfs over each
        inner += ["--size", "4096", "--perms", "0555", "--tmpfs", d, "--remount-ro", d]
    inner += ["--proc", "/proc", "--dev", "/dev"]
    for d in ("/tmp", WORKDIR, "/dev/shm"):
        inner += ["--size", str(lim.disk_mb << 20), "--tmpfs", d]
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
    # interpreter is reachable without the home folder around it, and a new IPC namespace whose SysV shared
    # memory it caps (not covered by RLIMIT_AS); then setpriv drops to uid 65534 for the second
    outer = [plan.bwrap, "--die-with-parent", "--unshare-ipc", "--ro-bind", "/usr", "/usr", *_top_links(),
             "--bind", "/proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    made = set()
    for p in [*plan.dirs, plan.exe, plan.bwrap, plan.setpriv, plan.sh]:
        if _inside(p, "/usr"):
            continue
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            a = "/" + "/".join(parts[:i])
            if a not in made:
                made.add(a)
                outer += ["--perms", "0755", "--dir", a]
        outer += ["--ro-bind", p, p]
    shm = lim.memory_mb << 20
    caps = (f"echo {shm} > /proc/sys/kernel/shmmax && echo {shm // 4096} > /proc/sys/kernel/shmall && "
            f"echo 32 > /proc/sys/kernel/shmmni && exec \"$@\"")
    outer += [plan.sh, "-c", caps, "sh",
              plan.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"]
    return outer + inner


def _boot_args(lim: Limits, writable: list[str]) -> list[str]:
    return [str(lim.memory_mb << 20), str(lim.cpu_s), str(lim.file_mb << 20), str(lim.nproc), os.pathsep.join(writable),
            str(MEMORY_EXIT)]


def cgroup_limits(lim: Limits) -> tuple[int, int]:
    """A run's cgroup limits: its total memory in bytes (see :class:`Limits`) and its processes."""
    return lim.total_mb << 20, lim.nproc + _PIDS_EXTRA


# ---- is it available? ----------------------------------------------------------------------------------
_plans: dict[tuple, _Plan] = {}
_plans_lock = threading.Lock()


def _bwrap_path() -> tuple[str | None, str]:
    chosen = os.environ.get(BWRAP_ENV)
    if chosen:
        return (chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None), f"{BWRAP_ENV}={chosen}"
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.path.isfile(p)), None), "PATH"


def _program(name: str) -> str | None:
    found = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.path.isfile(p)), None)
    return os.path.realpath(found) if found else None


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
        setpriv = _program("setpriv")
        if setpriv is None:
            raise SandboxUnavailable(
                "sandbox unavailable: running as root, the Python tool hands its sandbox to uid 65534 with util-linux's "
                "`setpriv`, which was not found. Install it (`sudo apt-get install util-linux`) or run the lab as a "
                f"normal user. {_UNSAFE_HINT}")
    sh = _program("sh")
    if sh is None:
        raise SandboxUnavailable(f"sandbox unavailable: no /bin/sh, which starts the sandbox. {_UNSAFE_HINT}")
    exe, dirs = _interpreter()
    key = (bwrap, setpriv, sh, exe, tuple(dirs))
    with _plans_lock:
        if key in _plans:
            return _plans[key]
    masked = _package_dirs(dirs + _system_dirs())  # globs /usr/lib: once
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10, env={}).stdout
        version = tuple(int(x) for x in out.split()[-1].split(".")[:3])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        raise SandboxUnavailable(f"sandbox unavailable: {bwrap} ({where}) is not a working bubblewrap "
                                 f"(`{bwrap} --version` failed). Install the distribution's `bubblewrap` "
                                 f"package. {_UNSAFE_HINT}") from None
    if version < BWRAP_MIN:
        need = ".".join(map(str, BWRAP_MIN))
        raise SandboxUnavailable(
            f"sandbox unavailable: bubblewrap {'.'.join(map(str, version))} ({bwrap}, {where}) is too old; the "
            f"sandbox needs bubblewrap >= {need}: --size (0.7) caps its private folders, which would otherwise "
            f"take up to half the RAM, and --disable-userns (0.8) stops the code from making user namespaces of "
            f"its own. Debian 12, Ubuntu 24.04 and Fedora 38 and later ship {need} or newer; elsewhere install it "
            f"from backports or build it (https://github.com/containers/bubblewrap, `meson setup _build && "
            f"meson compile -C _build`) and point {BWRAP_ENV} at the new bwrap. {_UNSAFE_HINT}")
    plan = _Plan(bwrap, version, setpriv, exe, dirs, masked, sh)
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
    plan.cgroup, plan.no_cgroup = find_cgroup_base(*cgroup_limits(Limits()))
    with _plans_lock:
        _plans[key] = plan
    return plan


def isolation_status() -> tuple[bool, str]:
    """``(True, what isolates the code)`` or ``(False, what is missing and how to enable it)`` — for the doctor."""
    try:
        return True, _plan().describe()
    except SandboxUnavailable as e:
        return False, str(e)


def isolation_description(lang: str = "en") -> str:
    """What isolates the code, in English (``lang="en"``, :func:`isolation_status`'s text) or in Chinese (``"zh"``);
    raises :class:`SandboxUnavailable` where nothing can."""
    return _plan().describe(lang)


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
        from ..i18n import tr

        warnings.warn(tr(_UNSAFE_WARNING_ZH, _UNSAFE_WARNING), RuntimeWarning, stacklevel=2)
    tmp = tempfile.mkdtemp(prefix="puyu-sandbox-") if unsafe else None
    t0 = time.monotonic()
    info_r = info_w = group = None
    data = code.encode("utf-8", "replace")  # the code goes in on stdin
    try:
        if unsafe:
            exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
            argv = [exe, "-I", "-S", "-X", "utf8", "-c", _BOOT, *_boot_args(lim, [tmp])]
            kw = {"cwd": tmp, "env": {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}}
        else:
            info_r, info_w = os.pipe()  # bwrap writes the host pid of the sandbox's init here
            argv = _sandbox_argv(plan, lim, info_w)
            kw = {"env": {}, "pass_fds": (info_w,)}
            if plan.cgroup:
                try:
                    group = RunGroup(plan.cgroup, *cgroup_limits(lim))
                except OSError as e:
                    raise SandboxUnavailable(f"sandbox unavailable: could not make this run's cgroup under "
                                             f"{plan.cgroup.memory} ({e}), which caps its total memory") from None
                # a gate: the shell waits for the first line of stdin, by when it is in the run's cgroup, and only
                # then starts bwrap, so that every process of the run starts inside it
                argv = [plan.sh, "-c", 'read -r _ && exec "$@"', "sh", *argv]
                data = b"\n" + data
        # the limits are set by the child itself, first thing (no preexec_fn: not safe with threads)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, **kw)
        if info_w is not None:
            os.close(info_w)
            info_w = None
        try:
            if group:
                group.add(proc.pid)
            out, rc, usage, stopped = _communicate(proc, data, lim, t0, info_r, plan is not None, group)
        except BaseException as e:  # e.g. KeyboardInterrupt in a notebook: nothing may outlive it
            _end(proc, None)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            if isinstance(e, OSError) and group and not group.added:
                raise SandboxUnavailable(f"sandbox unavailable: could not move the run into its cgroup "
                                         f"{group.dirs[0]} ({e}), which caps its total memory") from None
            raise
        cpu = usage.ru_utime + usage.ru_stime
        text = out.decode("utf-8", errors="replace")
        if len(text) > lim.max_output:
            text = text[:lim.max_output] + "\n…"
            stopped = stopped or _output_stop(lim)
        if stopped is None and group and group.oom_kills():
            stopped = _total_memory_stop(lim)
        if stopped is None and rc < 0:
            sig = -rc
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim.cpu_s):
                stopped = Msg(f"cpu: used more than {lim.cpu_s} s of CPU time",
                              f"CPU：用掉了超过 {lim.cpu_s} 秒的 CPU 时间")
            else:
                try:
                    name = signal.Signals(sig).name
                except ValueError:
                    name = str(sig)
                stopped = Msg(f"killed by signal {name}", f"被信号 {name} 终止")
        if stopped is None and rc == MEMORY_EXIT:
            stopped = Msg(f"memory: the program needed more than {lim.memory_mb} MB",
                          f"内存：程序需要的内存超过了 {lim.memory_mb} MB")
        return RunResult(text, rc, stopped, time.monotonic() - t0)
    finally:
        for fd in (info_r, info_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if group:
            group.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _total_memory_stop(lim: Limits) -> Msg:
    return Msg(f"memory: the run needed more than {lim.total_mb} MB in all (its processes, shared memory and files "
               f"together), and a process of it was killed",
               f"内存：这次运行总共需要超过 {lim.total_mb} MB（进程、共享内存和文件加在一起），其中一个进程被终止了")


def _output_stop(lim: Limits) -> Msg:
    return Msg(f"output: more than {lim.max_output} characters printed", f"输出：打印了超过 {lim.max_output} 个字符")


def _communicate(proc, data, lim, t0, info_r, sandboxed, group):
    """Feed the code in, collect the output until it ends or a limit trips, kill what is left and reap it."""
    out, info, pidfd, stopped = bytearray(), b"", None, None
    try:
        todo = memoryview(data)
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
                stopped = Msg(f"timeout: still running after {lim.wall_s:g} s of wall-clock time",
                              f"超时：运行了 {lim.wall_s:g} 秒（墙钟时间）还没有结束")
                break
            events = sel.select(timeout=min(left, 0.1 if group else 0.2))
            if group and group.oom_kills():  # the cgroup killed one of its processes: the run ends here
                stopped = _total_memory_stop(lim)
                break
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
                        stopped = _output_stop(lim)
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
